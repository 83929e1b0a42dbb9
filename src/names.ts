// The widget's attribute and class names and the languages it has words for, generated
// from crates/core/src/view.rs (`attr`, `class`), crates/core/src/config (`PREFERENCES`),
// crates/core/src/vocabulary.rs (`SUPPORTED`) and crates/core/src/compiled (what a
// sheet's tree may hold) by crates/core/tests/names.rs, which fails when this file
// differs.
// Do not edit: `UPDATE_NAMES=1 cargo test -p unticked-core --test names` rewrites it.
export const enum Attr {
  FORM_KIND = "data-unticked",
  SLOT = "data-unticked-slot",
  PURPOSE = "data-unticked-purpose",
  INPUT_NAME_PREFIX = "consent.",
  RECORD_INPUT = "consent.record",
  FIELD = "data-unticked-field",
  HINT_FOR = "data-unticked-hint",
  CONTACT = "data-unticked-contact",
  HINT_TEXT = "data-unticked-text",
  TOKEN = "data-unticked-token",
}
export const enum Class {
  ROOT = "unticked",
  LEGEND = "unticked__legend",
  INTRO = "unticked__intro",
  PURPOSE = "unticked__purpose",
  BOX = "unticked__box",
  LABEL = "unticked__label",
  OPTIONAL = "unticked__optional",
  DESCRIPTION = "unticked__description",
  NOTICE = "unticked__notice",
  DETAILS = "unticked__details",
  SUMMARY = "unticked__summary",
  FACTS = "unticked__facts",
  HINT = "unticked__hint",
  FIELD = "unticked__field",
}
export const enum Kind {
  PREFERENCES = "preferences",
}
export const LANGUAGES = ["en", "lv", "pl", "cs", "de", "lt", "et"];
export const TAGS = ["fieldset", "legend", "p", "div", "input", "label", "span", "details", "summary", "dl", "dt", "dd", "a"];
export const ATTRIBUTES = ["class", "id", "for", "type", "name", "value", "lang", "role", "href", "target", "rel", "aria-describedby", "data-unticked-purpose", "data-unticked-field", "data-unticked-hint", "data-unticked-contact", "data-unticked-text"];
export const ID_ATTRIBUTES = ["id", "for", "aria-describedby"];
export const SAFE_LINKS = ["mailto:", "tel:", "https://", "http://", "/"];

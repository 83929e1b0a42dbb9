//! What the widget shows for one form, as a small element tree.
//!
//! The widget turns this tree into DOM with `createElement`, `setAttribute` and text nodes
//! only, never `innerHTML`, so no config or translated text is ever parsed as markup.
//! Keeping the tree here makes the rendering testable natively: a property test checks that
//! no config the validator accepts yields a ticked, required or disabled consent box.

use alloc::{string::String, vec, vec::Vec};

use crate::jcs::write_string;
#[cfg(feature = "words")]
use crate::{
    config::{Config, Form, Retention},
    locale::{self, Words},
    text::concat,
    vocabulary::ExtraField,
};

/// Defines each name as a `&str` constant and `ALL`, every name beside its constant's
/// identifier: `crates/core/tests/names.rs` writes them to `src/names.ts`, so the widget's
/// JS spells no attribute or class name of its own (and the wasm links only what it uses).
macro_rules! names {
    ($($(#[$doc:meta])* $id:ident = $text:literal;)+) => {
        $($(#[$doc])* pub const $id: &str = $text;)+
        /// Every name of this module with its identifier, in definition order.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($id), $id)),+];
    };
}

/// Class names, shared with `www/unticked.css` and `src/widget.js` (as `Class.*` in
/// `src/names.ts`).
pub mod class {
    names! {
        ROOT = "unticked";
        LEGEND = "unticked__legend";
        INTRO = "unticked__intro";
        PURPOSE = "unticked__purpose";
        BOX = "unticked__box";
        LABEL = "unticked__label";
        OPTIONAL = "unticked__optional";
        DESCRIPTION = "unticked__description";
        NOTICE = "unticked__notice";
        DETAILS = "unticked__details";
        SUMMARY = "unticked__summary";
        FACTS = "unticked__facts";
        HINT = "unticked__hint";
        /// The birthday field (R8), which `src/widget.js` builds while its purpose is ticked.
        FIELD = "unticked__field";
    }
}

/// Attribute names of the public contract (DESIGN.md), shared with `src/widget.js` and
/// `src/guards.js` (as `Attr.*` in `src/names.ts`).
pub mod attr {
    names! {
        /// On a `<form>`: the form kind, e.g. `checkout`.
        FORM_KIND = "data-unticked";
        /// On an element inside the form: where the choices go.
        SLOT = "data-unticked-slot";
        /// On each purpose's row inside the choices: its purpose id.
        PURPOSE = "data-unticked-purpose";
        /// Prefix of each consent input's `name`: `consent.<purpose-id>`.
        INPUT_NAME_PREFIX = "consent.";
        /// The `name` of the hidden input that carries the record id with the form, which is
        /// how an order points at its proof (the collector reads it).
        RECORD_INPUT = "consent.record";
        /// On a purpose's row: the extra field it needs while ticked (R8); `src/widget.js`
        /// builds the field (`.unticked__field`) and marks it the same way.
        FIELD = "data-unticked-field";
        /// On a contact hint: the purpose it is about.
        HINT_FOR = "data-unticked-hint";
        /// On a contact hint: the kind of contact field (`email`, `phone`, `post`).
        CONTACT = "data-unticked-contact";
        /// On a contact hint: the words it shows while that field is empty.
        HINT_TEXT = "data-unticked-text";
        /// On the shop's account form (`data-unticked="preferences"`): the account token its
        /// backend minted for the logged-in customer (docs/account-form.md).
        TOKEN = "data-unticked-token";
    }
}

/// One node of the rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element: tag, attributes in order, children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub tag: &'static str,
    pub attrs: Vec<(&'static str, String)>,
    pub children: Vec<Node>,
}

// The builder: only the renderer (with the built-in words) makes trees; the widget reads them.
#[cfg(any(feature = "words", test))]
impl Element {
    #[inline(never)]
    fn new(tag: &'static str) -> Self {
        Element {
            tag,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    #[inline(never)]
    fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, value.into()));
        self
    }

    #[cfg(feature = "words")]
    #[inline(never)]
    fn class(self, name: &str) -> Self {
        self.attr("class", name)
    }

    #[inline(never)]
    fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    #[inline(never)]
    fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }
}

impl Element {
    /// The value of an attribute, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every element in this subtree (itself included), depth first.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = vec![self];
        for child in &self.children {
            if let Node::Element(e) = child {
                out.extend(e.descendants());
            }
        }
        out
    }

    /// The tree as compact JSON for the widget's DOM layer, which builds it with
    /// `createElement`, `setAttribute` and text nodes: an element is
    /// `["tag", ["name", "value", …], child, …]` and a text node is a string.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push_str("[\"");
        out.push_str(self.tag);
        out.push_str("\",[");
        for (i, (name, value)) in self.attrs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, name);
            out.push(',');
            write_string(out, value);
        }
        out.push(']');
        for child in &self.children {
            out.push(',');
            match child {
                Node::Text(text) => write_string(out, text),
                Node::Element(element) => element.write_json(out),
            }
        }
        out.push(']');
    }

    /// The concatenated text of this subtree, as `textContent` would give it.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            match child {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => out.push_str(&e.text_content()),
            }
        }
        out
    }
}

/// The text displayed for each purpose in a rendered tree, in display order: the text
/// content of its row (label, "optional", description, and whatever details the row
/// holds), exactly as the shopper saw it. Records carry its SHA-256 (R6), and the collector
/// renders the same tree from its config to check it.
pub fn purpose_texts(choices: &Element) -> Vec<(String, String)> {
    choices
        .descendants()
        .into_iter()
        .filter_map(|row| Some((row.get(attr::PURPOSE)?.into(), row.text_content())))
        .collect()
}

/// Renders the consent choices of `form` in `locale` (one of the config's declared locales)
/// with the widget's built-in words.
///
/// `id_prefix` keeps element ids unique when several forms share a page; `page_lang` is the
/// page's `<html lang>`, so the fieldset carries its own `lang` when it differs (WCAG 3.1.2).
#[cfg(feature = "words")]
pub fn choices(config: &Config, form: &Form, locale: &str, page_lang: Option<&str>, id_prefix: &str) -> Element {
    let words = locale::builtin(locale::primary(locale))
        .or_else(|| locale::builtin("en"))
        .expect("English words are built in");
    render(config, form, locale, &words, page_lang, id_prefix)
}

/// [`choices`] with the words of `locale`'s language given (the widget's wasm fetches them).
///
/// Each purpose's row holds everything the shopper is told about it before ticking (R5,
/// Art. 13): the performative label marked optional, the description, and a native
/// `<details>` (keyboard and screen-reader friendly, nothing on hover) with the channel,
/// the data, the recipients with role and country, transfers outside the EU/EEA with their
/// safeguard, retention counted from the consent, profiling and its logic, and how to
/// withdraw on that channel. The row's text is what the record's hash covers. Under the
/// choices: the controller's identity and contact, the privacy notice with its version, and
/// the right to withdraw at any time without affecting the lawfulness of processing before
/// it (Art. 7(3), 13(2)(c): the `withdraw` word).
#[cfg(feature = "words")]
pub fn render(
    config: &Config,
    form: &Form,
    locale: &str,
    words: &Words,
    page_lang: Option<&str>,
    id_prefix: &str,
) -> Element {
    let intro_id = concat(&[id_prefix, "-intro"]);
    let mut root = Element::new("fieldset")
        .class(class::ROOT)
        .attr("aria-describedby", intro_id.as_str());
    if !page_lang.is_some_and(|page| locale::same_language(page, locale)) {
        root = root.attr("lang", locale);
    }
    root = root
        .child(Element::new("legend").class(class::LEGEND).text(words.get("legend")))
        .child(
            Element::new("p")
                .class(class::INTRO)
                .attr("id", intro_id)
                .text(words.get("intro")),
        );

    let controller = &config.controller;
    for purpose in config.purposes_of(form) {
        // A validated config has every purpose text in every declared locale; the default
        // locale is the safe fallback should a caller pass an undeclared one.
        let text_locale = if purpose.text_in(locale).is_some() {
            locale
        } else {
            &config.default_locale
        };
        let Some(text) = purpose.text_in(text_locale) else {
            continue;
        };
        let input_id = concat(&[id_prefix, "-", &purpose.id]);
        let description_id = concat(&[&input_id, "-desc"]);
        let input = Element::new("input")
            .attr("type", "checkbox")
            .class(class::BOX)
            .attr("id", input_id.as_str())
            .attr("name", concat(&[attr::INPUT_NAME_PREFIX, &purpose.id]))
            .attr("value", "yes")
            .attr("aria-describedby", description_id.as_str());
        let label_id = concat(&[&input_id, "-label"]);
        let label = Element::new("label")
            .class(class::LABEL)
            .attr("id", label_id.as_str())
            .attr("for", input_id)
            .text(text.label.as_str())
            .text(" ")
            .child(
                Element::new("span")
                    .class(class::OPTIONAL)
                    .text(concat(&["(", words.get("optional"), ")"])),
            );
        let description = Element::new("p")
            .class(class::DESCRIPTION)
            .attr("id", description_id)
            .text(text.description.as_str());

        let mut facts = Element::new("dl").class(class::FACTS);
        let mut fact = |term: &str, detail: Element| {
            facts
                .children
                .push(Node::Element(Element::new("dt").text(words.get(term))));
            facts.children.push(Node::Element(detail));
        };
        fact("channel", dd(words.named("channel:", purpose.channel.as_str())));
        let mut data = String::new();
        for (i, category) in purpose.data.iter().enumerate() {
            data.push_str(if i == 0 { "" } else { ", " });
            data.push_str(words.named("data:", category.as_str()));
        }
        fact("data", dd(&data));
        // Art. 13(1)(e)–(f): recipients and transfers "where applicable".
        let mut recipients = String::new();
        for (i, r) in purpose.recipients.iter().enumerate() {
            let role = words.named("role:", r.role.as_str());
            recipients.push_str(&concat(&[
                if i == 0 { "" } else { "; " },
                &r.name,
                ", ",
                role,
                ", ",
                &country(words, &r.country),
            ]));
        }
        if !recipients.is_empty() {
            fact("recipients", dd(&recipients));
        }
        let mut transfers = String::new();
        for (i, t) in purpose.transfers.iter().enumerate() {
            let safeguard = words.named("safeguard:", t.safeguard.as_str());
            transfers.push_str(&concat(&[
                if i == 0 { "" } else { "; " },
                &country(words, &t.country),
                ": ",
                safeguard,
            ]));
        }
        if !transfers.is_empty() {
            fact("transfers", dd(&transfers));
        }
        let retention = match purpose.retention {
            Retention::UntilWithdrawn => String::from(words.get("until_withdrawn")),
            Retention::Months(n) => words.retention(n),
        };
        fact("retention", dd(&retention));
        if let Some(logic) = purpose.profiling_in(text_locale) {
            fact("profiling", dd(logic));
        }
        // Art. 7(3): withdrawing is as easy as giving, so each channel names its own way out
        // (the unsubscribe link, a STOP reply, the preferences page…) beside the
        // controller's address, which works for every channel.
        let (before, after) = words.around(&concat(&["withdraw_how:", purpose.channel.as_str()]));
        fact("withdrawal", dd(before).child(mailto(&controller.email)).text(after));
        // Every summary reads alike; each is described by its choice's label (WCAG 2.4.6).
        let summary = Element::new("summary")
            .class(class::SUMMARY)
            .attr("aria-describedby", label_id)
            .text(words.get("details"));
        let details = Element::new("details")
            .class(class::DETAILS)
            .child(summary)
            .child(facts);

        let mut row = Element::new("div")
            .class(class::PURPOSE)
            .attr(attr::PURPOSE, purpose.id.as_str());
        if purpose.fields.contains(&ExtraField::Birthday) {
            row = row.attr(attr::FIELD, "birthday");
        }
        root = root.child(row.child(input).child(label).child(description).child(details));
        // R9: a granted channel whose contact field is empty gets a polite hint, outside
        // the row (its text is not part of what the record's hash covers).
        if let (Some(kind), Some(_)) = (purpose.channel.contact(), form.contact.of(purpose.channel)) {
            let hint_key = concat(&["hint:", kind]);
            root = root.child(
                Element::new("p")
                    .class(class::HINT)
                    .attr("role", "status")
                    .attr(attr::HINT_FOR, purpose.id.as_str())
                    .attr(attr::CONTACT, kind)
                    .attr(attr::HINT_TEXT, words.get(&hint_key)),
            );
        }
    }

    let notice = &config.privacy_notice;
    let mut line = Element::new("p")
        .class(class::NOTICE)
        .text(concat(&[
            words.get("controller"),
            ": ",
            &controller.name,
            ", ",
            controller.address_in(locale),
            ", ",
        ]))
        .child(mailto(&controller.email));
    if let Some(phone) = &controller.phone {
        line = line
            .text(", ")
            .child(link(&concat(&["tel:", &phone.replace(' ', "")]), phone));
    }
    line = line.text(". ");
    if let Some(dpo) = &controller.dpo {
        line = line.text(concat(&[words.get("dpo"), ": "]));
        if let Some(name) = &dpo.name {
            line = line.text(concat(&[name, ", "]));
        }
        line = line.child(mailto(&dpo.email)).text(". ");
    }
    root.child(
        line.child(
            link(&notice.url, words.get("privacy_notice"))
                .attr("target", "_blank")
                .attr("rel", "noopener noreferrer"),
        )
        .text(concat(&[
            " (",
            words.get("version"),
            " ",
            &notice.version,
            "). ",
            words.get("withdraw"),
        ])),
    )
}

/// A country's name in the words' language. The linter accepts only codes CLDR names, so the
/// code itself is shown only for a language without names, where it is still the truth.
#[cfg(feature = "words")]
fn country(words: &Words, code: &str) -> String {
    locale::country_name(&words.language, code).unwrap_or_else(|| String::from(code))
}

#[cfg(feature = "words")]
fn dd(text: &str) -> Element {
    Element::new("dd").text(text)
}

#[cfg(feature = "words")]
fn link(href: &str, text: &str) -> Element {
    Element::new("a").attr("href", href).text(text)
}

#[cfg(feature = "words")]
fn mailto(address: &str) -> Element {
    link(&concat(&["mailto:", address]), address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_as_json_keeps_tags_attributes_and_text_in_order() {
        let tree = Element::new("p")
            .attr("id", "x\"y")
            .text("a <b>")
            .child(Element::new("a").attr("href", "/p").text("link"));
        assert_eq!(
            tree.to_json(),
            r#"["p",["id","x\"y"],"a <b>",["a",["href","/p"],"link"]]"#
        );
    }
}

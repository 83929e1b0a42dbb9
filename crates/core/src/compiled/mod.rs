//! The compiled config: what `unticked build` (and `unticked serve` at start) writes for the
//! widget, so that a config is validated once, at the site owner's side, and never again in
//! a shopper's browser (issue 13).
//!
//! A linted `consent.json` compiles into one directory named after the SHA-256 of its text,
//! `pkg/c/<sha256>/`: [`SITE_FILE`] ([`Site`]: the endpoint, the forms and the locales) and,
//! for each form kind and declared locale, [`sheet_name`] ([`Sheet`]: exactly what that form
//! shows in that locale, its choices already rendered, with the widget's words, the country
//! names and the controller's address in that language, and what a capture needs to know of
//! each purpose). The widget hashes the config text it was pointed at (`data-config`), so the
//! tag shops use today finds its compiled form on a plain static host, and a record's
//! `config_sha256`, form and locale name exactly the sheet that was shown.
//!
//! The widget's reader ([`Site::from_json`], [`Sheet::from_json`]) refuses whatever it cannot
//! build exactly: another format version, an unknown tag, attribute, channel or source, a
//! missing text, a box that could be pre-ticked or required. It never substitutes a default.
//! The collector checks records against the texts of the same sheets ([`compile`]), so the
//! hashes agree by construction.

use alloc::{string::String, vec::Vec};

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;

use crate::json::Json;
use crate::text::concat;
use crate::view::{attr, Element, Node};
use crate::vocabulary::{Channel, Named, Source};

/// The version of this format. A reader refuses any other: a widget older or newer than the
/// `unticked` that compiled the config shows nothing rather than something it misreads.
pub const FORMAT: u32 = 1;

/// The directory under the widget's `pkg/` that holds one directory per compiled config.
pub const DIR: &str = "c";

/// The name of a compiled config's [`Site`] in its directory.
pub const SITE_FILE: &str = "site.json";

/// The file name of the [`Sheet`] of form `kind` in `locale`: both are checked by the
/// linter (a slug, a BCP 47 tag), so the name is always a plain file name.
pub fn sheet_name(kind: &str, locale: &str) -> String {
    concat(&[kind, ".", locale, ".json"])
}

/// A problem reading a compiled config: a code the widget reports (`unticked:error`) and a
/// message that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            code,
            message: message.into(),
        }
    }
}

/// What a page needs before it knows its forms: where records go, the form kinds, and the
/// locales every form is compiled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub format: u32,
    /// SHA-256 (hex) of the config text this was compiled from.
    pub config_sha256: String,
    pub endpoint: String,
    pub default_locale: String,
    pub locales: Vec<String>,
    /// Form kinds, in the config's order.
    pub forms: Vec<String>,
}

impl Site {
    /// Reads a site file compiled from the config whose text hashes to `config_sha256`.
    ///
    /// # Errors
    /// `compiled-invalid` (not this format's JSON, naming what is wrong), `compiled-format`
    /// (another version), `compiled-mismatch` (compiled from another config).
    pub fn from_json(text: &str, config_sha256: &str) -> Result<Site, Problem> {
        let value = crate::read::parse(text).map_err(|e| unreadable(SITE_FILE, &e))?;
        let site = reader::site(&value).map_err(|e| unreadable(SITE_FILE, &e))?;
        same_format(site.format)?;
        if site.config_sha256 != config_sha256 {
            return Err(mismatch(SITE_FILE, "config_sha256", config_sha256, &site.config_sha256));
        }
        if !site.locales.contains(&site.default_locale) {
            return Err(Problem::new(
                "compiled-invalid",
                concat(&[
                    SITE_FILE,
                    ": its default locale \"",
                    &site.default_locale,
                    "\" is not one of its locales",
                ]),
            ));
        }
        Ok(site)
    }

    /// The locale a form shows: the first of `requested` (the form's `lang`, then the
    /// browser's languages) compiled, else the default (see [`crate::locale::negotiate`]).
    /// `None` when the config has no form of `kind`.
    pub fn locale_for<'r>(&self, kind: &str, requested: impl IntoIterator<Item = &'r str>) -> Option<&str> {
        if !self.forms.iter().any(|k| k == kind) {
            return None;
        }
        Some(crate::locale::negotiate(requested, &self.locales, &self.default_locale))
    }
}

/// The privacy notice the choices link to, recorded with each consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub url: String,
    pub version: String,
}

/// CSS selectors of the form's contact fields per kind of contact (R9), `null` when the
/// form names none: the config's own type.
pub use crate::config::ContactFields as Contact;

/// What a capture needs to know of a purpose shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SheetPurpose {
    pub id: String,
    pub version: u32,
    #[serde(serialize_with = "named")]
    pub channel: Channel,
    /// Whether a tick of it asks for the birthday (R8).
    pub birthday: bool,
    /// Its row's text as shown ([`crate::view::purpose_texts`]), which the record's hash
    /// covers; the widget checks that the row it built says exactly this.
    pub text: String,
}

/// The birthday field's words (R8): its title, "day" and "month".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BirthdayWords {
    pub title: String,
    pub day: String,
    pub month: String,
}

/// One form kind in one locale, compiled: what the wasm reads to capture. Its file holds the
/// rendered choices too ([`Rendered`]), which `src/widget.js` builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sheet {
    pub format: u32,
    pub config_sha256: String,
    pub form: String,
    #[serde(serialize_with = "named")]
    pub source: Source,
    pub locale: String,
    pub notice: Notice,
    pub contact: Contact,
    /// In display order, one per row of `tree`.
    pub purposes: Vec<SheetPurpose>,
    /// `None` when no purpose asks for the birthday.
    pub birthday: Option<BirthdayWords>,
}

/// A sheet with its choices as rendered ([`crate::view::render`]): ids start with `-`, so
/// the widget puts its own prefix before them ([`Rendered::choices`]), and the root carries
/// `lang`, which the widget drops where the page already speaks the language
/// ([`Sheet::needs_lang`]). The sheet's file is both: the sheet's members and `tree`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    #[serde(flatten)]
    pub sheet: Sheet,
    pub tree: Element,
}

impl Sheet {
    /// Reads the sheet of form `kind` in `locale`, compiled from the config whose text
    /// hashes to `config_sha256`, except its `tree` (which must be there, an array: the
    /// widget's JavaScript builds it and checks it with the rules of [`check_tree`]).
    ///
    /// # Errors
    /// `compiled-invalid`, `compiled-format` or `compiled-mismatch`, naming the problem.
    pub fn from_json(text: &str, config_sha256: &str, kind: &str, locale: &str) -> Result<Sheet, Problem> {
        let value = crate::read::parse(text).map_err(|e| unreadable(&sheet_name(kind, locale), &e))?;
        Self::read(&value, config_sha256, kind, locale).map(|(sheet, _)| sheet)
    }

    fn read<'a>(value: &'a Json, config_sha256: &str, kind: &str, locale: &str) -> Result<(Sheet, &'a Json), Problem> {
        let name = sheet_name(kind, locale);
        let (sheet, tree) = reader::sheet(value).map_err(|e| unreadable(&name, &e))?;
        same_format(sheet.format)?;
        for (field, expected, found) in [
            ("config_sha256", config_sha256, &sheet.config_sha256),
            ("form", kind, &sheet.form),
            ("locale", locale, &sheet.locale),
        ] {
            if expected != found {
                return Err(mismatch(&name, field, expected, found));
            }
        }
        Ok((sheet, tree))
    }

    /// Whether the choices need a `lang` of their own on a page (or form) in `page_lang`
    /// (WCAG 3.1.2): unless the page already speaks the sheet's language.
    pub fn needs_lang(&self, page_lang: Option<&str>) -> bool {
        !page_lang.is_some_and(|page| crate::locale::same_language(page, &self.locale))
    }

    /// The purpose of `id`, if the sheet shows it.
    pub fn purpose(&self, id: &str) -> Option<&SheetPurpose> {
        self.purposes.iter().find(|p| p.id == id)
    }
}

impl Rendered {
    /// Reads a whole sheet file, its tree too, and checks the tree ([`check_tree`]).
    ///
    /// # Errors
    /// As [`Sheet::from_json`], and `compiled-invalid` for a tree that breaks the rules.
    pub fn from_json(text: &str, config_sha256: &str, kind: &str, locale: &str) -> Result<Rendered, Problem> {
        let name = sheet_name(kind, locale);
        let value = crate::read::parse(text).map_err(|e| unreadable(&name, &e))?;
        let (sheet, tree) = Sheet::read(&value, config_sha256, kind, locale)?;
        let tree = reader::element(tree).map_err(|e| unreadable(&name, &e))?;
        check_tree(&sheet, &tree).map_err(|what| Problem::new("compiled-invalid", concat(&[&name, ": ", &what])))?;
        Ok(Rendered { sheet, tree })
    }

    /// The choices for a page: each id prefixed with `id_prefix` (unique on the page), and
    /// `lang` on the root only where [`Sheet::needs_lang`]. What `src/widget.js` does.
    pub fn choices(&self, page_lang: Option<&str>, id_prefix: &str) -> Element {
        let mut tree = self.tree.clone();
        prefix_ids(&mut tree, id_prefix);
        if !self.sheet.needs_lang(page_lang) {
            tree.attrs.retain(|(name, _)| *name != "lang");
        }
        tree
    }
}

/// The rules a sheet's tree follows, which `src/widget.js` checks as it builds it: a
/// fieldset; tags and attributes of [`TAGS`] and [`ATTRIBUTES`] only (no `checked`,
/// `required`, `disabled`, `style` or handler can be written at all: R1, R3); every input a
/// checkbox; one row per purpose, in order, each with exactly one box of its own and the
/// sheet's text for it; links only to mail, phone or web addresses.
///
/// # Errors
/// What is wrong, in words.
pub fn check_tree(sheet: &Sheet, tree: &Element) -> Result<(), String> {
    if tree.tag != "fieldset" {
        return Err(String::from("its choices are not a fieldset"));
    }
    let elements = tree.descendants();
    let rows: Vec<&Element> = elements
        .iter()
        .copied()
        .filter(|e| e.get(attr::PURPOSE).is_some())
        .collect();
    if rows.len() != sheet.purposes.len() {
        return Err(String::from("its rows and its purposes differ in number"));
    }
    for (row, purpose) in rows.iter().zip(&sheet.purposes) {
        if row.get(attr::PURPOSE) != Some(purpose.id.as_str()) {
            return Err(concat(&[
                "the rows are not in the order of its purposes at \"",
                &purpose.id,
                "\"",
            ]));
        }
        let name_of_box = concat(&[attr::INPUT_NAME_PREFIX, &purpose.id]);
        let boxes: Vec<&Element> = row.descendants().into_iter().filter(|e| e.tag == "input").collect();
        if boxes.len() != 1 || boxes[0].get("name") != Some(&name_of_box) {
            return Err(concat(&[
                "the row of \"",
                &purpose.id,
                "\" has not exactly one box of its own",
            ]));
        }
        if row.text_content() != purpose.text {
            return Err(concat(&[
                "the row of \"",
                &purpose.id,
                "\" does not say the purpose's text",
            ]));
        }
    }
    for element in &elements {
        if element.tag == "input" && element.get("type") != Some("checkbox") {
            return Err(String::from("it has an input that is not a checkbox"));
        }
        if let Some(href) = element.get("href") {
            if !safe_link(href) {
                return Err(concat(&[
                    "it links to \"",
                    href,
                    "\", which is no mail, phone or web address",
                ]));
            }
        }
    }
    Ok(())
}

/// The beginnings a link in the choices may have (the notice, the controller's mail and
/// phone). Not `//`, which leaves the site.
pub const SAFE_LINKS: &[&str] = &["mailto:", "tel:", "https://", "http://", "/"];

fn safe_link(href: &str) -> bool {
    SAFE_LINKS.iter().any(|p| href.starts_with(p)) && !href.starts_with("//")
}

/// The attributes whose value is an element id (or a list of them), which the widget prefixes.
pub const ID_ATTRIBUTES: &[&str] = &["id", "for", "aria-describedby"];

fn prefix_ids(element: &mut Element, prefix: &str) {
    for (name, value) in &mut element.attrs {
        if ID_ATTRIBUTES.contains(name) {
            *value = value
                .split(' ')
                .map(|id| concat(&[prefix, id]))
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    for child in &mut element.children {
        if let Node::Element(e) = child {
            prefix_ids(e, prefix);
        }
    }
}

fn unreadable(name: &str, e: &crate::read::Error) -> Problem {
    Problem::new(
        "compiled-invalid",
        concat(&[name, " cannot be read: ", &e.describe(), "; run `unticked build` again"]),
    )
}

fn same_format(format: u32) -> Result<(), Problem> {
    if format == FORMAT {
        return Ok(());
    }
    Err(Problem::new(
        "compiled-format",
        concat(&[
            "the compiled config is format ",
            &crate::text::decimal(u64::from(format)),
            ", this widget reads format ",
            &crate::text::decimal(u64::from(FORMAT)),
            ": build it with the `unticked` of this widget's release",
        ]),
    ))
}

fn mismatch(name: &str, field: &str, expected: &str, found: &str) -> Problem {
    Problem::new(
        "compiled-mismatch",
        concat(&[
            name,
            ": its ",
            field,
            " is \"",
            found,
            "\" where \"",
            expected,
            "\" was expected; run `unticked build` again",
        ]),
    )
}

/// A vocabulary enum written as in `consent.json` ([`Named`]).
fn named<T: Named, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.name())
}

/// Tags the choices may use.
pub const TAGS: &[&str] = &[
    "fieldset", "legend", "p", "div", "input", "label", "span", "details", "summary", "dl", "dt", "dd", "a",
];

/// Attributes the choices may carry. Neither `checked`, `required`, `disabled` nor any event
/// handler or `style` is among them: a sheet cannot pre-tick, require or script anything.
pub const ATTRIBUTES: &[&str] = &[
    "class",
    "id",
    "for",
    "type",
    "name",
    "value",
    "lang",
    "role",
    "href",
    "target",
    "rel",
    "aria-describedby",
    attr::PURPOSE,
    attr::FIELD,
    attr::HINT_FOR,
    attr::CONTACT,
    attr::HINT_TEXT,
];

/// An element is written `["tag", ["name", "value", …], child, …]` and a text node as a
/// string: the form `src/widget.js` builds with `createElement`, `setAttribute` and text
/// nodes (see [`Element::to_json`]).
impl Serialize for Element {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(2 + self.children.len()))?;
        seq.serialize_element(self.tag)?;
        let attrs: Vec<&str> = self.attrs.iter().flat_map(|(n, v)| [*n, v.as_str()]).collect();
        seq.serialize_element(&attrs)?;
        for child in &self.children {
            match child {
                Node::Text(text) => seq.serialize_element(text)?,
                Node::Element(element) => seq.serialize_element(element)?,
            }
        }
        seq.end()
    }
}

mod reader;

/// A config compiled: its site file and every sheet, with their JSON.
#[cfg(feature = "words")]
pub struct Compiled {
    pub site: Site,
    pub sheets: Vec<Rendered>,
}

#[cfg(feature = "words")]
impl Compiled {
    /// Every file of the compiled directory: `(name, JSON text)`.
    pub fn files(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        files.push((String::from(SITE_FILE), to_json(&self.site)));
        for rendered in &self.sheets {
            files.push((
                sheet_name(&rendered.sheet.form, &rendered.sheet.locale),
                to_json(rendered),
            ));
        }
        files
    }

    /// The sheet of `kind` in `locale`.
    pub fn sheet(&self, kind: &str, locale: &str) -> Option<&Rendered> {
        self.sheets
            .iter()
            .find(|s| s.sheet.form == kind && s.sheet.locale == locale)
    }
}

#[cfg(feature = "words")]
fn to_json<T: Serialize>(value: &T) -> String {
    // These types hold strings, integers, booleans and sequences only, which serde_json
    // always writes: an error here is a bug in this module.
    serde_json::to_string(value).expect("a compiled config is always JSON")
}

/// Compiles a validated config (its text hashes to `config_sha256`) into every form's
/// choices in every declared locale, rendered with the built-in words.
#[cfg(feature = "words")]
pub fn compile(config: &crate::config::Config, config_sha256: &str) -> Compiled {
    use crate::vocabulary::ExtraField;
    let site = Site {
        format: FORMAT,
        config_sha256: String::from(config_sha256),
        endpoint: config.endpoint.clone(),
        default_locale: config.default_locale.clone(),
        locales: config.locales.clone(),
        forms: config.forms.iter().map(|f| f.kind.clone()).collect(),
    };
    let mut sheets = Vec::new();
    // The preferences form too (the shop's account page, the collector's preference page),
    // though the site file does not list it: a checkout's widget never mounts it.
    for form in config.forms.iter().chain([&config.preferences]) {
        for locale in &config.locales {
            let words = crate::locale::builtin(crate::locale::primary(locale))
                .or_else(|| crate::locale::builtin("en"))
                .expect("English words are built in");
            let tree = crate::view::render(config, form, locale, &words, None, "");
            let texts = crate::view::purpose_texts(&tree);
            let purposes: Vec<SheetPurpose> = config
                .purposes_of(form)
                .zip(texts)
                .map(|(p, (_, text))| SheetPurpose {
                    id: p.id.clone(),
                    version: p.version,
                    channel: p.channel,
                    birthday: p.fields.contains(&ExtraField::Birthday),
                    text,
                })
                .collect();
            let birthday = purposes.iter().any(|p| p.birthday).then(|| BirthdayWords {
                title: String::from(words.get("birthday")),
                day: String::from(words.get("day")),
                month: String::from(words.get("month")),
            });
            let sheet = Sheet {
                format: FORMAT,
                config_sha256: String::from(config_sha256),
                form: form.kind.clone(),
                source: form.source,
                locale: locale.clone(),
                notice: Notice {
                    url: config.privacy_notice.url.clone(),
                    version: config.privacy_notice.version.clone(),
                },
                contact: Contact {
                    email: form.contact.email.clone(),
                    phone: form.contact.phone.clone(),
                    post: form.contact.post.clone(),
                },
                purposes,
                birthday,
            };
            sheets.push(Rendered { sheet, tree });
        }
    }
    Compiled { site, sheets }
}

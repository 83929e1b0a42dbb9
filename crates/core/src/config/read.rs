//! Checks a [`Json`] tree against the shape of `consent.json` and the rules, collecting
//! every problem with its JSON Pointer, then builds the typed [`Config`].
//!
//! One static description of the shape ([`ROOT`] and the tables it points to) drives a
//! single checker. A hand-written derive would stop at the first error (serde does), and
//! straight-line reading code was the largest part of the widget's wasm (measured with
//! twiggy); a table costs a few hundred bytes. `schema/consent.schema.json` describes the
//! same shape for editors, and a test keeps the two in agreement on every vector.
//!
//! Relations between parts (purpose ids, form references, translations, transfers) are
//! checked on the parts whose shape is right, so every problem is reported in one run.
//!
//! Without the `lint` feature (the widget's wasm) only the forbidden keys are checked; see
//! the first [`config`].
#![cfg_attr(not(feature = "lint"), allow(dead_code))]

use alloc::{string::String, string::ToString, vec::Vec};

use super::error::{ConfigError, ErrorCode};
use super::*;
use crate::json::Json;
use crate::locale;

/// Keys that would set an initial or required state on a consent box, or bundle choices.
/// They are refused anywhere in the file with the rule they would break rather than as
/// merely "unknown". Compared after lowercasing and dropping `-` and `_`.
const FORBIDDEN_KEYS: &[(&str, ErrorCode)] = &[
    ("checked", ErrorCode::PreTicked),
    ("prechecked", ErrorCode::PreTicked),
    ("preticked", ErrorCode::PreTicked),
    ("ticked", ErrorCode::PreTicked),
    ("default", ErrorCode::PreTicked),
    ("defaultchecked", ErrorCode::PreTicked),
    ("defaultvalue", ErrorCode::PreTicked),
    ("defaultstate", ErrorCode::PreTicked),
    ("preselected", ErrorCode::PreTicked),
    ("selected", ErrorCode::PreTicked),
    ("initial", ErrorCode::PreTicked),
    ("initialstate", ErrorCode::PreTicked),
    ("optout", ErrorCode::PreTicked),
    ("value", ErrorCode::PreTicked),
    ("required", ErrorCode::RequiredConsent),
    ("ariarequired", ErrorCode::RequiredConsent),
    ("mandatory", ErrorCode::RequiredConsent),
    ("mustaccept", ErrorCode::RequiredConsent),
    ("requiredforpurchase", ErrorCode::RequiredConsent),
    ("requiredpurposes", ErrorCode::RequiredConsent),
    ("requireconsent", ErrorCode::RequiredConsent),
    ("blocksubmit", ErrorCode::RequiredConsent),
    ("channels", ErrorCode::BundledChannels),
    ("acceptall", ErrorCode::AcceptAll),
    ("selectall", ErrorCode::AcceptAll),
    ("consentall", ErrorCode::AcceptAll),
    ("tickall", ErrorCode::AcceptAll),
    ("checkall", ErrorCode::AcceptAll),
    ("terms", ErrorCode::NotConsent),
    ("acceptterms", ErrorCode::NotConsent),
    ("termsandconditions", ErrorCode::NotConsent),
    ("acknowledgement", ErrorCode::NotConsent),
    ("acknowledgment", ErrorCode::NotConsent),
    ("privacypolicyaccepted", ErrorCode::NotConsent),
];

fn forbidden_key(key: &str) -> Option<ErrorCode> {
    let folded: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    FORBIDDEN_KEYS.iter().find(|(k, _)| *k == folded).map(|(_, code)| *code)
}

/// Without the `messages` feature (the widget) there is no prose to choose, and the choice
/// itself (`is_truthy`) would still be evaluated and shipped.
#[cfg(not(feature = "messages"))]
fn forbidden_message(_key: &str, _code: ErrorCode, _value: &Json) -> String {
    String::new()
}

#[cfg(feature = "messages")]
fn forbidden_message(key: &str, code: ErrorCode, value: &Json) -> String {
    match code {
        ErrorCode::PreTicked if value.is_truthy() => message!(
            "\"{key}\" would pre-tick a consent box, and a pre-ticked box is not consent: every box starts unticked, remove \"{key}\""
        ),
        ErrorCode::PreTicked => message!(
            "\"{key}\" is not a setting: every consent box starts unticked and only the shopper can tick it; remove \"{key}\""
        ),
        ErrorCode::RequiredConsent => message!(
            "\"{key}\" would make marketing consent a condition of the purchase or sign-up, which it must never be; remove \"{key}\""
        ),
        ErrorCode::BundledChannels => message!(
            "\"{key}\" bundles several channels behind one box: give each channel its own purpose with one \"channel\""
        ),
        ErrorCode::AcceptAll => message!(
            "\"{key}\" would grant several purposes with one switch: each purpose gets its own box"
        ),
        _ => message!(
            "\"{key}\": accepting terms or a privacy policy is not consent and is never recorded as one; keep it out of consent.json"
        ),
    }
}

/// The shape of one value in `consent.json`.
enum Shape {
    /// A string with something other than white space in it.
    Text,
    /// Text a record carries as a name (the notice's version): at most
    /// `record::MAX_NAME` bytes, which is what `record::read` takes.
    Name,
    Email,
    Url,
    /// A web origin: scheme and host (and port), no path.
    Origin,
    /// A stable id: lowercase words joined by single hyphens.
    Slug,
    Locale,
    Country,
    Dpv,
    Selector,
    Whole {
        min: u64,
        max: u64,
    },
    OneOf(&'static [&'static str]),
    /// One channel name; a list of channels is bundling (R2).
    Channel,
    /// Only "consent": anything else is not consent (R4).
    LegalBasis,
    /// "until-withdrawn" or `{ "months": N }`.
    Retention,
    Object(&'static [Field]),
    /// An array; `empty` is the problem when it has no items, `duplicate` when one repeats.
    List {
        item: &'static Shape,
        empty: Option<ErrorCode>,
        duplicate: Option<ErrorCode>,
    },
    /// `{ "<form kind>": FORM }`.
    Forms,
    /// `{ "<declared locale>": … }`, every declared locale present.
    PerLocale(&'static Shape),
}

struct Field {
    name: &'static str,
    required: bool,
    shape: Shape,
}

const fn req(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        required: true,
        shape,
    }
}

const fn opt(name: &'static str, shape: Shape) -> Field {
    Field {
        name,
        required: false,
        shape,
    }
}

const fn list(item: &'static Shape) -> Shape {
    Shape::List {
        item,
        empty: None,
        duplicate: None,
    }
}

const fn distinct(item: &'static Shape, duplicate: ErrorCode) -> Shape {
    Shape::List {
        item,
        empty: None,
        duplicate: Some(duplicate),
    }
}

static CONTROLLER: [Field; 5] = [
    req("name", Shape::Text),
    req("address", Shape::Text),
    req("email", Shape::Email),
    opt("phone", Shape::Text),
    opt(
        "dpo",
        Shape::Object(&[opt("name", Shape::Text), req("email", Shape::Email)]),
    ),
];
static NOTICE: [Field; 2] = [req("url", Shape::Url), req("version", Shape::Name)];
static FORM: [Field; 3] = [
    req("source", Shape::OneOf(<Source as Named>::NAMES)),
    req(
        "purposes",
        Shape::List {
            item: &Shape::Text,
            empty: Some(ErrorCode::EmptyForm),
            duplicate: Some(ErrorCode::DuplicateFormPurpose),
        },
    ),
    opt(
        "contact",
        Shape::Object(&[
            opt("email", Shape::Selector),
            opt("phone", Shape::Selector),
            opt("post", Shape::Selector),
        ]),
    ),
];
static PURPOSE: [Field; 12] = [
    req("id", Shape::Slug),
    req(
        "version",
        Shape::Whole {
            min: 1,
            max: u32::MAX as u64,
        },
    ),
    req("channel", Shape::Channel),
    req("dpv", Shape::Dpv),
    opt("legal_basis", Shape::LegalBasis),
    req(
        "text",
        Shape::PerLocale(&Shape::Object(&[
            req("label", Shape::Text),
            req("description", Shape::Text),
        ])),
    ),
    opt(
        "data",
        distinct(&Shape::OneOf(<DataCategory as Named>::NAMES), ErrorCode::DuplicateItem),
    ),
    opt(
        "recipients",
        list(&Shape::Object(&[
            req("name", Shape::Text),
            req("role", Shape::OneOf(<RecipientRole as Named>::NAMES)),
            req("country", Shape::Country),
        ])),
    ),
    opt(
        "transfers",
        list(&Shape::Object(&[
            req("country", Shape::Country),
            req("safeguard", Shape::OneOf(<Safeguard as Named>::NAMES)),
        ])),
    ),
    req("retention", Shape::Retention),
    opt("profiling", Shape::PerLocale(&Shape::Text)),
    opt(
        "fields",
        distinct(&Shape::OneOf(<ExtraField as Named>::NAMES), ErrorCode::DuplicateItem),
    ),
];
const LOCALES: Shape = Shape::List {
    item: &Shape::Locale,
    empty: Some(ErrorCode::EmptyValue),
    duplicate: Some(ErrorCode::DuplicateLocale),
};
static ROOT: [Field; 9] = [
    // Editors find the schema through "$schema"; it carries no meaning here.
    opt("$schema", Shape::Text),
    req("controller", Shape::Object(&CONTROLLER)),
    req("privacy_notice", Shape::Object(&NOTICE)),
    req("endpoint", Shape::Url),
    // The shop's origins, when the collector is on another one (CORS).
    opt(
        "origins",
        Shape::List {
            item: &Shape::Origin,
            empty: None,
            duplicate: Some(ErrorCode::DuplicateItem),
        },
    ),
    req("locales", LOCALES),
    req("default_locale", Shape::Locale),
    req(
        "purposes",
        Shape::List {
            item: &Shape::Object(&PURPOSE),
            empty: Some(ErrorCode::EmptyValue),
            duplicate: None,
        },
    ),
    req("forms", Shape::Forms),
];

/// RFC 6901 §4: `~` is written `~0` and `/` is written `~1` inside a reference token.
fn child(path: &str, key: &str) -> String {
    let mut out = String::with_capacity(path.len() + key.len() + 1);
    out.push_str(path);
    out.push('/');
    for c in key.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

fn index(path: &str, i: usize) -> String {
    crate::text::concat(&[path, "/", &crate::text::decimal(i as u64)])
}

fn get<'j>(value: &'j Json, key: &str) -> Option<&'j Json> {
    match value {
        Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn str_of(value: Option<&Json>) -> Option<&str> {
    match value {
        Some(Json::String(s)) => Some(s),
        _ => None,
    }
}

fn items(value: Option<&Json>) -> &[Json] {
    match value {
        Some(Json::Array(items)) => items,
        _ => &[],
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
    /// The declared locales, once `/locales` is known to be right.
    locales: Option<Vec<String>>,
}

impl Checker {
    fn err(&mut self, path: &str, code: ErrorCode, message: String) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            code,
            message,
        });
    }

    fn wrong_type(&mut self, path: &str, expected: &str, got: &Json) {
        self.err(
            path,
            ErrorCode::WrongType,
            message!("expected {expected}, found {}", got.type_name()),
        );
    }

    /// Checks `value` against `shape`, reporting every problem; true when there is none.
    fn check(&mut self, value: &Json, shape: &Shape, path: &str) -> bool {
        let before = self.errors.len();
        match shape {
            Shape::Object(fields) => self.object(value, fields, path),
            Shape::List { item, empty, duplicate } => self.list(value, item, *empty, *duplicate, path),
            Shape::Forms => self.forms(value, path),
            Shape::PerLocale(inner) => self.per_locale(value, inner, path),
            Shape::Retention => match value {
                Json::String(s) if s == "until-withdrawn" => {}
                Json::Object(_) => {
                    self.object(value, &[req("months", Shape::Whole { min: 1, max: 240 })], path);
                }
                _ => self.err(
                    path,
                    ErrorCode::UnknownValue,
                    message!("retention is \"until-withdrawn\" or {{ \"months\": N }}"),
                ),
            },
            Shape::Channel if matches!(value, Json::Array(_)) => self.err(
                path,
                ErrorCode::BundledChannels,
                message!(
                    "one purpose has exactly one channel: split it into one purpose per channel, each with its own box"
                ),
            ),
            Shape::Whole { min, max } => match value.as_whole_number() {
                Some(n) if (*min..=*max).contains(&n) => {}
                Some(_) => self.err(
                    path,
                    ErrorCode::OutOfRange,
                    message!("must be a whole number from {min} to {max}"),
                ),
                None => self.wrong_type(path, "a whole number", value),
            },
            _ => self.scalar(value, shape, path),
        }
        self.errors.len() == before
    }

    /// The shapes that are strings with a format.
    fn scalar(&mut self, value: &Json, shape: &Shape, path: &str) {
        let text = match value {
            Json::String(s) if s.trim().is_empty() => {
                return self.err(path, ErrorCode::EmptyValue, message!("must not be empty"));
            }
            Json::String(s) => s.as_str(),
            other => return self.wrong_type(path, "a string", other),
        };
        let problem = match shape {
            Shape::Email => (!is_email(text)).then(|| (ErrorCode::UnknownValue, message!("\"{text}\" is not an e-mail address"))),
            Shape::Url => check_url(text).err().map(|code| (code, url_message(text, code))),
            Shape::Name => (text.len() > crate::record::MAX_NAME).then(|| {
                (ErrorCode::OutOfRange, message!("must be at most {} bytes: records carry it", crate::record::MAX_NAME))
            }),
            Shape::Origin => check_origin(text).err().map(|code| (code, origin_message(text, code))),
            Shape::Slug => (!is_slug(text)).then(|| {
                (ErrorCode::InvalidSlug, message!("\"{text}\" is not a stable id: use lowercase letters, digits and single hyphens, e.g. \"email-offers\""))
            }),
            Shape::Locale => check_locale(text).err().map(|code| (code, locale_message(text, code))),
            Shape::Country => (!is_country(text))
                .then(|| (ErrorCode::InvalidCountry, message!("\"{text}\" is not an ISO 3166-1 alpha-2 country code such as \"LV\""))),
            Shape::Dpv => (!is_dpv_term(text))
                .then(|| (ErrorCode::InvalidDpvTerm, message!("\"{text}\" is not a W3C DPV purpose term such as \"dpv:DirectMarketing\""))),
            Shape::Selector => (!is_selector(text))
                .then(|| (ErrorCode::InvalidSelector, message!("\"{text}\" is not a CSS selector such as \"#email\" or \"input[name=phone]\""))),
            Shape::OneOf(names) => (!names.contains(&text))
                .then(|| (ErrorCode::UnknownValue, message!("\"{text}\" is not one of: {}", names.join(", ")))),
            Shape::Channel => (!<Channel as Named>::NAMES.contains(&text))
                .then(|| (ErrorCode::UnknownValue, message!("\"{text}\" is not one of: {}", <Channel as Named>::NAMES.join(", ")))),
            Shape::LegalBasis => (text != "consent").then(|| {
                (ErrorCode::NotConsent, message!("legal basis \"{text}\" is not consent: Unticked only asks for and records consent; terms, contracts and legitimate interest do not belong in a consent box"))
            }),
            _ => None,
        };
        if let Some((code, message)) = problem {
            self.err(path, code, message);
        }
    }

    fn object(&mut self, value: &Json, fields: &[Field], path: &str) {
        let Json::Object(members) = value else {
            return self.wrong_type(path, "an object", value);
        };
        for field in fields {
            match members.iter().find(|(k, _)| k == field.name) {
                Some((_, v)) => {
                    self.check(v, &field.shape, &child(path, field.name));
                }
                None if field.required => self.err(
                    path,
                    ErrorCode::MissingField,
                    message!("missing field \"{}\"", field.name),
                ),
                None => {}
            }
        }
        for (key, value) in members {
            if fields.iter().any(|f| f.name == key) {
                continue;
            }
            let at = child(path, key);
            match forbidden_key(key) {
                Some(code) => self.err(&at, code, forbidden_message(key, code, value)),
                None => self.err(&at, ErrorCode::UnknownField, message!("unknown field \"{key}\"")),
            }
        }
    }

    fn list(&mut self, value: &Json, item: &Shape, empty: Option<ErrorCode>, duplicate: Option<ErrorCode>, path: &str) {
        let Json::Array(values) = value else {
            return self.wrong_type(path, "an array", value);
        };
        if let (true, Some(code)) = (values.is_empty(), empty) {
            self.err(path, code, message!("must list at least one"));
        }
        for (i, v) in values.iter().enumerate() {
            let at = index(path, i);
            if self.check(v, item, &at) {
                // Distinct lists hold strings; compare those rather than whole JSON trees.
                let repeated = str_of(Some(v)).is_some_and(|t| values[..i].iter().any(|p| str_of(Some(p)) == Some(t)));
                if let (true, Some(code)) = (repeated, duplicate) {
                    self.err(&at, code, message!("listed twice"));
                }
            }
        }
    }

    fn forms(&mut self, value: &Json, path: &str) {
        let Json::Object(members) = value else {
            return self.wrong_type(path, "an object", value);
        };
        if members.is_empty() {
            self.err(
                path,
                ErrorCode::EmptyValue,
                message!("define at least one form kind, e.g. \"checkout\""),
            );
        }
        for (kind, form) in members {
            let at = child(path, kind);
            if !is_slug(kind) {
                self.err(&at, ErrorCode::InvalidSlug, message!("form kind \"{kind}\" must be lowercase letters, digits and single hyphens, as in data-unticked=\"checkout\""));
            }
            self.object(form, &FORM, &at);
        }
    }

    /// R5: the shopper is informed in every language the site declares.
    fn per_locale(&mut self, value: &Json, inner: &Shape, path: &str) {
        let Json::Object(members) = value else {
            return self.wrong_type(path, "an object", value);
        };
        let before = self.errors.len();
        let declared = self.locales.clone();
        for (key, v) in members {
            let at = child(path, key);
            if let Err(code) = check_locale(key) {
                self.err(&at, code, locale_message(key, code));
            } else if declared.as_ref().is_some_and(|d| !d.contains(key)) {
                self.err(
                    &at,
                    ErrorCode::UndeclaredLocale,
                    message!("text for \"{key}\", which /locales does not declare"),
                );
            } else {
                self.check(v, inner, &at);
            }
        }
        if self.errors.len() > before {
            return;
        }
        for locale in declared.iter().flatten() {
            if !members.iter().any(|(k, _)| k == locale) {
                self.err(
                    path,
                    ErrorCode::MissingTranslation,
                    message!(
                        "no text in \"{locale}\", which /locales declares: shoppers must be informed in their language"
                    ),
                );
            }
        }
    }
}

fn is_email(text: &str) -> bool {
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !text.chars().any(char::is_whitespace)
}

fn is_country(text: &str) -> bool {
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

fn url_message(text: &str, code: ErrorCode) -> String {
    if text.len() > crate::record::MAX_URL {
        message!(
            "is {} bytes long; records carry at most {}",
            text.len(),
            crate::record::MAX_URL
        )
    } else if code == ErrorCode::InsecureUrl {
        message!("\"{text}\" must use https (plain http only on localhost or 127.0.0.1) or be a same-origin path such as \"/v1/records\"")
    } else {
        message!("\"{text}\" is not an https URL or a same-origin path starting with \"/\"")
    }
}

fn origin_message(text: &str, code: ErrorCode) -> String {
    if code == ErrorCode::InsecureUrl {
        message!("\"{text}\" must use https (plain http only on localhost or 127.0.0.1)")
    } else {
        message!("\"{text}\" is not an origin such as \"https://shop.example\" (scheme and host, no path)")
    }
}

/// A web origin (RFC 6454) the collector accepts records from: `https://host[:port]`, or
/// http on loopback. The schema spells the same rule as a pattern; keep them in step.
pub(crate) fn check_origin(text: &str) -> Result<(), ErrorCode> {
    check_url(text)?;
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or(ErrorCode::InvalidUrl)?;
    if rest.contains(['/', '?', '#']) {
        return Err(ErrorCode::InvalidUrl);
    }
    Ok(())
}

/// An https URL, an http URL on loopback, or a same-origin path (`/…`, not `//…`).
/// `schema/consent.schema.json` spells the same rule as a pattern; keep them in step.
pub(crate) fn check_url(text: &str) -> Result<(), ErrorCode> {
    // A record carries the notice URL, and `record::read` takes at most MAX_URL bytes: a
    // longer one would have every record of this config refused.
    if text.len() > crate::record::MAX_URL || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ErrorCode::InvalidUrl);
    }
    let host_of = |rest: &str| rest.split(['/', '?', '#']).next().unwrap_or("").to_string();
    if let Some(rest) = text.strip_prefix("https://") {
        return if host_of(rest).is_empty() {
            Err(ErrorCode::InvalidUrl)
        } else {
            Ok(())
        };
    }
    if let Some(rest) = text.strip_prefix("http://") {
        let host = host_of(rest);
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !name.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                name
            }
            _ => host.as_str(),
        };
        return if matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
            Ok(())
        } else {
            Err(ErrorCode::InsecureUrl)
        };
    }
    // A same-origin path. Not `//host` (protocol-relative) and not `/\host`, which browsers
    // read as `//host` too (WHATWG URL: a backslash is a path separator in special URLs).
    if text.starts_with('/') && !text.starts_with("//") && !text.starts_with("/\\") {
        return Ok(());
    }
    Err(ErrorCode::InvalidUrl)
}

/// `a-z0-9` words joined by single hyphens, at most 64 characters.
pub(crate) fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn is_dpv_term(text: &str) -> bool {
    text.strip_prefix("dpv:").is_some_and(|term| {
        let mut chars = term.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
    })
}

fn is_selector(text: &str) -> bool {
    !text.contains(['{', '}', '<'])
}

fn check_locale(tag: &str) -> Result<(), ErrorCode> {
    let (language, region) = match tag.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (tag, None),
    };
    let well_formed = language.len() == 2
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()));
    if !well_formed {
        Err(ErrorCode::InvalidLocale)
    } else if !locale::supported(language) {
        Err(ErrorCode::UnsupportedLocale)
    } else {
        Ok(())
    }
}

fn locale_message(tag: &str, code: ErrorCode) -> String {
    if code == ErrorCode::UnsupportedLocale {
        message!(
            "\"{tag}\": the widget has no built-in texts in this language; supported: {}",
            locale::SUPPORTED.join(", ")
        )
    } else {
        message!("\"{tag}\" is not a locale tag such as \"lv\" or \"pl-PL\"")
    }
}

/// The widget's reading of a config (without the `lint` feature): it builds the [`Config`]
/// from a file the linter passed, refusing only a key that tries to pre-tick, require or
/// bundle a box, or to pass terms off as consent, which names its rule wherever it is. Every other rule is the linter's and
/// the collector's: `unticked serve` refuses to start on a config with a problem, and
/// refuses records captured under any config but its own. Checking it all again in every
/// shopper's browser cost 5 KB gzip of the widget (twiggy).
#[cfg(not(feature = "lint"))]
pub(super) fn config(json: &Json) -> Result<Config, Vec<ConfigError>> {
    fn forbidden_anywhere(c: &mut Checker, value: &Json, path: &str) {
        match value {
            Json::Object(members) => {
                for (key, value) in members {
                    let at = child(path, key);
                    if let Some(code) = forbidden_key(key) {
                        c.err(&at, code, forbidden_message(key, code, value));
                    }
                    forbidden_anywhere(c, value, &at);
                }
            }
            Json::Array(values) => {
                for (i, value) in values.iter().enumerate() {
                    forbidden_anywhere(c, value, &index(path, i));
                }
            }
            _ => {}
        }
    }
    let mut checker = Checker::default();
    forbidden_anywhere(&mut checker, json, "");
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    let locales: Vec<String> = items(get(json, "locales"))
        .iter()
        .filter_map(|l| str_of(Some(l)))
        .map(String::from)
        .collect();
    let purposes = items(get(json, "purposes"))
        .iter()
        .map(|p| build_purpose(p, &locales))
        .collect();
    let forms = match get(json, "forms") {
        Some(Json::Object(forms)) => forms.iter().map(|(kind, form)| build_form(kind, form)).collect(),
        _ => Vec::new(),
    };
    Ok(build(json, locales, purposes, forms))
}

/// Checks `json` and, when it has no problem, builds the [`Config`].
#[cfg(feature = "lint")]
pub(super) fn config(json: &Json) -> Result<Config, Vec<ConfigError>> {
    let mut checker = Checker::default();
    if let Some(locales) = get(json, "locales") {
        if Checker::default().check(locales, &LOCALES, "/locales") {
            checker.locales = Some(
                items(Some(locales))
                    .iter()
                    .filter_map(|l| str_of(Some(l)))
                    .map(String::from)
                    .collect(),
            );
        }
    }
    checker.check(json, &Shape::Object(&ROOT), "");
    let (purposes, forms) = relations(&mut checker, json);
    if checker.errors.is_empty() {
        Ok(build(json, checker.locales.unwrap_or_default(), purposes, forms))
    } else {
        Err(checker.errors)
    }
}

/// Whether `value` alone has the shape (without reporting anything).
/// Whether the checking pass found no problem in the value at `path` (at it or inside it).
/// A form kind's own spelling is reported at the form's path but is not a problem of its
/// body, so an `InvalidSlug` exactly there does not count.
fn came_through_clean(errors: &[ConfigError], path: &str) -> bool {
    !errors.iter().any(|e| match e.path.strip_prefix(path) {
        Some("") => e.code != ErrorCode::InvalidSlug,
        Some(rest) => rest.starts_with('/'),
        None => false,
    })
}

/// The checks that relate parts of the file, on the parts whose shape is right. Returns
/// those parts, built: when nothing is wrong they are the whole config.
fn relations(c: &mut Checker, json: &Json) -> (Vec<Purpose>, Vec<Form>) {
    let locales = c.locales.clone();
    if let (Some(declared), Some(default)) = (&locales, str_of(get(json, "default_locale"))) {
        if check_locale(default).is_ok() && !declared.iter().any(|l| l == default) {
            c.err(
                "/default_locale",
                ErrorCode::UndeclaredDefaultLocale,
                message!("\"{default}\" is not one of the declared /locales"),
            );
        }
    }
    let all_purposes = get(json, "purposes");
    let mut valid: Vec<Purpose> = Vec::new();
    for (i, p) in items(all_purposes).iter().enumerate() {
        let path = index("/purposes", i);
        if !came_through_clean(&c.errors, &path) {
            continue;
        }
        let purpose = build_purpose(p, locales.as_deref().unwrap_or_default());
        if valid.iter().any(|v| v.id == purpose.id) {
            c.err(
                &child(&path, "id"),
                ErrorCode::DuplicatePurposeId,
                message!("purpose id \"{}\" is used twice; ids must be unique", purpose.id),
            );
            continue;
        }
        purpose_relations(c, &purpose, &path);
        valid.push(purpose);
    }
    // Every id the file names, so a form naming a purpose whose body has a problem is not
    // also reported as naming an unknown one.
    let named: Vec<&str> = items(all_purposes)
        .iter()
        .filter_map(|p| str_of(get(p, "id")))
        .collect();
    let mut built_forms = Vec::new();
    let Some(Json::Object(forms)) = get(json, "forms") else {
        return (valid, built_forms);
    };
    for (kind, form) in forms {
        let path = child("/forms", kind);
        // Before this form's own relation problems are added under the same path.
        let clean = came_through_clean(&c.errors, &path);
        for (i, id) in items(get(form, "purposes")).iter().enumerate() {
            if let Some(id) = str_of(Some(id)) {
                if matches!(all_purposes, Some(Json::Array(_))) && !named.contains(&id) {
                    c.err(
                        &index(&child(&path, "purposes"), i),
                        ErrorCode::UnknownPurpose,
                        message!("no purpose with id \"{id}\" in /purposes"),
                    );
                }
            }
        }
        if clean {
            let form = build_form(kind, form);
            contact_relations(c, &form, &valid, &path);
            built_forms.push(form);
        }
    }
    (valid, built_forms)
}

fn purpose_relations(c: &mut Checker, purpose: &Purpose, path: &str) {
    // R5: the information layer lists the data from `data`; an extra input whose data is
    // not listed would collect something the shopper was not told about.
    if purpose.fields.contains(&ExtraField::Birthday) && !purpose.data.contains(&DataCategory::Birthday) {
        c.err(
            &child(path, "fields"),
            ErrorCode::UndeclaredData,
            message!("the birthday field collects a birthday, so \"data\" must list \"birthday\" to tell the shopper"),
        );
    }
    for (i, transfer) in purpose.transfers.iter().enumerate() {
        if in_eea(&transfer.country) {
            c.err(
                &child(&index(&child(path, "transfers"), i), "country"),
                ErrorCode::TransferInsideEea,
                message!(
                    "{} is in the EU/EEA: a recipient there is not a transfer, list it under \"recipients\" only",
                    transfer.country
                ),
            );
        }
    }
    // R5, Art. 13(1)(f): a recipient outside the EU/EEA is a transfer, and the shopper is
    // told its safeguard.
    for (i, recipient) in purpose.recipients.iter().enumerate() {
        if !in_eea(&recipient.country) && !purpose.transfers.iter().any(|t| t.country == recipient.country) {
            c.err(&child(&index(&child(path, "recipients"), i), "country"), ErrorCode::TransferWithoutSafeguard, message!("recipient \"{}\" is in {}, outside the EU/EEA: add a \"transfers\" entry for it with its safeguard", recipient.name, recipient.country));
        }
    }
}

/// R6: a channel that reaches the shopper needs the form's contact field for it, so the
/// record can commit to who agreed (a subject commitment).
fn contact_relations(c: &mut Checker, form: &Form, purposes: &[Purpose], path: &str) {
    for purpose in form
        .purposes
        .iter()
        .filter_map(|id| purposes.iter().find(|p| &p.id == id))
    {
        let Some(needed) = purpose.channel.contact() else {
            continue;
        };
        let present = form.contact.of(purpose.channel).is_some();
        if !present {
            c.err(&child(path, "contact"), ErrorCode::ContactFieldMissing, message!("form \"{}\" offers \"{}\" by {} but names no \"{needed}\" field: add \"contact\": {{ \"{needed}\": \"<CSS selector>\" }}", form.kind, purpose.id, purpose.channel.as_str()));
        }
    }
}

// Building the typed config from a tree whose shape was checked: the accessors below fall
// back to empty values only where the check has already ruled the case out.

fn text(value: &Json, key: &str) -> String {
    str_of(get(value, key)).unwrap_or_default().to_string()
}

fn optional_text(value: &Json, key: &str) -> Option<String> {
    str_of(get(value, key)).map(String::from)
}

fn named<T: Named>(value: Option<&Json>) -> Option<T> {
    T::from_name(str_of(value)?)
}

fn named_list<T: Named>(value: Option<&Json>) -> Vec<T> {
    items(value).iter().filter_map(|v| named(Some(v))).collect()
}

/// The entries of a per-locale map, in declared locale order.
fn per_locale<T>(value: Option<&Json>, locales: &[String], read: impl Fn(&Json) -> T) -> Vec<(String, T)> {
    locales
        .iter()
        .filter_map(|l| value.and_then(|v| get(v, l)).map(|t| (l.clone(), read(t))))
        .collect()
}

fn build_purpose(p: &Json, locales: &[String]) -> Purpose {
    let retention = match get(p, "retention")
        .and_then(|r| get(r, "months"))
        .and_then(Json::as_whole_number)
    {
        Some(months) => Retention::Months(months as u32),
        None => Retention::UntilWithdrawn,
    };
    Purpose {
        id: text(p, "id"),
        version: get(p, "version").and_then(Json::as_whole_number).unwrap_or(1) as u32,
        channel: named(get(p, "channel")).unwrap_or(Channel::Email),
        dpv: text(p, "dpv"),
        text: per_locale(get(p, "text"), locales, |t| PurposeText {
            label: text(t, "label"),
            description: text(t, "description"),
        }),
        data: named_list(get(p, "data")),
        recipients: items(get(p, "recipients"))
            .iter()
            .map(|r| Recipient {
                name: text(r, "name"),
                role: named(get(r, "role")).unwrap_or(RecipientRole::Processor),
                country: text(r, "country"),
            })
            .collect(),
        transfers: items(get(p, "transfers"))
            .iter()
            .map(|t| Transfer {
                country: text(t, "country"),
                safeguard: named(get(t, "safeguard")).unwrap_or(Safeguard::StandardContractualClauses),
            })
            .collect(),
        retention,
        profiling: get(p, "profiling")
            .map(|m| per_locale(Some(m), locales, |t| str_of(Some(t)).unwrap_or_default().to_string())),
        fields: named_list(get(p, "fields")),
    }
}

fn build_form(kind: &str, form: &Json) -> Form {
    let contact = get(form, "contact");
    Form {
        kind: kind.to_string(),
        source: named(get(form, "source")).unwrap_or(Source::Checkout),
        purposes: items(get(form, "purposes"))
            .iter()
            .filter_map(|p| str_of(Some(p)))
            .map(String::from)
            .collect(),
        contact: ContactFields {
            email: contact.and_then(|c| optional_text(c, "email")),
            phone: contact.and_then(|c| optional_text(c, "phone")),
            post: contact.and_then(|c| optional_text(c, "post")),
        },
    }
}

fn build(json: &Json, locales: Vec<String>, purposes: Vec<Purpose>, forms: Vec<Form>) -> Config {
    let controller = get(json, "controller").unwrap_or(&Json::Null);
    let notice = get(json, "privacy_notice").unwrap_or(&Json::Null);
    Config {
        controller: Controller {
            name: text(controller, "name"),
            address: text(controller, "address"),
            email: text(controller, "email"),
            phone: optional_text(controller, "phone"),
            dpo: get(controller, "dpo").map(|d| Dpo {
                name: optional_text(d, "name"),
                email: text(d, "email"),
            }),
        },
        privacy_notice: PrivacyNotice {
            url: text(notice, "url"),
            version: text(notice, "version"),
        },
        endpoint: text(json, "endpoint"),
        origins: items(get(json, "origins"))
            .iter()
            .filter_map(|o| str_of(Some(o)).map(String::from))
            .collect(),
        default_locale: text(json, "default_locale"),
        purposes,
        locales,
        forms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_endpoint_rule() {
        for ok in [
            "https://shop.example/v1/records",
            "http://localhost:8080/x",
            "http://127.0.0.1",
            "http://[::1]:9/",
            "/v1/records",
            "/",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for (bad, code) in [
            ("http://shop.example/v1", ErrorCode::InsecureUrl),
            ("http://localhost.evil.example/", ErrorCode::InsecureUrl),
            ("http://localhost@evil.example/", ErrorCode::InsecureUrl),
            ("//cdn.example/x", ErrorCode::InvalidUrl),
            ("/\\evil.example/x", ErrorCode::InvalidUrl),
            ("javascript:alert(1)", ErrorCode::InvalidUrl),
            ("https://", ErrorCode::InvalidUrl),
            ("v1/records", ErrorCode::InvalidUrl),
            ("https://shop.example/a b", ErrorCode::InvalidUrl),
        ] {
            assert_eq!(check_url(bad), Err(code), "{bad}");
        }
    }

    #[test]
    fn slugs_are_stable_ids() {
        assert!(is_slug("email-offers"));
        assert!(is_slug("sms2"));
        for bad in ["", "Email", "email_offers", "-a", "a-", "a--b", "émail"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn forbidden_keys_fold_case_and_separators() {
        assert_eq!(forbidden_key("defaultChecked"), Some(ErrorCode::PreTicked));
        assert_eq!(forbidden_key("pre-ticked"), Some(ErrorCode::PreTicked));
        assert_eq!(forbidden_key("aria-required"), Some(ErrorCode::RequiredConsent));
        assert_eq!(forbidden_key("accept_all"), Some(ErrorCode::AcceptAll));
        assert_eq!(forbidden_key("label"), None);
    }

    #[test]
    fn pointers_escape_per_rfc_6901() {
        assert_eq!(child("/forms", "a/b~c"), "/forms/a~1b~0c");
    }
}

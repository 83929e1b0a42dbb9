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
//!
//! This module holds the shape's types, the walk over the tree and the file's top level
//! (controller, notice, locales); what it reads part by part is beside it:
//! [`values`] (the formats of single strings: URLs, origins, locales, countries, …),
//! [`purposes`] and [`forms`] (each part's shape, its relations and its typed value) and
//! [`rules`] (the keys that would break R1–R4 wherever they are written).
#![cfg_attr(not(feature = "lint"), allow(dead_code))]

use alloc::{string::String, string::ToString, vec::Vec};

use super::error::{ConfigError, ErrorCode};
use super::*;
use crate::json::Json;

mod forms;
mod purposes;
mod rules;
mod values;

use purposes::PURPOSE;
use rules::{forbidden_key, forbidden_message};
use values::{check_locale, locale_message};

/// The shape of one value in `consent.json`.
enum Shape {
    /// A string with something other than white space in it.
    Text,
    /// [`Shape::Text`], or one per declared locale (an object keyed by locale).
    TextPerLocale,
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
    // One address for every language, or one per locale ("Latvia", "Latvija").
    req("address", Shape::TextPerLocale),
    req("email", Shape::Email),
    opt("phone", Shape::Text),
    opt(
        "dpo",
        Shape::Object(&[opt("name", Shape::Text), req("email", Shape::Email)]),
    ),
];
static NOTICE: [Field; 2] = [req("url", Shape::Url), req("version", Shape::Name)];
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
            Shape::TextPerLocale if matches!(value, Json::Object(_)) => self.per_locale(value, &Shape::Text, path),
            Shape::TextPerLocale => self.scalar(value, &Shape::Text, path),
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

/// The widget's reading of a config (without the `lint` feature): it builds the [`Config`]
/// from a file the linter passed, refusing only a key that tries to pre-tick, require or
/// bundle a box, or to pass terms off as consent, which names its rule wherever it is. Every other rule is the linter's and
/// the collector's: `unticked serve` refuses to start on a config with a problem, and
/// refuses records captured under any config but its own. Checking it all again in every
/// shopper's browser cost 5 KB gzip of the widget (twiggy).
#[cfg(not(feature = "lint"))]
pub(super) fn config(json: &Json) -> Result<Config, Vec<ConfigError>> {
    let mut checker = Checker::default();
    rules::forbidden_anywhere(&mut checker, json, "");
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
        .map(|p| purposes::build_purpose(p, &locales))
        .collect();
    let forms = match get(json, "forms") {
        Some(Json::Object(forms)) => forms.iter().map(|(kind, form)| forms::build_form(kind, form)).collect(),
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
    let valid = purposes::relations(c, all_purposes, locales.as_deref().unwrap_or_default());
    let built_forms = forms::relations(c, get(json, "forms"), all_purposes, &valid);
    (valid, built_forms)
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

fn build(json: &Json, locales: Vec<String>, purposes: Vec<Purpose>, forms: Vec<Form>) -> Config {
    let controller = get(json, "controller").unwrap_or(&Json::Null);
    let notice = get(json, "privacy_notice").unwrap_or(&Json::Null);
    let preferences = Form::preferences(purposes.iter().map(|p| p.id.clone()).collect());
    Config {
        controller: Controller {
            name: text(controller, "name"),
            address: match get(controller, "address") {
                Some(Json::Object(_)) => per_locale(get(controller, "address"), &locales, |t| {
                    str_of(Some(t)).unwrap_or_default().to_string()
                }),
                _ => locales
                    .iter()
                    .map(|l| (l.clone(), text(controller, "address")))
                    .collect(),
            },
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
        preferences,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_per_rfc_6901() {
        assert_eq!(child("/forms", "a/b~c"), "/forms/a~1b~0c");
    }
}

//! Reads a [`Json`] tree into a [`Config`], collecting every problem with its JSON Pointer.
//!
//! A hand-written reader rather than `#[derive(Deserialize)]`: serde stops at the first
//! error, and the linter must report all of them, each with its path and rule.

#[allow(unused_imports)]
use alloc::{borrow::ToOwned, format, string::String, string::ToString, vec, vec::Vec};

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

fn forbidden_message(key: &str, code: ErrorCode, value: &Json) -> String {
    match code {
        ErrorCode::PreTicked if value.is_truthy() => format!(
            "\"{key}\" would pre-tick a consent box, and a pre-ticked box is not consent: every box starts unticked, remove \"{key}\""
        ),
        ErrorCode::PreTicked => format!(
            "\"{key}\" is not a setting: every consent box starts unticked and only the shopper can tick it; remove \"{key}\""
        ),
        ErrorCode::RequiredConsent => format!(
            "\"{key}\" would make marketing consent a condition of the purchase or sign-up, which it must never be; remove \"{key}\""
        ),
        ErrorCode::BundledChannels => format!(
            "\"{key}\" bundles several channels behind one box: give each channel its own purpose with one \"channel\""
        ),
        ErrorCode::AcceptAll => format!(
            "\"{key}\" would grant several purposes with one switch: each purpose gets its own box"
        ),
        _ => format!(
            "\"{key}\": accepting terms or a privacy policy is not consent and is never recorded as one; keep it out of consent.json"
        ),
    }
}

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
    format!("{path}/{i}")
}

struct Reader {
    errors: Vec<ConfigError>,
}

/// One JSON object being read: remembers which members were taken so that the rest can
/// be reported as unknown.
struct Obj<'j> {
    path: String,
    members: &'j [(String, Json)],
    taken: Vec<bool>,
}

impl<'j> Obj<'j> {
    fn take(&mut self, key: &str) -> Option<(&'j Json, String)> {
        let at = self.members.iter().position(|(k, _)| k == key)?;
        self.taken[at] = true;
        Some((&self.members[at].1, child(&self.path, key)))
    }
}

impl Reader {
    fn err(&mut self, path: String, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path,
            code,
            message: message.into(),
        });
    }

    fn wrong_type(&mut self, path: String, expected: &str, got: &Json) {
        let message = format!("expected {expected}, found {}", got.type_name());
        self.err(path, ErrorCode::WrongType, message);
    }

    fn object<'j>(&mut self, value: &'j Json, path: String) -> Option<Obj<'j>> {
        match value {
            Json::Object(members) => Some(Obj {
                path,
                members,
                taken: vec![false; members.len()],
            }),
            other => {
                self.wrong_type(path, "an object", other);
                None
            }
        }
    }

    /// Reports the members nobody took: as the rule they break where they try to pre-tick,
    /// require or bundle, and as unknown fields otherwise.
    fn finish(&mut self, obj: Obj<'_>) {
        for ((key, value), taken) in obj.members.iter().zip(obj.taken) {
            if taken {
                continue;
            }
            let path = child(&obj.path, key);
            match forbidden_key(key) {
                Some(code) => {
                    let message = forbidden_message(key, code, value);
                    self.err(path, code, message);
                }
                None => self.err(path, ErrorCode::UnknownField, format!("unknown field \"{key}\"")),
            }
        }
    }

    fn required<'j>(&mut self, obj: &mut Obj<'j>, key: &str) -> Option<(&'j Json, String)> {
        let found = obj.take(key);
        if found.is_none() {
            self.err(
                obj.path.clone(),
                ErrorCode::MissingField,
                format!("missing field \"{key}\""),
            );
        }
        found
    }

    fn text_value(&mut self, value: &Json, path: String) -> Option<String> {
        match value {
            Json::String(s) if s.trim().is_empty() => {
                self.err(path, ErrorCode::EmptyValue, "must not be empty");
                None
            }
            Json::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    fn text(&mut self, obj: &mut Obj<'_>, key: &str) -> Option<String> {
        let (value, path) = self.required(obj, key)?;
        self.text_value(value, path)
    }

    fn optional_text(&mut self, obj: &mut Obj<'_>, key: &str) -> Option<String> {
        let (value, path) = obj.take(key)?;
        self.text_value(value, path)
    }

    fn array<'j>(&mut self, value: &'j Json, path: &str, what: &str) -> Option<&'j [Json]> {
        match value {
            Json::Array(items) => Some(items),
            other => {
                self.wrong_type(path.to_string(), what, other);
                None
            }
        }
    }

    /// Reads one of `names`, returning its index. Not generic, so the six enums share one
    /// copy of this code in the wasm.
    fn name_index(&mut self, value: &Json, path: String, names: &[&str]) -> Option<usize> {
        let text = self.text_value(value, path.clone())?;
        let found = names.iter().position(|n| *n == text);
        if found.is_none() {
            self.err(
                path,
                ErrorCode::UnknownValue,
                format!("\"{text}\" is not one of: {}", names.join(", ")),
            );
        }
        found
    }

    fn enum_value<T: Named>(&mut self, value: &Json, path: String) -> Option<T> {
        self.name_index(value, path, T::NAMES).map(|i| T::ALL[i])
    }

    /// An array of distinct names, as indices into `names`.
    fn name_list(&mut self, obj: &mut Obj<'_>, key: &str, names: &[&str]) -> Vec<usize> {
        let mut out = Vec::new();
        let Some((value, path)) = obj.take(key) else { return out };
        let Some(items) = self.array(value, &path, "an array of strings") else {
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = self.name_index(item, index(&path, i), names) {
                if out.contains(&v) {
                    self.err(
                        index(&path, i),
                        ErrorCode::DuplicateItem,
                        format!("\"{}\" is listed twice", names[v]),
                    );
                } else {
                    out.push(v);
                }
            }
        }
        out
    }

    /// An array of distinct enum values.
    fn enum_list<T: Named>(&mut self, obj: &mut Obj<'_>, key: &str) -> Vec<T> {
        self.name_list(obj, key, T::NAMES)
            .into_iter()
            .map(|i| T::ALL[i])
            .collect()
    }

    fn country(&mut self, obj: &mut Obj<'_>, key: &str) -> Option<String> {
        let (value, path) = self.required(obj, key)?;
        let text = self.text_value(value, path.clone())?;
        if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(text)
        } else {
            self.err(
                path,
                ErrorCode::InvalidCountry,
                format!("\"{text}\" is not an ISO 3166-1 alpha-2 country code such as \"LV\""),
            );
            None
        }
    }

    fn url(&mut self, obj: &mut Obj<'_>, key: &str) -> Option<String> {
        let (value, path) = self.required(obj, key)?;
        let text = self.text_value(value, path.clone())?;
        match check_url(&text) {
            Ok(()) => Some(text),
            Err(code) => {
                let message = if code == ErrorCode::InsecureUrl {
                    format!("\"{text}\" must use https (plain http only on localhost or 127.0.0.1) or be a same-origin path such as \"/v1/records\"")
                } else {
                    format!("\"{text}\" is not an https URL or a same-origin path starting with \"/\"")
                };
                self.err(path, code, message);
                None
            }
        }
    }
}

/// An https URL, an http URL on loopback, or a same-origin path (`/…`, not `//…`).
/// `schema/consent.schema.json` spells the same rule as a pattern; keep them in step.
pub(crate) fn check_url(text: &str) -> Result<(), ErrorCode> {
    if text.chars().any(char::is_whitespace) {
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
    if text.starts_with('/') && !text.starts_with("//") {
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

pub(super) fn config(json: &Json) -> Result<Config, Vec<ConfigError>> {
    let mut r = Reader { errors: Vec::new() };
    let config = read_config(&mut r, json);
    match (config, r.errors.is_empty()) {
        (Some(config), true) => Ok(config),
        _ => {
            debug_assert!(!r.errors.is_empty(), "a config that failed to read has a reason");
            Err(r.errors)
        }
    }
}

fn read_config(r: &mut Reader, json: &Json) -> Option<Config> {
    let mut root = r.object(json, String::new())?;
    // Editors find the schema through "$schema"; it carries no meaning here.
    if let Some((value, path)) = root.take("$schema") {
        r.text_value(value, path);
    }
    let controller = r
        .required(&mut root, "controller")
        .and_then(|(v, p)| read_controller(r, v, p));
    let privacy_notice = r
        .required(&mut root, "privacy_notice")
        .and_then(|(v, p)| read_notice(r, v, p));
    let endpoint = r.url(&mut root, "endpoint");
    let locales = read_locales(r, &mut root);
    let default_locale = read_default_locale(r, &mut root, locales.as_deref());
    let purposes = r
        .required(&mut root, "purposes")
        .and_then(|(v, p)| read_purposes(r, v, &p, locales.as_deref()));
    let forms = r
        .required(&mut root, "forms")
        .and_then(|(v, p)| read_forms(r, v, p, purposes.as_ref()));
    let purposes = purposes.map(|p| p.valid);
    r.finish(root);

    Some(Config {
        controller: controller?,
        privacy_notice: privacy_notice?,
        endpoint: endpoint?,
        locales: locales?,
        default_locale: default_locale?,
        forms: forms?,
        purposes: purposes?,
    })
}

fn read_controller(r: &mut Reader, value: &Json, path: String) -> Option<Controller> {
    let mut obj = r.object(value, path)?;
    let name = r.text(&mut obj, "name");
    let address = r.text(&mut obj, "address");
    let email = read_email(r, &mut obj, "email", true);
    let phone = r.optional_text(&mut obj, "phone");
    let dpo = obj.take("dpo").and_then(|(v, p)| {
        let mut dpo = r.object(v, p)?;
        let name = r.optional_text(&mut dpo, "name");
        let email = read_email(r, &mut dpo, "email", true);
        r.finish(dpo);
        Some(Dpo { name, email: email? })
    });
    r.finish(obj);
    Some(Controller {
        name: name?,
        address: address?,
        email: email?,
        phone,
        dpo,
    })
}

fn read_email(r: &mut Reader, obj: &mut Obj<'_>, key: &str, required: bool) -> Option<String> {
    let (value, path) = if required {
        r.required(obj, key)?
    } else {
        obj.take(key)?
    };
    let text = r.text_value(value, path.clone())?;
    let ok = text
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !text.chars().any(char::is_whitespace);
    if !ok {
        r.err(
            path,
            ErrorCode::UnknownValue,
            format!("\"{text}\" is not an e-mail address"),
        );
        return None;
    }
    Some(text)
}

fn read_notice(r: &mut Reader, value: &Json, path: String) -> Option<PrivacyNotice> {
    let mut obj = r.object(value, path)?;
    let url = r.url(&mut obj, "url");
    let version = r.text(&mut obj, "version");
    r.finish(obj);
    Some(PrivacyNotice {
        url: url?,
        version: version?,
    })
}

fn read_locales(r: &mut Reader, root: &mut Obj<'_>) -> Option<Vec<String>> {
    let (value, path) = r.required(root, "locales")?;
    let items = r.array(value, &path, "an array of locale tags")?;
    if items.is_empty() {
        r.err(
            path.clone(),
            ErrorCode::EmptyValue,
            "declare at least one locale, e.g. [\"en\"]",
        );
        return None;
    }
    let mut locales: Vec<String> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = index(&path, i);
        let Some(tag) = r.text_value(item, at.clone()) else {
            ok = false;
            continue;
        };
        if let Err(code) = check_locale(&tag) {
            let message = locale_message(&tag, code);
            r.err(at, code, message);
            ok = false;
        } else if locales.contains(&tag) {
            r.err(at, ErrorCode::DuplicateLocale, format!("\"{tag}\" is declared twice"));
            ok = false;
        } else {
            locales.push(tag);
        }
    }
    ok.then_some(locales)
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
    } else if locale::builtin(language).is_none() {
        Err(ErrorCode::UnsupportedLocale)
    } else {
        Ok(())
    }
}

fn locale_message(tag: &str, code: ErrorCode) -> String {
    if code == ErrorCode::UnsupportedLocale {
        format!(
            "\"{tag}\": the widget has no built-in texts in this language; supported: {}",
            locale::SUPPORTED.join(", ")
        )
    } else {
        format!("\"{tag}\" is not a locale tag such as \"lv\" or \"pl-PL\"")
    }
}

fn read_default_locale(r: &mut Reader, root: &mut Obj<'_>, locales: Option<&[String]>) -> Option<String> {
    let (value, path) = r.required(root, "default_locale")?;
    let tag = r.text_value(value, path.clone())?;
    if let Err(code) = check_locale(&tag) {
        let message = locale_message(&tag, code);
        r.err(path, code, message);
        return None;
    }
    if let Some(locales) = locales {
        if !locales.contains(&tag) {
            r.err(
                path,
                ErrorCode::UndeclaredDefaultLocale,
                format!("\"{tag}\" is not one of the declared /locales"),
            );
            return None;
        }
    }
    Some(tag)
}

/// The purposes that read cleanly, and every id the file names (so that a form naming a
/// purpose whose body has a problem is not also reported as naming an unknown one).
struct Purposes {
    valid: Vec<Purpose>,
    named: Vec<String>,
}

/// `None` when `purposes` is not even an array, so forms are not checked against it.
fn read_purposes(r: &mut Reader, value: &Json, path: &str, locales: Option<&[String]>) -> Option<Purposes> {
    let mut purposes: Vec<Purpose> = Vec::new();
    let items = r.array(value, path, "an array of purposes")?;
    let named = items
        .iter()
        .filter_map(|p| match p {
            Json::Object(members) => members.iter().find(|(k, _)| k == "id").and_then(|(_, v)| match v {
                Json::String(id) => Some(id.clone()),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    if items.is_empty() {
        r.err(path.to_string(), ErrorCode::EmptyValue, "define at least one purpose");
    }
    for (i, item) in items.iter().enumerate() {
        let at = index(path, i);
        if let Some(purpose) = read_purpose(r, item, at.clone(), locales) {
            if purposes.iter().any(|p| p.id == purpose.id) {
                r.err(
                    child(&at, "id"),
                    ErrorCode::DuplicatePurposeId,
                    format!("purpose id \"{}\" is used twice; ids must be unique", purpose.id),
                );
            } else {
                purposes.push(purpose);
            }
        }
    }
    Some(Purposes { valid: purposes, named })
}

/// Reads `{ "<locale>": T }`, requiring every declared locale and no other.
fn read_per_locale<T: Clone>(
    r: &mut Reader,
    value: &Json,
    path: String,
    locales: Option<&[String]>,
    what: &str,
    mut read: impl FnMut(&mut Reader, &Json, String) -> Option<T>,
) -> Option<Vec<(String, T)>> {
    let mut obj = r.object(value, path.clone())?;
    let mut out = Vec::new();
    let mut ok = true;
    for (key, item) in obj.members {
        let at = child(&path, key);
        if let Err(code) = check_locale(key) {
            r.err(at, code, locale_message(key, code));
            ok = false;
        } else if locales.is_some_and(|l| !l.contains(key)) {
            r.err(
                at,
                ErrorCode::UndeclaredLocale,
                format!("{what} for \"{key}\", which /locales does not declare"),
            );
            ok = false;
        } else if let Some(v) = read(r, item, at) {
            out.push((key.clone(), v));
        } else {
            ok = false;
        }
    }
    obj.taken.iter_mut().for_each(|t| *t = true);
    r.finish(obj);
    for locale in locales.unwrap_or_default() {
        if !out.iter().any(|(l, _)| l == locale) && ok {
            r.err(
                path.clone(),
                ErrorCode::MissingTranslation,
                format!(
                    "no {what} in \"{locale}\", which /locales declares: shoppers must be informed in their language"
                ),
            );
        }
    }
    // Keep the declared locale order, whatever order the file used.
    let out = match locales {
        Some(locales) => locales
            .iter()
            .filter_map(|l| out.iter().position(|(k, _)| k == l).map(|i| out[i].clone()))
            .collect(),
        None => out,
    };
    (ok && locales.is_none_or(|l| l.len() == out.len())).then_some(out)
}

fn read_purpose(r: &mut Reader, value: &Json, path: String, locales: Option<&[String]>) -> Option<Purpose> {
    let mut obj = r.object(value, path)?;
    let id = r.required(&mut obj, "id").and_then(|(v, p)| {
        let id = r.text_value(v, p.clone())?;
        if is_slug(&id) {
            Some(id)
        } else {
            r.err(p, ErrorCode::InvalidSlug, format!("\"{id}\" is not a stable id: use lowercase letters, digits and single hyphens, e.g. \"email-offers\""));
            None
        }
    });
    let version = r
        .required(&mut obj, "version")
        .and_then(|(v, p)| match v.as_whole_number() {
            Some(n) if (1..=u64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Some(_) => {
                r.err(p, ErrorCode::OutOfRange, "version starts at 1");
                None
            }
            None => {
                r.wrong_type(p, "a whole number", v);
                None
            }
        });
    let channel = match obj.take("channel") {
        Some((Json::Array(_), p)) => {
            r.err(
                p,
                ErrorCode::BundledChannels,
                "one purpose has exactly one channel: split it into one purpose per channel, each with its own box",
            );
            None
        }
        Some((v, p)) => r.enum_value::<Channel>(v, p),
        None => {
            r.err(obj.path.clone(), ErrorCode::MissingField, "missing field \"channel\"");
            None
        }
    };
    let dpv = r.required(&mut obj, "dpv").and_then(|(v, p)| {
        let term = r.text_value(v, p.clone())?;
        if is_dpv_term(&term) {
            Some(term)
        } else {
            r.err(
                p,
                ErrorCode::InvalidDpvTerm,
                format!("\"{term}\" is not a W3C DPV purpose term such as \"dpv:DirectMarketing\""),
            );
            None
        }
    });
    if let Some((v, p)) = obj.take("legal_basis") {
        if let Some(basis) = r.text_value(v, p.clone()) {
            if basis != "consent" {
                r.err(p, ErrorCode::NotConsent, format!("legal basis \"{basis}\" is not consent: Unticked only asks for and records consent; terms, contracts and legitimate interest do not belong in a consent box"));
            }
        }
    }
    let text = r.required(&mut obj, "text").and_then(|(v, p)| {
        read_per_locale(r, v, p, locales, "label and description", |r, v, p| {
            let mut t = r.object(v, p)?;
            let label = r.text(&mut t, "label");
            let description = r.text(&mut t, "description");
            r.finish(t);
            Some(PurposeText {
                label: label?,
                description: description?,
            })
        })
    });
    let data = r.enum_list::<DataCategory>(&mut obj, "data");
    let recipients = read_list(r, &mut obj, "recipients", |r, v, p| {
        let mut o = r.object(v, p)?;
        let name = r.text(&mut o, "name");
        let role = r
            .required(&mut o, "role")
            .and_then(|(v, p)| r.enum_value::<RecipientRole>(v, p));
        let country = r.country(&mut o, "country");
        r.finish(o);
        Some(Recipient {
            name: name?,
            role: role?,
            country: country?,
        })
    });
    let transfers = read_list(r, &mut obj, "transfers", |r, v, p| {
        let mut o = r.object(v, p.clone())?;
        let country = r.country(&mut o, "country");
        let safeguard = r
            .required(&mut o, "safeguard")
            .and_then(|(v, p)| r.enum_value::<Safeguard>(v, p));
        r.finish(o);
        let country = country?;
        if in_eea(&country) {
            r.err(child(&p, "country"), ErrorCode::TransferInsideEea, format!("{country} is in the EU/EEA: a recipient there is not a transfer, list it under \"recipients\" only"));
        }
        Some(Transfer {
            country,
            safeguard: safeguard?,
        })
    });
    let retention = r.required(&mut obj, "retention").and_then(|(v, p)| match v {
        Json::String(s) if s == "until-withdrawn" => Some(Retention::UntilWithdrawn),
        Json::Object(_) => {
            let mut o = r.object(v, p)?;
            let months = r
                .required(&mut o, "months")
                .and_then(|(v, p)| match v.as_whole_number() {
                    Some(n) if (1..=240).contains(&n) => Some(n as u32),
                    _ => {
                        r.err(p, ErrorCode::OutOfRange, "months must be a whole number from 1 to 240");
                        None
                    }
                });
            r.finish(o);
            months.map(Retention::Months)
        }
        _ => {
            r.err(
                p,
                ErrorCode::UnknownValue,
                "retention is \"until-withdrawn\" or { \"months\": N }",
            );
            None
        }
    });
    let profiling = obj
        .take("profiling")
        .map(|(v, p)| read_per_locale(r, v, p, locales, "profiling logic", |r, v, p| r.text_value(v, p)));
    let fields = r.enum_list::<ExtraField>(&mut obj, "fields");
    let purpose_path = obj.path.clone();
    r.finish(obj);

    // R5: the information layer lists the data from `data`; an extra input whose data is
    // not listed would collect something the shopper was not told about.
    if fields.contains(&ExtraField::Birthday) && !data.contains(&DataCategory::Birthday) {
        r.err(
            child(&purpose_path, "fields"),
            ErrorCode::UndeclaredData,
            "the birthday field collects a birthday, so \"data\" must list \"birthday\" to tell the shopper",
        );
    }
    let (recipients, transfers) = (recipients?, transfers?);
    // R5, Art. 13(1)(f): a recipient outside the EU/EEA is a transfer, and the shopper is
    // told its safeguard.
    for (i, recipient) in recipients.iter().enumerate() {
        if !in_eea(&recipient.country) && !transfers.iter().any(|t| t.country == recipient.country) {
            r.err(
                format!("{purpose_path}/recipients/{i}/country"),
                ErrorCode::TransferWithoutSafeguard,
                format!("recipient \"{}\" is in {}, outside the EU/EEA: add a \"transfers\" entry for {} with its safeguard", recipient.name, recipient.country, recipient.country),
            );
        }
    }
    Some(Purpose {
        id: id?,
        version: version?,
        channel: channel?,
        dpv: dpv?,
        text: text?,
        data,
        recipients,
        transfers,
        retention: retention?,
        profiling: match profiling {
            Some(p) => Some(p?),
            None => None,
        },
        fields,
    })
}

fn read_list<T>(
    r: &mut Reader,
    obj: &mut Obj<'_>,
    key: &str,
    mut read: impl FnMut(&mut Reader, &Json, String) -> Option<T>,
) -> Option<Vec<T>> {
    let Some((value, path)) = obj.take(key) else {
        return Some(Vec::new());
    };
    let items = r.array(value, &path, "an array")?;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match read(r, item, index(&path, i)) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_forms(r: &mut Reader, value: &Json, path: String, purposes: Option<&Purposes>) -> Option<Vec<Form>> {
    let obj = r.object(value, path.clone())?;
    if obj.members.is_empty() {
        r.err(
            path,
            ErrorCode::EmptyValue,
            "define at least one form kind, e.g. \"checkout\"",
        );
        return None;
    }
    let mut forms = Vec::new();
    let mut ok = true;
    for (kind, item) in obj.members {
        let at = child(&path, kind);
        if !is_slug(kind) {
            r.err(at.clone(), ErrorCode::InvalidSlug, format!("form kind \"{kind}\" must be lowercase letters, digits and single hyphens, as in data-unticked=\"checkout\""));
            ok = false;
        }
        match read_form(r, kind, item, at, purposes) {
            Some(form) => forms.push(form),
            None => ok = false,
        }
    }
    ok.then_some(forms)
}

fn read_form(r: &mut Reader, kind: &str, value: &Json, path: String, purposes: Option<&Purposes>) -> Option<Form> {
    let mut obj = r.object(value, path.clone())?;
    let source = r
        .required(&mut obj, "source")
        .and_then(|(v, p)| r.enum_value::<Source>(v, p));
    let ids = r.required(&mut obj, "purposes").and_then(|(v, p)| {
        let items = r.array(v, &p, "an array of purpose ids")?;
        if items.is_empty() {
            r.err(
                p.clone(),
                ErrorCode::EmptyForm,
                "a form lists at least one purpose; remove the form kind instead",
            );
            return None;
        }
        let mut ids: Vec<String> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let at = index(&p, i);
            let Some(id) = r.text_value(item, at.clone()) else {
                ok = false;
                continue;
            };
            if ids.contains(&id) {
                r.err(
                    at,
                    ErrorCode::DuplicateFormPurpose,
                    format!("purpose \"{id}\" is listed twice: one box per purpose"),
                );
                ok = false;
            } else if purposes.is_some_and(|ps| !ps.named.contains(&id)) {
                r.err(
                    at,
                    ErrorCode::UnknownPurpose,
                    format!("no purpose with id \"{id}\" in /purposes"),
                );
                ok = false;
            } else {
                ids.push(id);
            }
        }
        ok.then_some(ids)
    });
    let contact = match obj.take("contact") {
        Some((v, p)) => read_contact(r, v, p),
        None => Some(ContactFields::default()),
    };
    r.finish(obj);
    let (ids, contact) = (ids?, contact?);

    // R9/R6: a channel that reaches the shopper needs the contact it reaches them at, so
    // the record can commit to it. Name the field so the widget can find it.
    if let Some(purposes) = purposes {
        for id in &ids {
            let Some(purpose) = purposes.valid.iter().find(|p| &p.id == id) else {
                continue;
            };
            let (needed, present) = match purpose.channel {
                Channel::Email => ("email", contact.email.is_some()),
                Channel::Sms | Channel::Phone => ("phone", contact.phone.is_some()),
                Channel::Post | Channel::Web => continue,
            };
            if !present {
                r.err(
                    child(&path, "contact"),
                    ErrorCode::ContactFieldMissing,
                    format!("form \"{kind}\" offers \"{id}\" by {} but names no \"{needed}\" field: add \"contact\": {{ \"{needed}\": \"<CSS selector>\" }}", purpose.channel.as_str()),
                );
            }
        }
    }
    Some(Form {
        kind: kind.to_string(),
        source: source?,
        purposes: ids,
        contact,
    })
}

fn read_contact(r: &mut Reader, value: &Json, path: String) -> Option<ContactFields> {
    let mut obj = r.object(value, path)?;
    let mut selector = |r: &mut Reader, key: &str| -> Result<Option<String>, ()> {
        let Some((v, p)) = obj.take(key) else { return Ok(None) };
        let text = r.text_value(v, p.clone()).ok_or(())?;
        if is_selector(&text) {
            Ok(Some(text))
        } else {
            r.err(
                p,
                ErrorCode::InvalidSelector,
                format!("\"{text}\" is not a CSS selector such as \"#email\" or \"input[name=phone]\""),
            );
            Err(())
        }
    };
    let email = selector(r, "email");
    let phone = selector(r, "phone");
    r.finish(obj);
    Some(ContactFields {
        email: email.ok()?,
        phone: phone.ok()?,
    })
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

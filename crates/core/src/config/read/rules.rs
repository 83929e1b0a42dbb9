//! R1–R4 wherever they are written: a key that would pre-tick a box (R1), bundle channels
//! behind one box (R2), make consent a condition (R3) or pass terms off as consent (R4) is
//! refused with the rule it would break, not as merely "unknown".

use alloc::string::String;

#[cfg(not(feature = "lint"))]
use super::{child, index, Checker};
use crate::config::error::ErrorCode;
use crate::json::Json;

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

pub(super) fn forbidden_key(key: &str) -> Option<ErrorCode> {
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
pub(super) fn forbidden_message(_key: &str, _code: ErrorCode, _value: &Json) -> String {
    String::new()
}

#[cfg(feature = "messages")]
pub(super) fn forbidden_message(key: &str, code: ErrorCode, value: &Json) -> String {
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

/// The widget's one check (without the `lint` feature): a forbidden key anywhere in the
/// file, at any depth, in objects and arrays alike.
#[cfg(not(feature = "lint"))]
pub(super) fn forbidden_anywhere(c: &mut Checker, value: &Json, path: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_keys_fold_case_and_separators() {
        assert_eq!(forbidden_key("defaultChecked"), Some(ErrorCode::PreTicked));
        assert_eq!(forbidden_key("pre-ticked"), Some(ErrorCode::PreTicked));
        assert_eq!(forbidden_key("aria-required"), Some(ErrorCode::RequiredConsent));
        assert_eq!(forbidden_key("accept_all"), Some(ErrorCode::AcceptAll));
        assert_eq!(forbidden_key("label"), None);
    }
}

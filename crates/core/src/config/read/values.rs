//! The formats of single strings in `consent.json`: e-mail addresses, URLs and origins
//! (the endpoint rule), stable ids, locale tags, country codes, DPV terms and selectors,
//! with the message that explains each refusal.

use alloc::{string::String, string::ToString};

use super::{Checker, Json, Shape};
use crate::config::error::ErrorCode;
use crate::vocabulary::{is_slug, Channel, Named, MAX_NAME, MAX_URL, SUPPORTED};

impl Checker {
    /// The shapes that are strings with a format.
    pub(super) fn scalar(&mut self, value: &Json, shape: &Shape, path: &str) {
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
            Shape::Name => (text.len() > MAX_NAME).then(|| {
                (ErrorCode::OutOfRange, message!("must be at most {} bytes: records carry it", MAX_NAME))
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
}

fn is_email(text: &str) -> bool {
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !text.chars().any(char::is_whitespace)
}

fn is_country(text: &str) -> bool {
    // With the built-in words, the code must name a region CLDR knows: every locale's
    // choices print its name, in the shopper's language.
    #[cfg(feature = "words")]
    if crate::locale::country_name("en", text).is_none() {
        return false;
    }
    text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase())
}

fn url_message(text: &str, code: ErrorCode) -> String {
    if text.len() > MAX_URL {
        message!("is {} bytes long; records carry at most {}", text.len(), MAX_URL)
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
pub(super) fn check_origin(text: &str) -> Result<(), ErrorCode> {
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
pub(super) fn check_url(text: &str) -> Result<(), ErrorCode> {
    // A record carries the notice URL, and `record::read` takes at most MAX_URL bytes: a
    // longer one would have every record of this config refused.
    if text.len() > MAX_URL || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
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

fn is_dpv_term(text: &str) -> bool {
    text.strip_prefix("dpv:").is_some_and(|term| {
        let mut chars = term.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
    })
}

fn is_selector(text: &str) -> bool {
    !text.contains(['{', '}', '<'])
}

pub(super) fn check_locale(tag: &str) -> Result<(), ErrorCode> {
    let (language, region) = match tag.split_once('-') {
        Some((l, r)) => (l, Some(r)),
        None => (tag, None),
    };
    let well_formed = language.len() == 2
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()));
    if !well_formed {
        Err(ErrorCode::InvalidLocale)
    } else if !SUPPORTED.contains(&language) {
        Err(ErrorCode::UnsupportedLocale)
    } else {
        Ok(())
    }
}

pub(super) fn locale_message(tag: &str, code: ErrorCode) -> String {
    if code == ErrorCode::UnsupportedLocale {
        message!(
            "\"{tag}\": the widget has no built-in texts in this language; supported: {}",
            SUPPORTED.join(", ")
        )
    } else {
        message!("\"{tag}\" is not a locale tag such as \"lv\" or \"pl-PL\"")
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
}

//! RFC 8785 JSON Canonicalization Scheme (JCS) for the values consent records use.
//!
//! ```
//! use unticked_core::{jcs, json};
//!
//! let value = json::parse(r#"{ "b": [true, null], "a": "\u20ac", "n": 1.0 }"#).unwrap();
//! assert_eq!(jcs::canonical(&value).unwrap(), r#"{"a":"€","b":[true,null],"n":1}"#);
//! ```
//!
//! A record's signature covers its canonical bytes, so the widget, the collector and the
//! verifier must produce exactly the same ones. This writer is small enough for the wasm:
//! it handles every JSON value except numbers that are not integers of at most 2^53 in
//! magnitude, which records never contain (times are integer milliseconds, versions are
//! integers). Such a number is an error here rather than a guess; the collector can check
//! any JSON text with the `serde_jcs` crate, and the tests hold the two in agreement.

use alloc::{string::String, string::ToString, vec::Vec};

use crate::json::Json;
use crate::text::decimal;
use core::cmp::Ordering;

/// 2^53: above it an ECMAScript number no longer holds every integer (RFC 8785 §3.2.2.3
/// serialises numbers as ECMAScript does, RFC 8785 Appendix B).
const MAX_SAFE: u64 = 1 << 53;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JcsError {
    /// A fraction, or an integer beyond ±2^53: outside what records use.
    UnsupportedNumber(String),
}

impl core::fmt::Display for JcsError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            JcsError::UnsupportedNumber(n) => {
                write!(
                    f,
                    "number {n} is not an integer within ±2^53, which consent records never contain"
                )
            }
        }
    }
}

impl core::error::Error for JcsError {}

/// The canonical JSON text of `value` (RFC 8785 §3.2).
///
/// # Errors
/// [`JcsError::UnsupportedNumber`] for a non-integer or an integer beyond ±2^53.
pub fn canonical(value: &Json) -> Result<String, JcsError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Whether `text` is exactly the canonical form of the JSON it holds: the collector stores
/// and verifies the bytes it received, so it first checks that they are canonical.
pub fn is_canonical(text: &str) -> bool {
    crate::json::parse(text)
        .ok()
        .and_then(|v| canonical(&v).ok())
        .is_some_and(|c| c == text)
}

fn write_value(out: &mut String, value: &Json) -> Result<(), JcsError> {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(literal) => out.push_str(&integer(literal)?),
        Json::String(s) => write_string(out, s),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Json::Object(members) => {
            // §3.2.3: members sorted by their names as arrays of UTF-16 code units.
            let mut sorted: Vec<&(String, Json)> = members.iter().collect();
            sorted.sort_by(|a, b| utf16_order(&a.0, &b.0));
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn utf16_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// §3.2.2.2: as ECMAScript's JSON.stringify: `"` and `\` escaped, the control characters
/// with a short form (\b \t \n \f \r) in it, the others as `\u00xx` in lowercase hex,
/// everything else (including non-ASCII) as itself.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                out.push(HEX[(c as usize) >> 4] as char);
                out.push(HEX[(c as usize) & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The ECMAScript form of a JSON number literal whose value is an integer within ±2^53:
/// its decimal digits, `-` for negatives, and `0` for `-0` (§3.2.2.3). Worked out from the
/// literal's digits and exponent, exactly, without a float parser.
fn integer(literal: &str) -> Result<String, JcsError> {
    let unsupported = || JcsError::UnsupportedNumber(literal.to_string());
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| unsupported())?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(unsupported());
    }
    // The decimal point sits after `point` digits; anything after it must be zero.
    let point = whole.len() as i64 + i64::from(exponent);
    let mut value: u64 = 0;
    for (i, d) in digits.iter().enumerate() {
        let d = u64::from(d - b'0');
        if (i as i64) < point {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .filter(|v| *v <= MAX_SAFE)
                .ok_or_else(unsupported)?;
        } else if d != 0 {
            return Err(unsupported());
        }
    }
    // Zeros implied by an exponent beyond the written digits. Zero stays zero however large
    // the exponent (and `0e2000000000` must not loop two billion times); anything else
    // passes 2^53 within 16 steps.
    if value != 0 {
        for _ in digits.len() as i64..point {
            value = value
                .checked_mul(10)
                .filter(|v| *v <= MAX_SAFE)
                .ok_or_else(unsupported)?;
        }
    }
    let digits = decimal(value);
    Ok(if negative && value != 0 {
        ["-", &digits].concat()
    } else {
        digits
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn c(text: &str) -> Result<String, JcsError> {
        canonical(&parse(text).unwrap())
    }

    #[test]
    fn integers_take_their_ecmascript_form() {
        for (literal, expected) in [
            ("0", "0"),
            ("-0", "0"),
            ("-0.0e5", "0"),
            ("42", "42"),
            ("-17", "-17"),
            ("1.0", "1"),
            ("1.50e1", "15"),
            ("1e2", "100"),
            ("12300e-2", "123"),
            ("9007199254740992", "9007199254740992"),
            ("-9007199254740992", "-9007199254740992"),
            ("1700000000000", "1700000000000"),
            ("0e2000000000", "0"),
            ("0.000e-2000000000", "0"),
        ] {
            assert_eq!(c(literal).as_deref(), Ok(expected), "{literal}");
        }
    }

    #[test]
    fn numbers_records_never_hold_are_refused() {
        for literal in [
            "0.5",
            "1e-1",
            "9007199254740993",
            "1e16",
            "123456789012345678901234567890",
            "1e2000000000",
        ] {
            assert!(matches!(c(literal), Err(JcsError::UnsupportedNumber(_))), "{literal}");
        }
    }

    #[test]
    fn strings_escape_as_json_stringify_does() {
        assert_eq!(
            c(r#""\u0000\u001f\u007f\b\t\n\f\r\"\\\/é€😀""#).unwrap(),
            "\"\\u0000\\u001f\u{7f}\\b\\t\\n\\f\\r\\\"\\\\/é€😀\""
        );
    }

    #[test]
    fn canonical_text_is_recognised_and_anything_else_is_not() {
        assert!(is_canonical(r#"{"a":1,"b":[true,null,"x"]}"#));
        for other in [
            r#"{"b":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a":1.0}"#,
            r#""\u0041""#,
            "[1,2] ",
            r#"{"a":0.5}"#,
        ] {
            assert!(!is_canonical(other), "{other}");
        }
    }
}

//! A strict JSON tree for configuration files.
//!
//! `serde_json::Value` silently keeps the last of two equal keys; a config that names the
//! form `checkout` twice would then lose one of them without a word. RFC 8259 §4 says names
//! "SHOULD be unique", so this tree treats a repeated name as an error, keeps object members
//! in document order (so error reports follow the file), and stays small in the wasm build.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One parsed JSON value, objects kept in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Why a text is not a JSON document this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at line {line} column {column}")]
pub struct JsonError {
    pub message: String,
    pub line: usize,
    pub column: usize,
    /// The text is valid JSON, but names one key twice in an object.
    pub duplicate_key: bool,
}

const DUPLICATE_KEY: &str = "duplicate key ";

/// Parses `text` as one JSON document.
///
/// # Errors
/// Syntax errors and repeated object keys, with the line and column where they occur.
pub fn parse(text: &str) -> Result<Json, JsonError> {
    serde_json::from_str::<Json>(text).map_err(|e| {
        let message = e.to_string();
        // serde_json appends " at line L column C" to custom errors; keep our own copy.
        let message = match message.find(" at line ") {
            Some(at) => message[..at].to_string(),
            None => message,
        };
        JsonError {
            duplicate_key: message.starts_with(DUPLICATE_KEY),
            message,
            line: e.line(),
            column: e.column(),
        }
    })
}

impl Json {
    /// The JSON type name used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// Whether a value would read as "yes" to a site owner: `true`, a non-zero number, or a
    /// non-empty string other than "false"/"no"/"0". Used to decide if a forbidden key such
    /// as `"checked"` was an attempt to pre-tick, or an explicit `false`.
    pub fn is_truthy(&self) -> bool {
        match self {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Json::String(s) => !matches!(
                s.trim().to_ascii_lowercase().as_str(),
                "" | "false" | "no" | "0" | "off"
            ),
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_KEY}\"{key}\"")));
            }
            let value = map.next_value()?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_member_order() {
        let Json::Object(members) = parse(r#"{"b":1,"a":2}"#).unwrap() else {
            panic!("not an object")
        };
        let keys: Vec<_> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
    }

    #[test]
    fn rejects_a_repeated_key_with_its_position() {
        let err = parse("{\n  \"a\": 1,\n  \"a\": 2\n}").unwrap_err();
        assert!(err.duplicate_key);
        assert_eq!(err.message, "duplicate key \"a\"");
        assert_eq!(err.line, 3);
    }

    #[test]
    fn reports_syntax_errors_as_such() {
        let err = parse("{\"a\": }").unwrap_err();
        assert!(!err.duplicate_key);
        assert_eq!(err.line, 1);
    }

    #[test]
    fn truthiness_follows_what_a_site_owner_means() {
        for yes in [r"true", "1", r#""yes""#, r#""checked""#] {
            assert!(parse(yes).unwrap().is_truthy(), "{yes}");
        }
        for no in ["false", "0", "null", r#""false""#, r#""""#, r#""no""#] {
            assert!(!parse(no).unwrap().is_truthy(), "{no}");
        }
    }
}

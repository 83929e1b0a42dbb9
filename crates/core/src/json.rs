//! A strict, small JSON parser for configuration files (RFC 8259).
//!
//! Why not `serde_json` here: this code also ships in the widget's wasm, where serde_json
//! with its float parsing and printing tables cost more than the rest of the widget
//! (measured with twiggy). It also does what the config needs and serde_json's `Value`
//! does not: a repeated object key is an error (RFC 8259 §4 says names "SHOULD be unique";
//! `Value` silently keeps the last, so a config naming the form `checkout` twice would lose
//! one), members keep document order (so reports follow the file), and nesting depth is
//! bounded, since the widget parses a file fetched over the network.
//!
//! Numbers are kept as their literal text: the config needs only whole numbers, and a
//! float parser would cost kilobytes of wasm.

use alloc::{string::String, string::ToString, vec::Vec};

use crate::text::{concat, decimal};
use core::fmt;

/// Deepest nesting accepted; far beyond any config, well within the stack.
const MAX_DEPTH: usize = 64;

/// One parsed JSON value, objects kept in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number's literal text, validated against the RFC 8259 grammar.
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Why a text is not a JSON document this module accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub message: String,
    /// 1-based line and column (in characters) where the problem was found.
    pub line: usize,
    pub column: usize,
    /// The text is valid JSON, but names one key twice in an object.
    pub duplicate_key: bool,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl core::error::Error for JsonError {}

impl JsonError {
    /// The message with its position, as `Display` prints it (without `core::fmt`).
    pub fn describe(&self) -> String {
        let (line, column) = (decimal(self.line as u64), decimal(self.column as u64));
        concat(&[&self.message, " at line ", &line, " column ", &column])
    }
}

/// Parses `text` as one JSON document.
///
/// # Errors
/// Syntax errors, repeated object keys and excessive nesting, with their line and column.
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let value = parser.value()?;
    parser.whitespace();
    if parser.pos < parser.bytes.len() {
        return Err(parser.error("trailing characters after the JSON value"));
    }
    Ok(value)
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

    /// The value as a whole number: `3` or `3.0`, not `3.5`, `-3` or `3e0`.
    pub fn as_whole_number(&self) -> Option<u64> {
        let Json::Number(literal) = self else { return None };
        // Digits, then optionally '.' and zeros; at most 15 digits, far beyond any version.
        let mut value: u64 = 0;
        let mut bytes = literal.bytes();
        let mut digits = 0;
        for b in bytes.by_ref() {
            match b {
                b'0'..=b'9' if digits < 15 => {
                    value = value * 10 + u64::from(b - b'0');
                    digits += 1;
                }
                b'.' if digits > 0 => return bytes.all(|b| b == b'0').then_some(value),
                _ => return None,
            }
        }
        (digits > 0).then_some(value)
    }

    /// Whether a value would read as "yes" to a site owner: `true`, a non-zero number, or a
    /// non-empty string other than "false"/"no"/"0"/"off". Used to tell an attempt to
    /// pre-tick (`"checked": true`) from an explicit `false` in error messages.
    pub fn is_truthy(&self) -> bool {
        match self {
            Json::Null => false,
            Json::Bool(b) => *b,
            // A non-zero digit before any exponent makes the number non-zero.
            Json::Number(n) => n
                .bytes()
                .take_while(|b| !matches!(b, b'e' | b'E'))
                .any(|b| matches!(b, b'1'..=b'9')),
            Json::String(s) => {
                let s = s.trim().to_ascii_lowercase();
                !matches!(s.as_str(), "" | "false" | "no" | "0" | "off")
            }
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> JsonError {
        // Column in characters: count the bytes that start a UTF-8 sequence.
        let (mut line, mut column) = (1, 1);
        for &b in self.bytes.get(..self.pos).unwrap_or_default() {
            if b == b'\n' {
                (line, column) = (line + 1, 1);
            } else if b & 0xC0 != 0x80 {
                column += 1;
            }
        }
        JsonError {
            message: message.into(),
            line,
            column,
            duplicate_key: false,
        }
    }

    /// `text[from..to]` without a panic path: positions only ever stop on ASCII bytes or
    /// the end, so they are char boundaries; `get` keeps core's slicing-panic formatting
    /// (and the Unicode tables it drags in) out of the wasm.
    fn slice(&self, from: usize, to: usize) -> &str {
        self.text.get(from..to).unwrap_or_default()
    }

    fn rest(&self) -> &[u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// RFC 8259 §2: insignificant whitespace is space, tab, line feed, carriage return.
    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&[byte]))
        }
    }

    fn unexpected(&self, wanted: &[u8]) -> JsonError {
        let mut message = String::from("expected ");
        for (i, b) in wanted.iter().enumerate() {
            if i > 0 {
                message.push_str(" or ");
            }
            message.push('\'');
            message.push(*b as char);
            message.push('\'');
        }
        message.push_str(" but found ");
        match self.slice(self.pos, self.text.len()).chars().next() {
            None => message.push_str("the end of the text"),
            Some(c) => {
                message.push('\'');
                message.push(c);
                message.push('\'');
            }
        }
        self.error(message)
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, JsonError> {
        if self.rest().starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn value(&mut self) -> Result<Json, JsonError> {
        self.whitespace();
        match self.peek() {
            Some(b'{') => self.nested(Self::object),
            Some(b'[') => self.nested(Self::array),
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
            None => Err(self.error("expected a JSON value but the text ended")),
        }
    }

    fn nested(&mut self, read: fn(&mut Self) -> Result<Json, JsonError>) -> Result<Json, JsonError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.depth += 1;
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn object(&mut self) -> Result<Json, JsonError> {
        self.expect(b'{')?;
        let mut members: Vec<(String, Json)> = Vec::new();
        self.whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.whitespace();
            let key_at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.unexpected(b"\""));
            }
            let key = self.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                self.pos = key_at;
                let mut e = self.error(concat(&["duplicate key \"", &key, "\""]));
                e.duplicate_key = true;
                return Err(e);
            }
            self.whitespace();
            self.expect(b':')?;
            let value = self.value()?;
            members.push((key, value));
            self.whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.unexpected(b",}")),
            }
        }
    }

    fn array(&mut self) -> Result<Json, JsonError> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.unexpected(b",]")),
            }
        }
    }

    /// RFC 8259 §7. The input is a `&str`, so it is valid UTF-8 already; escapes are
    /// decoded, and a lone surrogate escape is an error (it cannot be a Rust string).
    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    out.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(self.slice(run, self.pos));
                    self.pos += 1;
                    out.push(self.escape()?);
                    run = self.pos;
                }
                Some(0x00..=0x1f) => return Err(self.error("control character in a string: write it as an escape")),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn escape(&mut self) -> Result<char, JsonError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let first = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if !self.rest().starts_with(b"\\u") {
                        return Err(self.error("lone surrogate in a \\u escape"));
                    }
                    self.pos += 2;
                    let second = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&second) {
                        return Err(self.error("lone surrogate in a \\u escape"));
                    }
                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                } else {
                    first
                };
                return char::from_u32(code).ok_or_else(|| self.error("lone surrogate in a \\u escape"));
            }
            _ => return Err(self.error("invalid escape in a string")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|b| (b as char).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error("expected four hex digits in a \\u escape"));
            };
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number: digits must follow the decimal point"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number: digits must follow the exponent"));
            }
            self.digits();
        }
        Ok(Json::Number(self.slice(start, self.pos).to_string()))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
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
        assert_eq!((err.line, err.column), (3, 3));
    }

    #[test]
    fn reports_syntax_errors_with_their_position() {
        let err = parse("{\"a\": }").unwrap_err();
        assert!(!err.duplicate_key);
        assert_eq!((err.line, err.column), (1, 7));
        let err = parse("{\"ā\": 1,,}").unwrap_err();
        assert_eq!(err.to_string(), "expected '\"' but found ',' at line 1 column 9");
    }

    #[test]
    fn rejects_what_rfc_8259_rejects() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "'a'",
            "\"\\x\"",
            "\"\t\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "tru",
            "nul",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "1 2",
            "\"abc",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn decodes_escapes_and_surrogate_pairs() {
        assert_eq!(
            parse(r#""a\"\\\/\b\f\n\r\t\u0041\u0101\ud83d\ude00""#).unwrap(),
            Json::String("a\"\\/\u{8}\u{c}\n\r\tAā😀".into())
        );
    }

    #[test]
    fn bounds_nesting() {
        assert!(parse(&("[".repeat(64) + &"]".repeat(64))).is_ok());
        let err = parse(&("[".repeat(100_000))).unwrap_err();
        assert_eq!(err.message, "nested too deeply");
    }

    #[test]
    fn whole_numbers_and_truthiness() {
        let n = |t: &str| parse(t).unwrap();
        assert_eq!(n("3").as_whole_number(), Some(3));
        assert_eq!(n("3.00").as_whole_number(), Some(3));
        assert_eq!(n("3.5").as_whole_number(), None);
        assert_eq!(n("-3").as_whole_number(), None);
        assert_eq!(n("\"3\"").as_whole_number(), None);
        for yes in ["true", "1", "0.5", "-2e3", r#""yes""#, r#""checked""#] {
            assert!(n(yes).is_truthy(), "{yes}");
        }
        for no in ["false", "0", "0.0", "-0e5", "null", r#""false""#, r#""""#, r#"" No ""#] {
            assert!(!n(no).is_truthy(), "{no}");
        }
    }
}

//! Strict reading of JSON values into Rust: the widget's reader of the compiled config
//! (`crate::compiled`) and of its call arguments (`src/lib.rs`), over [`crate::json`].
//!
//! Every member is required (an absent value is written `null`), an unknown member is an
//! error, and each value must be of its kind. The first problem is kept, named by JSON
//! Pointer (RFC 6901), and [`Reader::finish`] returns it instead of the value: what was read
//! after it is never used.
//!
//! Written by hand rather than with serde's derive, and in this style (a reader that notes
//! its first error, like the config's, rather than `?` at every member): over this parser
//! serde's derive cost the widget's wasm 12 KB for the call arguments alone and 25 KB with
//! the compiled config's types, serde_json's float code 30 KB more, and `Result`s at every
//! member twice this (twiggy).

use alloc::string::String;
use core::fmt;

use crate::json::{self, Json};
use crate::text::{concat, decimal};
use crate::vocabulary::Named;

/// Why a text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// JSON Pointer to the value at fault ("" for the whole document).
    pub at: String,
    pub message: String,
}

impl Error {
    /// `at /purposes/0/channel: unknown value "emial"; known: …`, without `core::fmt`.
    pub fn describe(&self) -> String {
        let at = if self.at.is_empty() { "/" } else { &self.at };
        concat(&["at ", at, ": ", &self.message])
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl core::error::Error for Error {}

/// Where a value is: the steps from the document's root, written as a JSON Pointer only when
/// there is a problem to name.
#[derive(Clone, Copy)]
pub struct At<'p> {
    parent: Option<&'p At<'p>>,
    key: &'p str,
    index: usize,
}

/// The document itself.
pub const ROOT: At<'static> = At {
    parent: None,
    key: "",
    index: 0,
};

impl<'p> At<'p> {
    /// Member `key` of the value here.
    pub fn key(&'p self, key: &'p str) -> At<'p> {
        At {
            parent: Some(self),
            key,
            index: usize::MAX,
        }
    }

    /// Item `index` of the array here.
    pub fn index(&'p self, index: usize) -> At<'p> {
        At {
            parent: Some(self),
            key: "",
            index,
        }
    }

    fn pointer(&self) -> String {
        let Some(parent) = self.parent else {
            return String::new();
        };
        let step = if self.index == usize::MAX {
            // RFC 6901 §3: "~" and "/" in a member name are escaped.
            self.key.replace('~', "~0").replace('/', "~1")
        } else {
            decimal(self.index as u64)
        };
        concat(&[&parent.pointer(), "/", &step])
    }
}

static NULL: Json = Json::Null;

/// Reads values, keeping the first problem.
#[derive(Default)]
pub struct Reader {
    first: Option<Error>,
}

impl Reader {
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Notes a problem at `at`, unless one was noted already.
    pub fn fail(&mut self, at: &At, message: String) {
        if self.first.is_none() {
            self.first = Some(Error {
                at: at.pointer(),
                message,
            });
        }
    }

    fn wrong(&mut self, at: &At, found: &Json, wanted: &str) {
        let article = if matches!(found, Json::Array(_) | Json::Object(_)) {
            "an "
        } else {
            "a "
        };
        let found = match found {
            Json::Null => String::from("null"),
            other => concat(&[article, other.type_name()]),
        };
        self.fail(at, concat(&["found ", &found, " where ", wanted, " belongs"]));
    }

    /// The first problem, or `value`.
    ///
    /// # Errors
    /// The first problem noted.
    pub fn finish<T>(self, value: T) -> Result<T, Error> {
        match self.first {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// The members `keys` of the object at `at`, in that order: all of them, and no other
    /// (`null` stands in for each one missing, after the problem is noted).
    pub fn object<'a>(&mut self, at: &At, value: &'a Json, keys: &[&'static str]) -> alloc::vec::Vec<&'a Json> {
        let mut found = alloc::vec![&NULL; keys.len()];
        let Json::Object(members) = value else {
            self.wrong(at, value, "an object");
            return found;
        };
        let mut given = alloc::vec![false; keys.len()];
        for (key, member) in members {
            // `json::parse` refuses a key given twice.
            match keys.iter().position(|k| k == key) {
                Some(i) => {
                    found[i] = member;
                    given[i] = true;
                }
                None => self.fail(at, concat(&["unknown field \"", key, "\"; known: ", &keys.join(", ")])),
            }
        }
        for (i, key) in keys.iter().enumerate() {
            if !given[i] {
                self.fail(at, concat(&["missing field \"", key, "\""]));
            }
        }
        found
    }

    /// The string at `at`, borrowed.
    pub fn text<'a>(&mut self, at: &At, value: &'a Json) -> &'a str {
        match value {
            Json::String(s) => s,
            _ => {
                self.wrong(at, value, "a string");
                ""
            }
        }
    }

    /// The string at `at`.
    pub fn string(&mut self, at: &At, value: &Json) -> String {
        String::from(self.text(at, value))
    }

    /// The string at `at`, or `None` for `null`.
    pub fn nullable_string(&mut self, at: &At, value: &Json) -> Option<String> {
        match value {
            Json::Null => None,
            _ => Some(self.string(at, value)),
        }
    }

    /// A whole number from 0 to 10^15 (the formats read here have no other kind).
    pub fn whole(&mut self, at: &At, value: &Json) -> u64 {
        match (value, value.as_whole_number()) {
            (Json::Number(_), Some(n)) => n,
            (Json::Number(_), None) => {
                self.fail(
                    at,
                    String::from("found a number that is not a whole number from 0 to 10^15"),
                );
                0
            }
            _ => {
                self.wrong(at, value, "a number");
                0
            }
        }
    }

    pub fn number(&mut self, at: &At, value: &Json) -> u32 {
        let n = self.whole(at, value);
        u32::try_from(n).unwrap_or_else(|_| {
            self.fail(at, String::from("found a number above 4294967295"));
            0
        })
    }

    pub fn boolean(&mut self, at: &At, value: &Json) -> bool {
        match value {
            Json::Bool(b) => *b,
            _ => {
                self.wrong(at, value, "a boolean");
                false
            }
        }
    }

    /// The items of the array at `at`.
    pub fn items<'a>(&mut self, at: &At, value: &'a Json) -> &'a [Json] {
        match value {
            Json::Array(items) => items,
            _ => {
                self.wrong(at, value, "an array");
                &[]
            }
        }
    }

    /// Every item of the array at `at` a string.
    pub fn strings(&mut self, at: &At, value: &Json) -> alloc::vec::Vec<String> {
        let mut out = alloc::vec::Vec::new();
        for (i, item) in self.items(at, value).iter().enumerate() {
            out.push(self.string(&at.index(i), item));
        }
        out
    }

    /// One of `names`, as the `&'static str` of the list.
    pub fn one_of(&mut self, at: &At, value: &Json, names: &'static [&'static str]) -> &'static str {
        let name = self.text(at, value);
        match names.iter().find(|n| **n == name) {
            Some(known) => known,
            None => {
                if matches!(value, Json::String(_)) {
                    self.fail(
                        at,
                        concat(&["unknown value \"", name, "\"; known: ", &names.join(", ")]),
                    );
                }
                names[0]
            }
        }
    }

    /// A name of a vocabulary enum.
    pub fn named<T: Named>(&mut self, at: &At, value: &Json) -> T {
        let name = self.one_of(at, value, T::NAMES);
        let i = T::NAMES.iter().position(|n| *n == name).unwrap_or(0);
        T::ALL[i]
    }
}

/// Parses `text` as one JSON document ([`crate::json::parse`]: strict RFC 8259, no repeated
/// keys, bounded depth).
///
/// # Errors
/// The syntax error with its line and column.
pub fn parse(text: &str) -> Result<Json, Error> {
    json::parse(text).map_err(|e| Error {
        at: String::new(),
        message: e.describe(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<(String, u32, Option<String>), String> {
        let value = parse(text).map_err(|e| e.describe())?;
        let mut r = Reader::new();
        let m = r.object(&ROOT, &value, &["name", "n", "maybe"]);
        let read = (
            r.string(&ROOT.key("name"), m[0]),
            r.number(&ROOT.key("n"), m[1]),
            r.nullable_string(&ROOT.key("maybe"), m[2]),
        );
        r.finish(read).map_err(|e| e.describe())
    }

    #[test]
    fn reads_every_member_and_null_for_none() {
        assert_eq!(
            read(r#"{"name":"a\u00e9","n":3,"maybe":null}"#).unwrap(),
            ("aé".into(), 3, None)
        );
        assert_eq!(
            read(r#"{"maybe":"x","n":0,"name":"b"}"#).unwrap().2.as_deref(),
            Some("x")
        );
    }

    #[test]
    fn the_first_error_is_named_where_and_what() {
        let cases = [
            (r#"{"name":"a","n":1}"#, "at /: missing field \"maybe\""),
            (
                r#"{"name":"a","n":1,"maybe":null,"x":1}"#,
                "at /: unknown field \"x\"; known: name, n, maybe",
            ),
            (
                r#"{"name":1,"n":1,"maybe":null}"#,
                "at /name: found a number where a string belongs",
            ),
            (
                r#"{"name":"a","n":1.5,"maybe":null}"#,
                "at /n: found a number that is not a whole number from 0 to 10^15",
            ),
            (
                r#"{"name":"a","n":-1,"maybe":null}"#,
                "at /n: found a number that is not a whole number from 0 to 10^15",
            ),
            (
                r#"{"name":"a","n":true,"maybe":null}"#,
                "at /n: found a boolean where a number belongs",
            ),
            (
                r#"{"name":"a","n":4294967296,"maybe":null}"#,
                "at /n: found a number above 4294967295",
            ),
            (
                r#"{"name":"a","n":1,"maybe":[]}"#,
                "at /maybe: found an array where a string belongs",
            ),
            (r#"[]"#, "at /: found an array where an object belongs"),
            (
                r#"{"name":null,"n":null,"maybe":null}"#,
                "at /name: found null where a string belongs",
            ),
        ];
        for (text, wanted) in cases {
            assert_eq!(read(text).unwrap_err(), wanted, "{text}");
        }
        assert!(read("{").unwrap_err().contains("line 1"));
        assert!(read(r#"{"n":1,"n":2}"#).is_err());
    }

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        let mut r = Reader::new();
        let key = ROOT.key("a/b~c");
        r.fail(&key.index(0), String::from("x"));
        assert_eq!(r.finish(()).unwrap_err().at, "/a~1b~0c/0");
    }

    #[test]
    fn unknown_names_are_named_with_the_known_ones() {
        let mut r = Reader::new();
        let channel: crate::vocabulary::Channel = r.named(&ROOT, &Json::String("emial".into()));
        let _ = channel;
        assert_eq!(
            r.finish(()).unwrap_err().describe(),
            "at /: unknown value \"emial\"; known: email, sms, phone, post, web"
        );
    }
}

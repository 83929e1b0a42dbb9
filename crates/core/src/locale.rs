//! Locale negotiation and the widget's own words.
//!
//! Purpose labels, descriptions and profiling logic come from the site owner's config; the
//! words the widget itself shows around them (the legend, "optional", the headings of each
//! purpose's details, the names of data categories, roles and safeguards, the notice line)
//! ship with the widget in seven languages, so a shop only translates what is its own. So do
//! the words of the pages where a shopper changes their choices later (`prefs:*`), which no
//! checkout's sheet carries.

use alloc::{string::String, vec::Vec};

use crate::json::{self, Json};
use crate::text::{concat, decimal};
use crate::vocabulary::{Channel, DataCategory, Named, RecipientRole, Safeguard};

pub use crate::vocabulary::SUPPORTED;

/// The widget's own words that are not about one value of the config: the legend, the
/// headings of a purpose's details (Art. 13), the notice line, the birthday field (R8) and
/// the contact hints (R9). `{}` in a text marks where a value goes.
const FIXED: &[&str] = &[
    "legend",
    "optional",
    "intro",
    "details",
    "channel",
    "data",
    "recipients",
    "transfers",
    "retention",
    "profiling",
    "withdrawal",
    "until_withdrawn",
    "month_one",
    "month_few",
    "month_many",
    "retention_from_consent",
    "controller",
    "dpo",
    "privacy_notice",
    "version",
    "withdraw",
    "birthday",
    "day",
    "month",
    "hint:email",
    "hint:phone",
    "hint:post",
];

/// The words of the pages where a shopper reviews and changes their choices later (the
/// collector's preference page, an account form). The checkout's rendering uses none of
/// them, so no sheet carries them.
const PREFS: &[&str] = &[
    "prefs:title",
    "prefs:intro",
    "prefs:save",
    "prefs:withdraw_all",
    "prefs:saved",
    "prefs:unsubscribe",
    "prefs:unsubscribed",
    "prefs:outdated",
    "prefs:expired",
    "prefs:link_invalid",
    "prefs:nothing",
];

/// Every key a language's words must have: [`FIXED`], then one per value of each config enum
/// the details name (`channel:sms`, `withdraw_how:sms`, `data:birthday`, `role:processor`,
/// `safeguard:eu-us-dpf`), so a value added to the config model needs its words, then
/// [`PREFS`].
pub fn keys() -> Vec<String> {
    let mut keys: Vec<String> = FIXED.iter().map(|k| String::from(*k)).collect();
    let prefixed: [(&str, &[&str]); 5] = [
        ("channel:", Channel::NAMES),
        // Art. 7(3): each channel's own way out, as easy as the box was to tick.
        ("withdraw_how:", Channel::NAMES),
        ("data:", DataCategory::NAMES),
        ("role:", RecipientRole::NAMES),
        ("safeguard:", Safeguard::NAMES),
    ];
    for (prefix, names) in prefixed {
        keys.extend(names.iter().map(|name| concat(&[prefix, name])));
    }
    keys.extend(PREFS.iter().map(|k| String::from(*k)));
    keys
}

/// The widget's own words in one language: `crates/core/locales/<language>.json`.
///
/// Built into `unticked` (the `words` feature), which compiles them into each locale's sheet
/// (`crate::compiled`): the widget's wasm carries none, and a page downloads the words of
/// the one language it shows, with the choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// The primary language subtag, e.g. `lv`.
    pub language: String,
    /// Each key of [`keys`] and its text.
    texts: Vec<(String, String)>,
}

impl Words {
    /// Reads a language's words: an object of key → text (`crates/core/locales/`), or the
    /// array of the texts in [`keys`] order (the compact form the widget once downloaded).
    /// The error names the first key missing or not a string.
    pub fn from_json(language: &str, text: &str) -> Result<Words, String> {
        let json = json::parse(text);
        let mut texts = Vec::new();
        for (i, key) in keys().into_iter().enumerate() {
            let text = match &json {
                // The keyed source files are read natively only: the widget gets arrays.
                #[cfg(feature = "words")]
                Ok(Json::Object(members)) => members.iter().find(|(k, _)| *k == key).map(|(_, text)| text),
                Ok(Json::Array(texts)) => texts.get(i),
                _ => None,
            };
            match text {
                Some(Json::String(text)) => texts.push((key, text.clone())),
                _ => return Err(concat(&["the words of \"", language, "\" have no \"", &key, "\""])),
            }
        }
        Ok(Words {
            language: String::from(language),
            texts,
        })
    }

    /// The text of `key` ("" for a key [`keys`] does not list).
    pub fn get(&self, key: &str) -> &str {
        self.texts.iter().find(|(k, _)| k == key).map_or("", |(_, text)| text)
    }

    /// The text of `key` for a value of a config enum, e.g. `("role:", "processor")`.
    pub fn named(&self, prefix: &str, name: &str) -> &str {
        self.get(&concat(&[prefix, name]))
    }

    /// The text of `key` around its `{}`: what goes before the value and what after.
    pub fn around(&self, key: &str) -> (&str, &str) {
        // A char pattern, not "{}": a string pattern costs the wasm 4 KB of searcher and
        // panic formatting.
        let text = self.get(key);
        match text.split_once('{') {
            Some((before, rest)) => (before, rest.strip_prefix('}').unwrap_or(rest)),
            None => (text, ""),
        }
    }

    /// The text of `key` with `value` in place of its `{}`.
    pub fn fill(&self, key: &str, value: &str) -> String {
        let (before, after) = self.around(key);
        concat(&[before, value, after])
    }

    /// "24 months" in this language, with the plural form its grammar asks for (see
    /// [`Words::retention`] for how long a consent's data is kept).
    pub fn months(&self, n: u32) -> String {
        let key = match plural(&self.language, n) {
            Plural::One => "month_one",
            Plural::Few => "month_few",
            Plural::Many => "month_many",
        };
        self.fill(key, &decimal(n as u64))
    }

    /// How long data is kept for `n` months, counted from the consent: "24 months from your
    /// consent" (Art. 13(2)(a) asks for the period; without its start it says nothing).
    pub fn retention(&self, n: u32) -> String {
        self.fill("retention_from_consent", &self.months(n))
    }
}

/// The noun forms a count takes (CLDR plural rules, cardinal, integers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plural {
    One,
    Few,
    Many,
}

/// Which form of a noun follows the count `n` in `language`.
pub fn plural(language: &str, n: u32) -> Plural {
    let (ones, tens) = (n % 10, n % 100);
    match language {
        // 1 miesiąc, 2–4 miesiące (not 12–14), 5 miesięcy
        "pl" if n == 1 => Plural::One,
        "pl" if (2..=4).contains(&ones) && !(12..=14).contains(&tens) => Plural::Few,
        "pl" => Plural::Many,
        // 1 měsíc, 2–4 měsíce, 5 měsíců
        "cs" if n == 1 => Plural::One,
        "cs" if (2..=4).contains(&n) => Plural::Few,
        "cs" => Plural::Many,
        // 1, 21 mėnuo; 2–9, 22 mėnesiai; 10–20, 30 mėnesių
        "lt" if (11..=19).contains(&tens) => Plural::Many,
        "lt" if ones == 1 => Plural::One,
        "lt" if ones >= 2 => Plural::Few,
        "lt" => Plural::Many,
        // 1, 21 mēnesis (not 11); otherwise mēneši
        "lv" if ones == 1 && tens != 11 => Plural::One,
        _ if language != "lv" && n == 1 => Plural::One,
        _ => Plural::Many,
    }
}

/// The built-in words of a primary language subtag (`lv`, not `lv-LV`).
#[cfg(feature = "words")]
pub fn builtin(language: &str) -> Option<Words> {
    let text = match language {
        "en" => include_str!("../locales/en.json"),
        "lv" => include_str!("../locales/lv.json"),
        "pl" => include_str!("../locales/pl.json"),
        "cs" => include_str!("../locales/cs.json"),
        "de" => include_str!("../locales/de.json"),
        "lt" => include_str!("../locales/lt.json"),
        "et" => include_str!("../locales/et.json"),
        _ => return None,
    };
    Words::from_json(language, text).ok()
}

/// The name of the country or region with ISO 3166-1 alpha-2 `code` in a primary language
/// (`lv`: `US` is "ASV"), from CLDR (`crates/core/locales/countries/`, written by
/// `tools/countries.mjs`). `None` for a language without words or a code that names no region.
#[cfg(feature = "words")]
pub fn country_name(language: &str, code: &str) -> Option<String> {
    let text = match language {
        "en" => include_str!("../locales/countries/en.json"),
        "lv" => include_str!("../locales/countries/lv.json"),
        "pl" => include_str!("../locales/countries/pl.json"),
        "cs" => include_str!("../locales/countries/cs.json"),
        "de" => include_str!("../locales/countries/de.json"),
        "lt" => include_str!("../locales/countries/lt.json"),
        "et" => include_str!("../locales/countries/et.json"),
        _ => return None,
    };
    match json::parse(text).ok()? {
        Json::Object(members) => members
            .into_iter()
            .find(|(k, _)| k == code)
            .and_then(|(_, name)| match name {
                Json::String(name) => Some(name),
                _ => None,
            }),
        _ => None,
    }
}

/// Whether the widget ships words for the language of a locale tag.
pub fn supported(tag: &str) -> bool {
    SUPPORTED.iter().any(|l| l.eq_ignore_ascii_case(primary(tag)))
}

/// The language subtag of a locale tag: `lv` for `lv-LV`.
pub fn primary(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or(tag)
}

/// Whether two locale tags name the same language (`lv` and `LV-lv` do).
pub fn same_language(a: &str, b: &str) -> bool {
    primary(a).eq_ignore_ascii_case(primary(b))
}

/// Chooses the declared locale to show: the first requested tag (the page's `lang`; issue 6
/// adds the browser's languages) that matches a declared one exactly, or by its language
/// (`lv-LV` → `lv`, `lv` → `lv-LV`); otherwise the config's default.
pub fn negotiate<'a, 'r>(
    requested: impl IntoIterator<Item = &'r str>,
    declared: &'a [String],
    default: &'a str,
) -> &'a str {
    for tag in requested {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        if let Some(found) = declared.iter().find(|d| d.eq_ignore_ascii_case(tag)) {
            return found;
        }
        let language = primary(tag);
        if let Some(found) = declared.iter().find(|d| d.eq_ignore_ascii_case(language)) {
            return found;
        }
        if let Some(found) = declared.iter().find(|d| same_language(d, language)) {
            return found;
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    use alloc::{string::ToString, vec::Vec};

    fn declared(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_first_requested_language_declared_wins_else_the_default() {
        let d = declared(&["en", "lv", "pl"]);
        assert_eq!(negotiate(["lv", "pl"], &d, "en"), "lv");
        assert_eq!(negotiate(["fi", "pl-PL"], &d, "en"), "pl");
        assert_eq!(negotiate(["", "fi"], &d, "lv"), "lv");
    }

    #[test]
    fn region_falls_back_to_language_and_back() {
        assert_eq!(negotiate(["lv-LV"], &declared(&["en", "lv"]), "en"), "lv");
        assert_eq!(negotiate(["LV"], &declared(&["en", "lv-LV"]), "en"), "lv-LV");
        assert_eq!(negotiate(["cs-cz"], &declared(&["en", "cs-CZ"]), "en"), "cs-CZ");
    }

    #[test]
    #[cfg(feature = "words")]
    fn every_supported_language_has_every_word() {
        for lang in SUPPORTED {
            let words = builtin(lang).expect("supported languages have complete words");
            for key in keys() {
                assert!(!words.get(&key).trim().is_empty(), "{lang}: {key} is empty");
            }
            let with_value = keys().into_iter().filter(|k| {
                k.starts_with("withdraw_how:")
                    || k.starts_with("month_")
                    || ["retention_from_consent", "prefs:unsubscribe", "prefs:link_invalid"].contains(&k.as_str())
            });
            for key in with_value {
                assert!(
                    words.get(&key).contains("{}"),
                    "{lang}: {key} has no place for its value"
                );
            }
        }
        assert!(builtin("fi").is_none());
        assert!(supported("lv-LV") && !supported("fi"));
    }

    #[test]
    fn the_english_file_lists_the_keys_in_order_so_shipped_arrays_follow_it() {
        // build.sh ships each language as an array in the key order of en.json.
        let Ok(Json::Object(members)) = json::parse(include_str!("../locales/en.json")) else {
            panic!("en.json is an object");
        };
        let order: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, keys());
        let array = r#"["a","b"]"#;
        assert!(Words::from_json("xx", array).unwrap_err().contains("\"intro\""));
    }

    #[test]
    fn words_missing_a_key_name_it() {
        let err = Words::from_json("xx", r#"{"legend": "L"}"#).unwrap_err();
        assert!(err.contains("\"optional\""), "{err}");
    }

    #[test]
    #[cfg(feature = "words")]
    fn months_take_the_plural_form_of_their_language() {
        let months = |lang: &str, n| builtin(lang).unwrap().months(n);
        assert_eq!(months("en", 1), "1 month");
        assert_eq!(months("en", 24), "24 months");
        assert_eq!(months("pl", 1), "1 miesiąc");
        assert_eq!(months("pl", 24), "24 miesiące");
        assert_eq!(months("pl", 12), "12 miesięcy");
        assert_eq!(months("pl", 36), "36 miesięcy");
        assert_eq!(months("cs", 3), "3 měsíce");
        assert_eq!(months("cs", 24), "24 měsíců");
        assert_eq!(months("lt", 21), "21 mėnuo");
        assert_eq!(months("lt", 24), "24 mėnesiai");
        assert_eq!(months("lt", 12), "12 mėnesių");
        assert_eq!(months("lt", 30), "30 mėnesių");
        assert_eq!(months("lv", 21), "21 mēnesis");
        assert_eq!(months("lv", 11), "11 mēneši");
        assert_eq!(months("et", 1), "1 kuu");
        assert_eq!(months("de", 36), "36 Monate");
    }

    #[test]
    #[cfg(feature = "words")]
    fn retention_counts_the_months_from_the_consent() {
        let retention = |lang: &str, n| builtin(lang).unwrap().retention(n);
        assert_eq!(retention("en", 24), "24 months from your consent");
        assert_eq!(retention("pl", 24), "24 miesiące od wyrażenia zgody");
        assert_eq!(retention("de", 36), "36 Monate ab Ihrer Einwilligung");
    }

    #[test]
    #[cfg(feature = "words")]
    fn every_channel_has_its_own_way_out_and_the_old_single_one_is_gone() {
        for lang in SUPPORTED {
            let words = builtin(lang).unwrap();
            let ways: Vec<&str> = Channel::NAMES.iter().map(|c| words.named("withdraw_how:", c)).collect();
            for (i, way) in ways.iter().enumerate() {
                assert!(!ways[..i].contains(way), "{lang}: two channels share {way:?}");
            }
        }
        assert!(!keys().iter().any(|k| k == "withdraw_how"));
    }

    #[test]
    #[cfg(feature = "words")]
    fn no_sheet_carries_the_preference_pages_words() {
        // The checkout downloads its sheet; the words of pages it never shows stay out of it.
        let text = include_str!("../../../www/consent.json");
        let config = crate::config::Config::from_json(text).expect("the demo config lints");
        let compiled = crate::compiled::compile(&config, "");
        let files = compiled.files();
        assert!(files.len() > 1);
        for (name, json) in files {
            // <form>.<locale>.json; site.json names no language.
            let Some((_, locale)) = name.trim_end_matches(".json").split_once('.') else {
                continue;
            };
            let words = builtin(primary(locale)).unwrap();
            for key in PREFS {
                let (before, _) = words.around(key);
                assert!(!json.contains(before.trim()), "{name} carries {key}");
            }
        }
    }
}

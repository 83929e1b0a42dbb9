//! What the shopper was shown: every purpose text the config can show, rendered once by
//! the widget's own view code, by form and locale, each with its SHA-256 (DESIGN.md, trust
//! model, layer 3). The records handler checks a record's `text_sha256` against them, and the
//! store keeps them so that a text can be printed years later.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use unticked_core::config::Config;
use unticked_core::{locale, record, view};

/// What the widget shows for each form in each declared locale: per purpose, its id, the
/// exact text and that text's SHA-256. Rendered once from the config by the widget's own view
/// code, rather than for every record.
pub struct Shown(HashMap<(String, String), Vec<ShownText>>);

/// One purpose's text as a form shows it in one locale.
pub struct ShownText {
    pub purpose: String,
    /// The purpose's version when the text was shown.
    pub version: u32,
    pub text: String,
    pub sha256: String,
}

impl Shown {
    pub fn of(config: &Config) -> Shown {
        let mut shown = HashMap::new();
        for form in &config.forms {
            for locale in &config.locales {
                let tree = view::choices(config, form, locale, Some(locale::primary(locale)), "u");
                let texts = view::purpose_texts(&tree)
                    .into_iter()
                    .map(|(purpose, text)| ShownText {
                        sha256: sha256_hex(text.as_bytes()),
                        version: config.purpose(&purpose).map_or(0, |p| p.version),
                        purpose,
                        text,
                    })
                    .collect();
                shown.insert((form.kind.clone(), locale.clone()), texts);
            }
        }
        Shown(shown)
    }

    /// The texts of `form` in `locale`, if the config has both.
    pub fn get(&self, form: &str, locale: &str) -> Option<&[ShownText]> {
        self.0.get(&(form.to_string(), locale.to_string())).map(Vec::as_slice)
    }

    /// Every (locale, text) pair, for the store's table of texts.
    pub fn all(&self) -> impl Iterator<Item = (&str, &ShownText)> {
        self.0
            .iter()
            .flat_map(|((_, locale), texts)| texts.iter().map(move |t| (locale.as_str(), t)))
    }
}

/// SHA-256 in lowercase hex, as records name texts and commitments.
pub fn sha256_hex(bytes: &[u8]) -> String {
    record::hex(&Sha256::digest(bytes))
}

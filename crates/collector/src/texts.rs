//! What the shopper was shown: every purpose text the config can show, taken from the same
//! compiled sheets the widget renders (`unticked_core::compiled`), by form and locale, each
//! with its SHA-256 (DESIGN.md, trust model, layer 3). The records handler checks a record's `text_sha256` against them, and the
//! store keeps them so that a text can be printed years later.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use unticked_core::compiled::{self, Compiled};
use unticked_core::config::Config;
use unticked_core::record;

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
    /// The texts of a config, compiled as `unticked build` compiles it (the hash a sheet
    /// names does not change its texts).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn of(config: &Config) -> Shown {
        Shown::compiled(&compiled::compile(config, ""))
    }

    /// The texts of every sheet: each purpose row's text as the widget builds it.
    pub fn compiled(compiled: &Compiled) -> Shown {
        let mut shown = HashMap::new();
        for rendered in &compiled.sheets {
            let sheet = &rendered.sheet;
            let texts = sheet
                .purposes
                .iter()
                .map(|p| ShownText {
                    sha256: sha256_hex(p.text.as_bytes()),
                    version: p.version,
                    purpose: p.id.clone(),
                    text: p.text.clone(),
                })
                .collect();
            shown.insert((sheet.form.clone(), sheet.locale.clone()), texts);
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

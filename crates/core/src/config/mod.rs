//! The site owner's `consent.json`: its model and its validation (the linter).
//!
//! ```
//! use unticked_core::config::{Config, ConfigProblem};
//!
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
//! let config = Config::from_json(&text).expect("the demo config is clean");
//! assert_eq!(config.form("checkout").unwrap().purposes.len(), 6);
//!
//! // A pre-ticked purpose is not a setting anyone can make (R1).
//! let bad = text.replacen(r#""version": 1,"#, r#""version": 1, "checked": true,"#, 1);
//! let Err(ConfigProblem::Invalid(errors)) = Config::from_json(&bad) else { panic!() };
//! assert_eq!(errors[0].rule().id(), "R1");
//! ```
//!
//! Validated [`Config`] is a different type from the JSON text, and every later stage takes
//! the validated type. A consent purpose has no field for "checked", "required" or "default":
//! trying to write one is an error that cites the rule it would break.

use alloc::{string::String, vec, vec::Vec};

mod error;
mod read;

pub use error::{ConfigError, ConfigProblem, ErrorCode, Rule};
// The config's enums and `Named` live in the vocabulary, which `locale` and `record` share
// without importing `config`; they stay reachable here, where the collector and the
// widget name them.
pub use crate::vocabulary::{Channel, DataCategory, ExtraField, Named, RecipientRole, Safeguard, Source};

/// A validated `consent.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub controller: Controller,
    pub privacy_notice: PrivacyNotice,
    /// Where records are posted: https, http on loopback, or a same-origin path.
    pub endpoint: String,
    /// The shop's origins allowed to post records when the collector is on another origin
    /// (its CORS allowlist); empty when the shop and the collector share an origin.
    pub origins: Vec<String>,
    /// Declared locales, e.g. `en`, `lv`, `pl-PL`; every purpose text exists in each.
    pub locales: Vec<String>,
    /// One of `locales`.
    pub default_locale: String,
    /// Form kinds in file order.
    pub forms: Vec<Form>,
    /// Purposes in file order, ids unique.
    pub purposes: Vec<Purpose>,
    /// The preferences form ([`PREFERENCES`]): every purpose, in the config's order, and no
    /// contact field (the subject is known by the token the form carries). The shop's
    /// account page shows it (`data-unticked="preferences"`), and the collector's preference
    /// page shows the same rows: withdrawing sees the same details as giving (R5, R7).
    pub preferences: Form,
}

/// Who decides why and how the data is processed (Art. 13(1)(a)–(b)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub name: String,
    /// The postal address in each declared locale (the same text in each when the config
    /// gives one string).
    pub address: Vec<(String, String)>,
    pub email: String,
    pub phone: Option<String>,
    pub dpo: Option<Dpo>,
}

impl Controller {
    /// The address as shown in `locale` (one of the config's).
    pub fn address_in(&self, locale: &str) -> &str {
        self.address
            .iter()
            .find(|(l, _)| l == locale)
            .or(self.address.first())
            .map_or("", |(_, a)| a)
    }
}

/// The data protection officer's contact (Art. 13(1)(b)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpo {
    pub name: Option<String>,
    pub email: String,
}

/// The privacy notice the choices point to, and its version (recorded with each consent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacyNotice {
    pub url: String,
    pub version: String,
}

/// One kind of form (`<form data-unticked="KIND">`) and the purposes it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: String,
    pub source: Source,
    /// Purpose ids, in display order, each defined in [`Config::purposes`].
    pub purposes: Vec<String>,
    pub contact: ContactFields,
    /// When set, an e-mail consent given on this form waits for the subject to confirm it by
    /// a mailed link (docs/double-opt-in.md).
    pub double_opt_in: Option<DoubleOptIn>,
}

/// A form's double opt-in: how long a signup waits for its confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoubleOptIn {
    /// 1..=30.
    pub within_days: u32,
}

impl DoubleOptIn {
    /// The confirmation deadline of a signup captured at `captured_at` (ms since the epoch).
    pub fn deadline(self, captured_at: u64) -> u64 {
        captured_at.saturating_add(u64::from(self.within_days) * 86_400_000)
    }
}

/// CSS selectors of the form's own contact inputs, per channel kind (R9). A selector may
/// match an input by `id` alone (`#phone`); for `post` it may match several (`#street,
/// #postcode, #city`), whose values make the address in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ContactFields {
    pub email: Option<String>,
    /// For SMS and phone calls.
    pub phone: Option<String>,
    pub post: Option<String>,
}

impl ContactFields {
    /// The selector of the field a channel's contact comes from.
    pub fn of(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Email => self.email.as_deref(),
            Channel::Sms | Channel::Phone => self.phone.as_deref(),
            Channel::Post => self.post.as_deref(),
            Channel::Web => None,
        }
    }
}

/// One thing a shopper can agree to: one purpose, one channel, one box.
///
/// There is deliberately no field for an initial state: a box always renders unticked
/// (R1) and is never required (R3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose {
    /// Stable slug; a new meaning gets a new id or a new `version` (R11).
    pub id: String,
    /// Bumped when the wording or the processing changes (R11).
    pub version: u32,
    pub channel: Channel,
    /// A W3C DPV purpose term, e.g. `dpv:DirectMarketing`.
    pub dpv: String,
    /// Label and description per declared locale, in `locales` order.
    pub text: Vec<(String, PurposeText)>,
    pub data: Vec<DataCategory>,
    pub recipients: Vec<Recipient>,
    pub transfers: Vec<Transfer>,
    pub retention: Retention,
    /// The logic of profiling per locale, where the purpose profiles (Art. 13(2)(f)).
    pub profiling: Option<Vec<(String, String)>>,
    pub fields: Vec<ExtraField>,
}

/// What a purpose says in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeText {
    /// Performative, e.g. "I agree to receive offers by e-mail".
    pub label: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    pub role: RecipientRole,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// ISO 3166-1 alpha-2, outside the EU/EEA.
    pub country: String,
    pub safeguard: Safeguard,
}

/// How long the data is kept (Art. 13(2)(a)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    UntilWithdrawn,
    Months(u32),
}

/// The kind of the form every config has, built from all its purposes, for a subject to see
/// and change where their consent stands (the linter keeps the name for it).
pub const PREFERENCES: &str = "preferences";

impl Form {
    /// The preferences form of these purposes (ids in display order).
    pub fn preferences(purposes: Vec<String>) -> Form {
        Form {
            kind: String::from(PREFERENCES),
            source: Source::Account,
            purposes,
            contact: ContactFields::default(),
            double_opt_in: None,
        }
    }
}

impl Config {
    /// Parses and validates a config, reporting every problem found, not just the first.
    ///
    /// # Errors
    /// [`ConfigProblem::NotJson`] when the text is not JSON; [`ConfigProblem::Invalid`]
    /// with each problem's JSON Pointer, code and rule otherwise.
    pub fn from_json(text: &str) -> Result<Config, ConfigProblem> {
        // RFC 8259 §8.1: a parser may ignore a byte order mark. Editors on Windows add one,
        // and the browser's Response.text() strips it, so the linter does the same.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        match crate::json::parse(text) {
            Ok(json) => read::config(&json).map_err(ConfigProblem::Invalid),
            Err(e) if e.duplicate_key => Err(ConfigProblem::Invalid(vec![ConfigError {
                path: String::new(),
                code: ErrorCode::DuplicateKey,
                message: crate::text::concat(&[&e.describe(), ": each name may appear once"]),
            }])),
            Err(e) => Err(ConfigProblem::NotJson(e)),
        }
    }

    /// The form of this kind, if the config has one; [`PREFERENCES`] is always there.
    pub fn form(&self, kind: &str) -> Option<&Form> {
        if kind == PREFERENCES {
            return Some(&self.preferences);
        }
        self.forms.iter().find(|f| f.kind == kind)
    }

    /// The purpose with this id, if the config has one.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.iter().find(|p| p.id == id)
    }

    /// The purposes a form offers, in its display order.
    pub fn purposes_of<'c>(&'c self, form: &'c Form) -> impl Iterator<Item = &'c Purpose> + 'c {
        form.purposes.iter().filter_map(|id| self.purpose(id))
    }
}

impl Purpose {
    /// The purpose's text in `locale`, which must be one of the config's declared locales.
    pub fn text_in(&self, locale: &str) -> Option<&PurposeText> {
        self.text.iter().find(|(l, _)| l == locale).map(|(_, t)| t)
    }

    /// The profiling logic in `locale`, where the purpose profiles.
    pub fn profiling_in(&self, locale: &str) -> Option<&str> {
        let texts = self.profiling.as_ref()?;
        texts.iter().find(|(l, _)| l == locale).map(|(_, t)| t.as_str())
    }
}

/// EU member states and the EEA countries (Iceland, Liechtenstein, Norway), ISO 3166-1
/// alpha-2. Greece is `GR` in ISO (the EU's own "EL" is not used here). A recipient
/// elsewhere is a transfer under GDPR Chapter V and needs a safeguard (Art. 13(1)(f)).
pub const EEA_COUNTRIES: &[&str] = &[
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV",
    "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO",
];

/// Whether `country` (ISO 3166-1 alpha-2) is in the EU/EEA.
pub fn in_eea(country: &str) -> bool {
    EEA_COUNTRIES.contains(&country)
}

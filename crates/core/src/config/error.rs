//! What can be wrong with a config, each problem with its JSON Pointer and rule.

use alloc::{string::String, vec::Vec};

use crate::text::concat;
use core::fmt;

/// The rule a problem breaks: `Schema` for shape (types, names, formats), or one of the rules
/// R1–R11 of `DESIGN.md` with its legal source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    Schema,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
}

impl Rule {
    /// Stable id, as printed by `unticked lint` and used in `testdata/config/`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Schema => "schema",
            Rule::R1 => "R1",
            Rule::R2 => "R2",
            Rule::R3 => "R3",
            Rule::R4 => "R4",
            Rule::R5 => "R5",
            Rule::R6 => "R6",
        }
    }

    /// Where the rule comes from, for the linter's report.
    pub fn source(self) -> &'static str {
        match self {
            Rule::Schema => "consent.schema.json",
            Rule::R1 => "GDPR Art. 4(11), Recital 32; EDPB Guidelines 05/2020 ¶79; CJEU C-673/17 Planet49",
            Rule::R2 => "GDPR Art. 7(2), Recital 43; EDPB Guidelines 05/2020 ¶42–45",
            Rule::R3 => "GDPR Art. 7(4), Recitals 42–43; EDPB Guidelines 05/2020 ¶32",
            Rule::R4 => "GDPR Art. 7(2); EDPB Guidelines 05/2020 ¶71, ¶81",
            Rule::R5 => "GDPR Art. 13; EDPB Guidelines 05/2020 ¶64",
            Rule::R6 => "GDPR Art. 7(1), Art. 5(2); EDPB Guidelines 05/2020 ¶108",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Stable, machine-readable kind of problem (`unticked lint --json` prints it as `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Two members of one object share a name.
    DuplicateKey,
    UnknownField,
    MissingField,
    WrongType,
    EmptyValue,
    InvalidSlug,
    InvalidLocale,
    UnsupportedLocale,
    DuplicateLocale,
    UndeclaredDefaultLocale,
    InvalidUrl,
    InsecureUrl,
    InvalidCountry,
    InvalidDpvTerm,
    InvalidSelector,
    UnknownValue,
    OutOfRange,
    /// R1: an attempt to render a consent box ticked.
    PreTicked,
    /// R3: an attempt to make a consent box (or a purchase) depend on consent.
    RequiredConsent,
    /// R2: more than one channel behind one box.
    BundledChannels,
    /// R2: one switch that grants several purposes.
    AcceptAll,
    /// R4: terms, contract or another legal basis dressed up as a consent purpose.
    NotConsent,
    DuplicatePurposeId,
    /// The same value twice in a list of distinct values.
    DuplicateItem,
    DuplicateFormPurpose,
    UnknownPurpose,
    EmptyForm,
    MissingTranslation,
    /// R5: a recipient outside the EU/EEA with no transfer safeguard declared.
    TransferWithoutSafeguard,
    /// R5: a transfer declared to a country inside the EU/EEA, which is not a transfer.
    TransferInsideEea,
    /// R6: the form offers a contact channel but does not say where its contact field is, so
    /// a record could not commit to who agreed.
    ContactFieldMissing,
    /// R6: a form asks for double opt-in but collects no e-mail address to mail the link to.
    DoubleOptInWithoutEmail,
    /// R5: a text keyed by a locale that `/locales` does not declare.
    UndeclaredLocale,
    /// R5: an extra input collects data that the purpose's `data` does not list.
    UndeclaredData,
    /// A form kind the collector keeps for its own form (`preferences`, R7).
    ReservedFormKind,
}

impl ErrorCode {
    /// Every code, for documentation and tests (docs/rules.md lists each rule-bearing one).
    pub const ALL: [ErrorCode; 35] = {
        use ErrorCode::*;
        [
            DuplicateKey,
            UnknownField,
            MissingField,
            WrongType,
            EmptyValue,
            InvalidSlug,
            InvalidLocale,
            UnsupportedLocale,
            DuplicateLocale,
            UndeclaredDefaultLocale,
            InvalidUrl,
            InsecureUrl,
            InvalidCountry,
            InvalidDpvTerm,
            InvalidSelector,
            UnknownValue,
            OutOfRange,
            PreTicked,
            RequiredConsent,
            BundledChannels,
            AcceptAll,
            NotConsent,
            DuplicatePurposeId,
            DuplicateItem,
            DuplicateFormPurpose,
            UnknownPurpose,
            EmptyForm,
            MissingTranslation,
            TransferWithoutSafeguard,
            TransferInsideEea,
            ContactFieldMissing,
            UndeclaredLocale,
            UndeclaredData,
            ReservedFormKind,
            DoubleOptInWithoutEmail,
        ]
    };

    /// Stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            DuplicateKey => "duplicate-key",
            UnknownField => "unknown-field",
            MissingField => "missing-field",
            WrongType => "wrong-type",
            EmptyValue => "empty-value",
            InvalidSlug => "invalid-slug",
            InvalidLocale => "invalid-locale",
            UnsupportedLocale => "unsupported-locale",
            DuplicateLocale => "duplicate-locale",
            UndeclaredDefaultLocale => "undeclared-default-locale",
            InvalidUrl => "invalid-url",
            InsecureUrl => "insecure-url",
            InvalidCountry => "invalid-country",
            InvalidDpvTerm => "invalid-dpv-term",
            InvalidSelector => "invalid-selector",
            UnknownValue => "unknown-value",
            OutOfRange => "out-of-range",
            PreTicked => "pre-ticked",
            RequiredConsent => "required-consent",
            BundledChannels => "bundled-channels",
            AcceptAll => "accept-all",
            NotConsent => "not-consent",
            DuplicatePurposeId => "duplicate-purpose-id",
            DuplicateItem => "duplicate-item",
            DuplicateFormPurpose => "duplicate-form-purpose",
            UnknownPurpose => "unknown-purpose",
            EmptyForm => "empty-form",
            MissingTranslation => "missing-translation",
            TransferWithoutSafeguard => "transfer-without-safeguard",
            TransferInsideEea => "transfer-inside-eea",
            ContactFieldMissing => "contact-field-missing",
            UndeclaredLocale => "undeclared-locale",
            UndeclaredData => "undeclared-data",
            ReservedFormKind => "reserved-form-kind",
            DoubleOptInWithoutEmail => "double-opt-in-without-email",
        }
    }

    /// The rule this kind of problem breaks.
    pub fn rule(self) -> Rule {
        use ErrorCode::*;
        match self {
            PreTicked => Rule::R1,
            BundledChannels | AcceptAll => Rule::R2,
            RequiredConsent => Rule::R3,
            NotConsent => Rule::R4,
            MissingTranslation | TransferWithoutSafeguard | TransferInsideEea => Rule::R5,
            UndeclaredLocale | UndeclaredData => Rule::R5,
            ContactFieldMissing | DoubleOptInWithoutEmail => Rule::R6,
            _ => Rule::Schema,
        }
    }

    /// Whether `schema/consent.schema.json` can see this problem on its own. Problems that
    /// relate two parts of a file (a form naming an unknown purpose, a translation missing
    /// for a declared locale) are beyond JSON Schema; the parser/schema agreement test
    /// uses this to know which verdict the schema must give.
    pub fn schema_checkable(self) -> bool {
        use ErrorCode::*;
        !matches!(
            self,
            DuplicateKey
                | UndeclaredDefaultLocale
                | DuplicatePurposeId
                | UnknownPurpose
                | MissingTranslation
                | TransferWithoutSafeguard
                | TransferInsideEea
                | ContactFieldMissing
                | DoubleOptInWithoutEmail
                | UndeclaredLocale
                | UndeclaredData
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// RFC 6901 JSON Pointer to the offending value ("" is the whole document).
    pub path: String,
    pub code: ErrorCode,
    /// Lowercase, names the field or value, says what to do.
    pub message: String,
}

impl ConfigError {
    pub fn rule(&self) -> Rule {
        self.code.rule()
    }

    /// `path: rule code: message`, as `Display` prints it (without `core::fmt`).
    pub fn describe(&self) -> String {
        let path = if self.path.is_empty() { "/" } else { &self.path };
        let separator = if self.message.is_empty() { "" } else { ": " };
        concat(&[
            path,
            ": ",
            self.rule().id(),
            " ",
            self.code.as_str(),
            separator,
            &self.message,
        ])
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Why [`crate::config::Config::from_json`] refused a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// Not JSON at all: `unticked lint` exits 2.
    NotJson(crate::json::JsonError),
    /// JSON, but breaking the schema or the rules (never empty): `unticked lint` exits 1.
    Invalid(Vec<ConfigError>),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConfigProblem::NotJson(e) => write!(f, "not valid JSON: {e}"),
            ConfigProblem::Invalid(errors) => {
                write!(f, "{} problem(s) in the config", errors.len())?;
                for e in errors {
                    write!(f, "; {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl core::error::Error for ConfigProblem {}

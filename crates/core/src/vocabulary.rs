//! The words every part of the core shares: the names `consent.json` and a record may
//! carry (the config's enums and [`Named`]), what a stable id looks like ([`is_slug`]),
//! the languages the widget ships words for ([`SUPPORTED`]) and the byte limits a record
//! puts on what a config may say ([`MAX_URL`], [`MAX_NAME`]).
//!
//! ```
//! use unticked_core::vocabulary::{is_slug, Channel, Named};
//!
//! assert_eq!(Channel::from_name("sms"), Some(Channel::Sms));
//! assert_eq!(Channel::from_name("e-mail"), None);
//! assert!(is_slug("email-offers") && !is_slug("Email_Offers"));
//! ```
//!
//! A leaf: `config`, `locale`, `record`, `view` and `capture` import it and it imports
//! none of them, so the config reader can ask which languages exist and how long a
//! record's URL may be without a cycle (`config` → `locale` → `config`, `config` →
//! `record` → `config`).

/// An enum written in `consent.json` (or a record) as one of a fixed set of names.
pub trait Named: Copy + PartialEq + 'static {
    /// Every value, in the order of [`Named::NAMES`].
    const ALL: &'static [Self];
    const NAMES: &'static [&'static str];

    /// The value as written.
    fn name(self) -> &'static str {
        let i = Self::ALL.iter().position(|v| *v == self).unwrap_or(0);
        Self::NAMES[i]
    }

    /// The value written as `name`, if it is one.
    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The value as written in `consent.json`.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl Named for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];
        }
    };
}

string_enum!(
    /// The one channel a purpose reaches the shopper through (R2, R9).
    Channel { Email = "email", Sms = "sms", Phone = "phone", Post = "post", Web = "web" }
);

string_enum!(
    /// How the contact was acquired, recorded with each consent (R11: legacy contacts are
    /// tagged by source); for a later step, the way in it was taken by: the shop's account
    /// page (`account`), the collector's preference page (`preferences`), a one-click
    /// unsubscribe link (`unsubscribe`, RFC 8058).
    Source {
        Checkout = "checkout", Newsletter = "newsletter", Account = "account", Popup = "popup",
        Contest = "contest", Import = "import", Phone = "phone", Store = "store",
        Preferences = "preferences", Unsubscribe = "unsubscribe",
    }
);

string_enum!(
    /// Where an imported contact came from, as the site owner states it (`unticked import
    /// --source`): graded provenance for a legacy list, never a consent (R11; EDPB 05/2020
    /// ¶104: consent obtained before must meet today's standard, or be asked again).
    /// `unknown` marks the contacts a reactivation campaign must re-ask first.
    Provenance {
        Order = "order", Newsletter = "newsletter", Popup = "popup", Contest = "contest",
        Unknown = "unknown",
    }
);

string_enum!(
    /// Categories of personal data a purpose uses (Art. 13(1)(c), 14(1)(d)).
    DataCategory {
        Email = "email", Phone = "phone", Name = "name", PostalAddress = "postal-address",
        Birthday = "birthday", PurchaseHistory = "purchase-history",
        BrowsingHistory = "browsing-history",
    }
);

string_enum!(
    /// A recipient's role (Art. 13(1)(e); Art. 4(7)–(10)).
    RecipientRole {
        Controller = "controller", JointController = "joint-controller",
        Processor = "processor", ThirdParty = "third-party",
    }
);

string_enum!(
    /// The safeguard for a transfer outside the EU/EEA (Art. 13(1)(f); Art. 45–47).
    Safeguard {
        AdequacyDecision = "adequacy-decision", EuUsDpf = "eu-us-dpf",
        StandardContractualClauses = "standard-contractual-clauses",
        BindingCorporateRules = "binding-corporate-rules",
    }
);

string_enum!(
    /// Extra inputs a purpose may add to the form while it is ticked (R8).
    ExtraField { Birthday = "birthday" }
);

impl Channel {
    /// The kind of contact field the channel needs (`email`, `phone`, `post`), if any.
    pub fn contact(self) -> Option<&'static str> {
        match self {
            Channel::Email => Some("email"),
            Channel::Sms | Channel::Phone => Some("phone"),
            Channel::Post => Some("post"),
            Channel::Web => None,
        }
    }
}

/// `a-z0-9` words joined by single hyphens, at most 64 characters: a purpose id or a
/// form kind, in a config and in a record.
pub fn is_slug(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Languages the widget ships texts for. A config may declare only these (with any region).
pub const SUPPORTED: &[&str] = &["en", "lv", "pl", "cs", "de", "lt", "et"];

/// The longest URL, origin or page path a record holds, in bytes: what browsers and
/// servers reliably carry (RFC 9110 §4.1 recommends supporting at least 8000 octets in a
/// request line; a shop's page is far shorter), and a bound on what one record stores.
pub const MAX_URL: usize = 2048;

/// The longest form id, purpose id, widget version or notice version, in bytes.
pub const MAX_NAME: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stable_ids() {
        assert!(is_slug("email-offers"));
        assert!(is_slug("sms2"));
        for bad in ["", "Email", "email_offers", "-a", "a-", "a--b", "émail"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }
}

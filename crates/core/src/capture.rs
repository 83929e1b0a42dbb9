//! From the shopper's submit to a record ready for signing.
//!
//! The widget captures synchronously at the submit event (R3: nothing waits for crypto or
//! the network). Hashing and signing are promise APIs in WebCrypto, so the capture leaves
//! the wasm as a *sealable*: the record's canonical text with holes where the digests and
//! the signature go ([`crate::record::Part`]), the bytes each digest is taken over, and the
//! disclosures. The widget's JavaScript layer keeps it in the outbox, fills the holes, signs
//! and delivers; it fills holes and joins text, nothing more, and the format is written
//! here, once ([`crate::record::fill`] does the same natively for tests and tools).
//!
//! What counts as consent is decided here too, in [`assemble`]: the page only reports which
//! boxes were ticked, and which of those the shopper's own input ticked.

use alloc::{string::String, string::ToString, vec::Vec};

use crate::compiled::Sheet;
use crate::jcs::write_string;
use crate::record::Part;
use crate::record::{hex, BesideCommitment, ConsentRecord, PurposeEntry, State, SubjectCommitment};
use crate::text::{concat, decimal};
use crate::vocabulary::{Channel, ExtraField};

/// The longest postal address a record discloses, in bytes.
pub const MAX_ADDRESS: usize = 500;

/// Bytes of random salt per disclosed contact (128 bits).
pub const SALT_LEN: usize = 16;

/// A contact the shopper gave for a granted channel: it travels beside the record, never in
/// it (R10). The record holds the commitment `SHA-256(salt ‖ identifier)` (the salt's 16
/// bytes, then the identifier's UTF-8); the collector keeps the pair in an erasable table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    pub channel: Channel,
    /// Normalised: see [`normalise_email`] and [`normalise_phone`].
    pub identifier: String,
    pub salt: [u8; SALT_LEN],
}

impl Disclosure {
    /// The bytes its commitment is the SHA-256 of.
    pub fn committed_bytes(&self) -> Vec<u8> {
        committed_bytes(&self.salt, &self.identifier)
    }
}

/// `salt ‖ value` (the salt's bytes, then the value's UTF-8): what a commitment to a contact
/// or to a value beside the record is the SHA-256 of.
pub fn committed_bytes(salt: &[u8], value: &str) -> Vec<u8> {
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(value.as_bytes());
    bytes
}

/// A value that travels beside the record, such as the birthday (R8), with the salt of its
/// commitment in the record ([`BesideCommitment`]): like a contact, it is never in the signed
/// bytes (so it can be erased and every record still verifies), yet bound to them, so a
/// changed or swapped value is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salted {
    pub value: String,
    pub salt: [u8; SALT_LEN],
}

impl Salted {
    /// The bytes its commitment is the SHA-256 of.
    pub fn committed_bytes(&self) -> Vec<u8> {
        committed_bytes(&self.salt, &self.value)
    }
}

/// Everything known at the submit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// Digests empty (to be filled), one subject per disclosure.
    pub record: ConsentRecord,
    /// The text displayed for each of the record's purposes, in the same order.
    pub texts: Vec<String>,
    pub disclosures: Vec<Disclosure>,
    /// `--MM-DD` (ISO 8601 without a year, as vCard's BDAY, RFC 6350 §4.3.1), only when a
    /// purpose that asks for the birthday was given (R8). Like a contact, it travels beside
    /// the record and never in it; the record commits to it (`beside`).
    pub birthday: Option<Salted>,
}

impl Capture {
    /// A capture of `record` with the digests left to WebCrypto: each purpose's text hash,
    /// a subject commitment per disclosure (R10: no contact in the record itself), and a
    /// commitment to the birthday when one travels beside it.
    pub fn new(
        mut record: ConsentRecord,
        texts: Vec<String>,
        disclosures: Vec<Disclosure>,
        birthday: Option<Salted>,
    ) -> Capture {
        record.beside.clear();
        if birthday.is_some() {
            record.beside.push(BesideCommitment {
                field: ExtraField::Birthday,
                commitment: String::new(),
            });
        }
        for purpose in &mut record.purposes {
            purpose.text_sha256.clear();
        }
        record.subjects = disclosures
            .iter()
            .map(|d| SubjectCommitment {
                channel: d.channel,
                commitment: String::new(),
            })
            .collect();
        Capture {
            record,
            texts,
            disclosures,
            birthday,
        }
    }

    /// The inputs of the record's digest holes, in hole order (the order the record's
    /// members are written in): the birthday's `salt ‖ value`, each purpose's displayed
    /// text (UTF-8), then each disclosure's `salt ‖ identifier`.
    pub fn digest_inputs(&self) -> Vec<Vec<u8>> {
        // Pushed one by one: chained iterators cost the widget's wasm more.
        let mut inputs = Vec::new();
        if let Some(birthday) = &self.birthday {
            inputs.push(birthday.committed_bytes());
        }
        for text in &self.texts {
            inputs.push(text.as_bytes().to_vec());
        }
        for disclosure in &self.disclosures {
            inputs.push(disclosure.committed_bytes());
        }
        inputs
    }

    /// What `src/courier.js` seals, as JSON:
    /// `{"birthday"?:{"salt","value"},"disclosures":[{"channel","identifier","salt"}],"inputs":[hex…],"parts":[…]}`,
    /// salts in hex; the courier copies `birthday` and `disclosures` into the delivery as they are.
    /// where a part is a string of record text, a digest hole's index, a signature hole
    /// (-1 algorithm, -2 public key, -3 value), or the array of the signature member.
    pub fn sealable(&self) -> String {
        let mut out = String::from("{");
        if let Some(birthday) = &self.birthday {
            out.push_str("\"birthday\":{\"salt\":\"");
            out.push_str(&hex(&birthday.salt));
            out.push_str("\",\"value\":");
            write_string(&mut out, &birthday.value);
            out.push_str("},");
        }
        out.push_str("\"disclosures\":");
        out.push_str(&disclosures_json(&self.disclosures));
        out.push_str(",\"inputs\":[");
        for (i, input) in self.digest_inputs().iter().enumerate() {
            out.push_str(if i == 0 { "\"" } else { ",\"" });
            out.push_str(&hex(input));
            out.push('"');
        }
        out.push_str("],\"parts\":");
        write_parts(&mut out, &self.record.parts());
        out.push('}');
        out
    }
}

/// The disclosures as posted beside the record: `[{"channel","identifier","salt"(hex)}]`.
pub fn disclosures_json(disclosures: &[Disclosure]) -> String {
    let mut out = String::from("[");
    for (i, d) in disclosures.iter().enumerate() {
        out.push_str(if i == 0 { "{\"channel\":\"" } else { ",{\"channel\":\"" });
        out.push_str(d.channel.as_str());
        out.push_str("\",\"identifier\":");
        write_string(&mut out, &d.identifier);
        out.push_str(",\"salt\":\"");
        out.push_str(&hex(&d.salt));
        out.push_str("\"}");
    }
    out.push(']');
    out
}

/// A sealable's `parts` as [`Capture::sealable`] writes them, read back: what the widget's
/// courier (and a test sealing as it does) fills. `None` for anything else.
pub fn read_parts(json: &crate::json::Json) -> Option<Vec<Part>> {
    use crate::json::Json;
    let Json::Array(items) = json else { return None };
    let mut parts = Vec::new();
    for item in items {
        parts.push(match item {
            Json::String(text) => Part::Text(text.clone()),
            Json::Number(n) => match n.as_str() {
                "-1" => Part::Alg,
                "-2" => Part::PublicKey,
                "-3" => Part::Value,
                _ => Part::Digest(item.as_whole_number()? as usize),
            },
            Json::Array(_) => Part::Signature(read_parts(item)?),
            _ => return None,
        });
    }
    Some(parts)
}

fn write_parts(out: &mut String, parts: &[Part]) {
    out.push('[');
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match part {
            Part::Text(text) => write_string(out, text),
            Part::Digest(n) => out.push_str(&decimal(*n as u64)),
            Part::Alg => out.push_str("-1"),
            Part::PublicKey => out.push_str("-2"),
            Part::Value => out.push_str("-3"),
            Part::Signature(inner) => write_parts(out, inner),
        }
    }
    out.push(']');
}

/// What the page held at the submit event, as the widget's DOM layer read it.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    /// The record id the form carries in its `consent.record` input.
    pub id: &'a str,
    pub captured_at: u64,
    pub page_origin: &'a str,
    /// Without query or fragment (R6: the page, not what the shopper searched for).
    pub page_path: &'a str,
    pub widget: &'a str,
    /// Purposes whose box was ticked at submit.
    pub ticked: &'a [&'a str],
    /// Purposes whose box the shopper's own (trusted) input left ticked.
    pub ticked_by_shopper: &'a [&'a str],
    /// The raw values of the form's contact fields ("" when absent); `post` is the values
    /// of its address fields joined with ", ".
    pub email: &'a str,
    pub phone: &'a str,
    pub post: &'a str,
    /// The birthday field's day and month as typed ("" when absent or not shown).
    pub birthday_day: &'a str,
    pub birthday_month: &'a str,
}

/// A capture, and the purposes whose box was ticked by something other than the shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub capture: Capture,
    pub untrusted: Vec<String>,
}

/// The record of one submit of the form a compiled [`Sheet`] shows, each purpose with the
/// text the sheet says its row shows (the widget checked the row it built says it).
///
/// A purpose is given only when its box was ticked *and* the shopper's own input ticked it
/// (R1: GDPR Art. 4(11), Planet49); every other purpose shown is refused. A contact travels
/// only for a channel granted now (R8, R10), each with a fresh salt from `salt`, and so does
/// the birthday, after the contacts' salts (at most one per channel, then the birthday's).
pub fn assemble(sheet: &Sheet, page: &Submission, mut salt: impl FnMut() -> [u8; SALT_LEN]) -> Assembled {
    let mut purposes = Vec::new();
    let mut shown = Vec::new();
    let mut untrusted = Vec::new();
    let mut granted: Vec<Channel> = Vec::new();
    let mut birthday = None;
    for purpose in &sheet.purposes {
        let id = &purpose.id;
        let ticked = page.ticked.contains(&id.as_str());
        let by_shopper = page.ticked_by_shopper.contains(&id.as_str());
        if ticked && !by_shopper {
            untrusted.push(id.clone());
        }
        let given = ticked && by_shopper;
        if given && !granted.contains(&purpose.channel) {
            granted.push(purpose.channel);
        }
        if given && purpose.birthday {
            birthday = normalise_birthday(page.birthday_day, page.birthday_month);
        }
        purposes.push(PurposeEntry {
            id: id.clone(),
            version: purpose.version,
            state: if given { State::Given } else { State::Refused },
            text_sha256: String::new(),
        });
        shown.push(purpose.text.clone());
    }
    let mut disclosures = Vec::new();
    for channel in granted {
        // R9: each channel's contact comes from the field the form maps it to; a granted
        // channel whose field is empty is still given, without a contact.
        let raw = match channel {
            _ if sheet.contact.of(channel).is_none() => continue,
            Channel::Email => page.email,
            Channel::Sms | Channel::Phone => page.phone,
            Channel::Post => page.post,
            Channel::Web => continue,
        };
        if let Some(identifier) = normalise_contact(channel, raw, &sheet.locale) {
            disclosures.push(Disclosure {
                channel,
                identifier,
                salt: salt(),
            });
        }
    }
    // A birthday is kept beside a contact, and erased with it (Art. 17); without one it
    // would be data nobody could reach or erase, so it is not collected at all (R8).
    let birthday = match birthday {
        Some(value) if !disclosures.is_empty() => Some(Salted { value, salt: salt() }),
        _ => None,
    };
    let notice = &sheet.notice;
    let record = ConsentRecord {
        beside: Vec::new(),
        id: page.id.to_string(),
        captured_at: page.captured_at,
        form: sheet.form.clone(),
        source: sheet.source,
        locale: sheet.locale.clone(),
        page_origin: page.page_origin.to_string(),
        page_path: page.page_path.to_string(),
        notice_url: notice.url.clone(),
        notice_version: notice.version.clone(),
        config_sha256: sheet.config_sha256.clone(),
        widget: page.widget.to_string(),
        purposes,
        subjects: Vec::new(),
        signer: crate::record::Signer::Browser,
        #[cfg(feature = "verify")]
        act: None,
    };
    Assembled {
        capture: Capture::new(record, shown, disclosures, birthday),
        untrusted,
    }
}

/// The longest e-mail address (RFC 5321 §4.5.3.1.3: a path of 256 octets, less the angle
/// brackets), its local part (§4.5.3.1.1) and a domain label (RFC 1035 §2.3.4), in bytes.
pub const MAX_EMAIL: usize = 254;
const MAX_LOCAL_PART: usize = 64;
const MAX_LABEL: usize = 63;

/// An e-mail address as its commitment covers it: trimmed and in ASCII lower case (mail
/// providers treat the local part case-insensitively in practice, although RFC 5321 §2.4
/// allows otherwise; a commitment must not depend on how the shopper typed it). `None`
/// when it is not an address: exactly one `@`; at most 254 bytes, a local part of 1 to 64
/// (RFC 5321 §4.5.3.1); no white space, control character or empty dot-separated part
/// (RFC 5322 §3.4.1's dot-atom); a domain of two labels or more, each 1 to 63 letters,
/// digits and inner hyphens (RFC 1123 §2.1), or non-ASCII characters for an IDN.
pub fn normalise_email(raw: &str) -> Option<String> {
    let address = raw.trim();
    let (local, domain) = address.split_once('@')?;
    let dot_atom =
        |text: &str| !text.is_empty() && text.split('.').all(|part| !part.is_empty()) && !text.contains(['@', '"']);
    let label = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_LABEL
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
    };
    let fine = address.len() <= MAX_EMAIL
        && local.len() <= MAX_LOCAL_PART
        && dot_atom(local)
        && dot_atom(domain)
        && domain.contains('.')
        && domain.split('.').all(label)
        && !address.chars().any(|c| c.is_whitespace() || c.is_control());
    fine.then(|| address.to_ascii_lowercase())
}

/// Country calling codes (ITU-T E.164) of the countries whose languages the widget
/// speaks, for a number typed without one. English has no single country.
fn calling_code(locale: &str) -> Option<&'static str> {
    let region = locale.split(['-', '_']).nth(1).unwrap_or(locale);
    Some(match region.to_ascii_lowercase().as_str() {
        "lv" => "371",
        "pl" => "48",
        "cs" | "cz" => "420",
        "de" => "49",
        "lt" => "370",
        "et" | "ee" => "372",
        "at" => "43",
        "sk" => "421",
        _ => return None,
    })
}

/// A phone number in E.164 (`+37120000000`): spaces, dashes, dots, slashes and brackets
/// dropped; `00` read as `+`; a national number (its trunk `0` dropped) gets the calling code
/// of `locale`'s country (`lv-LV`, or the language's country: `lv` → +371). `None` when the
/// result is not `+` and 8 to 15 digits (E.164 §6.1), or no country can be told.
pub fn normalise_phone(raw: &str, locale: &str) -> Option<String> {
    let mut digits = String::new();
    let mut international = false;
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '+' if i == 0 => international = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if !international {
        if let Some(rest) = digits.strip_prefix("00") {
            digits = rest.to_string();
        } else {
            let national = digits.trim_start_matches('0');
            digits = crate::text::concat(&[calling_code(locale)?, national]);
        }
    }
    ((8..=15).contains(&digits.len()) && !digits.starts_with('0')).then(|| crate::text::concat(&["+", &digits]))
}

/// A postal address as its commitment covers it: the fields' values with runs of white
/// space (line breaks included) made one space, and empty parts dropped. `None` when nothing
/// is left, or more than [`MAX_ADDRESS`] bytes (a selector that caught a comment box): a
/// delivery must stay small enough for the collector to take it.
pub fn normalise_address(raw: &str) -> Option<String> {
    if raw.len() > MAX_ADDRESS {
        return None;
    }
    let mut address = String::new();
    for part in raw.split(',') {
        let mut words = part.split_whitespace();
        let Some(first) = words.next() else { continue };
        address.push_str(if address.is_empty() { "" } else { ", " });
        address.push_str(first);
        for word in words {
            address.push(' ');
            address.push_str(word);
        }
    }
    (!address.is_empty()).then_some(address)
}

/// A birthday without a year as `--MM-DD`, from the day and month as typed. `None` unless it
/// is a real day of that month in some year (29 February is one).
pub fn normalise_birthday(day: &str, month: &str) -> Option<String> {
    // One or two digits; `str::parse` would cost the widget's wasm its integer parser.
    let number = |text: &str| {
        let text = text.trim();
        let digits = text.as_bytes();
        if digits.is_empty() || digits.len() > 2 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (day, month) = (number(day)?, number(month)?);
    let days = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let last = *days.get(month.checked_sub(1)? as usize)?;
    if !(1..=last).contains(&day) {
        return None;
    }
    let two = |n: u32| concat(&[if n < 10 { "0" } else { "" }, &decimal(n as u64)]);
    Some(concat(&["--", &two(month), "-", &two(day)]))
}

/// The contact a channel reaches, as the form's contact fields name it: e-mail through the
/// e-mail field, SMS and calls through the phone field, post through the address fields.
/// The web channel has none.
pub fn normalise_contact(channel: Channel, raw: &str, locale: &str) -> Option<String> {
    match channel {
        Channel::Email => normalise_email(raw),
        Channel::Sms | Channel::Phone => normalise_phone(raw, locale),
        Channel::Post => normalise_address(raw),
        Channel::Web => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalise_email("  Anna.Ozola@Example.LV ").as_deref(),
            Some("anna.ozola@example.lv")
        );
        for bad in [
            "",
            "anna",
            "anna@",
            "@example.lv",
            "anna@lv",
            "an na@example.lv",
            "anna@example.",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn what_is_no_address_is_refused_and_real_ones_are_kept() {
        let long_local = "a".repeat(64);
        let long_label = "d".repeat(63);
        for good in [
            "o'brien+shop@mail.example.co.uk",
            "a.b-c_d@xn--bcher-kva.example",
            "jānis@bērziņš.lv",
            &format!("{long_local}@example.lv"),
            &format!("anna@{long_label}.lv"),
        ] {
            assert_eq!(
                normalise_email(good).as_deref(),
                Some(good.to_lowercase().as_str()),
                "{good}"
            );
        }
        let junk = format!("{}@example.lv", "x".repeat(8 * 1024));
        let too_long = format!("anna@{0}.{0}.{0}.{0}.{0}.lv", "d".repeat(60));
        for bad in [
            junk.as_str(),
            &too_long,
            &format!("a{long_local}@example.lv"),
            &format!("anna@d{long_label}.lv"),
            "anna@@example.lv",
            "\"anna@x\"@example.lv",
            "anna@example..lv",
            "anna..ozola@example.lv",
            ".anna@example.lv",
            "anna.@example.lv",
            "anna@.example.lv",
            "anna@exa_mple.lv",
            "anna@-example.lv",
            "anna@example-.lv",
            "anna@exa mple.lv",
            "anna@example.lv\u{0}",
            "anna@<script>.lv",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
        assert!(too_long.len() > MAX_EMAIL);
    }

    #[test]
    fn addresses_keep_their_words_in_one_line() {
        assert_eq!(
            normalise_address("Anna Ozola, Brīvības  iela 1\n dz. 4, , LV-1010, Rīga").as_deref(),
            Some("Anna Ozola, Brīvības iela 1 dz. 4, LV-1010, Rīga")
        );
        assert_eq!(normalise_address(" , \n "), None);
    }

    #[test]
    fn birthdays_are_days_of_their_month_without_a_year() {
        assert_eq!(normalise_birthday("7", "3").as_deref(), Some("--03-07"));
        assert_eq!(normalise_birthday(" 29 ", "2").as_deref(), Some("--02-29"));
        assert_eq!(normalise_birthday("31", "12").as_deref(), Some("--12-31"));
        for (day, month) in [
            ("30", "2"),
            ("31", "4"),
            ("0", "1"),
            ("1", "0"),
            ("1", "13"),
            ("", "5"),
            ("x", "5"),
            ("-1", "5"),
        ] {
            assert_eq!(normalise_birthday(day, month), None, "{day}/{month}");
        }
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(normalise_phone("+371 2000 0000", "en").as_deref(), Some("+37120000000"));
        assert_eq!(
            normalise_phone("0048 (601) 234-567", "en").as_deref(),
            Some("+48601234567")
        );
        assert_eq!(normalise_phone("20 000 000", "lv").as_deref(), Some("+37120000000"));
        assert_eq!(normalise_phone("601 234 567", "pl-PL").as_deref(), Some("+48601234567"));
        assert_eq!(normalise_phone("0151 2345678", "de").as_deref(), Some("+491512345678"));
        assert_eq!(normalise_phone("20 000 000", "en"), None, "no country to tell");
        assert_eq!(normalise_phone("+371 2000 0000 ext 5", "lv"), None);
        assert_eq!(normalise_phone("+1234567", "lv"), None, "too short");
        assert_eq!(normalise_phone("+1234567890123456", "lv"), None, "too long");
    }
}

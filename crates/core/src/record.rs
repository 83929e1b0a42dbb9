//! Consent records: one format for the widget, the collector and the verifier.
//!
//! A record is one immutable event: which purposes (at which version) the shopper gave,
//! refused, withdrew or renewed, when, in which form and language, with a hash of the exact
//! text shown for each, and commitments to the contacts the granted channels reach. Its
//! bytes are RFC 8785 canonical JSON; the signature covers the canonical bytes of the
//! record without its `signature` member, and the whole signed record is canonical too, so
//! a verifier checks the bytes it received and never a re-serialisation of them.
//!
//! ```
//! # #[cfg(feature = "verify")] {
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/record/known-answer-ed25519.json")).unwrap();
//! let vector: std::collections::BTreeMap<String, String> = serde_json::from_str::<serde_json::Value>(&text).unwrap()
//!     .as_object().unwrap().iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
//! let opened = unticked_core::record::open(vector["bytes"].as_bytes()).expect("a good record opens");
//! assert_eq!(opened.record.purposes[0].state, unticked_core::record::State::Given);
//! # }
//! ```
//!
//! `record::open` is the only way to get a trusted record: it parses, requires canonical
//! bytes, checks every field, and verifies the signature, in that order, with early returns.

use alloc::{string::String, string::ToString, vec::Vec};

use crate::jcs;
use crate::json::Json;
use crate::text::concat;
use crate::vocabulary::{is_slug, Channel, ExtraField, Named, Provenance, Source};

/// The record format's version (`"v"`).
pub const FORMAT_VERSION: u64 = 1;

/// What happened to one purpose in this event (W3C DPV: `dpv:ConsentGiven`,
/// `dpv:ConsentRefused`, `dpv:ConsentWithdrawn`, and a renewal is `dpv:RenewedConsentGiven`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Given,
    Refused,
    Withdrawn,
    Renewed,
}

impl Named for State {
    const ALL: &'static [State] = &[State::Given, State::Refused, State::Withdrawn, State::Renewed];
    const NAMES: &'static [&'static str] = &["given", "refused", "withdrawn", "renewed"];
}

impl State {
    pub fn as_str(self) -> &'static str {
        State::NAMES[self as usize]
    }
}

/// Who signed a record. The shopper's browser signs what the widget captures; the collector
/// signs a step the subject took without JavaScript (its preference page, a one-click
/// unsubscribe, RFC 8058), with the key that signs its checkpoints, and the record says so
/// (`"signer":"collector"`), so a verifier holds that signature to the log's own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Browser,
    Collector,
}

impl Named for Signer {
    const ALL: &'static [Signer] = &[Signer::Browser, Signer::Collector];
    const NAMES: &'static [&'static str] = &["browser", "collector"];
}

impl Signer {
    pub fn as_str(self) -> &'static str {
        Signer::NAMES[self as usize]
    }
}

/// Signature algorithms: what WebCrypto offers for a non-extractable browser key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RFC 8032 Ed25519: 32-byte public key, 64-byte signature.
    Ed25519,
    /// ECDSA with P-256 and SHA-256 (RFC 7518 "ES256"), where a browser lacks Ed25519:
    /// 65-byte uncompressed SEC1 public key, 64-byte r‖s signature (WebCrypto's form).
    Es256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "Ed25519",
            Algorithm::Es256 => "ES256",
        }
    }

    fn lengths(self) -> (usize, usize) {
        match self {
            Algorithm::Ed25519 => (32, 64),
            Algorithm::Es256 => (65, 64),
        }
    }
}

/// One purpose in a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeEntry {
    pub id: String,
    pub version: u32,
    pub state: State,
    /// SHA-256, lowercase hex, of the exact text shown for the purpose in the locale shown.
    pub text_sha256: String,
}

/// A commitment to the contact a granted channel reaches: SHA-256(salt ‖ normalised
/// identifier), lowercase hex. The identifier and salt travel beside the record, never in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectCommitment {
    pub channel: Channel,
    pub commitment: String,
}

/// A commitment to a value that travels beside the record (an extra field, R8, such as the
/// birthday): SHA-256(salt ‖ value), lowercase hex, as for a contact, so the value can be
/// erased with its contact and the record still verifies, and no value can be changed or
/// swapped in transit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BesideCommitment {
    pub field: ExtraField,
    pub commitment: String,
}

/// A step the collector recorded and signed for the subject, beyond a choice made on a
/// page; at most one per record, and only in a record the collector signs. Each is written
/// as its own member, so a reader sees what happened by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// `"confirms"`: the subject used the link e-mailed to them, and so confirmed the
    /// signup record with this id (double opt-in). Its purposes are the ones confirmed.
    Confirms(String),
    /// `"imported"`: a contact from the site owner's own list, with where it came from and
    /// when, as the owner states it (`unticked import`). Never a consent: the record has no
    /// purposes, and the contact is asked again until `until` (ms).
    Imported {
        provenance: Provenance,
        collected_at: Option<u64>,
        until: u64,
    },
    /// `"assisted"`: consent taken on the phone by `staff`, the call's recording kept under
    /// `recording` (oral consent is valid when it is recorded and kept; Art. 7(1)).
    Assisted { staff: String, recording: String },
    /// `"rectifies"`: the subject's contact was rectified (Art. 16); the records with these
    /// ids, whose disclosures were erased, are this subject's. The record has no purposes.
    Rectifies(Vec<String>),
}

/// The longest staff name or recording reference an assisted record holds, in bytes.
pub const MAX_REFERENCE: usize = 256;

/// Most records one rectification carries over.
pub const MAX_RECTIFIED: usize = 4096;

/// A consent record without its signature: what the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// One commitment per extra field whose value travels beside the record, at most one per
    /// field; empty (and the member left out, so older records read as they were) when none does.
    pub beside: Vec<BesideCommitment>,
    /// UUIDv7 (RFC 9562 §5.7): unique and ordered by time; made when the form is mounted.
    pub id: String,
    /// Milliseconds since the Unix epoch, by the client's clock.
    pub captured_at: u64,
    /// The form kind (`data-unticked`).
    pub form: String,
    pub source: Source,
    /// The locale the texts were shown in.
    pub locale: String,
    /// The page's origin (`https://shop.example`).
    pub page_origin: String,
    /// The page's path, without query or fragment.
    pub page_path: String,
    pub notice_url: String,
    pub notice_version: String,
    /// SHA-256, lowercase hex, of the config the widget rendered from.
    pub config_sha256: String,
    /// The widget's version.
    pub widget: String,
    pub purposes: Vec<PurposeEntry>,
    pub subjects: Vec<SubjectCommitment>,
    /// Who signed it: the browser (the member left out, so records made before it read as
    /// they were) or the collector (`"signer":"collector"`).
    pub signer: Signer,
    /// What the collector recorded for the subject, if the record is such a step; only the
    /// collector writes and reads these (the widget's build leaves the field out).
    #[cfg(feature = "verify")]
    pub act: Option<Act>,
}

/// A signature over a record's canonical unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub alg: Algorithm,
    pub public_key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A record whose bytes were canonical, whose fields were all valid and whose signature
/// verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRecord {
    pub record: ConsentRecord,
    pub signature: Signature,
}

/// Why bytes are not a trusted record. Deliberately coarse where a finer answer would help
/// a forger: every verification failure is `BadSignature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Not UTF-8 JSON, or JSON with a repeated key.
    NotJson(String),
    /// JSON, but not in RFC 8785 canonical form.
    NotCanonical,
    /// A field missing, unknown, or of the wrong form: the JSON Pointer and why.
    Shape {
        path: String,
        reason: &'static str,
    },
    UnknownAlgorithm(String),
    BadSignature,
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            RecordError::NotJson(e) => write!(f, "not a JSON record: {e}"),
            RecordError::NotCanonical => f.write_str("not RFC 8785 canonical JSON"),
            RecordError::Shape { path, reason } => write!(f, "{path}: {reason}"),
            RecordError::UnknownAlgorithm(alg) => write!(f, "unknown signature algorithm \"{alg}\""),
            RecordError::BadSignature => f.write_str("bad signature"),
        }
    }
}

impl core::error::Error for RecordError {}

/// A UUIDv7 (RFC 9562 §5.7) from the time and ten random bytes, both passed in so the core
/// stays free of clocks and randomness.
pub fn record_id(unix_ms: u64, random: [u8; 10]) -> String {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    b[6] = 0x70 | (random[0] & 0x0f);
    b[7] = random[1];
    b[8] = 0x80 | (random[2] & 0x3f);
    b[9..].copy_from_slice(&random[3..]);
    // 8-4-4-4-12 hex digits; built char by char (slicing a str would bring its panic
    // machinery into the wasm).
    let mut out = String::with_capacity(36);
    for (i, c) in hex(&b).chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0xf) as usize] as char);
    }
    out
}

/// The bytes of a hex string (either case); `None` when it is not hex or of odd length.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn is_uuid_v7(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'7'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

// The config reader checks a config against the same limits, so they are vocabulary.
pub use crate::vocabulary::{MAX_NAME, MAX_URL};

/// The most purposes one record covers: a form that offers more is no longer a choice a
/// shopper can read (and a config's forms stay far below it).
pub const MAX_PURPOSES: usize = 64;

/// The most subject commitments one record holds: one per channel that reaches a contact.
pub const MAX_SUBJECTS: usize = 8;

/// The largest whole number JSON carries exactly between implementations (RFC 7493 §2.2,
/// I-JSON: 2^53 − 1), the range of `captured_at`.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// An origin as a browser serialises `location.origin` (RFC 6454 §6.2): `https://` or
/// `http://`, a host of letters, digits, hyphens and dots (IDNs in their ASCII form) or a
/// bracketed IPv6 address, and an optional port; nothing else.
fn is_origin(text: &str) -> bool {
    if text.len() > MAX_URL {
        return false;
    }
    let Some(authority) = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")) else {
        return false;
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !authority.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let port_fine = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let host_fine = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
        None => {
            !host.is_empty()
                && host
                    .split('.')
                    .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        }
    };
    port_fine && host_fine
}

fn is_page_path(text: &str) -> bool {
    text.len() <= MAX_URL && text.starts_with('/') && !text.contains(['?', '#'])
}

/// Where the privacy notice is: an `https:` or `http:` URL, or a path on the shop's own
/// origin (`/privacy.html`, not `//host`, which is another host). Never another scheme
/// (`javascript:`, `data:`): a verifier or an admin page may show it as a link.
fn is_notice_url(text: &str) -> bool {
    let absolute = text.starts_with("https://") || text.starts_with("http://");
    let path = text.starts_with('/') && !text.starts_with("//") && !text.starts_with("/\\");
    text.len() <= MAX_URL && (absolute || path) && !text.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// The widget's version: 1 to 64 printable ASCII characters (`0.1.0`).
fn is_widget_version(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_NAME && text.bytes().all(|b| b.is_ascii_graphic())
}

/// A language tag's characters (BCP 47: letters, digits and hyphens), at most 35 bytes
/// (RFC 5646 §4.4.1's minimum buffer).
fn is_locale_tag(text: &str) -> bool {
    !text.is_empty() && text.len() <= 35 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// One piece of a record's canonical text, as [`ConsentRecord::parts`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// The SHA-256, lowercase hex, of the n-th digest input. An empty `text_sha256` or
    /// `commitment` in the record is written as this hole, numbered in order of appearance
    /// (the values beside, then the purposes' texts, then the subjects), for the browser to
    /// fill with WebCrypto.
    Digest(usize),
    /// Holes of the signature member: the algorithm's name, the public key and the
    /// signature value, base64url.
    Alg,
    PublicKey,
    Value,
    /// The signature member, with its leading comma: in the signed text only.
    Signature(Vec<Part>),
}

#[derive(Default)]
struct Writer {
    parts: Vec<Part>,
    digests: usize,
}

impl Writer {
    fn raw(&mut self, text: &str) {
        match self.parts.last_mut() {
            Some(Part::Text(last)) => last.push_str(text),
            _ => self.parts.push(Part::Text(text.to_string())),
        }
    }

    fn string(&mut self, value: &str) {
        let mut out = String::new();
        jcs::write_string(&mut out, value);
        self.raw(&out);
    }

    fn number(&mut self, n: u64) {
        self.raw(&crate::text::decimal(n));
    }

    fn digest(&mut self, hex: &str) {
        if hex.is_empty() {
            self.raw("\"");
            self.parts.push(Part::Digest(self.digests));
            self.digests += 1;
            self.raw("\"");
        } else {
            self.string(hex);
        }
    }
}

/// Joins a record's parts: digest holes from `digests` (by index), and the signature member
/// only when `signature` (algorithm, public key, value, base64url) is given, so the same
/// parts give both the bytes that are signed and the signed record. The browser does the
/// same with a sealable; tests and tools seal natively with this.
pub fn fill(parts: &[Part], digests: &[String], signature: Option<[&str; 3]>) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Digest(n) => out.push_str(digests.get(*n).map_or("", String::as_str)),
            Part::Alg => out.push_str(signature.map_or("", |s| s[0])),
            Part::PublicKey => out.push_str(signature.map_or("", |s| s[1])),
            Part::Value => out.push_str(signature.map_or("", |s| s[2])),
            Part::Signature(inner) if signature.is_some() => out.push_str(&fill(inner, digests, signature)),
            Part::Signature(_) => {}
        }
    }
    out
}

impl ConsentRecord {
    /// The record's canonical text (RFC 8785), in parts. This is the one writer of the
    /// format: members are written in JCS order by hand (every key is ASCII, so UTF-16
    /// order is byte order; §3.2.3), strings escaped by [`jcs::write_string`], integers
    /// plainly. The signature member is left as holes ([`Part::Signature`]); [`fill`] writes
    /// it or leaves it out. Tests hold it to `jcs::canonical` and to `testdata/record/`.
    pub fn parts(&self) -> Vec<Part> {
        let mut w = Writer::default();
        // What precedes the first member: `assisted` sorts before all (RFC 8785 §3.2.3).
        #[allow(unused_mut)]
        let mut open = "{";
        #[cfg(feature = "verify")]
        if let Some(Act::Assisted { staff, recording }) = &self.act {
            w.raw("{\"assisted\":{\"recording\":");
            w.string(recording);
            w.raw(",\"staff\":");
            w.string(staff);
            w.raw("}");
            open = ",";
        }
        // `beside` sorts next, and is left out when empty.
        for (i, b) in self.beside.iter().enumerate() {
            if i == 0 {
                w.raw(open);
            }
            w.raw(if i == 0 {
                "\"beside\":[{\"commitment\":"
            } else {
                ",{\"commitment\":"
            });
            w.digest(&b.commitment);
            w.raw(",\"field\":");
            w.string(b.field.as_str());
            w.raw("}");
        }
        if self.beside.is_empty() {
            w.raw(open);
            w.raw("\"captured_at\":");
        } else {
            w.raw("],\"captured_at\":");
        }
        w.number(self.captured_at);
        w.raw(",\"config_sha256\":");
        w.string(&self.config_sha256);
        #[cfg(feature = "verify")]
        if let Some(Act::Confirms(signup)) = &self.act {
            w.raw(",\"confirms\":");
            w.string(signup);
        }
        w.raw(",\"form\":");
        w.string(&self.form);
        w.raw(",\"id\":");
        w.string(&self.id);
        #[cfg(feature = "verify")]
        if let Some(Act::Imported {
            provenance,
            collected_at,
            until,
        }) = &self.act
        {
            w.raw(",\"imported\":{");
            if let Some(at) = collected_at {
                w.raw("\"collected_at\":");
                w.number(*at);
                w.raw(",");
            }
            w.raw("\"provenance\":");
            w.string(provenance.as_str());
            w.raw(",\"until\":");
            w.number(*until);
            w.raw("}");
        }
        w.raw(",\"locale\":");
        w.string(&self.locale);
        w.raw(",\"notice\":{\"url\":");
        w.string(&self.notice_url);
        w.raw(",\"version\":");
        w.string(&self.notice_version);
        w.raw("},\"page\":{\"origin\":");
        w.string(&self.page_origin);
        w.raw(",\"path\":");
        w.string(&self.page_path);
        w.raw("},\"purposes\":[");
        for (i, p) in self.purposes.iter().enumerate() {
            w.raw(if i == 0 { "{\"id\":" } else { ",{\"id\":" });
            w.string(&p.id);
            w.raw(",\"state\":");
            w.string(p.state.as_str());
            w.raw(",\"text_sha256\":");
            w.digest(&p.text_sha256);
            w.raw(",\"version\":");
            w.number(p.version.into());
            w.raw("}");
        }
        w.raw("]");
        #[cfg(feature = "verify")]
        if let Some(Act::Rectifies(ids)) = &self.act {
            w.raw(",\"rectifies\":[");
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    w.raw(",");
                }
                w.string(id);
            }
            w.raw("]");
        }
        w.parts.push(Part::Signature(alloc::vec![
            Part::Text(",\"signature\":{\"alg\":\"".to_string()),
            Part::Alg,
            Part::Text("\",\"public_key\":\"".to_string()),
            Part::PublicKey,
            Part::Text("\",\"value\":\"".to_string()),
            Part::Value,
            Part::Text("\"}".to_string()),
        ]));
        // `signer` sorts between `signature` and `source`; left out for the browser.
        if self.signer == Signer::Collector {
            w.raw(",\"signer\":\"collector\"");
        }
        w.raw(",\"source\":");
        w.string(self.source.as_str());
        w.raw(",\"subjects\":[");
        for (i, s) in self.subjects.iter().enumerate() {
            w.raw(if i == 0 { "{\"channel\":" } else { ",{\"channel\":" });
            w.string(s.channel.as_str());
            w.raw(",\"commitment\":");
            w.digest(&s.commitment);
            w.raw("}");
        }
        w.raw("],\"v\":");
        w.number(FORMAT_VERSION);
        w.raw(",\"widget\":");
        w.string(&self.widget);
        w.raw("}");
        w.parts
    }

    /// The bytes a signature covers: the canonical JSON of the unsigned record.
    pub fn signing_bytes(&self) -> String {
        fill(&self.parts(), &[], None)
    }

    /// The canonical signed record: what the widget sends and the collector keeps.
    pub fn to_signed_bytes(&self, signature: &Signature) -> String {
        // Base64url has no character JSON escapes, so the values go in as they are.
        let (key, value) = (base64url(&signature.public_key), base64url(&signature.value));
        fill(&self.parts(), &[], Some([signature.alg.as_str(), &key, &value]))
    }
}

/// Base64url without padding (RFC 4648 §5), as keys and signatures are written.
pub fn base64url(bytes: &[u8]) -> String {
    // Written out rather than base64ct's encoder: a third of its size in the wasm.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Reads the parts of a record from canonical bytes and checks every field; does not
/// verify the signature. Returns the record, its signature, and the bytes it covers.
///
/// # Errors
/// See [`RecordError`].
pub fn read(bytes: &[u8]) -> Result<(ConsentRecord, Signature, String), RecordError> {
    let text = core::str::from_utf8(bytes).map_err(|_| RecordError::NotJson("not UTF-8".to_string()))?;
    let json = crate::json::parse(text).map_err(|e| RecordError::NotJson(e.describe()))?;
    // Authenticate the bytes received, not a re-serialisation of them: they must already
    // be canonical (RFC 8785), so the bytes the signature covers are fixed by them.
    if jcs::canonical(&json).ok().as_deref() != Some(text) {
        return Err(RecordError::NotCanonical);
    }
    let mut root = Fields::of(&json, "")?;
    if root.number("v")? != FORMAT_VERSION {
        return Err(shape("/v", "unsupported record format version"));
    }
    let id = root.text("id", is_uuid_v7, "not a UUIDv7 in lowercase")?;
    let captured_at = root.number("captured_at")?;
    if captured_at == 0 || captured_at > MAX_SAFE_INTEGER {
        return Err(shape("/captured_at", "not a time in milliseconds since the epoch"));
    }
    let form = root.text("form", is_slug, "not a form kind")?;
    let source = root.named::<Source>("source")?;
    let locale = root.text("locale", is_locale_tag, "not a locale tag of at most 35 bytes")?;
    let mut page = Fields::of(root.take("page")?, "/page")?;
    let page_origin = page.text(
        "origin",
        is_origin,
        "not an origin such as https://shop.example (at most 2048 bytes)",
    )?;
    let page_path = page.text(
        "path",
        is_page_path,
        "not a path without query or fragment (at most 2048 bytes)",
    )?;
    page.finish()?;
    let mut notice = Fields::of(root.take("notice")?, "/notice")?;
    let notice_url = notice.text(
        "url",
        is_notice_url,
        "not an https or http URL or a path starting with / (at most 2048 bytes)",
    )?;
    let notice_version = notice.text("version", |v| !v.is_empty() && v.len() <= MAX_NAME, "not 1 to 64 bytes")?;
    notice.finish()?;
    let config_sha256 = root.text("config_sha256", is_sha256_hex, "not a SHA-256 in lowercase hex")?;
    let widget = root.text("widget", is_widget_version, "not 1 to 64 printable ASCII characters")?;

    let mut purposes: Vec<PurposeEntry> = Vec::new();
    let Json::Array(items) = root.take("purposes")? else {
        return Err(shape("/purposes", "not an array"));
    };
    if items.len() > MAX_PURPOSES {
        return Err(shape("/purposes", "more than 64 purposes"));
    }
    for (i, item) in items.iter().enumerate() {
        let path = concat(&["/purposes/", &crate::text::decimal(i as u64)]);
        let mut p = Fields::of(item, &path)?;
        let entry = PurposeEntry {
            id: p.text("id", is_slug, "not a purpose id")?,
            // A config's versions run from 1 (config::read, `Shape::Whole { min: 1, .. }`).
            version: u32::try_from(p.number("version")?)
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| shape(&path, "version out of range"))?,
            state: p.named::<State>("state")?,
            text_sha256: p.text("text_sha256", is_sha256_hex, "not a SHA-256 in lowercase hex")?,
        };
        p.finish()?;
        if purposes.iter().any(|e| e.id == entry.id) {
            return Err(shape(&path, "purpose listed twice"));
        }
        purposes.push(entry);
    }
    let mut subjects = Vec::new();
    let Json::Array(items) = root.take("subjects")? else {
        return Err(shape("/subjects", "not an array"));
    };
    if items.len() > MAX_SUBJECTS {
        return Err(shape("/subjects", "more than 8 subjects"));
    }
    for (i, item) in items.iter().enumerate() {
        let path = concat(&["/subjects/", &crate::text::decimal(i as u64)]);
        let mut s = Fields::of(item, &path)?;
        let channel = s.named::<Channel>("channel")?;
        let commitment = s.text("commitment", is_sha256_hex, "not a SHA-256 in lowercase hex")?;
        s.finish()?;
        subjects.push(SubjectCommitment { channel, commitment });
    }

    let mut beside: Vec<BesideCommitment> = Vec::new();
    if let Some(items) = root.optional("beside") {
        let Json::Array(items) = items else {
            return Err(shape("/beside", "not an array"));
        };
        // One way to write a record without values beside it: without the member.
        if items.is_empty() {
            return Err(shape("/beside", "empty (left out when nothing travels beside)"));
        }
        for (i, item) in items.iter().enumerate() {
            let path = concat(&["/beside/", &crate::text::decimal(i as u64)]);
            let mut b = Fields::of(item, &path)?;
            let entry = BesideCommitment {
                field: b.named::<ExtraField>("field")?,
                commitment: b.text("commitment", is_sha256_hex, "not a SHA-256 in lowercase hex")?,
            };
            b.finish()?;
            if beside.iter().any(|e| e.field == entry.field) {
                return Err(shape(&path, "field listed twice"));
            }
            beside.push(entry);
        }
    }

    // One way to write a browser's record: without the member.
    let signer = match root.optional("signer") {
        None => Signer::Browser,
        Some(Json::String(name)) if name == "collector" => Signer::Collector,
        Some(_) => return Err(shape("/signer", "not \"collector\" (left out for the browser)")),
    };

    #[cfg(feature = "verify")]
    let act = read_act(&mut root, signer, source)?;
    #[cfg(not(feature = "verify"))]
    let act: Option<Act> = None;
    // An import or a rectification states a fact about the contact and shows no text;
    // every other record is a choice about at least one purpose.
    match (&act, purposes.is_empty()) {
        (Some(Act::Imported { .. }), false) => return Err(shape("/purposes", "an import records no purpose")),
        (Some(Act::Rectifies(_)), false) => return Err(shape("/purposes", "a rectification records no purpose")),
        (Some(Act::Imported { .. } | Act::Rectifies(_)), true) => {}
        (_, true) => return Err(shape("/purposes", "a record covers at least one purpose")),
        (_, false) => {}
    }

    let mut sig = Fields::of(root.take("signature")?, "/signature")?;
    let alg_name = sig.text("alg", |_| true, "")?;
    let alg = match alg_name.as_str() {
        "Ed25519" => Algorithm::Ed25519,
        "ES256" => Algorithm::Es256,
        _ => return Err(RecordError::UnknownAlgorithm(alg_name)),
    };
    let (key_len, sig_len) = alg.lengths();
    let public_key = sig.bytes("public_key", key_len)?;
    let value = sig.bytes("value", sig_len)?;
    sig.finish()?;
    root.finish()?;

    let record = ConsentRecord {
        beside,
        id,
        captured_at,
        form,
        source,
        locale,
        page_origin,
        page_path,
        notice_url,
        notice_version,
        config_sha256,
        widget,
        purposes,
        subjects,
        signer,
        #[cfg(feature = "verify")]
        act,
    };
    // The canonical record without its signature member: `text` is canonical, so this is
    // the same bytes minus that member.
    let signed = record.signing_bytes();
    Ok((record, Signature { alg, public_key, value }, signed))
}

/// The collector's step a record states, if any: at most one of `assisted`, `confirms`,
/// `imported`, `rectifies`, and only in a record the collector signed.
#[cfg(feature = "verify")]
fn read_act(root: &mut Fields<'_>, signer: Signer, source: Source) -> Result<Option<Act>, RecordError> {
    let mut acts = Vec::new();
    if let Some(value) = root.optional("assisted") {
        let mut a = Fields::of(value, "/assisted")?;
        let reference = |t: &str| !t.is_empty() && t.len() <= MAX_REFERENCE && !t.chars().any(char::is_control);
        let recording = a.text("recording", reference, "not 1 to 256 bytes without control characters")?;
        let staff = a.text("staff", reference, "not 1 to 256 bytes without control characters")?;
        a.finish()?;
        if source != Source::Phone {
            return Err(shape("/source", "an assisted record is taken on the phone"));
        }
        acts.push(Act::Assisted { staff, recording });
    }
    match root.optional("confirms") {
        None => {}
        Some(Json::String(id)) if is_uuid_v7(id) => acts.push(Act::Confirms(id.clone())),
        Some(_) => return Err(shape("/confirms", "not a UUIDv7 in lowercase")),
    }
    if let Some(value) = root.optional("imported") {
        let mut i = Fields::of(value, "/imported")?;
        let collected_at = match i.optional("collected_at") {
            None => None,
            Some(value) => Some(
                value
                    .as_whole_number()
                    .ok_or_else(|| shape("/imported/collected_at", "not a whole number"))?,
            ),
        };
        let provenance = i.named::<Provenance>("provenance")?;
        let until = i.number("until")?;
        i.finish()?;
        if until == 0 || until > MAX_SAFE_INTEGER || collected_at.is_some_and(|at| at > MAX_SAFE_INTEGER) {
            return Err(shape("/imported", "not a time in milliseconds since the epoch"));
        }
        if source != Source::Import {
            return Err(shape("/source", "an imported contact has the source import"));
        }
        acts.push(Act::Imported {
            provenance,
            collected_at,
            until,
        });
    }
    if let Some(value) = root.optional("rectifies") {
        let Json::Array(items) = value else {
            return Err(shape("/rectifies", "not an array"));
        };
        if items.is_empty() || items.len() > MAX_RECTIFIED {
            return Err(shape("/rectifies", "not 1 to 4096 record ids"));
        }
        let mut ids: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Json::String(id) if is_uuid_v7(id) && !ids.contains(id) => ids.push(id.clone()),
                _ => return Err(shape("/rectifies", "not distinct UUIDv7s in lowercase")),
            }
        }
        acts.push(Act::Rectifies(ids));
    }
    if acts.len() > 1 {
        return Err(shape("", "more than one of assisted, confirms, imported, rectifies"));
    }
    if !acts.is_empty() && signer != Signer::Collector {
        return Err(shape("/signer", "only the collector records this step"));
    }
    Ok(acts.pop())
}

/// Parses and verifies a signed record: the only way to get an [`OpenedRecord`].
///
/// # Errors
/// See [`RecordError`]; a signature that does not verify is [`RecordError::BadSignature`].
#[cfg(feature = "verify")]
pub fn open(bytes: &[u8]) -> Result<OpenedRecord, RecordError> {
    let (record, signature, signed) = read(bytes)?;
    verify(&signature, signed.as_bytes())?;
    Ok(OpenedRecord { record, signature })
}

#[cfg(feature = "verify")]
fn verify(signature: &Signature, message: &[u8]) -> Result<(), RecordError> {
    match signature.alg {
        Algorithm::Ed25519 => {
            let key: [u8; 32] = signature
                .public_key
                .as_slice()
                .try_into()
                .map_err(|_| RecordError::BadSignature)?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| RecordError::BadSignature)?;
            let value =
                ed25519_dalek::Signature::from_slice(&signature.value).map_err(|_| RecordError::BadSignature)?;
            // Strict: rejects small-order keys and non-canonical signatures (RFC 8032 §5.1.7).
            key.verify_strict(message, &value)
                .map_err(|_| RecordError::BadSignature)
        }
        Algorithm::Es256 => {
            use p256::ecdsa::signature::Verifier;
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&signature.public_key)
                .map_err(|_| RecordError::BadSignature)?;
            let value = p256::ecdsa::Signature::from_slice(&signature.value).map_err(|_| RecordError::BadSignature)?;
            key.verify(message, &value).map_err(|_| RecordError::BadSignature)
        }
    }
}

fn shape(path: &str, reason: &'static str) -> RecordError {
    RecordError::Shape {
        path: path.to_string(),
        reason,
    }
}

/// One object's members, taken one by one; whatever is left over is an unknown field.
struct Fields<'j> {
    path: String,
    members: Vec<&'j (String, Json)>,
}

impl<'j> Fields<'j> {
    fn of(value: &'j Json, path: &str) -> Result<Fields<'j>, RecordError> {
        match value {
            Json::Object(members) => Ok(Fields {
                path: path.to_string(),
                members: members.iter().collect(),
            }),
            _ => Err(shape(path, "not an object")),
        }
    }

    fn at(&self, key: &str) -> String {
        concat(&[&self.path, "/", key])
    }

    fn take(&mut self, key: &str) -> Result<&'j Json, RecordError> {
        let i = self
            .members
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| shape(&self.at(key), "missing"))?;
        Ok(&self.members.remove(i).1)
    }

    /// A member that may be absent.
    fn optional(&mut self, key: &str) -> Option<&'j Json> {
        self.take(key).ok()
    }

    fn text(&mut self, key: &str, valid: impl Fn(&str) -> bool, reason: &'static str) -> Result<String, RecordError> {
        match self.take(key)? {
            Json::String(s) if valid(s) => Ok(s.clone()),
            Json::String(_) => Err(shape(&self.at(key), reason)),
            _ => Err(shape(&self.at(key), "not a string")),
        }
    }

    fn number(&mut self, key: &str) -> Result<u64, RecordError> {
        self.take(key)?
            .as_whole_number()
            .ok_or_else(|| shape(&self.at(key), "not a whole number"))
    }

    fn named<T: Named>(&mut self, key: &str) -> Result<T, RecordError> {
        let at = self.at(key);
        match self.take(key)? {
            Json::String(name) => T::from_name(name).ok_or_else(|| shape(&at, "not one of the known names")),
            _ => Err(shape(&at, "not a string")),
        }
    }

    fn bytes(&mut self, key: &str, len: usize) -> Result<Vec<u8>, RecordError> {
        use base64ct::Encoding;
        let text = self.text(key, |_| true, "")?;
        match base64ct::Base64UrlUnpadded::decode_vec(&text) {
            Ok(bytes) if bytes.len() == len => Ok(bytes),
            _ => Err(shape(&self.at(key), "not base64url of the algorithm's length")),
        }
    }

    fn finish(self) -> Result<(), RecordError> {
        match self.members.first() {
            Some((key, _)) => Err(shape(&self.at(key), "unknown field")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_uuid_v7_ordered_by_time() {
        let a = record_id(1_763_782_620_123, [0xff; 10]);
        let b = record_id(1_763_782_620_124, [0x00; 10]);
        assert!(is_uuid_v7(&a) && is_uuid_v7(&b), "{a} {b}");
        assert!(a < b, "later ids sort later");
        // RFC 9562 §5.7: the first 48 bits are the milliseconds.
        assert!(a.starts_with("019aa9a2-f3db-7"), "{a}");
    }

    #[test]
    fn hex_and_base64url() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}

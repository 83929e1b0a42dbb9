//! Evidence bundles (issue 17): one file per record or per subject that a regulator or an
//! auditor checks offline, without the collector, its database, or trust in the shop's
//! server (docs/evidence.md).
//!
//! ```text
//! curl -H "Authorization: Bearer $UNTICKED_ADMIN_TOKEN" -OJ https://consent.shop.example/v1/admin/records/<id>/bundle
//! unticked verify --bundle unticked-evidence-<id>.json --public-key <the collector's key>
//! ```
//!
//! A bundle is one RFC 8785 canonical JSON document, `{"format": "unticked-evidence/1", …}`.
//! Per record it holds the exact bytes stored, the texts shown (by their SHA-256), the
//! receipt (RFC 9162 §2.1.3 inclusion in the checkpoint that first covered it), an inclusion
//! proof against the latest checkpoint and an RFC 9162 §2.1.4 consistency proof between the
//! two; beside them the latest checkpoint, the collector's public key and a plain-language
//! manifest. The collector signs the whole document with its checkpoint key, so a change of
//! any byte fails verification: the proofs name the part they cover, and the signature
//! covers what no proof does (the manifest, the contacts, the times).
//!
//! Verification ([`verify_bundle`]) is pure: text in, a summary or the first problem out,
//! named by record and part. Authenticate the bytes received (as `record::open` does):
//! a bundle must already be canonical, so what the signature covers is fixed by its bytes.

use crate::error::{refuse, unavailable, Code, Refusal};
use crate::limit::Client;
use crate::state::Collector;
use crate::store::{checkpoint_body, origin_of, SubjectRow};
use crate::texts::sha256_hex;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64ct::Encoding;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use unticked_core::capture::{committed_bytes, SALT_LEN};
use unticked_core::jcs;
use unticked_core::json::{self, Json};
use unticked_core::merkle::{self, Hash};
use unticked_core::record::{self, base64url, Signer};
use unticked_core::vocabulary::{Channel, Named};

/// The format's name and version: the `format` member of every bundle.
pub const FORMAT: &str = "unticked-evidence/1";

/// What the bundle signature covers comes after this line: the collector's key also signs
/// checkpoint notes and records, and a signed bundle must never pass for either (nor they
/// for a bundle).
const SIGNING_CONTEXT: &str = "unticked-evidence/1\n";

/// The member holding the bundle signature, left out of what it signs.
const SIGNATURE_MEMBER: &str = "signature";

// ---------------------------------------------------------------------------------------
// Building a bundle from the live collector

/// What a bundle is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One record, found by its id.
    Record,
    /// Every record a subject appears in (found through the keyed index).
    Subject,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Record => "record",
            Scope::Subject => "subject",
        }
    }
}

/// One record as the builder gathers it.
struct Held {
    index: u64,
    id: String,
    bytes: String,
    /// The disclosures put in the bundle (empty unless contacts were asked for).
    contacts: Vec<serde_json::Value>,
}

/// The bundle of the record `id`; `None` when no record has that id. Contacts (identifier
/// and salt of each disclosure held beside it) only when `contacts`.
///
/// # Errors
/// 503 when the store cannot be read, or the record is not in a signed checkpoint yet.
pub(crate) fn record_bundle(collector: &Collector, id: &str, contacts: bool) -> Result<Option<String>, Refusal> {
    let Some((index, bytes)) = collector.store.record(id).map_err(unavailable)? else {
        return Ok(None);
    };
    let disclosed = if contacts {
        record_contacts(collector, index)?
    } else {
        Vec::new()
    };
    let held = Held {
        index,
        id: id.to_string(),
        bytes,
        contacts: disclosed,
    };
    build(collector, Scope::Record, &[held], contacts).map(Some)
}

/// The bundle of every record the subject known by the normalised `identifier` appears in
/// (those a rectification carried over to them included), in log order; `None` when no
/// record names them. With `contacts`, this subject's disclosures only: a record's other
/// contacts (a phone number given beside the e-mail address) stay out.
///
/// # Errors
/// 503 when the store cannot be read, or a record is not in a signed checkpoint yet.
pub(crate) fn subject_bundle(
    collector: &Collector,
    identifier: &str,
    contacts: bool,
) -> Result<Option<String>, Refusal> {
    let history = crate::lifecycle::history(collector, identifier)?;
    let mut held = Vec::new();
    for (index, record, rows) in &history.records {
        let Some(bytes) = collector.store.record_at(*index).map_err(unavailable)? else {
            continue;
        };
        held.push(Held {
            index: *index,
            id: record.id.clone(),
            bytes,
            contacts: if contacts { distinct(rows.iter()) } else { Vec::new() },
        });
    }
    if held.is_empty() {
        return Ok(None);
    }
    build(collector, Scope::Subject, &held, contacts).map(Some)
}

/// The file name a bundle is downloaded under: `unticked-evidence-<record id>.json` for a
/// record, `unticked-evidence-subject-<latest record id>.json` for a subject. Never a contact:
/// file names end up in download lists, mails and logs.
pub(crate) fn bundle_file_name(bundle: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(bundle).unwrap_or_default();
    let last_id = value["records"]
        .as_array()
        .and_then(|records| records.last())
        .and_then(|r| r["receipt"]["id"].as_str())
        // Record ids are UUIDv7s; anything else is not put in a header.
        .filter(|id| !id.is_empty() && id.len() <= 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    match (value["scope"].as_str(), last_id) {
        (Some("record"), Some(id)) => format!("unticked-evidence-{id}.json"),
        (Some("subject"), Some(id)) => format!("unticked-evidence-subject-{id}.json"),
        _ => "unticked-evidence.json".to_string(),
    }
}

/// The disclosures held beside the record at `index`, each once.
fn record_contacts(collector: &Collector, index: u64) -> Result<Vec<serde_json::Value>, Refusal> {
    let mut rows = Vec::new();
    let mut asked = BTreeSet::new();
    for (_, identifier) in collector.store.contacts_at(index).map_err(unavailable)? {
        if !asked.insert(identifier.clone()) {
            continue;
        }
        // The index gives the salt too (contacts_at names only channel and identifier).
        let found = collector.store.subject(&identifier).map_err(unavailable)?;
        rows.extend(found.into_iter().filter(|row| row.index == index));
    }
    Ok(distinct(rows.iter()))
}

/// Disclosures as the bundle holds them: channel, identifier, salt (hex), each once. The
/// birthday kept beside some (R8) is left out: it is not needed to prove consent.
fn distinct<'a>(rows: impl Iterator<Item = &'a SubjectRow>) -> Vec<serde_json::Value> {
    let mut seen = BTreeSet::new();
    rows.filter(|row| seen.insert((row.channel.clone(), row.identifier.clone(), row.salt.clone())))
        .map(|row| serde_json::json!({ "channel": row.channel, "identifier": row.identifier, "salt": row.salt }))
        .collect()
}

fn not_yet() -> Refusal {
    refuse(
        Code::Unavailable,
        "a record is not in a signed checkpoint yet; retry in a moment",
    )
}

/// The texts a record's purposes name, as stored (`store.text`), each once, in the order
/// the purposes name them. A text the store lacks is left out: the verifier then names it,
/// which is the honest answer (and what `unticked verify` of the log reports too).
fn texts_of(collector: &Collector, bytes: &str) -> Result<Vec<serde_json::Value>, Refusal> {
    let Ok((record, _, _)) = record::read(bytes.as_bytes()) else {
        return Ok(Vec::new());
    };
    let mut seen = BTreeSet::new();
    let mut texts = Vec::new();
    for purpose in &record.purposes {
        if !seen.insert(purpose.text_sha256.clone()) {
            continue;
        }
        // Labelled with what the record showed it for: the store keeps one row per hash,
        // and the same wording may have been shown for another locale (an untranslated
        // one) or purpose first, so its row's labels may be another's.
        if let Some((_, _, _, text)) = collector.store.text(&purpose.text_sha256).map_err(unavailable)? {
            texts.push(serde_json::json!({
                "sha256": purpose.text_sha256, "purpose": purpose.id, "version": purpose.version,
                "locale": record.locale, "text": text,
            }));
        }
    }
    Ok(texts)
}

/// The bundle of `held`, against the latest checkpoint, signed by the collector.
fn build(collector: &Collector, scope: Scope, held: &[Held], contacts: bool) -> Result<String, Refusal> {
    let latest = collector.store.latest().ok_or_else(not_yet)?;
    let key = collector.store.public_key();
    let mut records = Vec::with_capacity(held.len());
    for h in held {
        // On PostgreSQL a record is sequenced before a checkpoint covers it (crate::store):
        // it has no proof yet.
        if h.index >= latest.size {
            return Err(not_yet());
        }
        let receipt = collector.receipt(&h.id, h.index)?;
        let from = receipt["checkpoint"]["size"].as_u64().ok_or_else(not_yet)?;
        let (_, inclusion) = collector.store.inclusion(h.index, latest.size).ok_or_else(not_yet)?;
        let consistency = collector.store.consistency(from, latest.size).ok_or_else(not_yet)?;
        records.push(serde_json::json!({
            "bytes": h.bytes,
            "texts": texts_of(collector, &h.bytes)?,
            "receipt": receipt,
            "latest_inclusion": inclusion.iter().map(|h| record::hex(h)).collect::<Vec<_>>(),
            "consistency": {
                "from": from,
                "to": latest.size,
                "proof": consistency.iter().map(|h| record::hex(h)).collect::<Vec<_>>(),
            },
            "contacts": h.contacts,
        }));
    }
    let ids: Vec<(u64, &str)> = held.iter().map(|h| (h.index, h.id.as_str())).collect();
    let manifest = manifest(scope, &ids, contacts);
    let body = serde_json::json!({
        "format": FORMAT,
        "scope": scope.as_str(),
        "made_at": crate::store::now_ms(),
        "contacts_included": contacts,
        "manifest_sha256": sha256_hex(manifest.as_bytes()),
        "manifest": manifest,
        "public_key": base64url(key.as_bytes()),
        "latest": latest.to_json(collector.store.origin(), &key),
        "records": records,
    });
    // serde_json writes valid JSON; the core's writer makes it canonical (RFC 8785), the
    // form the verifier demands and the signature covers.
    let Ok(Json::Object(mut members)) = json::parse(&body.to_string()) else {
        return Err(unavailable("the bundle did not read back as a JSON object"));
    };
    let unsigned = jcs::canonical(&Json::Object(members.clone())).map_err(unavailable)?;
    let signature = collector.store.sign(signed_message(&unsigned).as_bytes());
    members.push((SIGNATURE_MEMBER.to_string(), Json::String(base64url(&signature))));
    jcs::canonical(&Json::Object(members)).map_err(unavailable)
}

/// What the bundle signature is over: [`SIGNING_CONTEXT`], then the canonical JSON of the
/// bundle without its `signature` member.
fn signed_message(unsigned: &str) -> String {
    [SIGNING_CONTEXT, unsigned].concat()
}

/// The README of a bundle: what each part is and how to check it, in plain words.
fn manifest(scope: Scope, ids: &[(u64, &str)], contacts: bool) -> String {
    let about = match scope {
        Scope::Record => "one consent record".to_string(),
        Scope::Subject => format!("the {} consent records one person (data subject) appears in", ids.len()),
    };
    let mut list = String::new();
    for (index, id) in ids {
        list.push_str(&format!("  - record {id}, log index {index}\n"));
    }
    let contacts = if contacts {
        "The contacts ARE included (records[].contacts): each is the e-mail address or phone \
         number and the random salt the record commits to; SHA-256(salt || identifier) must be \
         one of the record's subject commitments. Handle this file as personal data."
    } else {
        "The contacts are NOT included: the records hold only salted commitments to them, and \
         this file names nobody. Ask for a bundle with contacts to tie a record to an address."
    };
    format!(
        "Unticked evidence bundle, format {FORMAT}\n\
         \n\
         This file is the evidence a consent collector (Unticked) holds for {about}:\n\
         {list}\
         It can be checked offline, without the shop's server or database.\n\
         \n\
         How to check it:\n\
         \n\
         \x20 unticked verify --bundle FILE --public-key KEY\n\
         \n\
         KEY is the collector's public key obtained independently of this file (the key the \
         shop publishes, a witness's copy of its checkpoints, a receipt kept earlier). Without \
         --public-key the key inside this file is used, and the output says so: anyone can make \
         a file that checks out against a key of their own. Exit 0: every check passed; 1: \
         something failed, and the output names the record and the part; 2: not a bundle.\n\
         \n\
         What each part is (the file is RFC 8785 canonical JSON; read it with jq):\n\
         - records[].bytes: the exact bytes of the record as stored. Its signature member is \
         an Ed25519 or ECDSA P-256 signature, by the key named in it, over the record without \
         that member. A record with \"signer\":\"collector\" is signed with public_key.\n\
         - records[].texts: the exact text shown for each purpose; SHA-256 of its UTF-8 bytes \
         is the text_sha256 the record names for that purpose.\n\
         - records[].receipt: where the record is in the collector's log: its index, its \
         leaf_hash SHA-256(0x00 || bytes), and an inclusion proof (RFC 9162 section 2.1.3) to \
         the signed checkpoint that first covered it, whose timestamp is when it was logged.\n\
         - records[].latest_inclusion: the record's inclusion proof against the latest checkpoint.\n\
         - records[].consistency: an RFC 9162 section 2.1.4 proof that the log at the latest \
         checkpoint extends the log at the receipt's: nothing logged was changed or removed since.\n\
         - records[].contacts: see below.\n\
         - latest: the collector's latest signed checkpoint when this file was made. A \
         checkpoint signs, with Ed25519, the note text in it (C2SP tlog-checkpoint: origin, \
         tree size, root hash, and the time).\n\
         - public_key: the collector's Ed25519 public key (base64url), which signs the \
         checkpoints and this file.\n\
         - manifest: this text; manifest_sha256 is its SHA-256.\n\
         - made_at: when this file was made (ms since the epoch); scope: record or subject.\n\
         - signature: Ed25519 by public_key over the line \"{FORMAT}\" and a newline, followed \
         by this file's canonical JSON without its signature member. Change any byte of the \
         file and verification fails.\n\
         \n\
         {contacts}\n\
         \n\
         What it does not prove: who sat at the browser (the record's own key is made for \
         the one submit); that the page showed the texts as the collector's config says (the \
         record commits to their hashes, not to the page's rendering); that the collector \
         shows every auditor the same log (compare checkpoints with a witness); anything the \
         shop did with the consent afterwards.\n\
         \n\
         The format in full: docs/evidence.md in the Unticked sources.\n"
    )
}

// ---------------------------------------------------------------------------------------
// The HTTP edge

/// `GET /v1/admin/records/{id}/bundle[?contacts=true]`: the record's bundle, as a download.
pub async fn get_record(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    id: Result<UrlPath<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    if let Err(refusal) = crate::admin::authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    let contacts = match query.as_ref().map(|Query(q)| q.get("contacts").map(String::as_str)) {
        Ok(None | Some("false")) => false,
        Ok(Some("true")) => true,
        _ => return refuse(Code::BadBody, "the query is contacts=true or contacts=false").into_response(),
    };
    // A path that does not decode (`%ff`) names no record: the API's JSON 404.
    let Ok(UrlPath(id)) = id else {
        return refuse(Code::NotFound, "no record with this id").into_response();
    };
    let made = tokio::task::spawn_blocking(move || record_bundle(&collector, &id, contacts)).await;
    match made {
        Ok(Ok(Some(bundle))) => {
            // Counts only: contact data never goes to the logs.
            tracing::info!(records = 1, contacts, "admin: evidence bundle made");
            download(bundle)
        }
        Ok(Ok(None)) => refuse(Code::NotFound, "no record with this id").into_response(),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

/// `POST /v1/admin/subjects/bundle` `{"identifier", "contacts"?}`: the subject's bundle.
pub async fn post_subject(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = crate::admin::authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    let identifier = match crate::admin::identifier_in(&body) {
        Ok(identifier) => identifier,
        Err(refusal) => return refusal.into_response(),
    };
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let contacts = match &value["contacts"] {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(asked) => *asked,
        _ => return refuse(Code::BadBody, "contacts is true or false").into_response(),
    };
    let made = tokio::task::spawn_blocking(move || subject_bundle(&collector, &identifier, contacts)).await;
    match made {
        Ok(Ok(Some(bundle))) => {
            let records = serde_json::from_str::<serde_json::Value>(&bundle)
                .ok()
                .and_then(|b| b["records"].as_array().map(Vec::len))
                .unwrap_or(0);
            tracing::info!(records, contacts, "admin: evidence bundle made");
            download(bundle)
        }
        Ok(Ok(None)) => refuse(Code::UnknownSubject, "no record names this subject").into_response(),
        Ok(Err(refusal)) => refusal.into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

/// A bundle as a download (RFC 6266 `Content-Disposition: attachment`), never cached: it
/// may hold contacts.
fn download(bundle: String) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", bundle_file_name(&bundle));
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bundle,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Verifying a bundle, offline

/// The part of a bundle a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The file is not in RFC 8785 canonical form.
    Canonical,
    /// A member missing, unknown or of the wrong type.
    Shape,
    /// The bundle's `public_key`.
    PublicKey,
    /// The bundle's key is not the one given with `--public-key`.
    PinnedKey,
    /// The manifest does not hash to `manifest_sha256`.
    Manifest,
    /// The latest checkpoint: its fields, note or signature.
    LatestCheckpoint,
    /// A record's bytes do not read as a record.
    RecordBytes,
    /// A record's own signature.
    RecordSignature,
    /// A text shown, against the hash its record names.
    TextHash,
    /// A receipt's id, index or leaf hash.
    Receipt,
    /// The checkpoint in a receipt: its fields, note or signature.
    ReceiptCheckpoint,
    /// A receipt's inclusion proof.
    ReceiptInclusion,
    /// A record's inclusion proof against the latest checkpoint.
    LatestInclusion,
    /// The consistency proof from a receipt's checkpoint to the latest.
    Consistency,
    /// A contact against the record's subject commitments.
    Contact,
    /// The collector's signature over the whole bundle.
    BundleSignature,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Canonical => "canonical form",
            Part::Shape => "shape",
            Part::PublicKey => "public key",
            Part::PinnedKey => "pinned key mismatch",
            Part::Manifest => "manifest",
            Part::LatestCheckpoint => "latest checkpoint signature",
            Part::RecordBytes => "record bytes",
            Part::RecordSignature => "record signature",
            Part::TextHash => "text hash",
            Part::Receipt => "receipt",
            Part::ReceiptCheckpoint => "receipt checkpoint signature",
            Part::ReceiptInclusion => "receipt inclusion",
            Part::LatestInclusion => "latest-checkpoint inclusion",
            Part::Consistency => "consistency proof",
            Part::Contact => "contact commitment",
            Part::BundleSignature => "bundle signature",
        }
    }
}

/// Which record of a bundle: its place (1-based) and the id its receipt names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub position: usize,
    pub id: String,
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleProblem {
    /// Not an evidence bundle at all (not JSON, no `format`, another version): exit 2.
    Unreadable(String),
    /// The first check that failed, by record and part: exit 1.
    Broken {
        record: Option<RecordRef>,
        part: Part,
        problem: String,
    },
}

impl std::fmt::Display for BundleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleProblem::Unreadable(why) => f.write_str(why),
            BundleProblem::Broken { record, part, problem } => {
                if let Some(r) = record {
                    write!(f, "record {} ({}): ", r.position, r.id)?;
                }
                write!(f, "{}: {problem}", part.as_str())
            }
        }
    }
}

impl std::error::Error for BundleProblem {}

/// One record that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    pub id: String,
    pub index: u64,
    pub signer: Signer,
    /// Each purpose's state (`given`, `refused`, …), in the record's order.
    pub purposes: Vec<(String, &'static str)>,
    pub texts: usize,
    /// The checkpoint of its receipt: size and signed time (when it was logged).
    pub logged_in: u64,
    pub logged_at: u64,
    /// Contacts checked against its commitments.
    pub contacts: usize,
}

/// A bundle that checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSummary {
    pub scope: Scope,
    pub records: Vec<RecordSummary>,
    pub latest_size: u64,
    pub latest_root: Hash,
    pub latest_timestamp: u64,
    pub made_at: u64,
    /// The key everything was checked against.
    pub key: VerifyingKey,
    /// Whether that key was given (`--public-key`), not only read from the bundle.
    pub pinned: bool,
    pub contacts_included: bool,
}

// The bundle's members, as the builder writes them; a member more or less is a shape
// problem (and would break the signature anyway).

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleJson {
    contacts_included: bool,
    #[allow(dead_code)] // checked on the parsed JSON, before the shape
    format: String,
    latest: CheckpointJson,
    made_at: u64,
    manifest: String,
    manifest_sha256: String,
    public_key: String,
    records: Vec<EntryJson>,
    scope: String,
    signature: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryJson {
    bytes: String,
    consistency: ConsistencyJson,
    contacts: Vec<ContactJson>,
    latest_inclusion: Vec<String>,
    receipt: ReceiptJson,
    texts: Vec<TextJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    checkpoint: CheckpointJson,
    id: String,
    inclusion: Vec<String>,
    index: u64,
    leaf_hash: String,
}

/// A checkpoint as `Checkpoint::to_json` writes it (`GET /v1/checkpoint`, receipts).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    note: String,
    origin: String,
    public_key: String,
    root: String,
    signature: String,
    size: u64,
    timestamp: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyJson {
    from: u64,
    proof: Vec<String>,
    to: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactJson {
    channel: String,
    identifier: String,
    salt: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextJson {
    locale: String,
    purpose: String,
    sha256: String,
    text: String,
    #[allow(dead_code)] // the first version that showed the wording: not compared (crate::verify)
    version: u32,
}

/// A checkpoint whose fields and note agree.
struct Opened {
    size: u64,
    root: Hash,
    timestamp: u64,
    note: String,
    signature: Signature,
}

fn broken(record: Option<&RecordRef>, part: Part, problem: impl Into<String>) -> BundleProblem {
    BundleProblem::Broken {
        record: record.cloned(),
        part,
        problem: problem.into(),
    }
}

/// A SHA-256 in lowercase hex, as the bundle writes hashes: one spelling per value, so a
/// changed letter's case is a changed hash, not the same one.
fn hash_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    record::unhex(text)?.try_into().ok()
}

fn hashes(texts: &[String]) -> Option<Vec<Hash>> {
    texts.iter().map(|t| hash_hex(t)).collect()
}

/// Base64url without padding of exactly `len` bytes, in its one canonical spelling (the
/// unused low bits of the last character zero), for the same reason.
fn base64url_exact(text: &str, len: usize) -> Option<Vec<u8>> {
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(text).ok()?;
    (bytes.len() == len && base64url(&bytes) == text).then_some(bytes)
}

/// An Ed25519 public key, base64url.
fn ed25519_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = base64url_exact(text, 32)?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn ed25519_signature(text: &str) -> Option<Signature> {
    Signature::from_slice(&base64url_exact(text, 64)?).ok()
}

/// A checkpoint's fields as they read: that it names the bundle's key and the log's origin
/// (`origin_of`), and that its note is the C2SP tlog-checkpoint text of its size, root and
/// time (`checkpoint_body`). Its signature is checked later ([`check_signed`]), with the
/// other signatures, once every cheap check has passed.
fn read_checkpoint(c: &CheckpointJson, key: &VerifyingKey, key_text: &str) -> Result<Opened, String> {
    if c.public_key != key_text {
        return Err(format!(
            "it names the key {}, not the bundle's {key_text}",
            c.public_key
        ));
    }
    let origin = origin_of(key);
    if c.origin != origin {
        return Err(format!(
            "its origin is {:?}, but the log of this key is {origin:?}",
            c.origin
        ));
    }
    let root = hash_hex(&c.root).ok_or("its root is not a SHA-256 in lowercase hex")?;
    let note = checkpoint_body(&origin, c.size, &root, c.timestamp);
    if c.note != note {
        return Err("its note is not the text its origin, size, root and timestamp make".into());
    }
    let signature = ed25519_signature(&c.signature).ok_or("its signature is not 64 bytes of base64url")?;
    Ok(Opened {
        size: c.size,
        root,
        timestamp: c.timestamp,
        note,
        signature,
    })
}

/// The checkpoint's Ed25519 signature over its note verifies with the collector's key
/// (strictly: RFC 8032 §5.1.7, no small-order keys or non-canonical signatures).
fn check_signed(c: &Opened, key: &VerifyingKey) -> Result<(), String> {
    key.verify_strict(c.note.as_bytes(), &c.signature)
        .map_err(|_| "its Ed25519 signature over the note does not verify with the collector's key".to_string())
}

/// Checks an evidence bundle offline: every record's signature, the texts shown against
/// their hashes, each receipt (its checkpoint signed by the collector, the record included
/// in it), the latest checkpoint, the consistency of the log between them, the contacts
/// (when present) against the records' commitments, and the collector's signature over the
/// whole file. With `pinned`, the bundle must be signed by that key (see docs/evidence.md,
/// "Trust"); without it, the bundle's own key is used and [`BundleSummary::pinned`] says so.
///
/// The checks that need only hashes run first, the Ed25519 signatures after them: a changed
/// byte is then found, and named, by the hash of the part it is in.
///
/// # Errors
/// [`BundleProblem::Unreadable`] when `text` is not an evidence bundle; otherwise the first
/// check that fails, [`BundleProblem::Broken`], named by record and [`Part`].
pub fn verify_bundle(text: &str, pinned: Option<&VerifyingKey>) -> Result<BundleSummary, BundleProblem> {
    // The core's strict parser: a repeated key is an error (RFC 8259 §4 lets parsers
    // disagree on which one counts), and nesting is bounded.
    let parsed = json::parse(text).map_err(|e| BundleProblem::Unreadable(format!("not JSON: {}", e.describe())))?;
    let Json::Object(members) = &parsed else {
        return Err(BundleProblem::Unreadable(
            "not an evidence bundle: not a JSON object".into(),
        ));
    };
    match members.iter().find(|(k, _)| k == "format").map(|(_, v)| v) {
        Some(Json::String(format)) if format == FORMAT => {}
        Some(Json::String(format)) if format.starts_with("unticked-evidence/") => {
            return Err(BundleProblem::Unreadable(format!(
                "an evidence bundle of format {format:?}; this unticked reads {FORMAT:?}"
            )))
        }
        _ => {
            return Err(BundleProblem::Unreadable(format!(
                "not an evidence bundle: no \"format\": \"{FORMAT}\""
            )))
        }
    }
    // Authenticate the bytes received: they must already be canonical (RFC 8785), so the
    // bytes the signature covers are fixed by them and no byte is outside every check.
    if jcs::canonical(&parsed).ok().as_deref() != Some(text) {
        return Err(broken(
            None,
            Part::Canonical,
            "the file is not RFC 8785 canonical JSON: it was changed, or re-written (jq . writes a new file); verify the file as downloaded",
        ));
    }
    let bundle: BundleJson = serde_json::from_str(text).map_err(|e| broken(None, Part::Shape, e.to_string()))?;
    let scope = match (bundle.scope.as_str(), bundle.records.len()) {
        ("record", 1) => Scope::Record,
        ("subject", n) if n > 0 => Scope::Subject,
        (scope, n) => {
            return Err(broken(
                None,
                Part::Shape,
                format!("scope {scope:?} with {n} records (record: exactly one; subject: at least one)"),
            ))
        }
    };

    // The key. Pinned (obtained elsewhere), the bundle must be signed with it; the key also
    // appears in every checkpoint, so a bundle key that none of them names is the part that
    // was changed (a changed copy in one checkpoint is that checkpoint's problem, below).
    if let Some(pinned) = pinned {
        // The pinned key is a key, so its one base64url spelling is the one to compare.
        let pinned = base64url(pinned.as_bytes());
        if bundle.public_key != pinned {
            return Err(broken(
                None,
                Part::PinnedKey,
                format!(
                    "the bundle is signed by the key {}, not by the pinned key {pinned}: it is not this collector's, or its key was changed",
                    bundle.public_key
                ),
            ));
        }
    }
    let Some(own) = ed25519_key(&bundle.public_key) else {
        return Err(broken(None, Part::PublicKey, "not a base64url Ed25519 public key"));
    };
    let named = std::iter::once(&bundle.latest)
        .chain(bundle.records.iter().map(|r| &r.receipt.checkpoint))
        .any(|c| c.public_key == bundle.public_key);
    if !named {
        return Err(broken(
            None,
            Part::PublicKey,
            "the bundle's public_key is not the key any of its checkpoints names: it was changed",
        ));
    }
    let key = own;

    if sha256_hex(bundle.manifest.as_bytes()) != bundle.manifest_sha256 {
        return Err(broken(
            None,
            Part::Manifest,
            "the manifest does not hash to manifest_sha256: its text (or the hash) was changed",
        ));
    }
    let latest_problem = |why: String| broken(None, Part::LatestCheckpoint, format!("the latest checkpoint: {why}"));
    let latest = read_checkpoint(&bundle.latest, &key, &bundle.public_key).map_err(latest_problem)?;

    let mut entries = Vec::with_capacity(bundle.records.len());
    let mut indexes = BTreeSet::new();
    for (i, entry) in bundle.records.iter().enumerate() {
        let at = RecordRef {
            position: i + 1,
            id: entry.receipt.id.clone(),
        };
        let checked = check_entry(entry, &at, &key, &bundle.public_key, &latest, bundle.contacts_included)?;
        if !indexes.insert(checked.summary.index) {
            return Err(broken(
                Some(&at),
                Part::Receipt,
                "a record at this index is in the bundle twice",
            ));
        }
        entries.push((at, entry, checked));
    }

    // The signatures. The latest checkpoint's; then each record's own (`record::open`
    // verifies it by the key the record names; a record the collector signed must be
    // signed with the collector's key, or anyone could sign one) and its receipt's
    // checkpoint.
    check_signed(&latest, &key).map_err(latest_problem)?;
    let mut records = Vec::with_capacity(entries.len());
    for (at, entry, checked) in entries {
        let at = Some(&at);
        match record::open(entry.bytes.as_bytes()) {
            Ok(opened)
                if opened.record.signer == Signer::Collector && opened.signature.public_key != key.as_bytes() =>
            {
                return Err(broken(
                    at,
                    Part::RecordSignature,
                    "the record says the collector signed it, but not with the collector's key",
                ))
            }
            Ok(_) => {}
            Err(record::RecordError::BadSignature) => {
                return Err(broken(
                    at,
                    Part::RecordSignature,
                    "the record's signature does not verify: these are not the bytes its signer signed",
                ))
            }
            Err(e) => return Err(broken(at, Part::RecordBytes, format!("not a record: {e}"))),
        }
        check_signed(&checked.logged, &key)
            .map_err(|why| broken(at, Part::ReceiptCheckpoint, format!("the receipt's checkpoint: {why}")))?;
        records.push(checked.summary);
    }

    // Last, the collector's signature over everything else: the manifest, the contacts, the
    // times, and whatever no proof above covers.
    let unsigned: Vec<(String, Json)> = members.iter().filter(|(k, _)| k != SIGNATURE_MEMBER).cloned().collect();
    let unsigned = jcs::canonical(&Json::Object(unsigned)).map_err(|e| broken(None, Part::Canonical, e.to_string()))?;
    let signed = ed25519_signature(&bundle.signature)
        .is_some_and(|s| key.verify_strict(signed_message(&unsigned).as_bytes(), &s).is_ok());
    if !signed {
        return Err(broken(
            None,
            Part::BundleSignature,
            "the collector's Ed25519 signature over the bundle does not verify: a part no proof covers (the manifest, a contact, a time) was changed",
        ));
    }
    Ok(BundleSummary {
        scope,
        records,
        latest_size: latest.size,
        latest_root: latest.root,
        latest_timestamp: latest.timestamp,
        made_at: bundle.made_at,
        key,
        pinned: pinned.is_some(),
        contacts_included: bundle.contacts_included,
    })
}

/// What the hashes of one record's parts showed; its signatures are checked after.
struct CheckedEntry {
    summary: RecordSummary,
    logged: Opened,
}

/// One record of a bundle, every part of it that hashes alone can check.
fn check_entry(
    entry: &EntryJson,
    at: &RecordRef,
    key: &VerifyingKey,
    key_text: &str,
    latest: &Opened,
    contacts_included: bool,
) -> Result<CheckedEntry, BundleProblem> {
    let at = Some(at);
    // The record as it reads (`record::read`: canonical bytes, every field checked); its
    // signature is verified with the others.
    let record = match record::read(entry.bytes.as_bytes()) {
        Ok((record, _, _)) => record,
        Err(e) => return Err(broken(at, Part::RecordBytes, format!("not a record: {e}"))),
    };

    // The receipt: the leaf is SHA-256(0x00 ‖ bytes) (RFC 9162 §2.1.1), included at its
    // index in the tree its checkpoint signs (RFC 9162 §2.1.3.2).
    let receipt = &entry.receipt;
    let leaf = merkle::leaf_hash(entry.bytes.as_bytes());
    let claimed = hash_hex(&receipt.leaf_hash).ok_or_else(|| {
        broken(
            at,
            Part::Receipt,
            "the receipt's leaf_hash is not a SHA-256 in lowercase hex",
        )
    })?;
    let logged = read_checkpoint(&receipt.checkpoint, key, key_text)
        .map_err(|why| broken(at, Part::ReceiptCheckpoint, format!("the receipt's checkpoint: {why}")))?;
    let proof = hashes(&receipt.inclusion).ok_or_else(|| {
        broken(
            at,
            Part::ReceiptInclusion,
            "a hash of the proof is not a SHA-256 in lowercase hex",
        )
    })?;
    if leaf != claimed {
        // Which changed, the bytes or the receipt's leaf hash? The receipt's proof tells
        // them apart by hashes alone: when it still leads from the leaf hash to the root,
        // that leaf hash is the one logged, and the bytes are not the record logged.
        if merkle::verify_inclusion(&claimed, receipt.index, logged.size, &proof, &logged.root) {
            return Err(broken(
                at,
                Part::RecordBytes,
                format!(
                    "these are not the bytes logged at index {}: SHA-256(0x00 || bytes) is not the leaf hash the receipt proves",
                    receipt.index
                ),
            ));
        }
        return Err(broken(
            at,
            Part::Receipt,
            "the receipt's leaf_hash is not SHA-256(0x00 || record bytes)",
        ));
    }
    if !merkle::verify_inclusion(&leaf, receipt.index, logged.size, &proof, &logged.root) {
        return Err(broken(
            at,
            Part::ReceiptInclusion,
            format!(
                "the inclusion proof does not lead from the record at index {} to the root of the receipt's checkpoint (size {})",
                receipt.index, logged.size
            ),
        ));
    }
    if receipt.id != record.id {
        return Err(broken(
            at,
            Part::Receipt,
            format!(
                "the receipt names record {}, but the bytes are record {}",
                receipt.id, record.id
            ),
        ));
    }

    // The texts shown: each purpose's text, by the SHA-256 of its UTF-8 the record signs
    // (DESIGN.md layer 3), labelled with the purpose and locale it was shown for.
    for text in &entry.texts {
        let actual = sha256_hex(text.text.as_bytes());
        if actual != text.sha256 {
            return Err(broken(
                at,
                Part::TextHash,
                format!(
                    "the text given as {} (purpose {}) hashes to {actual}: its wording was changed",
                    text.sha256, text.purpose
                ),
            ));
        }
        if !record.purposes.iter().any(|p| p.text_sha256 == text.sha256) {
            return Err(broken(
                at,
                Part::TextHash,
                format!("the text {} is named by none of the record's purposes", text.sha256),
            ));
        }
    }
    for purpose in &record.purposes {
        let Some(text) = entry.texts.iter().find(|t| t.sha256 == purpose.text_sha256) else {
            return Err(broken(
                at,
                Part::TextHash,
                format!(
                    "purpose {} names the text {}, which the bundle lacks: what was shown is not in it",
                    purpose.id, purpose.text_sha256
                ),
            ));
        };
        if text.purpose != purpose.id || text.locale != record.locale {
            return Err(broken(
                at,
                Part::TextHash,
                format!(
                    "the text {} is labelled purpose {} ({}), but the record showed it for {} ({})",
                    text.sha256, text.purpose, text.locale, purpose.id, record.locale
                ),
            ));
        }
    }

    // Still in the latest checkpoint, at the same index.
    let proof = hashes(&entry.latest_inclusion).ok_or_else(|| {
        broken(
            at,
            Part::LatestInclusion,
            "a hash of the proof is not a SHA-256 in lowercase hex",
        )
    })?;
    if !merkle::verify_inclusion(&leaf, receipt.index, latest.size, &proof, &latest.root) {
        return Err(broken(
            at,
            Part::LatestInclusion,
            format!(
                "the inclusion proof does not lead from the record at index {} to the root of the latest checkpoint (size {})",
                receipt.index, latest.size
            ),
        ));
    }

    // The latest tree extends the receipt's (RFC 9162 §2.1.4.2): nothing logged by then was
    // changed or removed. Checkpoints' times only grow with their sizes (crate::store).
    let consistency = &entry.consistency;
    if consistency.from != logged.size || consistency.to != latest.size {
        return Err(broken(
            at,
            Part::Consistency,
            format!(
                "the proof is from size {} to {}, but the checkpoints are of size {} and {}",
                consistency.from, consistency.to, logged.size, latest.size
            ),
        ));
    }
    if latest.timestamp < logged.timestamp {
        return Err(broken(
            at,
            Part::Consistency,
            "the latest checkpoint is signed before the receipt's",
        ));
    }
    let proof = hashes(&consistency.proof).ok_or_else(|| {
        broken(
            at,
            Part::Consistency,
            "a hash of the proof is not a SHA-256 in lowercase hex",
        )
    })?;
    if !merkle::verify_consistency(logged.size, latest.size, &logged.root, &latest.root, &proof) {
        return Err(broken(
            at,
            Part::Consistency,
            format!(
                "the proof does not show that the log of size {} extends the receipt's of size {}",
                latest.size, logged.size
            ),
        ));
    }

    // Contacts: each is committed to by the record, SHA-256(salt ‖ identifier) (R10,
    // `record::SubjectCommitment`), on the channel it is for.
    if !contacts_included && !entry.contacts.is_empty() {
        return Err(broken(
            at,
            Part::Contact,
            "contacts are listed, but the bundle says they were left out",
        ));
    }
    for contact in &entry.contacts {
        let channel = Channel::from_name(&contact.channel)
            .ok_or_else(|| broken(at, Part::Contact, format!("{:?} is not a channel", contact.channel)))?;
        let salt = record::unhex(&contact.salt)
            .filter(|s| s.len() == SALT_LEN && record::hex(s) == contact.salt)
            .ok_or_else(|| broken(at, Part::Contact, "a salt is not 16 bytes in lowercase hex"))?;
        let commitment = sha256_hex(&committed_bytes(&salt, &contact.identifier));
        if !record
            .subjects
            .iter()
            .any(|s| s.channel == channel && s.commitment == commitment)
        {
            return Err(broken(
                at,
                Part::Contact,
                format!(
                    "the {} contact does not hash, with its salt, to a commitment of the record on that channel: the identifier or the salt was changed",
                    channel.as_str()
                ),
            ));
        }
    }

    let summary = RecordSummary {
        id: record.id.clone(),
        index: receipt.index,
        signer: record.signer,
        purposes: record
            .purposes
            .iter()
            .map(|p| (p.id.clone(), p.state.as_str()))
            .collect(),
        texts: entry.texts.len(),
        logged_in: logged.size,
        logged_at: logged.timestamp,
        contacts: entry.contacts.len(),
    };
    Ok(CheckedEntry { summary, logged })
}

/// `unticked verify --bundle FILE [--public-key KEY]`: exit 0 when the bundle checks out (a
/// line per record and a last line), 1 naming what fails, 2 when it cannot run.
pub fn main(file: &Path, public_key: Option<&str>) -> ExitCode {
    let shown = file.display();
    let pinned = match public_key {
        None => None,
        Some(text) => match crate::verify::public_key(Some(text), Path::new("")) {
            Ok(key) => Some(key),
            Err(_) => {
                eprintln!("unticked verify: --public-key is not a base64url Ed25519 key");
                return ExitCode::from(2);
            }
        },
    };
    let text = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("unticked verify: {shown}: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(text) = String::from_utf8(text) else {
        eprintln!("unticked verify: {shown}: not UTF-8: not an evidence bundle");
        return ExitCode::from(2);
    };
    match verify_bundle(&text, pinned.as_ref()) {
        Ok(summary) => {
            for r in &summary.records {
                let signer = match r.signer {
                    Signer::Browser => "signed by the browser's key",
                    Signer::Collector => "signed by the collector's key",
                };
                let purposes: Vec<String> = r.purposes.iter().map(|(id, state)| format!("{id} {state}")).collect();
                let contacts = match (summary.contacts_included, r.contacts) {
                    (false, _) => "contacts left out".to_string(),
                    (true, 1) => "1 contact matches its commitment".to_string(),
                    (true, n) => format!("{n} contacts match their commitments"),
                };
                println!(
                    "unticked verify: record {} (index {}): {signer}; {}; {} texts shown match their hashes; logged in the checkpoint of size {} at {}, and in the latest; {contacts}",
                    r.id,
                    r.index,
                    if purposes.is_empty() { "no purpose".to_string() } else { purposes.join(", ") },
                    r.texts,
                    r.logged_in,
                    r.logged_at,
                );
            }
            let key = base64url(summary.key.as_bytes());
            println!(
                "unticked verify: {shown}: {} records ({}), latest checkpoint of size {} root {} at {}, bundle signed by {key} ({}): clean",
                summary.records.len(),
                summary.scope.as_str(),
                summary.latest_size,
                record::hex(&summary.latest_root),
                summary.latest_timestamp,
                if summary.pinned { "the pinned key" } else { "the bundle's own key, NOT pinned" },
            );
            if !summary.pinned {
                println!(
                    "unticked verify: not checked: whose key this is; anyone can make a bundle that checks out against a key of their own: give --public-key with the collector's key obtained elsewhere (the shop's published key, a witness, a receipt kept)"
                );
            }
            ExitCode::SUCCESS
        }
        Err(BundleProblem::Unreadable(why)) => {
            eprintln!("unticked verify: {shown}: {why}");
            ExitCode::from(2)
        }
        Err(problem) => {
            println!("unticked verify: {shown}: {problem}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testing::{capture, demo_config, seal};
    use unticked_core::record::State as ConsentState;
    use unticked_core::vocabulary::Source;

    /// A collector over a fresh log, with the records `given` sealed as the browser seals
    /// them, each appended in its own batch (so each has its own checkpoint); their ids.
    async fn collector_with(given: &[&[&str]]) -> (tempfile::TempDir, Arc<Collector>, Vec<String>) {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let collector = Collector::new(
            config.clone(),
            &crate::testing::demo_sha256(),
            store,
            None,
            crate::limit::Limits::default(),
            crate::http::Writers::new(&["http://127.0.0.1:8080".to_string()]),
            crate::lifecycle::Settings {
                public_origin: "http://127.0.0.1:8080".into(),
                account_secret: None,
            },
            crate::settings::ServerSettings::default(),
        );
        let mut ids = Vec::new();
        for given in given {
            let body = seal(&capture(&config, given), 1);
            let accepted = crate::records::check(body.as_bytes(), &config).unwrap();
            ids.push(accepted.opened.record.id.clone());
            collector.append(accepted).await.unwrap();
        }
        (dir, collector, ids)
    }

    /// The four demo records of the admin tests: jan@example.pl appears in three of them.
    const FOUR: &[&[&str]] = &[
        &["email-offers"],
        &["email-offers", "sms-offers"],
        &[],
        &["birthday-greetings"],
    ];

    /// The part a problem names (none: not a bundle).
    fn part_of(problem: &BundleProblem) -> Option<Part> {
        match problem {
            BundleProblem::Unreadable(_) => None,
            BundleProblem::Broken { part, .. } => Some(*part),
        }
    }

    fn part(result: Result<BundleSummary, BundleProblem>) -> Option<Part> {
        result.err().as_ref().and_then(part_of)
    }

    /// `bundle` with the string (or number) at JSON Pointer `pointer` changed in one
    /// character: the one at `at` (a char index) of a string, or the last digit of a
    /// number. Written canonically again, the file differs from `bundle` in exactly one byte
    /// (asserted), as a flipped bit in a download would.
    fn flip(bundle: &str, pointer: &str, at: usize) -> String {
        let mut value: serde_json::Value = serde_json::from_str(bundle).unwrap();
        let target = value.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer}"));
        match target {
            serde_json::Value::String(s) => {
                let (i, c) = s
                    .char_indices()
                    .nth(at)
                    .unwrap_or_else(|| panic!("{pointer} is shorter than {at}"));
                let other = match c {
                    '9' => '0',
                    'f' => 'a',
                    'z' => 'a',
                    'Z' => 'A',
                    // Base64url's other two characters.
                    '-' => '_',
                    '_' => '-',
                    c if c.is_ascii_alphanumeric() => (c as u8 + 1) as char,
                    c => panic!("{pointer}[{at}] is {c:?}, not a letter, digit, - or _"),
                };
                s.replace_range(i..i + 1, &other.to_string());
            }
            serde_json::Value::Number(n) => *target = (n.as_u64().unwrap() ^ 1).into(),
            other => panic!("{pointer} is {other}"),
        }
        let changed = jcs::canonical(&json::parse(&value.to_string()).unwrap()).unwrap();
        assert_eq!(changed.len(), bundle.len(), "{pointer}");
        let differing = changed.bytes().zip(bundle.bytes()).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 1, "{pointer}: one byte changed");
        changed
    }

    /// The char index of `needle` in the string at `pointer`.
    fn find(bundle: &str, pointer: &str, needle: &str) -> usize {
        let value: serde_json::Value = serde_json::from_str(bundle).unwrap();
        let s = value.pointer(pointer).unwrap().as_str().unwrap();
        s[..s.find(needle).unwrap_or_else(|| panic!("{needle} not in {pointer}"))]
            .chars()
            .count()
    }

    #[tokio::test]
    async fn a_record_bundle_verifies_and_a_byte_changed_in_any_part_is_named() {
        let (_dir, collector, ids) = collector_with(FOUR).await;
        // The second record: its receipt's tree (size 2) and the latest (size 4) differ, so
        // every proof in the bundle holds at least one hash.
        let bundle = record_bundle(&collector, &ids[1], true).unwrap().unwrap();
        let key = collector.store.public_key();
        let summary = verify_bundle(&bundle, Some(&key)).unwrap();
        assert_eq!(summary.scope, Scope::Record);
        assert_eq!((summary.latest_size, summary.pinned), (4, true));
        let r = &summary.records[0];
        assert_eq!((r.id.as_str(), r.index, r.logged_in), (ids[1].as_str(), 1, 2));
        assert_eq!(r.texts, 6, "the checkout shows six purposes, each with its text");
        assert_eq!(r.texts, r.purposes.len());
        assert_eq!(r.contacts, 2, "the e-mail address and the phone number");
        let value: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        for proof in [
            "/records/0/receipt/inclusion",
            "/records/0/latest_inclusion",
            "/records/0/consistency/proof",
        ] {
            assert!(!value.pointer(proof).unwrap().as_array().unwrap().is_empty(), "{proof}");
        }
        assert!(verify_bundle(&bundle, None).is_ok_and(|s| !s.pinned));

        let path = find(&bundle, "/records/0/bytes", "checkout.html");
        let cases: Vec<(String, usize, Part)> = vec![
            ("/records/0/bytes".into(), path, Part::RecordBytes),
            ("/records/0/texts/0/text".into(), 0, Part::TextHash),
            ("/records/0/texts/1/text".into(), 3, Part::TextHash),
            ("/records/0/texts/0/sha256".into(), 10, Part::TextHash),
            ("/records/0/texts/1/purpose".into(), 0, Part::TextHash),
            ("/records/0/receipt/id".into(), 0, Part::Receipt),
            ("/records/0/receipt/leaf_hash".into(), 5, Part::Receipt),
            ("/records/0/receipt/index".into(), 0, Part::ReceiptInclusion),
            ("/records/0/receipt/inclusion/0".into(), 7, Part::ReceiptInclusion),
            (
                "/records/0/receipt/checkpoint/signature".into(),
                4,
                Part::ReceiptCheckpoint,
            ),
            ("/records/0/receipt/checkpoint/root".into(), 4, Part::ReceiptCheckpoint),
            (
                "/records/0/receipt/checkpoint/note".into(),
                find(&bundle, "/records/0/receipt/checkpoint/note", "timestamp"),
                Part::ReceiptCheckpoint,
            ),
            (
                "/records/0/receipt/checkpoint/timestamp".into(),
                0,
                Part::ReceiptCheckpoint,
            ),
            ("/records/0/receipt/checkpoint/size".into(), 0, Part::ReceiptCheckpoint),
            (
                "/records/0/receipt/checkpoint/origin".into(),
                12,
                Part::ReceiptCheckpoint,
            ),
            (
                "/records/0/receipt/checkpoint/public_key".into(),
                5,
                Part::ReceiptCheckpoint,
            ),
            ("/latest/signature".into(), 0, Part::LatestCheckpoint),
            ("/latest/root".into(), 63, Part::LatestCheckpoint),
            ("/latest/timestamp".into(), 0, Part::LatestCheckpoint),
            ("/latest/public_key".into(), 0, Part::LatestCheckpoint),
            ("/records/0/latest_inclusion/1".into(), 0, Part::LatestInclusion),
            ("/records/0/consistency/proof/0".into(), 20, Part::Consistency),
            ("/records/0/consistency/from".into(), 0, Part::Consistency),
            ("/public_key".into(), 10, Part::PublicKey),
            (
                "/manifest".into(),
                find(&bundle, "/manifest", "Unticked"),
                Part::Manifest,
            ),
            ("/manifest_sha256".into(), 0, Part::Manifest),
            ("/records/0/contacts/0/identifier".into(), 0, Part::Contact),
            ("/records/0/contacts/1/salt".into(), 3, Part::Contact),
            ("/made_at".into(), 0, Part::BundleSignature),
            ("/signature".into(), 10, Part::BundleSignature),
        ];
        for (pointer, at, expected) in cases {
            let changed = flip(&bundle, &pointer, at);
            let outcome = verify_bundle(&changed, None);
            assert_eq!(part(outcome.clone()), Some(expected), "{pointer}: {outcome:?}");
            // Named by record, when in one.
            if pointer.starts_with("/records/0/") && pointer != "/records/0/receipt/id" {
                let shown = outcome.unwrap_err().to_string();
                assert!(shown.starts_with(&format!("record 1 ({})", ids[1])), "{shown}");
            }
        }
        // Another collector's key, pinned: the bundle is not that collector's.
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert_eq!(part(verify_bundle(&bundle, Some(&other))), Some(Part::PinnedKey));
        // Pinned, a changed bundle key is a mismatch with the pin.
        let changed = flip(&bundle, "/public_key", 10);
        assert_eq!(part(verify_bundle(&changed, Some(&key))), Some(Part::PinnedKey));
    }

    /// Even the collector's key cannot make a record its signer did not sign: a bundle whose
    /// record was changed, with its leaf, checkpoints and bundle signature all made anew by
    /// the collector, fails on the record's own signature.
    #[tokio::test]
    async fn a_record_changed_and_signed_anew_by_the_collector_fails_its_own_signature() {
        let (_dir, collector, ids) = collector_with(&[&["email-offers"]]).await;
        let bundle = record_bundle(&collector, &ids[0], false).unwrap().unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        let bytes = value["records"][0]["bytes"]
            .as_str()
            .unwrap()
            .replace("/checkout.html", "/checkout.htm");
        assert!(record::read(bytes.as_bytes()).is_ok(), "still a record, in form");
        // A log of one record: its root is its leaf, and every proof is empty.
        let leaf = merkle::leaf_hash(bytes.as_bytes());
        let origin = origin_of(&collector.store.public_key());
        let timestamp = value["latest"]["timestamp"].as_u64().unwrap();
        let note = checkpoint_body(&origin, 1, &leaf, timestamp);
        let signature = base64url(&collector.store.sign(note.as_bytes()));
        value["records"][0]["bytes"] = bytes.into();
        value["records"][0]["receipt"]["leaf_hash"] = record::hex(&leaf).into();
        for checkpoint in ["/latest", "/records/0/receipt/checkpoint"] {
            let c = value.pointer_mut(checkpoint).unwrap();
            c["root"] = record::hex(&leaf).into();
            c["note"] = note.clone().into();
            c["signature"] = signature.clone().into();
        }
        value.as_object_mut().unwrap().remove(SIGNATURE_MEMBER);
        let unsigned = jcs::canonical(&json::parse(&value.to_string()).unwrap()).unwrap();
        value[SIGNATURE_MEMBER] = base64url(&collector.store.sign(signed_message(&unsigned).as_bytes())).into();
        let forged = jcs::canonical(&json::parse(&value.to_string()).unwrap()).unwrap();
        let outcome = verify_bundle(&forged, Some(&collector.store.public_key()));
        assert_eq!(part(outcome.clone()), Some(Part::RecordSignature), "{outcome:?}");
    }

    /// The demo newsletter form in Polish with `given` ticked, assembled by the widget's own
    /// code as [`crate::testing::capture`] assembles the checkout: a smaller record (two
    /// purposes), so that a bundle of it is small enough to change byte by byte.
    fn newsletter(given: &[&str]) -> unticked_core::capture::Capture {
        let compiled = unticked_core::compiled::compile(&demo_config(), &crate::testing::demo_sha256());
        let sheet = &compiled.sheet("newsletter", "pl").unwrap().sheet;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut random = [0xb0; 10];
        random[6..].copy_from_slice(&n.to_be_bytes());
        let id = record::record_id(1_763_782_620_000, random);
        let page = unticked_core::capture::Submission {
            id: &id,
            captured_at: crate::testing::now_ms(),
            page_origin: "http://127.0.0.1:8080",
            page_path: "/",
            widget: "0.1.0",
            ticked: given,
            ticked_by_shopper: given,
            email: "ola@example.pl",
            phone: "",
            post: "",
            birthday_day: "",
            birthday_month: "",
        };
        unticked_core::capture::assemble(sheet, &page, || [6; SALT_LEN]).capture
    }

    /// A small bundle with contacts: the second of three newsletter sign-ups, so that every
    /// proof in it holds a hash.
    async fn small_bundle() -> (tempfile::TempDir, String) {
        let (dir, collector, _) = collector_with(&[]).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let body = seal(&newsletter(&["email-offers"]), 2);
            let accepted = crate::records::check(body.as_bytes(), &demo_config()).unwrap();
            ids.push(accepted.opened.record.id.clone());
            collector.append(accepted).await.unwrap();
        }
        let bundle = record_bundle(&collector, &ids[1], true).unwrap().unwrap();
        let summary = verify_bundle(&bundle, Some(&collector.store.public_key())).unwrap();
        assert_eq!((summary.records[0].texts, summary.records[0].contacts), (2, 1));
        (dir, bundle)
    }

    /// `bundle` with the byte at each position `start, start + step, …` changed (XOR 1),
    /// checked unpinned (the weaker check: pinning only adds one), the work shared among the
    /// cores. Panics naming a changed file that still verifies; counts the parts named.
    fn change_bytes(bundle: &str, start: usize, step: usize) -> HashMap<&'static str, usize> {
        let bytes = bundle.as_bytes();
        let positions: Vec<usize> = (start..bytes.len()).step_by(step).collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let counts: Vec<HashMap<&'static str, usize>> = std::thread::scope(|scope| {
            let workers: Vec<_> = positions
                .chunks(positions.len().div_ceil(threads).max(1))
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut counts: HashMap<&'static str, usize> = HashMap::new();
                        for &i in chunk {
                            let mut changed = bytes.to_vec();
                            changed[i] ^= 0x01;
                            // Not UTF-8 any more: `unticked verify` refuses it before it gets here.
                            let Ok(changed) = String::from_utf8(changed) else {
                                *counts.entry("not UTF-8").or_default() += 1;
                                continue;
                            };
                            let problem = verify_bundle(&changed, None).err().unwrap_or_else(|| {
                                panic!(
                                    "byte {i} changed still verifies: {:?}",
                                    String::from_utf8_lossy(&bytes[i.saturating_sub(20)..(i + 20).min(bytes.len())])
                                )
                            });
                            *counts
                                .entry(part_of(&problem).map_or("not a bundle", Part::as_str))
                                .or_default() += 1;
                        }
                        counts
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut total: HashMap<&'static str, usize> = HashMap::new();
        for (part, n) in counts.into_iter().flatten() {
            *total.entry(part).or_default() += n;
        }
        assert_eq!(total.values().sum::<usize>(), positions.len());
        total
    }

    /// Every third byte of a whole bundle, changed: none of the changed files verifies,
    /// and the changes land in every part. (Every byte: the ignored test below; some 20 s in
    /// a debug build on two cores, where an Ed25519 check costs some 12 ms.)
    #[tokio::test]
    async fn no_bundle_with_one_byte_changed_verifies() {
        let (_dir, bundle) = small_bundle().await;
        let started = std::time::Instant::now();
        let named = change_bytes(&bundle, 1, 3);
        eprintln!(
            "every third of {} bytes changed in {:?}: {named:?}",
            bundle.len(),
            started.elapsed()
        );
        for part in [
            Part::Manifest,
            Part::RecordBytes,
            Part::TextHash,
            Part::Receipt,
            Part::ReceiptCheckpoint,
            Part::ReceiptInclusion,
            Part::LatestCheckpoint,
            Part::LatestInclusion,
            Part::Consistency,
            Part::Contact,
            Part::PublicKey,
            Part::BundleSignature,
        ] {
            assert!(
                named.contains_key(part.as_str()),
                "no change named {}: {named:?}",
                part.as_str()
            );
        }
    }

    /// Every byte of a whole bundle, changed (run with `--ignored`).
    #[tokio::test]
    #[ignore = "every byte of a bundle: some 20 s in a debug build"]
    async fn no_bundle_with_any_one_byte_changed_verifies() {
        let (_dir, bundle) = small_bundle().await;
        let started = std::time::Instant::now();
        let named = change_bytes(&bundle, 0, 1);
        eprintln!("{} bytes changed in {:?}: {named:?}", bundle.len(), started.elapsed());
    }

    #[tokio::test]
    async fn a_subject_bundle_holds_the_subjects_records_and_contacts_only_when_asked() {
        let (_dir, collector, ids) = collector_with(FOUR).await;
        // A withdrawal the collector signs (a preference page), for the same subject.
        let changes = [("email-offers".to_string(), ConsentState::Withdrawn)];
        let change = crate::lifecycle::Change {
            identifier: "jan@example.pl",
            locale: "pl",
            source: Source::Preferences,
            signer: Signer::Collector,
            page_origin: "http://127.0.0.1:8080",
            page_path: "/preferences",
            widget: crate::lifecycle::COLLECTOR_WIDGET,
            changes: &changes,
            also: &[],
        };
        let withdrawal = crate::lifecycle::store_signed_by_collector(&collector, &change.capture(&collector).unwrap())
            .await
            .unwrap();

        let bundle = subject_bundle(&collector, "jan@example.pl", false).unwrap().unwrap();
        assert!(
            !bundle.contains("jan@example.pl") && !bundle.contains("601234567"),
            "no contact data"
        );
        let summary = verify_bundle(&bundle, Some(&collector.store.public_key())).unwrap();
        let found: Vec<&str> = summary.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            found,
            [&ids[0], &ids[1], &ids[3], &withdrawal],
            "the refusal names nobody (R8)"
        );
        assert_eq!(summary.records[3].signer, Signer::Collector);
        assert!(!summary.contacts_included && summary.records.iter().all(|r| r.contacts == 0));
        let name = bundle_file_name(&bundle);
        assert_eq!(name, format!("unticked-evidence-subject-{withdrawal}.json"));

        let with = subject_bundle(&collector, "jan@example.pl", true).unwrap().unwrap();
        assert!(with.contains("jan@example.pl"));
        assert!(
            !with.contains("601234567"),
            "only this subject's contacts, not the phone beside"
        );
        let summary = verify_bundle(&with, None).unwrap();
        assert!(summary.contacts_included && summary.records.iter().all(|r| r.contacts == 1));
        // A changed address fails its commitment.
        let at = find(&with, "/records/2/contacts/0/identifier", "example");
        let changed = flip(&with, "/records/2/contacts/0/identifier", at);
        assert_eq!(part(verify_bundle(&changed, None)), Some(Part::Contact));

        assert_eq!(subject_bundle(&collector, "nobody@example.pl", false).unwrap(), None);
        assert_eq!(
            record_bundle(&collector, "0190e5a0-0000-7000-8000-000000000000", false).unwrap(),
            None
        );
        let one = record_bundle(&collector, &ids[0], false).unwrap().unwrap();
        assert!(!one.contains("jan@example.pl"));
        assert_eq!(bundle_file_name(&one), format!("unticked-evidence-{}.json", ids[0]));
    }

    /// Hostile or broken files get a reason, never a panic.
    #[tokio::test]
    async fn malformed_bundles_are_refused_with_a_reason() {
        let unreadable = |text: &str| matches!(verify_bundle(text, None), Err(BundleProblem::Unreadable(_)));
        for text in [
            "",
            "null",
            "[]",
            "\"unticked-evidence/1\"",
            "{}",
            r#"{"format":"unticked-evidence/2"}"#,
            r#"{"format":1}"#,
            r#"{"format":"unticked-evidence/1","format":"unticked-evidence/1"}"#,
            &"[".repeat(100_000),
            "{\"format\":\"unticked-evidence/1\"",
        ] {
            assert!(unreadable(text), "{text:.40}");
        }
        // A bundle in name, but not in shape.
        for (text, expected) in [
            (r#"{"format":"unticked-evidence/1"}"#, Part::Shape),
            (r#"{ "format": "unticked-evidence/1" }"#, Part::Canonical),
            (r#"{"format":"unticked-evidence/1","n":1.5}"#, Part::Canonical),
            (r#"{"format":"unticked-evidence/1","records":"none"}"#, Part::Shape),
            (r#"{"format":"unticked-evidence/1","made_at":-1}"#, Part::Shape),
            (
                r#"{"format":"unticked-evidence/1","made_at":9007199254740993}"#,
                Part::Canonical,
            ),
        ] {
            assert_eq!(part(verify_bundle(text, None)), Some(expected), "{text}");
        }

        let (_dir, collector, ids) = collector_with(&[&["email-offers"]]).await;
        let bundle = record_bundle(&collector, &ids[0], false).unwrap().unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&bundle).unwrap();
        let rewrite = |value: &serde_json::Value| jcs::canonical(&json::parse(&value.to_string()).unwrap()).unwrap();
        // Pretty-printed (as `jq .` writes it): not the bytes signed.
        assert_eq!(
            part(verify_bundle(&serde_json::to_string_pretty(&value).unwrap(), None)),
            Some(Part::Canonical)
        );
        // Members added, removed or retyped; records none, or two of one scope "record".
        let mut cases: Vec<(serde_json::Value, Part)> = Vec::new();
        let mut with = |edit: &dyn Fn(&mut serde_json::Value), part: Part| {
            let mut v = value.clone();
            edit(&mut v);
            cases.push((v, part));
        };
        with(&|v| v["extra"] = 1.into(), Part::Shape);
        with(&|v| v["records"] = serde_json::json!([]), Part::Shape);
        with(&|v| v["scope"] = "subject".into(), Part::BundleSignature);
        with(&|v| v["scope"] = "everyone".into(), Part::Shape);
        with(&|v| v["records"][0]["bytes"] = "{}".into(), Part::RecordBytes);
        with(&|v| v["records"][0]["bytes"] = "not json".into(), Part::RecordBytes);
        with(
            &|v| v["records"][0]["receipt"]["inclusion"] = serde_json::json!(["zz"]),
            Part::ReceiptInclusion,
        );
        with(&|v| v["records"][0]["receipt"]["index"] = u64::MAX.into(), Part::Shape);
        with(
            &|v| v["records"][0]["consistency"]["from"] = 0.into(),
            Part::Consistency,
        );
        with(&|v| v["records"][0]["texts"] = serde_json::json!([]), Part::TextHash);
        with(
            &|v| {
                v["records"][0]["contacts"] = serde_json::json!([{"channel": "email", "identifier": "x", "salt": "00"}])
            },
            Part::Contact,
        );
        with(&|v| v["public_key"] = "AAAA".into(), Part::PublicKey);
        with(&|v| v["latest"]["signature"] = "!".into(), Part::LatestCheckpoint);
        with(&|v| v["signature"] = "".into(), Part::BundleSignature);
        with(
            &|v| v["records"][0]["receipt"]["checkpoint"]["size"] = 9_007_199_254_740_991u64.into(),
            Part::ReceiptCheckpoint,
        );
        for (v, expected) in cases {
            let text = serde_json::to_string(&v).unwrap();
            // u64::MAX has no canonical form here (beyond 2^53): canonical or shape, never a panic.
            let text = json::parse(&text)
                .ok()
                .and_then(|j| jcs::canonical(&j).ok())
                .unwrap_or(text);
            let outcome = verify_bundle(&text, None);
            assert!(
                part(outcome.clone()) == Some(expected)
                    || (expected == Part::Shape && part(outcome.clone()) == Some(Part::Canonical)),
                "{v}: {outcome:?}"
            );
        }
        // Two records under scope "record".
        let record = value["records"][0].clone();
        value["records"].as_array_mut().unwrap().push(record);
        assert_eq!(part(verify_bundle(&rewrite(&value), None)), Some(Part::Shape));
        assert_eq!(bundle_file_name("not json"), "unticked-evidence.json");
    }

    #[tokio::test]
    async fn the_routes_answer_a_download_behind_the_token() {
        use axum::body::Body;
        use axum::http::{Request, StatusCode};
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        const TOKEN: &str = "bundle-test-token-0123456789abcdef";
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config.clone(),
            Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap(),
            crate::serve::Settings {
                admin_token: Some(TOKEN.into()),
                ..crate::testing::settings()
            },
        );
        let call = |method: &str, uri: &str, token: Option<&str>, body: String| {
            let mut request = Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json")
                .header("host", "127.0.0.1:8080");
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request.body(Body::from(body)).unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status();
                let head = response.headers().clone();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (status, head, String::from_utf8(bytes.to_vec()).unwrap())
            }
        };
        let delivery = seal(&capture(&config, &["email-offers"]), 1);
        let id = serde_json::from_str::<serde_json::Value>(&delivery).unwrap()["record"]
            .as_str()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap();
        assert_eq!(call("POST", "/v1/records", None, delivery).await.0, StatusCode::CREATED);

        let path = format!("/v1/admin/records/{id}/bundle");
        assert_eq!(
            call("GET", &path, None, String::new()).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, head, bundle) = call("GET", &path, Some(TOKEN), String::new()).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(head["content-type"], "application/json");
        assert_eq!(
            head["content-disposition"].to_str().unwrap(),
            format!("attachment; filename=\"unticked-evidence-{id}.json\"")
        );
        assert!(verify_bundle(&bundle, None).is_ok() && !bundle.contains("jan@example.pl"));
        let (_, _, with) = call("GET", &format!("{path}?contacts=true"), Some(TOKEN), String::new()).await;
        assert!(with.contains("jan@example.pl") && verify_bundle(&with, None).is_ok());
        let (status, _, body) = call("GET", &format!("{path}?contacts=yes"), Some(TOKEN), String::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, _, body) = call("GET", "/v1/admin/records/nope/bundle", Some(TOKEN), String::new()).await;
        assert_eq!(
            (status, body.contains("not-found")),
            (StatusCode::NOT_FOUND, true),
            "{body}"
        );

        let who = r#"{"identifier":" JAN@Example.PL","contacts":true}"#.to_string();
        assert_eq!(
            call("POST", "/v1/admin/subjects/bundle", None, who.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, head, bundle) = call("POST", "/v1/admin/subjects/bundle", Some(TOKEN), who).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        let disposition = head["content-disposition"].to_str().unwrap();
        assert!(
            !disposition.contains("jan") && disposition.contains(&id),
            "{disposition}"
        );
        assert!(bundle.contains("jan@example.pl") && verify_bundle(&bundle, None).is_ok());
        let (status, _, body) = call(
            "POST",
            "/v1/admin/subjects/bundle",
            Some(TOKEN),
            r#"{"identifier":"anna@example.pl"}"#.into(),
        )
        .await;
        assert_eq!(
            (status, body.contains("unknown-subject")),
            (StatusCode::NOT_FOUND, true),
            "{body}"
        );
        let (status, _, _) = call(
            "POST",
            "/v1/admin/subjects/bundle",
            Some(TOKEN),
            r#"{"identifier":"x"}"#.into(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

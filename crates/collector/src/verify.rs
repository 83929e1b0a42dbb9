//! `unticked verify --db FILE`: recomputes the whole log from the stored bytes and checks
//! it against every signed checkpoint, and checks what lies beside the log: every purpose
//! text and every config served against its hash, every disclosure and every birthday kept
//! against the commitment it backs, every time received against the checkpoint that signed
//! it. Any edit, deletion or reordering of the stored records, a truncation of the records,
//! an altered or removed checkpoint, an edited time, text, config or disclosure, is found
//! and named by the first log index (or text, or config) it touches.
//!
//! What the database alone cannot show: cutting off the newest records *together with*
//! their checkpoints. That needs no key (what is left is a smaller, correctly signed log),
//! and a key holder can also rewrite and sign anew. Against both, keep checkpoints outside
//! the collector: a receipt or `GET /v1/checkpoint` saved now and then (`--checkpoint`), or
//! every checkpoint as it is made (`serve --witness`, then `verify --witness`): the log must
//! still hold exactly each tree they signed.

use crate::db::{params, Access, Db, DbError, Dialect, Location, Sql, SqlExt};
use crate::store::{checkpoint_body, origin_of, Keys};
use crate::texts::sha256_hex;
use base64ct::Encoding;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::HashMap;
use std::path::Path;
use unticked_core::capture::{committed_bytes, Disclosure, SALT_LEN};
use unticked_core::config::ExtraField;
use unticked_core::merkle::{self, Tree};
use unticked_core::record;

/// A log that checks out.
#[derive(Debug, PartialEq, Eq)]
pub struct Clean {
    pub records: u64,
    pub checkpoints: u64,
    pub root: merkle::Hash,
    /// Purpose texts checked against their hashes.
    pub texts: u64,
    /// Disclosures checked against their records' commitments.
    pub disclosures: u64,
    /// Checkpoints kept outside (`--checkpoint`, `--witness`) the log still holds.
    pub anchors: u64,
    /// Records sequenced by a PostgreSQL instance that are not yet in the tree: never
    /// acknowledged, and integrated by the next instance that runs (crate::store). Not
    /// counted in `records`.
    pub pending: u64,
    /// What could not be checked, and why.
    pub unchecked: Vec<&'static str>,
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The database or key cannot be read (exit 2).
    Unreadable(String),
    /// The log was tampered with, from this index on (exit 1).
    At { index: u64, problem: String },
    /// A stored purpose text is not the text its hash names (exit 1).
    Text { sha256: String, problem: String },
    /// A stored config is not the text its hash names (exit 1).
    Config { sha256: String, problem: String },
}

/// A record that says the collector signed it (a step taken on its preference page or by
/// one-click unsubscribe) is signed with this log's own key: the one its checkpoints are.
fn collector_signed_by_log(opened: &record::OpenedRecord, log_key: &VerifyingKey) -> Result<(), String> {
    if opened.record.signer == record::Signer::Collector && opened.signature.public_key != log_key.as_bytes() {
        return Err("the record says the collector signed it, but not with this log's key".into());
    }
    Ok(())
}

fn at(index: u64, problem: impl Into<String>) -> Broken {
    Broken::At {
        index,
        problem: problem.into(),
    }
}

/// A checkpoint kept outside the collector: `{size, root, timestamp, signature}` as
/// `GET /v1/checkpoint` or a receipt gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub size: u64,
    pub root: merkle::Hash,
    pub timestamp: u64,
    pub signature: Vec<u8>,
    /// Where it was read (`--checkpoint`, `witness line 3`), for the messages.
    pub from: String,
}

impl Anchor {
    /// Reads a checkpoint as JSON (a whole receipt works too); `from` names where it was read.
    pub fn from_json(text: &str, from: &str) -> Result<Anchor, Broken> {
        let bad = || Broken::Unreadable(format!("{from}: not a checkpoint as GET /v1/checkpoint gives it"));
        let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let c = if value.get("checkpoint").is_some() {
            &value["checkpoint"]
        } else {
            &value
        };
        Ok(Anchor {
            size: c["size"].as_u64().ok_or_else(bad)?,
            root: c["root"].as_str().and_then(unhex).ok_or_else(bad)?,
            timestamp: c["timestamp"].as_u64().ok_or_else(bad)?,
            signature: c["signature"]
                .as_str()
                .and_then(|s| base64ct::Base64UrlUnpadded::decode_vec(s).ok())
                .ok_or_else(bad)?,
            from: from.to_string(),
        })
    }

    /// Every checkpoint in a witness file (`serve --witness FILE`), one JSON line each, in
    /// the order they were made. A last line without its newline is a write the crash of
    /// the collector cut short, and is left out; any other unreadable line is an error.
    pub fn from_witness(text: &str) -> Result<Vec<Anchor>, Broken> {
        let mut anchors = Vec::new();
        let torn = !text.is_empty() && !text.ends_with('\n');
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        for (n, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match Anchor::from_json(line, &format!("witness line {}", n + 1)) {
                Ok(anchor) => anchors.push(anchor),
                Err(_) if torn && n + 1 == lines.len() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(anchors)
    }

    /// The anchor is the collector's, and the rebuilt `tree` still holds what it signed.
    fn check(&self, key: &VerifyingKey, tree: &Tree) -> Result<(), Broken> {
        let body = checkpoint_body(&origin_of(key), self.size, &self.root, self.timestamp);
        let signed = Signature::from_slice(&self.signature).is_ok_and(|s| key.verify(body.as_bytes(), &s).is_ok());
        if !signed {
            return Err(Broken::Unreadable(format!(
                "{} is not signed by this collector's key",
                self.from
            )));
        }
        if tree.root(self.size) != Some(self.root) {
            return Err(at(
                self.size.min(tree.len()),
                format!(
                    "the log no longer holds the tree of {} records that {} signed at {}",
                    self.size, self.from, self.timestamp
                ),
            ));
        }
        Ok(())
    }

    /// The database still holds this very checkpoint: the collector stores every checkpoint
    /// it publishes, and they are never removed, so a missing one or one signed with another
    /// time is a rewrite.
    fn check_stored(&self, sql: &mut dyn Sql) -> Result<(), Broken> {
        let stored: Option<u64> = sql.value("SELECT timestamp FROM checkpoints WHERE size = ?1", params![self.size])?;
        let last = self.size.saturating_sub(1);
        match stored {
            None => Err(at(
                last,
                format!(
                    "the checkpoint of size {} that {} holds is no longer in the log",
                    self.size, self.from
                ),
            )),
            Some(timestamp) if timestamp != self.timestamp => Err(at(
                last,
                format!(
                    "the log's checkpoint of size {} is signed at {timestamp}, but {} holds it signed at {}: it was signed anew",
                    self.size, self.from, self.timestamp
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

/// The collector's public key: base64url, or read from its key file.
pub fn public_key(base64url: Option<&str>, key_file: &Path) -> Result<VerifyingKey, Broken> {
    match base64url {
        Some(text) => base64ct::Base64UrlUnpadded::decode_vec(text)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| Broken::Unreadable("--public-key is not a base64url Ed25519 key".into())),
        None => Ok(Keys::load(key_file)
            .map_err(|e| Broken::Unreadable(e.to_string()))?
            .verifying()),
    }
}

/// A disclosure as stored in `subjects`.
struct StoredDisclosure {
    /// As stored: read signed, so that a value edited out of range is named as tampering
    /// (exit 1) rather than as an unreadable database (exit 2).
    index: i64,
    position: i64,
    channel: String,
    lookup: Vec<u8>,
    identifier: String,
    salt: Vec<u8>,
    /// The birthday kept with it (R8), and its salt (none: kept before records committed to
    /// birthdays).
    birthday: Option<String>,
    birthday_salt: Option<Vec<u8>>,
}

/// Records read at once: the log and its disclosures are walked page by page, by index, so
/// that neither is held in memory whole and one connection serves both.
const PAGE: u64 = 2048;

impl From<DbError> for Broken {
    fn from(e: DbError) -> Broken {
        Broken::Unreadable(e.to_string())
    }
}

/// Verifies the log at `location` (a SQLite file or a PostgreSQL database) against the
/// collector's public key, and the checkpoints kept outside it (`anchors`). With the key
/// file's `keys`, the keyed subject index is checked too (it is an HMAC under the key file's
/// secret, which an auditor holding only the public key does not have).
pub fn verify(
    location: &Location,
    public: &VerifyingKey,
    keys: Option<&Keys>,
    anchors: &[Anchor],
) -> Result<Clean, Broken> {
    if let Some(file) = location.file() {
        if !file.exists() {
            return Err(Broken::Unreadable(format!("{}: no such file", file.display())));
        }
    }
    let mut db = Db::open(location, Access::ReadOnly)?;
    // One snapshot for every table: a collector writing meanwhile must not make a newer
    // checkpoint look like one whose records were removed.
    db.snapshot(|sql| verify_in(sql, public, keys, anchors))
}

fn verify_in(
    sql: &mut dyn Sql,
    public: &VerifyingKey,
    keys: Option<&Keys>,
    anchors: &[Anchor],
) -> Result<Clean, Broken> {
    let origin = origin_of(public);

    // Layer 3 (DESIGN.md): a text is stored under the SHA-256 of its UTF-8, which is what
    // the record signs; `GET /v1/texts/{sha256}` must never serve other wording.
    // Each text's purpose and locale, as `GET /v1/texts/{sha256}` labels it.
    let mut texts: HashMap<String, (String, String)> = HashMap::new();
    for mut row in sql.rows("SELECT sha256, purpose, locale, text FROM texts ORDER BY sha256", &[])? {
        let sha256: String = row.take(0)?;
        let purpose: String = row.take(1)?;
        let locale: String = row.take(2)?;
        let text: String = row.take(3)?;
        let actual = sha256_hex(text.as_bytes());
        if actual != sha256 {
            return Err(Broken::Text {
                sha256,
                problem: format!(
                    "the stored text of purpose {purpose} ({locale}) hashes to {actual}: its wording was changed or swapped"
                ),
            });
        }
        texts.insert(sha256, (purpose, locale));
    }

    check_configs(sql)?;

    // A SQLite log no collector of this version has opened yet has no birthday salts; a
    // PostgreSQL log was made with them.
    let has_birthday_salt = match sql.dialect() {
        Dialect::Postgres => true,
        Dialect::Sqlite => sql
            .value::<i64>(
                "SELECT 1 FROM pragma_table_info('subjects') WHERE name = 'birthday_salt'",
                &[],
            )?
            .is_some(),
    };
    let birthday_salt = if has_birthday_salt { "birthday_salt" } else { "NULL" };
    let disclosures_sql = format!(
        "SELECT idx, position, channel, lookup, identifier, salt, birthday, {birthday_salt} FROM subjects WHERE idx >= ?1 AND idx < ?2 ORDER BY idx, position"
    );
    let mut disclosures_checked = 0u64;
    let mut birthdays_unbound = 0u64;

    let mut tree = Tree::new();
    // Each record's time received, checked against the checkpoints below; none for a record
    // sequenced by a PostgreSQL instance but not yet integrated into the tree.
    let mut received: Vec<Option<u64>> = Vec::new();
    // The first record sequenced but not yet integrated: on PostgreSQL an instance stores a
    // batch first and integrates it in a second transaction (crate::store); a batch whose
    // instance died between the two is integrated by the next instance. None was ever
    // acknowledged, and every record after it must be awaiting integration too.
    let mut first_pending: Option<u64> = None;
    loop {
        let start = tree.len();
        let page = sql.rows(
            "SELECT idx, id, bytes, received_at FROM log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
            params![start, PAGE],
        )?;
        if page.is_empty() {
            break;
        }
        let end = start + page.len() as u64;
        let mut disclosures = sql
            .rows(&disclosures_sql, params![start, end])?
            .into_iter()
            .map(|mut row| {
                Ok::<_, DbError>(StoredDisclosure {
                    index: row.take(0)?,
                    position: row.take(1)?,
                    channel: row.take(2)?,
                    lookup: row.take(3)?,
                    identifier: row.take(4)?,
                    salt: row.take(5)?,
                    birthday: row.take(6)?,
                    birthday_salt: row.take(7)?,
                })
            });
        let mut disclosures = std::iter::from_fn(|| disclosures.next()).peekable();
        for mut row in page {
            let expected = tree.len();
            let idx: i64 = row.take(0)?;
            if idx != expected as i64 {
                return Err(at(
                    expected,
                    format!("the record is missing (the next stored is at {idx})"),
                ));
            }
            let idx = expected;
            let id: String = row.take(1)?;
            let bytes: Vec<u8> = row.take(2)?;
            let received_at: Option<i64> = row.take(3)?;
            match received_at {
                None => {
                    first_pending.get_or_insert(idx);
                    received.push(None);
                }
                Some(_) if first_pending.is_some() => {
                    return Err(at(
                        idx,
                        "the record has a time received, but a record before it awaits integration: records were reordered",
                    ));
                }
                Some(time) => {
                    let Ok(time) = u64::try_from(time) else {
                        return Err(at(idx, format!("received_at {time} is no time: it was edited")));
                    };
                    received.push(Some(time));
                }
            }
            let opened = match record::open(&bytes) {
                Err(e) => return Err(at(idx, format!("the record does not open: {e}"))),
                Ok(opened) if opened.record.id != id => {
                    return Err(at(
                        idx,
                        format!("stored under id {id} but it is record {}", opened.record.id),
                    ))
                }
                Ok(opened) => {
                    collector_signed_by_log(&opened, public).map_err(|problem| at(idx, problem))?;
                    opened.record
                }
            };
            for purpose in &opened.purposes {
                let Some((labelled, locale)) = texts.get(&purpose.text_sha256) else {
                    return Err(at(
                        idx,
                        format!(
                            "purpose {} names text {}, which is not stored: what the shopper was shown is lost",
                            purpose.id, purpose.text_sha256
                        ),
                    ));
                };
                // The text's labels must be the record's: a text shown for purpose P in
                // locale L is stored under P and L. (Its version is not compared: a version
                // bump that kept the wording stores the text once, under the first version
                // that showed it.)
                if *labelled != purpose.id || *locale != opened.locale {
                    return Err(at(
                        idx,
                        format!(
                            "text {} is labelled purpose {labelled} ({locale}), but the record showed it for {} ({})",
                            purpose.text_sha256, purpose.id, opened.locale
                        ),
                    ));
                }
            }
            // Erased disclosures are simply absent (Art. 17, R10); those held must back the
            // record's commitments, or a look-up, an export or an erasure acts on the wrong
            // person.
            while let Some(next) = disclosures.next_if(|d| d.as_ref().map_or(true, |d| d.index <= idx as i64)) {
                let held = next?;
                if held.index < idx as i64 {
                    return Err(at(
                        u64::try_from(held.index).unwrap_or(0),
                        "a disclosure is held for a record the log does not hold",
                    ));
                }
                check_disclosure(&held, &opened, keys, idx, &mut birthdays_unbound)?;
                disclosures_checked += 1;
            }
            tree.push(merkle::leaf_hash(&bytes));
        }
        if let Some(held) = disclosures.next() {
            let index = held?.index;
            return Err(at(
                u64::try_from(index).unwrap_or(0),
                "a disclosure is held for a record the log does not hold",
            ));
        }
    }
    // Disclosures below the first index or past the last record's.
    if let Some(index) = sql.value::<i64>(
        "SELECT idx FROM subjects WHERE idx < 0 OR idx >= ?1 ORDER BY idx LIMIT 1",
        params![tree.len()],
    )? {
        return Err(at(
            u64::try_from(index).unwrap_or(0),
            "a disclosure is held for a record the log does not hold",
        ));
    }
    let integrated = first_pending.unwrap_or(tree.len());

    let (mut covered, mut count, mut previous_timestamp) = (0u64, 0u64, 0u64);
    for mut row in sql.rows(
        "SELECT size, root, signature, timestamp FROM checkpoints ORDER BY size",
        &[],
    )? {
        let size: u64 = row.take(0)?;
        let root: Vec<u8> = row.take(1)?;
        let signature: Vec<u8> = row.take(2)?;
        let timestamp: u64 = row.take(3)?;
        let Ok(root) = <merkle::Hash>::try_from(root) else {
            return Err(at(
                covered,
                format!("the checkpoint of size {size} has no 32-byte root"),
            ));
        };
        let signed = Signature::from_slice(&signature).ok().is_some_and(|s| {
            public
                .verify(checkpoint_body(&origin, size, &root, timestamp).as_bytes(), &s)
                .is_ok()
        });
        if !signed {
            return Err(at(
                covered,
                format!("the checkpoint of size {size} is not signed by this collector's key"),
            ));
        }
        if size <= covered {
            return Err(at(
                covered,
                format!("a checkpoint of size {size} follows one of size {covered}: sizes only grow"),
            ));
        }
        if size > tree.len() {
            return Err(at(
                tree.len(),
                format!(
                    "a checkpoint covers {size} records but the log ends at {}: records were removed",
                    tree.len()
                ),
            ));
        }
        if tree.root(size) != Some(root) {
            let first = if covered < size {
                covered
            } else {
                size.saturating_sub(1)
            };
            return Err(at(
                first,
                format!("the records up to {size} do not hash to their signed checkpoint"),
            ));
        }
        // Times: the writer commits a batch with one time, which is every record's
        // `received_at` and the signed timestamp of the batch's one checkpoint, so each
        // record's time must equal that of the first checkpoint covering it. An edited time,
        // or a removed checkpoint (whose records then fall under a later one), breaks that
        // equality at the first record it touches. Since the checkpoints' times never go
        // back, the records' times never go back in log order either.
        //
        // Collectors before this check stamped a batch with the clock alone, so two batches
        // in one millisecond left two checkpoints with the same time. The equality still
        // holds there (a batch's records share a time, and the first checkpoint covering
        // them is that batch's own), so such a log passes; only its removed checkpoints can
        // hide, when their time equals the next one's. Hence equal times are accepted and
        // only a step back is refused (the writer now makes each strictly later; a log
        // written before that by a collector whose clock stepped back fails here).
        if timestamp < previous_timestamp {
            return Err(at(
                covered,
                format!(
                    "the checkpoint of size {size} is signed at {timestamp}, before the one of size {covered} ({previous_timestamp})"
                ),
            ));
        }
        for index in covered..size {
            // `received` has an entry for every index below `tree.len()`, which `size` does not exceed.
            match received[index as usize] {
                Some(time) if time == timestamp => {}
                Some(time) => {
                    return Err(at(
                        index,
                        format!(
                            "received at {time}, but the first checkpoint covering it (size {size}) was signed at {timestamp}: the time was changed, or a checkpoint removed"
                        ),
                    ))
                }
                None => {
                    return Err(at(
                        index,
                        format!(
                            "the checkpoint of size {size} covers it, but it has no time received: the time was removed"
                        ),
                    ))
                }
            }
        }
        covered = size;
        previous_timestamp = timestamp;
        count += 1;
    }
    if covered < integrated {
        return Err(at(covered, "the records from here on are in no signed checkpoint"));
    }
    for anchor in anchors {
        anchor.check(public, &tree)?;
        anchor.check_stored(sql)?;
    }
    let mut unchecked = Vec::new();
    if keys.is_none() && disclosures_checked > 0 {
        unchecked.push("the keyed subject index: it needs the key file (--key), not only --public-key");
    }
    if birthdays_unbound > 0 {
        unchecked.push("birthdays kept before records committed to them: they have no commitment to check against");
    }
    Ok(Clean {
        records: integrated,
        checkpoints: count,
        root: tree.root(integrated).unwrap_or_else(merkle::empty_root),
        texts: texts.len() as u64,
        disclosures: disclosures_checked,
        anchors: anchors.len() as u64,
        pending: tree.len() - integrated,
        unchecked,
    })
}

/// A disclosure held beside record `idx` backs the record's commitment at its position.
fn check_disclosure(
    held: &StoredDisclosure,
    opened: &unticked_core::record::ConsentRecord,
    keys: Option<&Keys>,
    idx: u64,
    birthdays_unbound: &mut u64,
) -> Result<(), Broken> {
    let position = held.position;
    let Some(commitment) = usize::try_from(position).ok().and_then(|p| opened.subjects.get(p)) else {
        return Err(at(
            idx,
            format!(
                "a disclosure is held at position {position}, but the record commits to {} subjects",
                opened.subjects.len()
            ),
        ));
    };
    if commitment.channel.as_str() != held.channel {
        return Err(at(
            idx,
            format!(
                "the disclosure at position {position} is for {}, but the record commits to {} there",
                held.channel,
                commitment.channel.as_str()
            ),
        ));
    }
    let disclosure = <[u8; SALT_LEN]>::try_from(held.salt.as_slice()).map(|salt| Disclosure {
        channel: commitment.channel,
        identifier: held.identifier.clone(),
        salt,
    });
    // The commitment is SHA-256(salt ‖ identifier) (R10, `Disclosure::committed_bytes`).
    if disclosure.map_or(true, |d| sha256_hex(&d.committed_bytes()) != commitment.commitment) {
        return Err(at(
            idx,
            format!(
                "the disclosure at position {position} ({}) does not hash to the record's commitment: its identifier or salt was changed",
                held.channel
            ),
        ));
    }
    // A birthday kept hashes, with its salt, to the record's commitment to it (R8,
    // `Salted::committed_bytes`); one kept before records committed to birthdays has
    // neither salt nor commitment, and cannot be checked.
    if let Some(birthday) = &held.birthday {
        let commitment = opened
            .beside
            .iter()
            .find(|b| b.field == ExtraField::Birthday)
            .map(|b| b.commitment.as_str());
        match (commitment, &held.birthday_salt) {
            (None, None) => *birthdays_unbound += 1,
            (Some(commitment), Some(salt)) if sha256_hex(&committed_bytes(salt, birthday)) == commitment => {}
            _ => {
                return Err(at(
                    idx,
                    format!(
                        "the birthday kept with the disclosure at position {position} does not hash to the record's commitment: it or its salt was changed"
                    ),
                ))
            }
        }
    }
    if let Some(keys) = keys {
        if keys.lookup(&held.identifier)[..] != held.lookup[..] {
            return Err(at(
                idx,
                format!(
                    "the disclosure at position {position} ({}) is indexed under another key: a look-up or an erasure would miss it",
                    held.channel
                ),
            ));
        }
    }
    Ok(())
}

/// Every config served (crate::history) is stored under the SHA-256 of its text: the
/// collector checks records against the version they name, so an edited config would let
/// it take records against wording no shopper was shown, and `GET /v1/configs/{sha256}`
/// give it out as the one they were. A SQLite log no collector of this version has opened
/// has no configs.
fn check_configs(sql: &mut dyn Sql) -> Result<(), Broken> {
    if sql.dialect() == Dialect::Sqlite
        && sql
            .value::<i64>(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'configs'",
                &[],
            )?
            .is_none()
    {
        return Ok(());
    }
    for mut row in sql.rows("SELECT sha256, text FROM configs ORDER BY first_served, sha256", &[])? {
        let sha256: String = row.take(0)?;
        let text: String = row.take(1)?;
        let actual = crate::compile::config_sha256(&text);
        if actual != sha256 {
            return Err(Broken::Config {
                sha256,
                problem: format!("the stored config hashes to {actual}: it was edited or swapped"),
            });
        }
    }
    Ok(())
}

/// `GET path` on a collector at `http://host:port`, with the admin token; the parsed JSON.
async fn get_json(authority: &str, path: &str, token: &str) -> Result<serde_json::Value, String> {
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let (status, body) = crate::http::send_once(authority, request).await?;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "{path}: HTTP {status}: {}",
            json["message"].as_str().unwrap_or("")
        ));
    }
    Ok(json)
}

fn unhex(text: &str) -> Option<merkle::Hash> {
    record::unhex(text)?.try_into().ok()
}

/// Verifies a running collector: its latest checkpoint is signed by its key (`pinned`, a
/// base64url Ed25519 key, when given, so that a collector cannot swap keys unnoticed), and
/// every record it holds up to that size, fetched through the admin log endpoint, opens and
/// hashes to the checkpoint's root.
pub fn verify_url(url: &str, token: &str, pinned: Option<&str>, anchors: &[Anchor]) -> Result<Clean, Broken> {
    let authority = url
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| Broken::Unreadable("--url is http://host:port (put TLS in front for anything else)".into()))?
        .to_string();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Broken::Unreadable(e.to_string()))?;
    runtime.block_on(async {
        let checkpoint = get_json(&authority, "/v1/checkpoint", token)
            .await
            .map_err(Broken::Unreadable)?;
        let size = checkpoint["size"].as_u64().unwrap_or(0);
        let root = checkpoint["root"].as_str().and_then(unhex);
        let key = pinned.or(checkpoint["public_key"].as_str()).unwrap_or("");
        let key = base64ct::Base64UrlUnpadded::decode_vec(key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| Broken::Unreadable("no usable collector key".into()))?;
        let signature = checkpoint["signature"]
            .as_str()
            .and_then(|s| base64ct::Base64UrlUnpadded::decode_vec(s).ok())
            .and_then(|s| Signature::from_slice(&s).ok());
        let Some(root) = root else {
            return Err(at(0, "the checkpoint has no root"));
        };
        let timestamp = checkpoint["timestamp"].as_u64().unwrap_or(0);
        let body = checkpoint_body(&origin_of(&key), size, &root, timestamp);
        if signature.is_none_or(|s| key.verify(body.as_bytes(), &s).is_err()) {
            return Err(at(
                0,
                format!("the checkpoint of size {size} is not signed by the collector's key"),
            ));
        }
        let mut tree = Tree::new();
        while tree.len() < size {
            let page = get_json(&authority, &format!("/v1/admin/log?start={}", tree.len()), token)
                .await
                .map_err(Broken::Unreadable)?;
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            if entries.is_empty() {
                return Err(at(
                    tree.len(),
                    format!("the collector serves no record here, but its checkpoint covers {size}"),
                ));
            }
            for entry in entries.iter().take((size - tree.len()) as usize) {
                let index = tree.len();
                if entry["index"].as_u64() != Some(index) {
                    return Err(at(index, "the record is missing"));
                }
                let bytes = entry["record"].as_str().unwrap_or("");
                match record::open(bytes.as_bytes()) {
                    Err(e) => return Err(at(index, format!("the record does not open: {e}"))),
                    Ok(opened) => collector_signed_by_log(&opened, &key).map_err(|problem| at(index, problem))?,
                }
                tree.push(merkle::leaf_hash(bytes.as_bytes()));
            }
        }
        if tree.root(size) != Some(root) {
            return Err(at(
                0,
                format!("the records do not hash to the signed checkpoint of size {size}"),
            ));
        }
        for anchor in anchors {
            anchor.check(&key, &tree)?;
        }
        Ok(Clean {
            records: size,
            checkpoints: 1,
            root,
            texts: 0,
            disclosures: 0,
            anchors: anchors.len() as u64,
            pending: 0,
            unchecked: vec!["texts, disclosures and times: those need the database (--db)"],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Appended, Store};
    use crate::testing::{capture, demo_config, seal};
    use rusqlite::Connection;

    /// A log of `n` records made through the store, as the collector makes it, each
    /// appended on its own (so each has its own checkpoint), refusing everything.
    fn log(n: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        log_of(n, &[], None)
    }

    /// A log of `n` records giving `given`, published to `witness` when one is named.
    fn log_of(
        n: usize,
        given: &[&str],
        witness: Option<&Path>,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let store = Store::open(&db, &crate::texts::Shown::of(&demo_config())).unwrap();
        if let Some(path) = witness {
            store.witness_to(crate::witness::Witness::open(path.to_str().unwrap()).unwrap());
        }
        append(&store, 0, n, given);
        drop(store);
        let key = Keys::path_for(&db);
        (dir, db, key)
    }

    /// Appends `n` records one by one, expecting them at `first`, `first + 1`, …
    fn append(store: &Store, first: usize, n: usize, given: &[&str]) {
        let config = demo_config();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for i in first..first + n {
            let body = seal(&capture(&config, given), i as u8);
            let accepted = crate::records::check(body.as_bytes(), &config).unwrap();
            let id = accepted.opened.record.id.clone();
            let appended = runtime.block_on(store.append(id, accepted.bytes, accepted.disclosures, accepted.birthday));
            assert_eq!(appended.unwrap(), Appended::New(i as u64));
        }
    }

    fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
        Connection::open(db).unwrap().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn tamper(db: &Path, sql: &str) {
        Connection::open(db).unwrap().execute_batch(sql).unwrap();
    }

    fn check(db: &Path, key: &Path) -> Result<Clean, Broken> {
        let keys = Keys::load(key).map_err(|e| Broken::Unreadable(e.to_string()))?;
        verify(&Location::from(db), &keys.verifying(), Some(&keys), &[])
    }

    fn problem_at(db: &Path, key: &Path) -> (u64, String) {
        match check(db, key) {
            Err(Broken::At { index, problem }) => (index, problem),
            other => panic!("expected tampering to be found, got {other:?}"),
        }
    }

    fn broken_at(db: &Path, key: &Path) -> u64 {
        match check(db, key) {
            Err(Broken::At { index, .. }) => index,
            other => panic!("expected tampering to be found, got {other:?}"),
        }
    }

    #[test]
    fn an_untouched_log_is_clean() {
        let (_dir, db, key) = log(5);
        let clean = check(&db, &key).unwrap();
        assert_eq!((clean.records, clean.checkpoints), (5, 5));
    }

    #[test]
    fn one_changed_byte_in_a_stored_record_is_found_at_its_index() {
        let (_dir, db, key) = log(5);
        // The signature no longer verifies…
        tamper(
            &db,
            "UPDATE log SET bytes = CAST(replace(CAST(bytes AS TEXT), 'refused', 'refusee') AS BLOB) WHERE idx = 3",
        );
        assert_eq!(broken_at(&db, &key), 3);
        // …and a record replaced by another validly signed one breaks the tree instead.
        let (_dir, db, key) = log(5);
        let (_other, other_db, _) = log(6);
        let bytes: Vec<u8> = Connection::open(&other_db)
            .unwrap()
            .query_row("SELECT bytes FROM log WHERE idx = 5", [], |r| r.get(0))
            .unwrap();
        let id = record::open(&bytes).unwrap().record.id;
        let conn = Connection::open(&db).unwrap();
        conn.execute(
            "UPDATE log SET bytes = ?1, id = ?2 WHERE idx = 2",
            rusqlite::params![bytes, id],
        )
        .unwrap();
        assert_eq!(broken_at(&db, &key), 2);
    }

    #[test]
    fn a_deleted_row_is_found() {
        let (_dir, db, key) = log(5);
        tamper(&db, "DELETE FROM log WHERE idx = 1");
        assert_eq!(broken_at(&db, &key), 1);
    }

    #[test]
    fn two_swapped_rows_are_found() {
        let (_dir, db, key) = log(5);
        tamper(
            &db,
            "UPDATE log SET idx = -1 WHERE idx = 2; UPDATE log SET idx = 2 WHERE idx = 3; UPDATE log SET idx = 3 WHERE idx = -1;",
        );
        assert_eq!(broken_at(&db, &key), 2);
    }

    #[test]
    fn a_truncated_log_is_found() {
        let (_dir, db, key) = log(5);
        tamper(&db, "DELETE FROM log WHERE idx >= 3");
        assert_eq!(broken_at(&db, &key), 3);
        // Truncating the checkpoints too leaves the records' tail outside any checkpoint…
        let (_dir, db, key) = log(5);
        tamper(&db, "DELETE FROM checkpoints WHERE size > 3");
        assert_eq!(broken_at(&db, &key), 3);
    }

    #[test]
    fn an_altered_checkpoint_is_found() {
        let (_dir, db, key) = log(5);
        tamper(&db, "UPDATE checkpoints SET root = zeroblob(32) WHERE size = 4");
        assert_eq!(broken_at(&db, &key), 3);
        let (_dir, db, key) = log(5);
        tamper(&db, "UPDATE checkpoints SET size = 6 WHERE size = 5");
        assert_eq!(broken_at(&db, &key), 4);
    }

    #[test]
    fn erasing_a_subject_keeps_the_log_clean() {
        let (_dir, db, key) = log(3);
        tamper(&db, "DELETE FROM subjects");
        assert!(check(&db, &key).is_ok());
    }

    #[test]
    fn a_missing_database_or_key_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        assert!(matches!(
            check(&missing, &Keys::path_for(&missing)),
            Err(Broken::Unreadable(_))
        ));
    }

    #[test]
    fn a_checkpoint_kept_outside_finds_a_truncation_the_log_alone_cannot() {
        let (_dir, db, key) = log(5);
        let public = public_key(None, &key).unwrap();
        let anchor = Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT size, root, signature, timestamp FROM checkpoints WHERE size = 5",
                [],
                |r| {
                    Ok(Anchor {
                        size: r.get(0)?,
                        root: r.get::<_, Vec<u8>>(1)?.try_into().unwrap(),
                        signature: r.get(2)?,
                        timestamp: r.get(3)?,
                        from: "--checkpoint".into(),
                    })
                },
            )
            .unwrap();
        assert!(verify(
            &Location::from(db.as_path()),
            &public,
            None,
            std::slice::from_ref(&anchor)
        )
        .is_ok());
        // Records and their checkpoints cut back together: consistent with itself…
        tamper(
            &db,
            "DELETE FROM log WHERE idx >= 3; DELETE FROM checkpoints WHERE size > 3",
        );
        assert!(check(&db, &key).is_ok(), "the log alone cannot tell");
        // …but not with the checkpoint the auditor kept.
        assert!(matches!(
            verify(
                &Location::from(db.as_path()),
                &public,
                None,
                std::slice::from_ref(&anchor)
            ),
            Err(Broken::At { index: 3, .. })
        ));
        let forged = Anchor {
            timestamp: anchor.timestamp + 1,
            ..anchor
        };
        assert!(matches!(
            verify(&Location::from(db.as_path()), &public, None, &[forged]),
            Err(Broken::Unreadable(_))
        ));
    }

    #[test]
    fn a_log_whose_key_file_is_lost_is_not_reopened_with_a_new_key() {
        let (_dir, db, key) = log(2);
        std::fs::remove_file(&key).unwrap();
        let refused = Store::open(&db, &crate::texts::Shown::of(&demo_config()))
            .err()
            .expect("refused");
        assert!(refused.to_string().contains("key file"), "{refused}");
        assert!(!key.exists(), "no new key was made");
    }

    /// The hash of the first purpose text record `index` names.
    fn text_named_by(db: &Path, index: u64) -> String {
        let bytes: Vec<u8> = query(db, &format!("SELECT bytes FROM log WHERE idx = {index}"));
        record::open(&bytes).unwrap().record.purposes[0].text_sha256.clone()
    }

    fn broken_text(db: &Path, key: &Path) -> (String, String) {
        match check(db, key) {
            Err(Broken::Text { sha256, problem }) => (sha256, problem),
            other => panic!("expected a bad text to be found, got {other:?}"),
        }
    }

    /// Re-signs the stored checkpoint of `size` with another time, as only a key holder can,
    /// and gives the records it first covers that time too: a consistent rewrite.
    fn resign(db: &Path, key: &Path, size: u64, timestamp: u64) {
        use ed25519_dalek::Signer;
        let keys = Keys::load(key).unwrap();
        let conn = Connection::open(db).unwrap();
        let (root, old): (Vec<u8>, u64) = conn
            .query_row("SELECT root, timestamp FROM checkpoints WHERE size = ?1", [size], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let root: merkle::Hash = root.try_into().unwrap();
        let body = checkpoint_body(&origin_of(&keys.verifying()), size, &root, timestamp);
        let signature = keys.signing.sign(body.as_bytes()).to_bytes().to_vec();
        conn.execute(
            "UPDATE checkpoints SET timestamp = ?1, signature = ?2 WHERE size = ?3",
            rusqlite::params![timestamp, signature, size],
        )
        .unwrap();
        conn.execute(
            "UPDATE log SET received_at = ?1 WHERE received_at = ?2 AND idx < ?3",
            rusqlite::params![timestamp, old, size],
        )
        .unwrap();
    }

    /// A value edited out of its column's range is tampering at that record (exit 1), not an
    /// unreadable database (exit 2).
    #[test]
    fn an_out_of_range_value_is_named_at_its_record() {
        for edit in [
            "UPDATE log SET received_at = -5 WHERE idx = 1",
            "UPDATE subjects SET position = -1 WHERE idx = 1",
        ] {
            let (_dir, db, key) = log_of(2, &["email-offers"], None);
            tamper(&db, edit);
            let (index, problem) = problem_at(&db, &key);
            assert_eq!(index, 1, "{edit}: {problem}");
        }
    }

    /// A text relabelled in the database (another purpose or locale) would make
    /// `GET /v1/texts/{sha}` tell an auditor the wrong purpose: found at the record.
    #[test]
    fn a_relabelled_purpose_text_is_found() {
        for edit in ["purpose = 'phone-calls'", "locale = 'de'"] {
            let (_dir, db, key) = log(2);
            let sha = text_named_by(&db, 0);
            tamper(&db, &format!("UPDATE texts SET {edit} WHERE sha256 = '{sha}'"));
            match check(&db, &key) {
                Err(Broken::At { index, problem }) => {
                    assert_eq!(index, 0, "{edit}: {problem}");
                    assert!(problem.contains("labelled"), "{edit}: {problem}");
                }
                other => panic!("{edit}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_edited_purpose_text_is_found_and_named() {
        let (_dir, db, key) = log(2);
        let sha = text_named_by(&db, 0);
        tamper(
            &db,
            &format!("UPDATE texts SET text = text || ' (no)' WHERE sha256 = '{sha}'"),
        );
        let (named, problem) = broken_text(&db, &key);
        assert_eq!(named, sha);
        assert!(problem.contains("changed"), "{problem}");
    }

    #[test]
    fn two_swapped_purpose_texts_are_found() {
        let (_dir, db, key) = log(2);
        let bytes: Vec<u8> = query(&db, "SELECT bytes FROM log WHERE idx = 0");
        let purposes = record::open(&bytes).unwrap().record.purposes;
        let (a, b) = (&purposes[0].text_sha256, &purposes[1].text_sha256);
        let conn = Connection::open(&db).unwrap();
        let text = |sha: &str| -> String {
            conn.query_row("SELECT text FROM texts WHERE sha256 = ?1", [sha], |r| r.get(0))
                .unwrap()
        };
        let (text_a, text_b) = (text(a), text(b));
        conn.execute("UPDATE texts SET text = ?1 WHERE sha256 = ?2", [&text_b, a])
            .unwrap();
        conn.execute("UPDATE texts SET text = ?1 WHERE sha256 = ?2", [&text_a, b])
            .unwrap();
        let (named, _) = broken_text(&db, &key);
        assert!(named == *a || named == *b, "{named}");
    }

    #[test]
    fn a_deleted_purpose_text_is_found_at_the_first_record_that_names_it() {
        let (_dir, db, key) = log(3);
        let sha = text_named_by(&db, 0);
        tamper(&db, &format!("DELETE FROM texts WHERE sha256 = '{sha}'"));
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 0);
        assert!(problem.contains(&sha) && problem.contains("not stored"), "{problem}");
    }

    /// A log holding records made under two versions of the config (a label corrected in
    /// between, issue 14) is clean: the texts of both are kept, and each record's are found.
    /// An edited stored config is found and named, and so is a lost text of the older one.
    #[test]
    fn a_log_of_records_under_two_config_versions_verifies() {
        use crate::compile::config_sha256;
        use crate::testing::{capture_under, corrected_text, demo_sha256, demo_text};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let corrected_text = corrected_text();
        let corrected = unticked_core::config::Config::from_json(&corrected_text).unwrap();
        let corrected_sha256 = config_sha256(&corrected_text);
        // As `serve` leaves it: the old config served first, then the corrected one.
        let store = Store::open(&db, &crate::texts::Shown::of(&corrected)).unwrap();
        store.config_served(&demo_sha256(), &demo_text(), 1).unwrap();
        store.config_served(&corrected_sha256, &corrected_text, 2).unwrap();
        let history = crate::history::History::load(&store, &corrected_sha256, corrected.clone());
        let old = capture(&demo_config(), &["email-offers"]);
        let new = capture_under(&corrected, &corrected_sha256, &["email-offers"]);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for (i, made) in [&old, &new].into_iter().enumerate() {
            let body = seal(made, i as u8 + 1);
            let accepted = crate::records::check_against(body.as_bytes(), &history, &corrected).unwrap();
            let id = accepted.opened.record.id.clone();
            let appended = runtime.block_on(store.append(id, accepted.bytes, accepted.disclosures, accepted.birthday));
            assert_eq!(appended.unwrap(), Appended::New(i as u64));
        }
        drop(store);
        let key = Keys::path_for(&db);
        let clean = check(&db, &key).unwrap();
        assert_eq!(clean.records, 2);

        tamper(
            &db,
            &format!("UPDATE configs SET text = replace(text, 'oraz', 'i') WHERE sha256 = '{corrected_sha256}'"),
        );
        match check(&db, &key) {
            Err(Broken::Config { sha256, problem }) => {
                assert_eq!(sha256, corrected_sha256);
                assert!(problem.contains("edited"), "{problem}");
            }
            other => panic!("expected the edited config to be found, got {other:?}"),
        }
        tamper(
            &db,
            &format!("UPDATE configs SET text = replace(text, 'ofert i nowości', 'ofert oraz nowości') WHERE sha256 = '{corrected_sha256}'"),
        );
        assert!(check(&db, &key).is_ok(), "put back as it was");

        let old_text = sha256_hex(old.texts[0].as_bytes());
        assert_eq!(old.record.purposes[0].id, "email-offers");
        tamper(&db, &format!("DELETE FROM texts WHERE sha256 = '{old_text}'"));
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 0, "{problem}");
        assert!(problem.contains("not stored"), "{problem}");
    }

    /// The purpose-text endpoint refuses to serve wording whose hash is not the one asked
    /// for: the shopper was shown the text the hash names, not what is stored now.
    #[tokio::test]
    async fn a_tampered_text_is_not_served_as_what_the_shopper_was_shown() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let config = demo_config();
        drop(Store::open(&db, &crate::texts::Shown::of(&config)).unwrap());
        let sha: String = query(&db, "SELECT sha256 FROM texts ORDER BY sha256 LIMIT 1");
        tamper(
            &db,
            &format!("UPDATE texts SET text = 'We may sell your data' WHERE sha256 = '{sha}'"),
        );
        let store = Store::open(&db, &crate::texts::Shown::of(&config)).unwrap();
        let www = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www"));
        let app = crate::serve::app(www, config, store, crate::testing::settings());
        let request = axum::http::Request::get(format!("/v1/texts/{sha}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains(r#""code":"unavailable""#), "{body}");
        assert!(!body.contains("sell your data"), "{body}");
    }

    /// A birthday kept is bound to its record's commitment (R8): editing it, or its salt, in
    /// the database is found at its record, and the report names no birthday.
    #[test]
    fn an_edited_birthday_is_found_at_its_record() {
        let (_dir, db, key) = log_of(3, &["email-offers", "birthday-greetings"], None);
        let clean = check(&db, &key).unwrap();
        assert_eq!(clean.disclosures, 3);
        assert!(clean.unchecked.is_empty(), "{:?}", clean.unchecked);
        tamper(&db, "UPDATE subjects SET birthday = '--01-07' WHERE idx = 2");
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 2);
        assert!(
            problem.contains("birthday") && problem.contains("commitment"),
            "{problem}"
        );
        assert!(!problem.contains("01-07"), "no birthday in the report: {problem}");
        tamper(
            &db,
            "UPDATE subjects SET birthday = '--11-07'; UPDATE subjects SET birthday_salt = zeroblob(16) WHERE idx = 1",
        );
        assert_eq!(problem_at(&db, &key).0, 1, "an edited salt");
        // A birthday added to a record that commits to none.
        let (_dir, db, key) = log_of(2, &["email-offers"], None);
        tamper(
            &db,
            "UPDATE subjects SET birthday = '--11-07', birthday_salt = zeroblob(16) WHERE idx = 1",
        );
        assert_eq!(problem_at(&db, &key).0, 1);
    }

    /// Birthdays kept before records committed to them (no salt, no commitment) cannot be
    /// checked: verify passes the log and says so.
    #[test]
    fn a_birthday_kept_before_commitments_is_reported_unchecked() {
        let (_dir, db, key) = log_of(2, &["email-offers"], None);
        tamper(&db, "UPDATE subjects SET birthday = '--11-07' WHERE idx = 0");
        let clean = check(&db, &key).unwrap();
        assert!(
            clean.unchecked.iter().any(|u| u.contains("birthdays kept before")),
            "{:?}",
            clean.unchecked
        );
    }

    #[test]
    fn an_edited_identifier_is_found_at_its_record() {
        let (_dir, db, key) = log_of(3, &["email-offers"], None);
        assert_eq!(check(&db, &key).unwrap().disclosures, 3);
        tamper(&db, "UPDATE subjects SET identifier = 'eve@example.pl' WHERE idx = 1");
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 1);
        assert!(
            problem.contains("position 0") && problem.contains("commitment"),
            "{problem}"
        );
        assert!(!problem.contains("eve@"), "no contact in the report: {problem}");
        // Nor does the public key alone let it pass: the commitment is in the signed record.
        let public = public_key(None, &key).unwrap();
        assert!(matches!(
            verify(&Location::from(db.as_path()), &public, None, &[]),
            Err(Broken::At { index: 1, .. })
        ));
    }

    #[test]
    fn a_disclosure_moved_to_another_channel_or_record_is_found() {
        let (_dir, db, key) = log_of(3, &["email-offers"], None);
        tamper(&db, "UPDATE subjects SET channel = 'sms' WHERE idx = 2");
        assert_eq!(problem_at(&db, &key).0, 2);
        let (_dir, db, key) = log_of(3, &["email-offers"], None);
        tamper(&db, "UPDATE subjects SET idx = 7 WHERE idx = 2");
        assert_eq!(problem_at(&db, &key).0, 7);
    }

    #[test]
    fn an_edited_lookup_is_found_with_the_key_file_and_reported_unchecked_without() {
        let (_dir, db, key) = log_of(3, &["email-offers"], None);
        tamper(&db, "UPDATE subjects SET lookup = zeroblob(32) WHERE idx = 2");
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 2);
        assert!(problem.contains("erasure would miss it"), "{problem}");
        let public = public_key(None, &key).unwrap();
        let clean = verify(&Location::from(db.as_path()), &public, None, &[]).unwrap();
        assert!(
            clean.unchecked.iter().any(|what| what.contains("keyed subject index")),
            "{clean:?}"
        );
    }

    #[test]
    fn an_edited_time_received_is_found_at_its_record() {
        let (_dir, db, key) = log(4);
        tamper(&db, "UPDATE log SET received_at = received_at - 1 WHERE idx = 2");
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 2);
        assert!(problem.contains("received at"), "{problem}");
        let (_dir, db, key) = log(4);
        tamper(&db, "UPDATE log SET received_at = received_at + 3600000 WHERE idx = 1");
        assert_eq!(problem_at(&db, &key).0, 1);
    }

    #[test]
    fn a_deleted_middle_checkpoint_is_found_at_its_first_record() {
        let (_dir, db, key) = log(4);
        let times: Vec<u64> = {
            let conn = Connection::open(&db).unwrap();
            let mut rows = conn.prepare("SELECT timestamp FROM checkpoints ORDER BY size").unwrap();
            let times = rows.query_map([], |r| r.get(0)).unwrap();
            times.map(Result::unwrap).collect()
        };
        assert_eq!(times.len(), 4);
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "each batch is stamped later: {times:?}"
        );
        tamper(&db, "DELETE FROM checkpoints WHERE size = 2");
        let (index, problem) = problem_at(&db, &key);
        assert_eq!(index, 1);
        assert!(problem.contains("checkpoint removed"), "{problem}");
    }

    /// The writer stamps each batch after the last checkpoint it finds at open, even when
    /// the clock says otherwise (here: a checkpoint an hour ahead, as after a clock step back).
    #[test]
    fn a_batch_is_stamped_after_the_latest_checkpoint_whatever_the_clock_says() {
        let (_dir, db, key) = log(1);
        let ahead = query::<u64>(&db, "SELECT timestamp FROM checkpoints") + 3_600_000;
        resign(&db, &key, 1, ahead);
        let store = Store::open(&db, &crate::texts::Shown::of(&demo_config())).unwrap();
        append(&store, 1, 1, &[]);
        drop(store);
        assert_eq!(
            query::<u64>(&db, "SELECT timestamp FROM checkpoints WHERE size = 2"),
            ahead + 1
        );
        assert_eq!(
            query::<u64>(&db, "SELECT received_at FROM log WHERE idx = 1"),
            ahead + 1
        );
        assert_eq!(check(&db, &key).unwrap().checkpoints, 2);
    }

    #[test]
    fn a_witness_file_finds_a_cut_off_tail_the_log_alone_cannot() {
        let outside = tempfile::tempdir().unwrap();
        let witness = outside.path().join("witness.jsonl");
        let (_dir, db, key) = log_of(5, &["email-offers"], Some(&witness));
        let anchors = Anchor::from_witness(&std::fs::read_to_string(&witness).unwrap()).unwrap();
        let sizes: Vec<u64> = anchors.iter().map(|a| a.size).collect();
        assert_eq!(
            sizes,
            [1, 2, 3, 4, 5],
            "one line per checkpoint, each written before its 201"
        );
        let public = public_key(None, &key).unwrap();
        assert_eq!(
            verify(&Location::from(db.as_path()), &public, None, &anchors)
                .unwrap()
                .anchors,
            5
        );
        // The newest records cut off with their checkpoints: no key needed, and the log
        // alone is consistent with itself…
        tamper(
            &db,
            "DELETE FROM log WHERE idx >= 3; DELETE FROM subjects WHERE idx >= 3; DELETE FROM checkpoints WHERE size > 3",
        );
        assert!(check(&db, &key).is_ok(), "the log alone cannot tell");
        // …but the witness names the first checkpoint the log no longer holds.
        match verify(&Location::from(db.as_path()), &public, None, &anchors) {
            Err(Broken::At { index: 3, problem }) => assert!(problem.contains("witness line 4"), "{problem}"),
            other => panic!("expected the cut to be found at 3, got {other:?}"),
        }
    }

    /// A key holder can sign a checkpoint anew (here: with another time) and keep the log
    /// consistent with itself; the witness still holds the original.
    #[test]
    fn a_witness_finds_a_checkpoint_signed_anew() {
        let outside = tempfile::tempdir().unwrap();
        let witness = outside.path().join("witness.jsonl");
        let (_dir, db, key) = log_of(3, &[], Some(&witness));
        let anchors = Anchor::from_witness(&std::fs::read_to_string(&witness).unwrap()).unwrap();
        let last = query::<u64>(&db, "SELECT timestamp FROM checkpoints WHERE size = 3");
        resign(&db, &key, 3, last + 5);
        assert!(check(&db, &key).is_ok(), "consistent with itself");
        let public = public_key(None, &key).unwrap();
        match verify(&Location::from(db.as_path()), &public, None, &anchors) {
            Err(Broken::At { index: 2, problem }) => assert!(problem.contains("signed anew"), "{problem}"),
            other => panic!("expected the rewrite to be found, got {other:?}"),
        }
    }

    #[test]
    fn a_witness_line_cut_short_by_a_crash_is_left_out_and_others_must_parse() {
        let (_dir, db, key) = log(2);
        let public = public_key(None, &key).unwrap();
        let line = Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT size, root, signature, timestamp FROM checkpoints WHERE size = 2",
                [],
                |r| {
                    Ok(crate::store::Checkpoint {
                        size: r.get(0)?,
                        root: r.get::<_, Vec<u8>>(1)?.try_into().unwrap(),
                        signature: r.get(2)?,
                        timestamp: r.get(3)?,
                    })
                },
            )
            .unwrap()
            .to_json(&origin_of(&public), &public)
            .to_string();
        let torn = format!("{line}\n{}", &line[..20]);
        assert_eq!(Anchor::from_witness(&torn).unwrap().len(), 1);
        assert!(matches!(
            Anchor::from_witness(&format!("{}\n{line}\n", &line[..20])),
            Err(Broken::Unreadable(_))
        ));
    }
}

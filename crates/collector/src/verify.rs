//! `unticked verify --db FILE`: recomputes the whole log from the stored bytes and checks
//! it against every signed checkpoint. Any edit, deletion or reordering of the stored
//! records, a truncation of the records, and any altered checkpoint, is found and named by
//! the first log index it touches.
//!
//! What the log alone cannot show: someone with the collector's private key who truncates
//! or rewrites the records *and* their checkpoints. Against that, keep checkpoints outside
//! (a receipt, or `GET /v1/checkpoint` now and then) and pass one with `--checkpoint`: the
//! log must still hold exactly the tree it signed.

use crate::store::{checkpoint_body, origin_of, Keys};
use base64ct::Encoding;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use unticked_core::merkle::{self, Tree};
use unticked_core::record;

/// A log that checks out.
#[derive(Debug, PartialEq, Eq)]
pub struct Clean {
    pub records: u64,
    pub checkpoints: u64,
    pub root: merkle::Hash,
}

/// The first thing wrong with a log.
#[derive(Debug, PartialEq, Eq)]
pub enum Broken {
    /// The database or key cannot be read (exit 2).
    Unreadable(String),
    /// The log was tampered with, from this index on (exit 1).
    At { index: u64, problem: String },
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
}

impl Anchor {
    /// Reads a checkpoint as JSON (a whole receipt works too).
    pub fn from_json(text: &str) -> Result<Anchor, Broken> {
        let bad = || Broken::Unreadable("--checkpoint: not a checkpoint as GET /v1/checkpoint gives it".into());
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
        })
    }

    /// The anchor is the collector's, and the rebuilt `tree` still holds what it signed.
    fn check(&self, key: &VerifyingKey, tree: &Tree) -> Result<(), Broken> {
        let body = checkpoint_body(&origin_of(key), self.size, &self.root, self.timestamp);
        let signed = Signature::from_slice(&self.signature).is_ok_and(|s| key.verify(body.as_bytes(), &s).is_ok());
        if !signed {
            return Err(Broken::Unreadable(
                "--checkpoint is not signed by this collector's key".into(),
            ));
        }
        if tree.root(self.size) != Some(self.root) {
            return Err(at(
                self.size.min(tree.len()),
                format!(
                    "the log no longer holds the tree of {} records your checkpoint signed",
                    self.size
                ),
            ));
        }
        Ok(())
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
        None => Ok(Keys::load(key_file).map_err(|e| Broken::Unreadable(e.0))?.verifying()),
    }
}

/// Verifies the log in `db` against the collector's public key, and an outside checkpoint.
pub fn verify(db: &Path, public: &VerifyingKey, anchor: Option<&Anchor>) -> Result<Clean, Broken> {
    let unreadable = |e: &dyn std::fmt::Display| Broken::Unreadable(e.to_string());
    let origin = origin_of(public);
    if !db.exists() {
        return Err(Broken::Unreadable(format!("{}: no such file", db.display())));
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| unreadable(&e))?;

    let mut tree = Tree::new();
    let mut rows = conn
        .prepare("SELECT idx, id, bytes FROM log ORDER BY idx")
        .map_err(|e| unreadable(&e))?;
    let mut rows = rows.query([]).map_err(|e| unreadable(&e))?;
    while let Some(row) = rows.next().map_err(|e| unreadable(&e))? {
        let expected = tree.len();
        let idx: u64 = row.get(0).map_err(|e| unreadable(&e))?;
        if idx != expected {
            return Err(at(
                expected,
                format!("the record is missing (the next stored is at {idx})"),
            ));
        }
        let id: String = row.get(1).map_err(|e| unreadable(&e))?;
        let bytes: Vec<u8> = row.get(2).map_err(|e| unreadable(&e))?;
        match record::open(&bytes) {
            Err(e) => return Err(at(idx, format!("the record does not open: {e}"))),
            Ok(opened) if opened.record.id != id => {
                return Err(at(
                    idx,
                    format!("stored under id {id} but it is record {}", opened.record.id),
                ))
            }
            Ok(_) => {}
        }
        tree.push(merkle::leaf_hash(&bytes));
    }

    let mut checkpoints = conn
        .prepare("SELECT size, root, signature, timestamp FROM checkpoints ORDER BY size")
        .map_err(|e| unreadable(&e))?;
    let mut checkpoints = checkpoints.query([]).map_err(|e| unreadable(&e))?;
    let (mut covered, mut count) = (0u64, 0u64);
    while let Some(row) = checkpoints.next().map_err(|e| unreadable(&e))? {
        let size: u64 = row.get(0).map_err(|e| unreadable(&e))?;
        let root: Vec<u8> = row.get(1).map_err(|e| unreadable(&e))?;
        let signature: Vec<u8> = row.get(2).map_err(|e| unreadable(&e))?;
        let timestamp: u64 = row.get(3).map_err(|e| unreadable(&e))?;
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
        covered = size;
        count += 1;
    }
    if covered < tree.len() {
        return Err(at(covered, "the records from here on are in no signed checkpoint"));
    }
    if let Some(anchor) = anchor {
        anchor.check(public, &tree)?;
    }
    Ok(Clean {
        records: tree.len(),
        checkpoints: count,
        root: tree.root(tree.len()).unwrap_or_else(merkle::empty_root),
    })
}

/// `GET path` on a collector at `http://host:port`, with the admin token; the parsed JSON.
async fn get_json(authority: &str, path: &str, token: &str) -> Result<serde_json::Value, String> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<hyper::body::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
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
pub fn verify_url(url: &str, token: &str, pinned: Option<&str>, anchor: Option<&Anchor>) -> Result<Clean, Broken> {
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
                if let Err(e) = record::open(bytes.as_bytes()) {
                    return Err(at(index, format!("the record does not open: {e}")));
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
        if let Some(anchor) = anchor {
            anchor.check(&key, &tree)?;
        }
        Ok(Clean {
            records: size,
            checkpoints: 1,
            root,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Appended, Store};
    use crate::testing::{capture, demo_config, seal};

    /// A log of `n` records made through the store, as the collector makes it.
    fn log(n: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let config = demo_config();
        let store = Store::open(&db, &config).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        for i in 0..n {
            let body = seal(&capture(&config, &[]), i as u8);
            let accepted = crate::records::check(body.as_bytes(), &config).unwrap();
            let id = accepted.opened.record.id.clone();
            let appended = runtime.block_on(store.append(id, accepted.bytes, accepted.disclosures, accepted.birthday));
            assert_eq!(appended.unwrap(), Appended::New(i as u64));
        }
        drop(store);
        let key = Keys::path_for(&db);
        (dir, db, key)
    }

    fn tamper(db: &Path, sql: &str) {
        Connection::open(db).unwrap().execute_batch(sql).unwrap();
    }

    fn check(db: &Path, key: &Path) -> Result<Clean, Broken> {
        verify(db, &public_key(None, key)?, None)
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
                    })
                },
            )
            .unwrap();
        assert!(verify(&db, &public, Some(&anchor)).is_ok());
        // Records and their checkpoints cut back together: consistent with itself…
        tamper(
            &db,
            "DELETE FROM log WHERE idx >= 3; DELETE FROM checkpoints WHERE size > 3",
        );
        assert!(check(&db, &key).is_ok(), "the log alone cannot tell");
        // …but not with the checkpoint the auditor kept.
        assert!(matches!(
            verify(&db, &public, Some(&anchor)),
            Err(Broken::At { index: 3, .. })
        ));
        let forged = Anchor {
            timestamp: anchor.timestamp + 1,
            ..anchor
        };
        assert!(matches!(
            verify(&db, &public, Some(&forged)),
            Err(Broken::Unreadable(_))
        ));
    }

    #[test]
    fn a_log_whose_key_file_is_lost_is_not_reopened_with_a_new_key() {
        let (_dir, db, key) = log(2);
        std::fs::remove_file(&key).unwrap();
        let refused = Store::open(&db, &demo_config()).err().expect("refused");
        assert!(refused.0.contains("key file"), "{}", refused.0);
        assert!(!key.exists(), "no new key was made");
    }
}

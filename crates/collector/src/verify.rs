//! `unticked verify --db FILE`: recomputes the whole log from the stored bytes and checks
//! it against every signed checkpoint. Any edit, deletion, reordering or truncation of the
//! stored records, and any altered checkpoint, is found and named by the first log index
//! it touches.

use crate::store::{checkpoint_body, origin_of, Keys};
use base64ct::Encoding;
use ed25519_dalek::{Signature, Verifier};
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

/// Verifies the log in `db` against the collector key in `key`.
pub fn verify(db: &Path, key: &Path) -> Result<Clean, Broken> {
    let unreadable = |e: &dyn std::fmt::Display| Broken::Unreadable(e.to_string());
    let keys = Keys::load(key).map_err(|e| Broken::Unreadable(e.0))?;
    let public = keys.verifying();
    let origin = origin_of(&public);
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
        .prepare("SELECT size, root, signature FROM checkpoints ORDER BY size")
        .map_err(|e| unreadable(&e))?;
    let mut checkpoints = checkpoints.query([]).map_err(|e| unreadable(&e))?;
    let (mut covered, mut count) = (0u64, 0u64);
    while let Some(row) = checkpoints.next().map_err(|e| unreadable(&e))? {
        let size: u64 = row.get(0).map_err(|e| unreadable(&e))?;
        let root: Vec<u8> = row.get(1).map_err(|e| unreadable(&e))?;
        let signature: Vec<u8> = row.get(2).map_err(|e| unreadable(&e))?;
        let Ok(root) = <merkle::Hash>::try_from(root) else {
            return Err(at(
                covered,
                format!("the checkpoint of size {size} has no 32-byte root"),
            ));
        };
        let signed = Signature::from_slice(&signature).ok().is_some_and(|s| {
            public
                .verify(checkpoint_body(&origin, size, &root).as_bytes(), &s)
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
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    bytes?.try_into().ok()
}

/// Verifies a running collector: its latest checkpoint is signed by its key (`pinned`, a
/// base64url Ed25519 key, when given, so that a collector cannot swap keys unnoticed), and
/// every record it holds up to that size, fetched through the admin log endpoint, opens and
/// hashes to the checkpoint's root.
pub fn verify_url(url: &str, token: &str, pinned: Option<&str>) -> Result<Clean, Broken> {
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
        let body = checkpoint_body(&origin_of(&key), size, &root);
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
            let appended = runtime.block_on(store.append(id, accepted.bytes, accepted.disclosures));
            assert_eq!(appended.unwrap(), Appended::New(i as u64));
        }
        drop(store);
        let key = Keys::path_for(&db);
        (dir, db, key)
    }

    fn tamper(db: &Path, sql: &str) {
        Connection::open(db).unwrap().execute_batch(sql).unwrap();
    }

    fn broken_at(db: &Path, key: &Path) -> u64 {
        match verify(db, key) {
            Err(Broken::At { index, .. }) => index,
            other => panic!("expected tampering to be found, got {other:?}"),
        }
    }

    #[test]
    fn an_untouched_log_is_clean() {
        let (_dir, db, key) = log(5);
        let clean = verify(&db, &key).unwrap();
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
        assert!(verify(&db, &key).is_ok());
    }

    #[test]
    fn a_missing_database_or_key_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        assert!(matches!(
            verify(&missing, &Keys::path_for(&missing)),
            Err(Broken::Unreadable(_))
        ));
    }
}

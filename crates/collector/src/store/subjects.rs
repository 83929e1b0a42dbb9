//! The store's side of the rights and of the audience (issue 15): restrictions of
//! processing per purpose (GDPR Art. 18), and one scan over every subject for the audience
//! and suppression lists.

use super::{open_connection, Store, StoreError};
use rusqlite::{params, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use unticked_core::consent::Restriction;

/// The restrictions table; created with the rest of the schema. Keyed by the subject's
/// lookup (the keyed index, R10), so it names nobody once the subject is erased.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS restrictions (
  lookup BLOB NOT NULL,
  purpose TEXT NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (lookup, purpose)
);
";

/// One subject as the scan finds them: their latest identifier, the channels their
/// contacts were disclosed for, and the records they appear in (log order, exact bytes).
pub struct ScannedSubject {
    pub lookup: Vec<u8>,
    pub identifier: String,
    pub channels: Vec<String>,
    pub records: Vec<(u64, String)>,
}

impl Store {
    /// Restricts processing of `purposes` for the subject known by `identifier` from `since`
    /// (Art. 18(1)); a purpose already restricted keeps its first date. Returns how many
    /// purposes were newly restricted.
    pub fn restrict(&self, identifier: &str, purposes: &[String], since: u64) -> Result<usize, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        let mut conn = open_connection(&self.shared.path, OpenFlags::default())?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction()?;
        let mut added = 0;
        for purpose in purposes {
            added += tx.execute(
                "INSERT OR IGNORE INTO restrictions (lookup, purpose, since) VALUES (?1, ?2, ?3)",
                params![&lookup[..], purpose, since],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Lifts the restriction of `purposes` (Art. 18(3)); returns how many were lifted.
    pub fn lift_restriction(&self, identifier: &str, purposes: &[String]) -> Result<usize, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        let mut conn = open_connection(&self.shared.path, OpenFlags::default())?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = conn.transaction()?;
        let mut lifted = 0;
        for purpose in purposes {
            lifted += tx.execute(
                "DELETE FROM restrictions WHERE lookup = ?1 AND purpose = ?2",
                params![&lookup[..], purpose],
            )?;
        }
        tx.commit()?;
        Ok(lifted)
    }

    /// The restrictions of the subject known by `identifier`.
    pub fn restrictions(&self, identifier: &str) -> Result<Vec<Restriction>, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        let read = self.shared.read.lock().unwrap_or_else(|e| e.into_inner());
        let mut query =
            read.prepare_cached("SELECT purpose, since FROM restrictions WHERE lookup = ?1 ORDER BY purpose")?;
        let rows = query.query_map([&lookup[..]], |row| {
            Ok(Restriction {
                purpose: row.get(0)?,
                since: row.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Carries the restrictions of `from` over to `to`: a rectified contact (Art. 16) is
    /// the same subject, and a pause they asked for must not end with a typo fixed.
    pub fn carry_restrictions(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from, to) = (self.shared.keys.lookup(from), self.shared.keys.lookup(to));
        let conn = open_connection(&self.shared.path, OpenFlags::default())?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute(
            "INSERT OR IGNORE INTO restrictions (lookup, purpose, since) SELECT ?2, purpose, since FROM restrictions WHERE lookup = ?1",
            params![&from[..], &to[..]],
        )?;
        Ok(())
    }

    /// The record stored under `id`, on the scan's connection: for the records a
    /// rectification carries over.
    fn record_on(conn: &rusqlite::Connection, id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let found = conn
            .prepare_cached("SELECT idx, bytes FROM log WHERE id = ?1")?
            .query_row([id], |row| Ok((row.get::<_, u64>(0)?, row.get::<_, Vec<u8>>(1)?)))
            .optional()?;
        Ok(found.map(|(idx, bytes)| (idx, String::from_utf8_lossy(&bytes).into_owned())))
    }

    /// Calls `each` once per subject with a contact disclosed for one of `channels`, in the
    /// order of their keyed index (no order anyone can read a contact from), with every
    /// record they appear in. `carried` names the records a record carries over (a
    /// rectification's, crate::rights); they are read and put in log order too. `each`
    /// returns false to stop (the client went away). Its own read-only connection: a scan
    /// of every subject must not hold up the readers that answer posts.
    pub fn scan_subjects(
        &self,
        channels: &[&str],
        carried: impl Fn(&str) -> Vec<String>,
        mut each: impl FnMut(ScannedSubject) -> bool,
    ) -> Result<(), StoreError> {
        let conn = open_connection(&self.shared.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // One read transaction: the subject rows and the records they point to are of one
        // moment, even while records keep arriving.
        conn.execute_batch("BEGIN")?;
        let mut query = conn.prepare(
            "SELECT s.lookup, s.idx, s.channel, s.identifier, l.bytes FROM subjects s JOIN log l ON l.idx = s.idx \
             ORDER BY s.lookup, s.idx, s.position",
        )?;
        let mut rows = query.query([])?;
        let mut current: Option<ScannedSubject> = None;
        let finish =
            |subject: ScannedSubject, each: &mut dyn FnMut(ScannedSubject) -> bool| -> Result<bool, StoreError> {
                if !subject.channels.iter().any(|c| channels.contains(&c.as_str())) {
                    return Ok(true);
                }
                let mut subject = subject;
                let mut extra = Vec::new();
                for (_, bytes) in &subject.records {
                    for id in carried(bytes) {
                        if let Some(found) = Self::record_on(&conn, &id)? {
                            extra.push(found);
                        }
                    }
                }
                if !extra.is_empty() {
                    subject.records.extend(extra);
                    subject.records.sort_by_key(|(idx, _)| *idx);
                    subject.records.dedup_by_key(|(idx, _)| *idx);
                }
                Ok(each(subject))
            };
        while let Some(row) = rows.next()? {
            let lookup: Vec<u8> = row.get(0)?;
            let idx: u64 = row.get(1)?;
            let channel: String = row.get(2)?;
            let identifier: String = row.get(3)?;
            if current.as_ref().is_some_and(|c| c.lookup != lookup) {
                if let Some(done) = current.take() {
                    if !finish(done, &mut each)? {
                        return Ok(());
                    }
                }
            }
            let subject = current.get_or_insert_with(|| ScannedSubject {
                lookup: lookup.clone(),
                identifier: identifier.clone(),
                channels: Vec::new(),
                records: Vec::new(),
            });
            // The latest disclosure names them as they gave it last.
            subject.identifier = identifier;
            if !subject.channels.contains(&channel) {
                subject.channels.push(channel);
            }
            if subject.records.last().is_none_or(|(last, _)| *last != idx) {
                let bytes: Vec<u8> = row.get(4)?;
                subject
                    .records
                    .push((idx, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        if let Some(done) = current.take() {
            finish(done, &mut each)?;
        }
        Ok(())
    }

    /// The contacts disclosed with the record at `index`: `(channel, identifier)`.
    pub fn contacts_at(&self, index: u64) -> Result<Vec<(String, String)>, StoreError> {
        let read = self.shared.read.lock().unwrap_or_else(|e| e.into_inner());
        let mut query =
            read.prepare_cached("SELECT channel, identifier FROM subjects WHERE idx = ?1 ORDER BY position")?;
        let rows = query.query_map([index], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every restriction, by subject lookup: read once per scan.
    pub fn all_restrictions(&self) -> Result<HashMap<Vec<u8>, Vec<Restriction>>, StoreError> {
        let conn = open_connection(&self.shared.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut query = conn.prepare("SELECT lookup, purpose, since FROM restrictions")?;
        let mut rows = query.query([])?;
        let mut out: HashMap<Vec<u8>, Vec<Restriction>> = HashMap::new();
        while let Some(row) = rows.next()? {
            out.entry(row.get(0)?).or_default().push(Restriction {
                purpose: row.get(1)?,
                since: row.get(2)?,
            });
        }
        Ok(out)
    }
}

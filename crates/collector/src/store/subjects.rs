//! The store's side of the rights and of the audience (issue 15): restrictions of
//! processing per purpose (GDPR Art. 18), and one scan over every subject for the audience
//! and suppression lists.

use super::{Store, StoreError};
use crate::db::{params, Dialect, Sql, SqlExt};
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
        self.shared.pool.transaction(|sql| {
            let mut added = 0;
            for purpose in purposes {
                added += sql.execute(
                    "INSERT INTO restrictions (lookup, purpose, since) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![&lookup, purpose, since],
                )?;
            }
            Ok(added)
        })
    }

    /// Lifts the restriction of `purposes` (Art. 18(3)); returns how many were lifted.
    pub fn lift_restriction(&self, identifier: &str, purposes: &[String]) -> Result<usize, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        self.shared.pool.transaction(|sql| {
            let mut lifted = 0;
            for purpose in purposes {
                lifted += sql.execute(
                    "DELETE FROM restrictions WHERE lookup = ?1 AND purpose = ?2",
                    params![&lookup, purpose],
                )?;
            }
            Ok(lifted)
        })
    }

    /// The restrictions of the subject known by `identifier`.
    pub fn restrictions(&self, identifier: &str) -> Result<Vec<Restriction>, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT purpose, since FROM restrictions WHERE lookup = ?1 ORDER BY purpose",
                params![&lookup],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(Restriction {
                    purpose: row.take(0)?,
                    since: row.get(1)?,
                })
            })
            .collect()
        })
    }

    /// Carries the restrictions of `from` over to `to`: a rectified contact (Art. 16) is
    /// the same subject, and a pause they asked for must not end with a typo fixed.
    pub fn carry_restrictions(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (from, to) = (self.shared.keys.lookup(from), self.shared.keys.lookup(to));
        self.shared.pool.run(|sql| {
            sql.execute(
                "INSERT INTO restrictions (lookup, purpose, since) SELECT CAST(?2 AS BLOB_TYPE), purpose, since FROM restrictions WHERE lookup = ?1 ON CONFLICT DO NOTHING"
                    .replace("BLOB_TYPE", blob_type(sql.dialect()))
                    .as_str(),
                params![&from, &to],
            )?;
            Ok(())
        })
    }

    /// The record stored under `id`, on the scan's connection: for the records a
    /// rectification carries over.
    fn record_on(sql: &mut dyn Sql, id: &str) -> Result<Option<(u64, String)>, StoreError> {
        sql.row(
            "SELECT idx, bytes FROM log WHERE id = ?1 AND received_at IS NOT NULL",
            params![id],
        )?
        .map(|mut row| {
            Ok((
                row.get::<u64>(0)?,
                String::from_utf8_lossy(&row.take::<Vec<u8>>(1)?).into_owned(),
            ))
        })
        .transpose()
    }

    /// Calls `each` once per subject with a contact disclosed for one of `channels`, in the
    /// order of their keyed index (no order anyone can read a contact from), with every
    /// record they appear in. `carried` names the records a record carries over (a
    /// rectification's, crate::rights); they are read and put in log order too. `each`
    /// returns false to stop (the client went away). Its own connection (a pooled one) in
    /// one read transaction: the subject rows and the records they point to are of one
    /// moment, even while records keep arriving, and a scan of every subject must not hold
    /// up the readers that answer posts.
    pub fn scan_subjects(
        &self,
        channels: &[&str],
        carried: impl Fn(&str) -> Vec<String> + Send + Sync,
        mut each: impl FnMut(ScannedSubject) -> bool + Send,
    ) -> Result<(), StoreError> {
        self.shared.pool.snapshot(|sql| {
            // The subjects first, then their records: a query cannot be read while another
            // runs on the same PostgreSQL connection, and the carried records are read in
            // between. One subject's rows at a time are held.
            let mut pending: Vec<ScannedSubject> = Vec::new();
            let mut current: Option<ScannedSubject> = None;
            let mut stop = false;
            let mut scan = |sql: &mut dyn Sql, subject: ScannedSubject| -> Result<bool, StoreError> {
                if !subject.channels.iter().any(|c| channels.contains(&c.as_str())) {
                    return Ok(true);
                }
                let mut subject = subject;
                let mut extra = Vec::new();
                for (_, bytes) in &subject.records {
                    for id in carried(bytes) {
                        if let Some(found) = Self::record_on(sql, &id)? {
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
            let mut after: Option<Vec<u8>> = None;
            // Pages of subjects, in lookup order, each read whole before its subjects are
            // finished (which may read carried records on the same connection).
            loop {
                let mut rows = 0usize;
                let mut last_lookup: Option<Vec<u8>> = None;
                sql.each(
                    "SELECT s.lookup, s.idx, s.channel, s.identifier, l.bytes FROM subjects s JOIN log l ON l.idx = s.idx \
                     WHERE l.received_at IS NOT NULL AND (CAST(?1 AS BLOB_TYPE) IS NULL OR s.lookup > ?1) \
                     AND s.lookup IN (SELECT DISTINCT lookup FROM subjects WHERE (CAST(?1 AS BLOB_TYPE) IS NULL OR lookup > ?1) ORDER BY lookup LIMIT 512) \
                     ORDER BY s.lookup, s.idx, s.position"
                        .replace("BLOB_TYPE", blob_type(sql.dialect()))
                        .as_str(),
                    params![after.as_ref()],
                    &mut |mut row| {
                        rows += 1;
                        let lookup: Vec<u8> = row.take(0)?;
                        let idx: u64 = row.get(1)?;
                        let channel: String = row.take(2)?;
                        let identifier: String = row.take(3)?;
                        if current.as_ref().is_some_and(|c| c.lookup != lookup) {
                            if let Some(done) = current.take() {
                                pending.push(done);
                            }
                        }
                        last_lookup = Some(lookup.clone());
                        let subject = current.get_or_insert_with(|| ScannedSubject {
                            lookup,
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
                            let bytes: Vec<u8> = row.take(4)?;
                            subject
                                .records
                                .push((idx, String::from_utf8_lossy(&bytes).into_owned()));
                        }
                        Ok(true)
                    },
                )?;
                if let Some(done) = current.take() {
                    pending.push(done);
                }
                for subject in pending.drain(..) {
                    if !scan(sql, subject)? {
                        stop = true;
                        break;
                    }
                }
                if stop || rows == 0 {
                    return Ok(());
                }
                after = last_lookup;
            }
        })
    }

    /// The contacts disclosed with the record at `index`: `(channel, identifier)`.
    pub fn contacts_at(&self, index: u64) -> Result<Vec<(String, String)>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT channel, identifier FROM subjects WHERE idx = ?1 ORDER BY position",
                params![index],
            )?
            .into_iter()
            .map(|mut row| Ok((row.take(0)?, row.take(1)?)))
            .collect()
        })
    }

    /// Every restriction, by subject lookup: read once per scan.
    pub fn all_restrictions(&self) -> Result<HashMap<Vec<u8>, Vec<Restriction>>, StoreError> {
        self.shared.pool.run(|sql| {
            let mut out: HashMap<Vec<u8>, Vec<Restriction>> = HashMap::new();
            sql.each(
                "SELECT lookup, purpose, since FROM restrictions",
                params![],
                &mut |mut row| {
                    out.entry(row.take(0)?).or_default().push(Restriction {
                        purpose: row.take(1)?,
                        since: row.get(2)?,
                    });
                    Ok(true)
                },
            )?;
            Ok(out)
        })
    }
}

/// The column type of a blob, for a cast that tells PostgreSQL a parameter's type.
fn blob_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "BLOB",
        Dialect::Postgres => "BYTEA",
    }
}

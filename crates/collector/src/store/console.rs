//! The store's side of the console's sign-in (crate::console): one row per session, kept in
//! the database rather than in a process, so that every collector behind a load balancer
//! knows a session and a sign-out ends it everywhere.
//!
//! Only the SHA-256 of a session's cookie value is kept: a copy of the database names no
//! session anyone could use.

use super::{Store, StoreError};
use crate::db::{params, SqlExt};

/// The sessions table; created with the rest of the schema.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS console_sessions (
  id BLOB PRIMARY KEY,
  token_mac BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
";

/// A session as the store holds it (times in ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// A keyed hash of the admin token it was opened with: a changed token ends it.
    pub token_mac: Vec<u8>,
    pub created_at: u64,
    pub seen_at: u64,
    pub expires_at: u64,
}

impl Store {
    /// Keeps a new session under `id` (the hash of its cookie value), opened with the token
    /// whose keyed hash is `token_mac`, valid until `expires_at`; sessions that have ended
    /// by `now` go at the same time, so the table holds only live ones.
    pub fn open_console_session(
        &self,
        id: &[u8; 32],
        token_mac: &[u8; 32],
        now: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.shared.pool.transaction(|sql| {
            sql.execute("DELETE FROM console_sessions WHERE expires_at <= ?1", params![now])?;
            sql.execute(
                "INSERT INTO console_sessions (id, token_mac, created_at, seen_at, expires_at) VALUES (?1, ?2, ?3, ?3, ?4)",
                params![&id[..], &token_mac[..], now, expires_at],
            )?;
            Ok(())
        })
    }

    /// The session under `id`, if the store has it.
    pub fn console_session(&self, id: &[u8; 32]) -> Result<Option<ConsoleSession>, StoreError> {
        self.shared.pool.run(|sql| {
            let rows = sql.rows(
                "SELECT token_mac, created_at, seen_at, expires_at FROM console_sessions WHERE id = ?1",
                params![&id[..]],
            )?;
            rows.into_iter()
                .next()
                .map(|mut row| {
                    Ok(ConsoleSession {
                        token_mac: row.take(0)?,
                        created_at: row.take(1)?,
                        seen_at: row.take(2)?,
                        expires_at: row.take(3)?,
                    })
                })
                .transpose()
        })
    }

    /// Notes that the session under `id` was used at `now` (what the idle timeout counts from).
    pub fn touch_console_session(&self, id: &[u8; 32], now: u64) -> Result<(), StoreError> {
        self.shared.pool.transaction(|sql| {
            sql.execute(
                "UPDATE console_sessions SET seen_at = ?2 WHERE id = ?1",
                params![&id[..], now],
            )?;
            Ok(())
        })
    }

    /// Ends the session under `id` (sign-out, or found expired).
    pub fn close_console_session(&self, id: &[u8; 32]) -> Result<(), StoreError> {
        self.shared.pool.transaction(|sql| {
            sql.execute("DELETE FROM console_sessions WHERE id = ?1", params![&id[..]])?;
            Ok(())
        })
    }
}

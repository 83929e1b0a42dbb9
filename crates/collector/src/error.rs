//! The collector's errors: what storage can fail with ([`StoreError`]), typed so that a
//! caller can tell a missing key file from a full disk, and never the client's fault (the
//! HTTP edge answers them 503 `unavailable`, which the widget's outbox retries).

use std::path::PathBuf;
use std::sync::Arc;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("{}: SQLite: {source}", path.display())]
    Database { path: PathBuf, source: rusqlite::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{}: not an unticked key file", .0.display())]
    NotAKeyFile(PathBuf),
    /// A new key for an existing log would orphan its checkpoints and make its subjects
    /// unfindable, and so unerasable.
    #[error("{} holds records but its key file {} is missing; restore it from backup", db.display(), key.display())]
    KeyMissing { db: PathBuf, key: PathBuf },
    #[error("the log has no record at index {0}; run `unticked verify`")]
    Gap(u64),
    #[error("no randomness for a new key: {0}")]
    NoRandomness(String),
    #[error("the tree has no root at size {0}")]
    NoRoot(u64),
    #[error("the writer has stopped")]
    WriterStopped,
    #[error("the writer thread panicked")]
    WriterPanicked,
    #[error("the store is still in use")]
    InUse,
    /// Art. 17: the rows are gone, but their old pages still sit in the WAL.
    #[error("the rows are deleted, but a reader kept the write-ahead log busy; erase again to fold it")]
    WalBusy,
    /// One failure, shared by every delivery of the batch it sank.
    #[error("the batch was not stored: {0}")]
    Batch(Arc<StoreError>),
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

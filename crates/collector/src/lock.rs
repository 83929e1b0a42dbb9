//! One writer process per log: `unticked serve` keeps the log's Merkle tree and its latest
//! checkpoint in memory (crate::store), so a record another process appended behind its
//! back would be missing from that tree, and the next checkpoint it signed would not cover
//! the log on disk (`unticked verify` would find it broken). Every process that writes the
//! log therefore holds an exclusive lock on `<db>.lock` for as long as it writes: `serve`
//! for its lifetime, `import` while it imports.
//!
//! The lock is the operating system's (`flock(2)` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`): it goes with the process, so a `kill -9` never leaves a
//! stale lock behind. A clean stop removes the file ([`LogLock::release`]), so only the
//! database and its key are left; a holder checks, once locked, that the file it locked is
//! still the one at the path, so a file removed under it is never taken for the lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The exclusive lock on a log, held until dropped (or [`LogLock::release`]d).
#[derive(Debug)]
pub struct LogLock {
    // Held for its lock, released when the file is closed.
    file: File,
    path: PathBuf,
}

impl LogLock {
    /// Removes the lock file, then releases the lock: for a clean stop, once nothing more is
    /// written. Removed while still held, so no other process can have locked it meanwhile.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{} is in use by another unticked process (a running `unticked serve` or `unticked import`, which holds {}); stop it first",
        db.display(),
        lock.display()
    )]
    Held { db: PathBuf, lock: PathBuf },
    #[error("cannot lock {}: {source}", lock.display())]
    Io { lock: PathBuf, source: std::io::Error },
}

/// The lock file of a log: `<db>.lock`, beside it.
pub fn path_for(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the exclusive lock on the log `db`, without waiting.
///
/// # Errors
/// [`LockError::Held`] when another process holds it; [`LockError::Io`] when the lock file
/// cannot be created or locked.
pub fn hold(db: &Path) -> Result<LogLock, LockError> {
    let lock = path_for(db);
    let io = |source| LockError::Io {
        lock: lock.clone(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    // A holder that stops removes the file before it lets go: a file locked here that is no
    // longer the one at the path was removed under us, so lock the new one instead.
    loop {
        let file = options.open(&lock).map_err(io)?;
        match file.try_lock() {
            Ok(()) if still_at(&file, &lock) => return Ok(LogLock { file, path: lock }),
            Ok(()) => continue,
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    db: db.to_path_buf(),
                    lock,
                })
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
    }
}

/// Whether `file` is the file at `path` now (same device and inode).
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_lock_goes_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let first = hold(&db).unwrap();
        let second = hold(&db).unwrap_err();
        assert!(matches!(second, LockError::Held { .. }), "{second:?}");
        assert!(second.to_string().contains("log.db is in use"), "{second}");
        drop(first);
        let again = hold(&db).expect("free once the holder is gone");
        again.release();
        assert!(!path_for(&db).exists(), "a clean stop leaves no lock file");
        hold(&db).expect("and the next holder makes a new one");
    }
}

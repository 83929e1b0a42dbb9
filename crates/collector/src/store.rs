//! The collector's storage: an append-only log of the exact record bytes, an RFC 9162
//! Merkle tree over them, signed checkpoints, the purpose texts by hash, every config served
//! by hash (crate::history), and the disclosures in an erasable table with a keyed index
//! (R10). In SQLite (a file, the default) or PostgreSQL (`--db postgres://…`), through
//! crate::db.
//!
//! One writer thread per collector takes whatever arrived together as one batch (group
//! commit); a 201 is sent only once the database has made the batch durable and a signed
//! checkpoint covers it. With SQLite the batch and its checkpoint are one transaction
//! (WAL, `synchronous=FULL`), under the file's single write lock. With PostgreSQL several
//! collectors write one log, in two steps after transparency-dev/tessera: *sequencing*
//! gives the batch the next indices under a row lock (`SELECT next FROM seq_coord FOR
//! UPDATE`) and commits it; *integration*, under a transaction-scoped advisory lock, reads
//! every record sequenced past the last checkpoint (anyone's), extends the tree, and commits
//! one checkpoint over all of them. A collector that dies between the two leaves durable,
//! unacknowledged records that the next integration (any collector's) covers.
//! Readers never see a record before a checkpoint covers it.
//!
//! The collector's key file (`<db>.key` beside a SQLite file, created on first start, mode
//! 0600; `--key FILE`, which PostgreSQL requires) holds the Ed25519 seed that signs
//! checkpoints and the secret of the subject index.

use crate::db::{params, Access, Db, DbError, Dialect, Location, Pool, Sql, SqlExt};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use unticked_core::capture::{Disclosure, Salted};
use unticked_core::merkle::{self, Hash, Tree};
use unticked_core::record::{base64url, hex};

mod console;
mod subjects;
pub use subjects::ScannedSubject;

/// Most deliveries committed in one transaction.
const BATCH: usize = 512;
/// Most distinct (kind, form, page) violation rows kept.
const MAX_VIOLATION_ROWS: u64 = 10_000;
/// How many UTC days of violation reports `violation_days` keeps (for crate::dashboard):
/// the day of each new report and those before it; older days are deleted as reports come.
pub(crate) const VIOLATION_DAYS_KEPT: u64 = 100;
/// Most pages one day of `violation_days` names: with [`VIOLATION_DAYS_KEPT`] days, the
/// table holds at most [`MAX_VIOLATION_ROWS`] rows of pages, and reports past a day's
/// pages are counted in one row per kind whose page is empty ("other pages"), so a flood
/// of made-up paths can neither grow the table nor hide how many reports came that day.
const MAX_VIOLATION_PAGES_PER_DAY: u64 = MAX_VIOLATION_ROWS / VIOLATION_DAYS_KEPT;
/// A UTC day in ms: days are counted from the epoch (Unix time has no leap seconds).
pub(crate) const DAY_MS: u64 = 86_400_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
  idx INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  bytes BLOB NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
  size INTEGER PRIMARY KEY,
  root BLOB NOT NULL,
  signature BLOB NOT NULL,
  timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS texts (
  sha256 TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  version INTEGER NOT NULL,
  locale TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
  sha256 TEXT PRIMARY KEY,
  text TEXT NOT NULL,
  first_served INTEGER NOT NULL,
  last_served INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS subjects (
  idx INTEGER NOT NULL,
  position INTEGER NOT NULL,
  channel TEXT NOT NULL,
  lookup BLOB NOT NULL,
  identifier TEXT NOT NULL,
  salt BLOB NOT NULL,
  birthday TEXT,
  birthday_salt BLOB,
  PRIMARY KEY (idx, position)
);
CREATE INDEX IF NOT EXISTS subjects_by_lookup ON subjects (lookup);
CREATE TABLE IF NOT EXISTS links (
  id BLOB PRIMARY KEY,
  kind TEXT NOT NULL,
  lookup BLOB NOT NULL,
  identifier TEXT NOT NULL,
  channel TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS links_by_lookup ON links (lookup);
CREATE TABLE IF NOT EXISTS violations (
  kind TEXT NOT NULL,
  rule TEXT NOT NULL,
  form TEXT NOT NULL,
  page TEXT NOT NULL,
  count INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY (kind, form, page)
);
-- The same reports per UTC day (days since the epoch), kind and page, for the dashboard's
-- chart (crate::dashboard); page '' counts the reports past the day's cap of pages.
CREATE TABLE IF NOT EXISTS violation_days (
  day INTEGER NOT NULL,
  kind TEXT NOT NULL,
  page TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (day, kind, page)
);
-- Double opt-in confirmation mails, their outbox (crate::optin).
CREATE TABLE IF NOT EXISTS confirm_mail (
  link_id BLOB PRIMARY KEY,
  signup TEXT NOT NULL,
  lookup BLOB NOT NULL,
  address TEXT NOT NULL,
  locale TEXT NOT NULL,
  deadline INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  sent_at INTEGER,
  confirmed_at INTEGER
);
CREATE INDEX IF NOT EXISTS confirm_mail_by_lookup ON confirm_mail (lookup);
CREATE TABLE IF NOT EXISTS webhook_outbox (
  seq INTEGER PRIMARY KEY,
  endpoint TEXT NOT NULL,
  subject TEXT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  record_idx INTEGER,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  last_error TEXT,
  delivered_at INTEGER,
  dead_at INTEGER
);
CREATE INDEX IF NOT EXISTS webhook_outbox_pending ON webhook_outbox (delivered_at, dead_at, next_at);
CREATE INDEX IF NOT EXISTS webhook_outbox_by_subject ON webhook_outbox (endpoint, subject, seq);
-- The changes by time or config (outdated, expired) already told to the webhooks, so that
-- each is sent once, across restarts (crate::webhooks::sweep).
CREATE TABLE IF NOT EXISTS webhook_notified (
  endpoint TEXT NOT NULL,
  subject TEXT NOT NULL,
  purpose TEXT NOT NULL,
  state TEXT NOT NULL,
  record TEXT NOT NULL,
  notified_at INTEGER NOT NULL,
  PRIMARY KEY (endpoint, subject, purpose, state, record)
);
CREATE INDEX IF NOT EXISTS webhook_notified_by_subject ON webhook_notified (subject);
";

pub use crate::error::StoreError;

/// The tables PostgreSQL has beside the SQLite schema: where sequencing and integration
/// coordinate (after tessera's `SeqCoord` and `IntCoord`), one row each.
const POSTGRES_COORDINATION: &str = "
CREATE TABLE IF NOT EXISTS seq_coord (
  id BIGINT PRIMARY KEY,
  next BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS int_coord (
  id BIGINT PRIMARY KEY,
  size BIGINT NOT NULL,
  timestamp BIGINT NOT NULL
);
INSERT INTO seq_coord (id, next) VALUES (1, 0) ON CONFLICT DO NOTHING;
INSERT INTO int_coord (id, size, timestamp) VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
";

/// The PostgreSQL schema: the SQLite one, column for column, so the two never drift apart,
/// with PostgreSQL's types (`BIGINT`, `BYTEA`, an identity column for the outbox). A
/// record's `received_at` is NULL from its sequencing until its integration sets it to the
/// timestamp of the checkpoint that first covers it.
pub(crate) fn postgres_schema() -> String {
    let tables = [SCHEMA, subjects::SCHEMA, console::SCHEMA].concat();
    let tables = tables
        .replace("received_at INTEGER NOT NULL", "received_at BIGINT")
        .replace(
            "seq INTEGER PRIMARY KEY",
            "seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA");
    format!("{tables}{POSTGRES_COORDINATION}")
}

/// The advisory lock integration runs under (`pg_advisory_xact_lock`): any number that no
/// other application on the database uses; this one is "untickd" in ASCII.
const INTEGRATION_LOCK: i64 = 0x0075_6e74_6963_6b64;
/// The advisory lock creating the schema runs under: two collectors starting together would
/// otherwise race on `CREATE TABLE IF NOT EXISTS` (it is not atomic in PostgreSQL).
const SCHEMA_LOCK: i64 = INTEGRATION_LOCK + 1;
/// The session advisory lock held by the one collector that runs the background work
/// (webhook deliveries, confirmation mails, the sweep), so that none is done twice.
const BACKGROUND_LOCK: i64 = INTEGRATION_LOCK + 2;
/// Most records one integration covers.
const INTEGRATE_AT_MOST: u64 = 4096;

/// A confirmation mail to send (crate::optin).
pub struct DueMail {
    pub link_id: Vec<u8>,
    pub address: String,
    pub locale: String,
    pub deadline: u64,
    pub attempts: u32,
}
use crate::texts::Shown;

/// The collector's secrets, from the key file beside the database.
pub struct Keys {
    pub signing: SigningKey,
    lookup_secret: [u8; 32],
}

impl Keys {
    /// The key file for a database: `<db>.key`.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    /// Reads the key file, or creates it (0600) with fresh keys when there is none.
    pub fn load_or_create(path: &Path) -> Result<Keys, StoreError> {
        if !path.exists() {
            Keys::create(path)?;
        }
        Keys::load(path)
    }

    /// Writes a new key file (0600) with fresh keys (`unticked keygen`).
    ///
    /// # Errors
    /// [`StoreError::File`] with `AlreadyExists` when `path` exists: it is never overwritten,
    /// since a key file is its log's identity.
    pub fn create(path: &Path) -> Result<Keys, StoreError> {
        let mut seed = [0u8; 64];
        getrandom::fill(&mut seed).map_err(|e| StoreError::NoRandomness(e.to_string()))?;
        let text = format!("{}\n{}\n", hex(&seed[..32]), hex(&seed[32..]));
        write_private(path, &text)?;
        Keys::load(path)
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Keys, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = text.lines().map(unhex32);
        match (lines.next().flatten(), lines.next().flatten()) {
            (Some(seed), Some(lookup_secret)) => Ok(Keys {
                signing: SigningKey::from_bytes(&seed),
                lookup_secret,
            }),
            _ => Err(StoreError::NotAKeyFile(path.to_path_buf())),
        }
    }

    pub fn verifying(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The keyed index of a normalised identifier: HMAC-SHA-256 under the collector's
    /// secret, so the index alone reveals no contact and cannot be built by guessing. Taken
    /// over [`lookup_form`], so that every spelling of one address finds the same rows.
    pub fn lookup(&self, identifier: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.lookup_secret).expect("HMAC takes any key length");
        mac.update(lookup_form(identifier).as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// What the subject index is keyed by: the identifier in Unicode NFC (UAX #15), then in
/// Unicode lower case. The widget lowercases ASCII only (full case tables would not fit its
/// size budget), so `anna@bĒrziŅŠ.lv` and `anna@bērziņš.lv` are committed as typed; looked
/// up, exported and erased (GDPR Art. 15, 17), they are one subject. The commitment in the
/// record still covers the identifier as the widget wrote it. Not done: IDNA mapping of a
/// domain (`xn--…` and its Unicode form are two keys).
pub fn lookup_form(identifier: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    identifier.nfc().collect::<String>().to_lowercase()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    unticked_core::record::unhex(text.trim())?.try_into().ok()
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), StoreError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| StoreError::File {
            path: path.to_path_buf(),
            source,
        })?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Creates an empty database file readable by its owner only (0600), as the key file is:
/// it holds contacts. SQLite gives its `-wal` and `-shm` files the database's permissions.
/// An existing file is left as it is.
#[cfg(unix)]
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> Result<(), StoreError> {
    std::fs::write(path, text).map_err(|source| StoreError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// A signed statement of the log's size and root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub size: u64,
    pub root: Hash,
    pub signature: Vec<u8>,
    pub timestamp: u64,
}

/// The checkpoint's signed text, in the C2SP tlog-checkpoint layout: origin, tree size and
/// root hash (standard base64), one per line, then the collector's clock as an extension
/// line, so that the time a record was logged is signed too.
pub fn checkpoint_body(origin: &str, size: u64, root: &Hash, timestamp: u64) -> String {
    format!("{origin}\n{size}\n{}\ntimestamp {timestamp}\n", base64_std(root))
}

fn base64_std(bytes: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64::encode_string(bytes)
}

/// The log's name in its checkpoints: tied to its key, so two collectors' logs never pass
/// for one another.
pub fn origin_of(key: &VerifyingKey) -> String {
    format!("unticked/{}", &hex(&Sha256::digest(key.as_bytes()))[..16])
}

impl Checkpoint {
    pub fn to_json(&self, origin: &str, key: &VerifyingKey) -> serde_json::Value {
        serde_json::json!({
            "origin": origin,
            "size": self.size,
            "root": hex(&self.root),
            "timestamp": self.timestamp,
            "public_key": base64url(key.as_bytes()),
            "signature": base64url(&self.signature),
            "note": checkpoint_body(origin, self.size, &self.root, self.timestamp),
        })
    }
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now at this log index.
    New(u64),
    /// The same bytes, with the same values beside them, were stored before at this index.
    Existing(u64),
    /// Other bytes are stored under this id, or other values beside the same bytes.
    Conflict,
}

/// A birthday given with a record (R8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Birthday {
    /// Bound to the record by its commitment: kept, with its salt.
    Bound(Salted),
    /// `--MM-DD` beside a record that commits to none, from a widget cached before
    /// birthdays were bound: never kept, since nothing shows it is the shopper's; only
    /// compared with what an earlier delivery of the same record left.
    Unbound(String),
}

/// Rows that follow from a new record (its webhook events, its confirmation e-mail),
/// written in the same transaction as the record, given its log index: they exist exactly
/// when the record does, so a crash can neither lose them nor leave one without its record.
pub type Effect = Box<dyn Fn(&mut dyn Sql, u64) -> Result<(), DbError> + Send + Sync>;

struct Job {
    id: String,
    bytes: String,
    disclosures: Vec<Disclosure>,
    birthday: Option<Birthday>,
    /// Run once the record is new in the batch's transaction; never for a retry.
    effects: Vec<Effect>,
    reply: tokio::sync::oneshot::Sender<Result<Appended, StoreError>>,
}

impl Job {
    /// The birthday this job keeps.
    fn kept_birthday(&self) -> Option<&Salted> {
        match &self.birthday {
            Some(Birthday::Bound(salted)) => Some(salted),
            _ => None,
        }
    }

    /// Whether what travels beside this job's record is what is held for it: the same
    /// disclosures in the same order, and the same birthday. A bare birthday was never kept,
    /// so it matches none held, or the same value kept before birthdays were bound.
    fn matches(&self, held: &Held) -> bool {
        let disclosures = held.disclosures.len() == self.disclosures.len()
            && held
                .disclosures
                .iter()
                .zip(&self.disclosures)
                .all(|(h, d)| h.0 == d.channel.as_str() && h.1 == d.identifier && h.2[..] == d.salt[..]);
        let birthday = match (&self.birthday, &held.birthday) {
            (Some(Birthday::Bound(salted)), Some((value, Some(salt)))) => {
                *value == salted.value && salt[..] == salted.salt[..]
            }
            (Some(Birthday::Unbound(_)), None) | (None, None) => true,
            (Some(Birthday::Unbound(bare)), Some((value, None))) => bare == value,
            _ => false,
        };
        disclosures && birthday
    }

    /// What this job leaves beside its record once stored.
    fn held(&self) -> Held {
        Held {
            disclosures: self
                .disclosures
                .iter()
                .map(|d| (d.channel.as_str().to_string(), d.identifier.clone(), d.salt.to_vec()))
                .collect(),
            birthday: match (self.kept_birthday(), self.disclosures.is_empty()) {
                (Some(salted), false) => Some((salted.value.clone(), Some(salted.salt.to_vec()))),
                _ => None,
            },
        }
    }
}

/// What is held beside a stored record: its disclosures `(channel, identifier, salt)` in
/// order, and the birthday kept with them `(value, salt)` (no salt: kept before birthdays
/// were bound to records).
struct Held {
    disclosures: Vec<(String, String, Vec<u8>)>,
    birthday: Option<(String, Option<Vec<u8>>)>,
}

/// The state readers share with the writer.
struct Shared {
    location: Location,
    tree: RwLock<Tree>,
    latest: RwLock<Option<Checkpoint>>,
    /// Connections for everything but the log's writes: reads, links, restrictions, configs.
    pool: Pool,
    /// Violation reports are counted one at a time: reports come from anyone, and racing
    /// ones on SQLite waited on its write lock until they failed with `database is locked`
    /// (503, the report lost).
    reports: Mutex<()>,
    /// PostgreSQL: the connection that holds the background work's session lock, once
    /// taken ([`Store::leads_background_work`]).
    background: Mutex<Option<Db>>,
    keys: Keys,
    origin: String,
    /// Where each new checkpoint is published (`serve --witness`), if anywhere.
    witness: OnceLock<crate::witness::Witness>,
}

/// The store: cheap to clone, one per collector.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::SyncSender<Job>,
    shared: Arc<Shared>,
    /// The writer thread, joined by [`Store::close`].
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the SQLite database at `path` and its key file, rebuilds the tree
    /// from the stored records, and records every purpose text `config` can show.
    // serve and import open with `--key` (Store::open_with_key); the tests keep the short form.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn open(path: &Path, texts: &Shown) -> Result<Store, StoreError> {
        Store::open_with_key(path, None, texts)
    }

    /// [`Store::open`] with the key file `serve --key` names: `Some` must exist (it is read,
    /// never created); `None` is `<db>.key`, created on first start.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn open_with_key(path: &Path, key_file: Option<&Path>, texts: &Shown) -> Result<Store, StoreError> {
        Store::open_at(&Location::Sqlite(path.to_path_buf()), key_file, texts)
    }

    /// Opens the log at `location`, SQLite or PostgreSQL. PostgreSQL needs `key_file`: the
    /// collectors sharing a log share its key (`unticked keygen`), and none makes its own.
    pub fn open_at(location: &Location, key_file: Option<&Path>, texts: &Shown) -> Result<Store, StoreError> {
        let mut write = match location {
            Location::Sqlite(path) => open_sqlite(path)?,
            Location::Postgres(_) => open_postgres(location)?,
        };
        let key_path = match (location, key_file) {
            (_, Some(given)) => given.to_path_buf(),
            (Location::Sqlite(path), None) => Keys::path_for(path),
            (Location::Postgres(_), None) => return Err(StoreError::PostgresNeedsKey),
        };
        let has_records = write
            .run(|sql| sql.value::<i64>("SELECT 1 FROM log LIMIT 1", params![]))?
            .is_some();
        // A new key for an existing log would orphan its checkpoints and make its subjects
        // unfindable (and so unerasable): refuse rather than start over silently.
        if has_records && !key_path.exists() {
            return Err(StoreError::KeyMissing {
                db: location.to_string(),
                key: key_path,
            });
        }
        let keys = match key_file {
            Some(given) => Keys::load(given)?,
            None => Keys::load_or_create(&key_path)?,
        };
        let latest = write.run(|sql| latest_checkpoint(sql))?;
        refuse_foreign_key(latest.as_ref(), location, &key_path, &keys)?;
        write.transaction(|sql| store_texts(sql, texts))?;
        let mut tree = Tree::new();
        // The tree over what the latest checkpoint covers; with PostgreSQL, records
        // sequenced past it wait for the next integration.
        let covered = latest.as_ref().map_or(0, |c| c.size);
        write.run(|sql| extend_tree(sql, &mut tree, covered))?;
        if let Some(latest) = &latest {
            check_root(&tree, latest)?;
        }
        // A SQLite log written before checkpoints covered every batch has records past the
        // latest one: they are still the log's, as before.
        if write.dialect() == Dialect::Sqlite {
            write.run(|sql| extend_tree(sql, &mut tree, u64::MAX))?;
        }
        let origin = origin_of(&keys.verifying());
        let pool_access = Access::ReadWrite;
        let shared = Arc::new(Shared {
            location: location.clone(),
            tree: RwLock::new(tree),
            latest: RwLock::new(latest),
            pool: Pool::new(location.clone(), pool_access),
            reports: Mutex::new(()),
            background: Mutex::new(None),
            keys,
            origin,
            witness: OnceLock::new(),
        });
        let (jobs, queue) = mpsc::sync_channel::<Job>(4 * BATCH);
        let writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("unticked-writer".into())
            .spawn(move || write_loop(write, &writer, &queue))?;
        Ok(Store {
            jobs,
            shared,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Where the log is kept.
    pub fn location(&self) -> &Location {
        &self.shared.location
    }

    /// The connections readers and small writes share.
    pub(crate) fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// Stops the writer and closes every connection. With SQLite it folds the WAL into the
    /// database first (`wal_checkpoint(TRUNCATE)`), so that SQLite removes `-wal` and `-shm`
    /// when the last connection closes (<https://sqlite.org/wal.html#the_wal_file>). Call it
    /// on the last clone: the writer runs as long as any clone can still send it a job.
    ///
    /// # Errors
    /// Other clones still exist, or the checkpoint failed (the WAL is then kept, and SQLite
    /// replays it on the next open: nothing is lost).
    pub fn close(self) -> Result<(), StoreError> {
        let Store { jobs, shared, writer } = self;
        // This clone and the writer thread's: nobody else can send a job or read.
        if Arc::strong_count(&shared) > 2 {
            return Err(StoreError::InUse);
        }
        drop(jobs);
        let handle = writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            handle.join().map_err(|_| StoreError::WriterPanicked)?;
        }
        let location = shared.location.clone();
        // Closes the pooled connections: the last one must be able to remove the WAL.
        drop(shared);
        if let Location::Sqlite(path) = &location {
            let conn = rusqlite::Connection::open(path).map_err(DbError::from)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .map_err(DbError::from)?;
            conn.close().map_err(|(_, e)| DbError::from(e))?;
        }
        Ok(())
    }

    /// Appends a verified record (idempotent by id and what travels beside it) and waits
    /// until it is durable. A bound birthday (R8) is kept with its salt with each of the
    /// record's disclosures, so that erasing any of the subject's contacts erases it with
    /// them; a bare one is not kept.
    #[cfg(test)]
    pub async fn append(
        &self,
        id: String,
        bytes: String,
        disclosures: Vec<Disclosure>,
        birthday: Option<Birthday>,
    ) -> Result<Appended, StoreError> {
        self.append_with(id, bytes, disclosures, birthday, Vec::new()).await
    }

    /// [`Store::append`], with the `effects` of a new record written in its transaction.
    pub async fn append_with(
        &self,
        id: String,
        bytes: String,
        disclosures: Vec<Disclosure>,
        birthday: Option<Birthday>,
        effects: Vec<Effect>,
    ) -> Result<Appended, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            id,
            bytes,
            disclosures,
            birthday,
            effects,
            reply,
        };
        let jobs = self.jobs.clone();
        // The queue is bounded: under overload the sender waits here, off the async threads.
        // A job sent back (the writer stopped) carries its effects: drop it there, not here.
        tokio::task::spawn_blocking(move || jobs.send(job).map_err(|_| ()))
            .await?
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// Publishes every checkpoint committed from now on to `witness`, starting with the
    /// latest one already stored, so that a witness set up later covers the log so far.
    pub fn witness_to(&self, witness: crate::witness::Witness) {
        if let Some(latest) = self.latest() {
            witness.publish(
                latest.size,
                latest.to_json(&self.shared.origin, &self.public_key()).to_string(),
            );
        }
        let _ = self.shared.witness.set(witness);
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.shared.keys.verifying()
    }

    /// Whether this collector runs the background work that must not run twice on one log
    /// (webhook deliveries, confirmation mails, the sweep). Always, on SQLite (one collector
    /// per file, `<db>.lock`). On PostgreSQL, the one collector holding a session advisory
    /// lock: when it dies its connection closes, the lock is released, and the next
    /// collector to ask takes the work over.
    pub fn leads_background_work(&self) -> bool {
        if self.shared.location.dialect() == Dialect::Sqlite {
            return true;
        }
        let mut held = self.shared.background.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = held.as_mut() {
            // Still connected means still held.
            if db.run(|sql| sql.value::<i64>("SELECT 1", params![])).is_ok() {
                return true;
            }
            *held = None;
        }
        let Ok(mut db) = Db::open(&self.shared.location, Access::ReadWrite) else {
            return false;
        };
        let taken = db.run(|sql| sql.value::<bool>("SELECT pg_try_advisory_lock(?1)", params![BACKGROUND_LOCK]));
        if matches!(taken, Ok(Some(true))) {
            *held = Some(db);
            true
        } else {
            false
        }
    }

    /// The disclosures of the subject whose normalised identifier is `identifier`, through
    /// the keyed index: `(log index, channel, identifier, salt)`, oldest first.
    pub fn subject(&self, identifier: &str) -> Result<Vec<SubjectRow>, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT idx, channel, identifier, salt, birthday FROM subjects WHERE lookup = ?1 ORDER BY idx, position",
                params![&lookup],
            )?
            .into_iter()
            .map(subject_row)
            .collect()
        })
    }

    /// The exact bytes stored at a log index.
    pub fn record_at(&self, index: u64) -> Result<Option<String>, StoreError> {
        let bytes = self
            .shared
            .pool
            .run(|sql| sql.value::<Vec<u8>>("SELECT bytes FROM log WHERE idx = ?1", params![index]))?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Up to `count` records from log index `start`, in order: `(index, bytes)`. Only
    /// records a checkpoint covers.
    pub fn entries(&self, start: u64, count: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let covered = self.covered();
        let count = count.min(covered.saturating_sub(start));
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT idx, bytes FROM log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
                params![start, count],
            )?
            .into_iter()
            .map(|mut row| Ok((row.get::<u64>(0)?, bytes_text(row.take(1)?))))
            .collect()
        })
    }

    /// [`Store::entries`] with the time each record was received (ms since the epoch, the
    /// collector's clock: with PostgreSQL, the checkpoint's that first covered it).
    pub fn dated_entries(&self, start: u64, count: u64) -> Result<Vec<DatedEntry>, StoreError> {
        let covered = self.covered();
        let count = count.min(covered.saturating_sub(start));
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT idx, received_at, bytes FROM log WHERE idx >= ?1 ORDER BY idx LIMIT ?2",
                params![start, count],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(DatedEntry {
                    index: row.get(0)?,
                    received_at: row.get(1)?,
                    bytes: bytes_text(row.take(2)?),
                })
            })
            .collect()
        })
    }

    /// Calls `each` with every record a checkpoint covers, in log order, and its
    /// disclosures still held.
    pub fn export(&self, mut each: impl FnMut(u64, &str, &[SubjectRow]) + Send) -> Result<(), StoreError> {
        let covered = self.covered();
        // Its own connection (a pooled one, given back after): a long scan must not hold
        // up the readers that answer posts.
        self.shared.pool.snapshot(|sql| {
            let mut records = Vec::new();
            let mut start = 0;
            // In pages, so that the subjects of each record are read on the same connection
            // between two pages, never inside the scan of the log.
            while start < covered {
                records.clear();
                sql.each(
                    "SELECT idx, bytes FROM log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                    params![start, covered.min(start + 1024)],
                    &mut |mut row| {
                        records.push((row.get::<u64>(0)?, row.take::<Vec<u8>>(1)?));
                        Ok(true)
                    },
                )?;
                if records.is_empty() {
                    break;
                }
                for (idx, bytes) in &records {
                    let held: Vec<SubjectRow> = sql
                        .rows(
                            "SELECT idx, channel, identifier, salt, birthday FROM subjects WHERE idx = ?1 ORDER BY position",
                            params![*idx],
                        )?
                        .into_iter()
                        .map(subject_row)
                        .collect::<Result<_, StoreError>>()?;
                    each(*idx, &String::from_utf8_lossy(bytes), &held);
                }
                start = records.last().map_or(covered, |(idx, _)| idx + 1);
            }
            Ok(())
        })
    }

    /// Counts a violation report from a shop page (see `crate::violations`).
    ///
    /// One atomic upsert: two identical new reports arriving together must both count. An
    /// UPDATE followed by an INSERT let both see no row, and the second INSERT then broke the
    /// primary key (a 503, and the report lost).
    pub fn note_violation(&self, kind: &str, rule: &str, form: &str, page: &str) -> Result<(), StoreError> {
        self.note_violation_at(kind, rule, form, page, now_ms())
    }

    /// [`Store::note_violation`] at `now` (ms since the epoch): the totals and the day's
    /// row (`violation_days`), in one transaction.
    pub(crate) fn note_violation_at(
        &self,
        kind: &str,
        rule: &str,
        form: &str,
        page: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.shared.reports.lock().unwrap_or_else(|e| e.into_inner());
        let day = now / DAY_MS;
        // New rows only while there are fewer than MAX_VIOLATION_ROWS: reports are unsigned
        // and anyone can send them, so they must not be able to fill the disk. A row that
        // exists is counted whatever the table's size.
        self.shared.pool.transaction(|sql| {
            sql.execute(
                "INSERT INTO violations (kind, rule, form, page, count, first_seen, last_seen)
                 SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS TEXT), 1, CAST(?5 AS BIGINT), CAST(?5 AS BIGINT)
                 WHERE (SELECT count(*) FROM violations) < ?6
                    OR EXISTS (SELECT 1 FROM violations WHERE kind = ?1 AND form = ?3 AND page = ?4)
                 ON CONFLICT (kind, form, page) DO UPDATE SET count = violations.count + 1, last_seen = excluded.last_seen",
                params![kind, rule, form, page, now, MAX_VIOLATION_ROWS],
            )?;
            // Per day: the page's own row while the day names fewer than its cap of pages
            // (or already names this one), the kind's "other pages" row ('') past it; and
            // days older than those kept go.
            sql.execute(
                "INSERT INTO violation_days (day, kind, page, count)
                 SELECT CAST(?1 AS BIGINT), CAST(?2 AS TEXT),
                        CASE WHEN EXISTS (SELECT 1 FROM violation_days WHERE day = ?1 AND kind = ?2 AND page = ?3)
                               OR (SELECT count(*) FROM violation_days WHERE day = ?1 AND page <> '') < ?4
                             THEN CAST(?3 AS TEXT) ELSE '' END,
                        1
                 WHERE true
                 ON CONFLICT (day, kind, page) DO UPDATE SET count = violation_days.count + 1",
                params![day, kind, page, MAX_VIOLATION_PAGES_PER_DAY],
            )?;
            sql.execute(
                "DELETE FROM violation_days WHERE day < ?1",
                params![(day + 1).saturating_sub(VIOLATION_DAYS_KEPT)],
            )?;
            Ok(())
        })
    }

    /// The violation reports per day from `first_day` (days since the epoch, UTC) on:
    /// `(day, kind, page, count)`, by day, kind and page; page `""` counts the reports
    /// past the day's cap of pages.
    pub fn violation_days(&self, first_day: u64) -> Result<Vec<ViolationDay>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT day, kind, page, count FROM violation_days WHERE day >= ?1 ORDER BY day, kind, page",
                params![first_day],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(ViolationDay {
                    day: row.get(0)?,
                    kind: row.take(1)?,
                    page: row.take(2)?,
                    count: row.get(3)?,
                })
            })
            .collect()
        })
    }

    /// Every violation reported: `(kind, rule, form, page, count, first_seen, last_seen)`,
    /// most frequent first.
    pub fn violations(&self) -> Result<Vec<ViolationRow>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT kind, rule, form, page, count, first_seen, last_seen FROM violations ORDER BY count DESC, kind, form, page",
                params![],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(ViolationRow {
                    kind: row.take(0)?,
                    rule: row.take(1)?,
                    form: row.take(2)?,
                    page: row.take(3)?,
                    count: row.get(4)?,
                    first_seen: row.get(5)?,
                    last_seen: row.get(6)?,
                })
            })
            .collect()
        })
    }

    /// Erases a subject (GDPR Art. 17): deletes their disclosures, so nothing in the store
    /// names them any more. The log and every signature are untouched and still verify (R10).
    #[cfg(test)]
    pub fn erase(&self, identifier: &str) -> Result<usize, StoreError> {
        self.erase_with(identifier, &|_, _| Ok(()))
    }

    /// [`Store::erase`], with `told` run in the erasure's transaction when anything of the
    /// subject was held, given the subject's keyed index (hex): how the `erased` webhook
    /// event is written exactly when the erasure is (crate::webhooks::erased).
    pub fn erase_with(
        &self,
        identifier: &str,
        told: &(dyn Fn(&mut dyn Sql, &str) -> Result<(), DbError> + Sync),
    ) -> Result<usize, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        let subject = hex(&lookup);
        let mut conn = self.shared.pool.get()?;
        if let Some(sqlite) = conn.db().sqlite() {
            // Overwrite the freed pages, and fold the WAL (which still holds the old pages)
            // back into the database, so that the erased contacts are gone from the disk too.
            sqlite
                .pragma_update(None, "secure_delete", "ON")
                .map_err(DbError::from)?;
        }
        let erased = conn.db().transaction(|sql| {
            // The birthday given with a record goes with any of the record's contacts (R8).
            sql.execute(
                "UPDATE subjects SET birthday = NULL, birthday_salt = NULL WHERE idx IN (SELECT idx FROM subjects WHERE lookup = ?1)",
                params![&lookup],
            )?;
            let erased = sql.execute("DELETE FROM subjects WHERE lookup = ?1", params![&lookup])?;
            // Their preference and unsubscribe links name nobody any more either.
            let mut held = erased + sql.execute("DELETE FROM links WHERE lookup = ?1", params![&lookup])?;
            // And their confirmation mails, sent or not (crate::optin).
            held += sql.execute("DELETE FROM confirm_mail WHERE lookup = ?1", params![&lookup])?;
            // Nor do the webhook events that carry their identifier, sent or not (Art. 17).
            held += sql.execute("DELETE FROM webhook_outbox WHERE subject = ?1", params![&subject])?;
            sql.execute("DELETE FROM webhook_notified WHERE subject = ?1", params![&subject])?;
            // A restriction is kept only as long as the subject is (Art. 18 pauses, 17 ends).
            sql.execute("DELETE FROM restrictions WHERE lookup = ?1", params![&lookup])?;
            if held > 0 {
                told(sql, &subject)?;
            }
            Ok::<_, StoreError>(erased)
        })?;
        let Some(sqlite) = conn.db().sqlite() else {
            // PostgreSQL keeps a deleted row's bytes in its page until VACUUM reuses the
            // space (docs/operations.md, "Erasure"): autovacuum does, in time.
            return Ok(erased);
        };
        // The WAL still holds the pages as they were; fold it in. A reader in the middle of
        // a scan keeps it busy: wait for it, and say so rather than claim the erasure done.
        for _ in 0..50 {
            let busy: i64 = sqlite
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                .map_err(DbError::from)?;
            if busy == 0 {
                return Ok(erased);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(StoreError::WalBusy)
    }

    /// The keyed index of `identifier`, lowercase hex: how the webhook outbox names a
    /// subject without naming their contact.
    pub fn lookup_hex(&self, identifier: &str) -> String {
        hex(&self.shared.keys.lookup(identifier))
    }

    /// Signs `message` with the collector's key, the one that signs its checkpoints: for
    /// the records of steps a subject took without JavaScript (`"signer":"collector"`).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.shared.keys.signing.sign(message).to_bytes()
    }

    /// HMAC-SHA-256 of `data` under the collector's link secret (derived from its subject
    /// index secret, so the key file holds no new line): what makes a link token unforgeable.
    pub fn link_mac(&self, data: &[u8]) -> [u8; 32] {
        let mut derive = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.shared.keys.lookup_secret)
            .expect("HMAC takes any key length");
        derive.update(b"unticked link tokens v1");
        let secret = derive.finalize().into_bytes();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Keeps a new link of `kind` (`preferences`, `unsubscribe`) to the subject known by
    /// `identifier`, for `channel`, valid until `expires_at` (ms), under the random `id`.
    /// The identifier is kept beside it, in the erasable part of the store: a link may be
    /// minted for a customer who has no record yet, and erasure deletes it (Art. 17).
    pub fn add_link(
        &self,
        id: &[u8],
        kind: &str,
        identifier: &str,
        channel: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.add_links(&[NewLink {
            id,
            kind,
            identifier,
            channel,
            expires_at,
        }])
    }

    /// Keeps every link of `links`, as [`Store::add_link`] does, in one transaction: all of
    /// them, or none.
    pub fn add_links(&self, links: &[NewLink<'_>]) -> Result<(), StoreError> {
        let now = now_ms();
        let keys = &self.shared.keys;
        self.shared.pool.transaction(|sql| {
            for link in links {
                sql.execute(
                    "INSERT INTO links (id, kind, lookup, identifier, channel, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![link.id, link.kind, &keys.lookup(link.identifier), link.identifier, link.channel, now, link.expires_at],
                )?;
            }
            Ok(())
        })
    }

    /// The link under `id`, if kept.
    pub fn link(&self, id: &[u8]) -> Result<Option<LinkRow>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.row(
                "SELECT kind, identifier, channel, expires_at, revoked_at IS NOT NULL FROM links WHERE id = ?1",
                params![id],
            )?
            .map(|mut row| {
                Ok(LinkRow {
                    kind: row.take(0)?,
                    identifier: row.take(1)?,
                    channel: row.take(2)?,
                    expires_at: row.get(3)?,
                    revoked: row.get(4)?,
                })
            })
            .transpose()
        })
    }

    /// Revokes every link of the subject known by `identifier` (on `channel` only, when
    /// given); returns how many were live.
    pub fn revoke_links(&self, identifier: &str, channel: Option<&str>) -> Result<usize, StoreError> {
        let lookup = self.shared.keys.lookup(identifier);
        self.shared.pool.run(|sql| {
            Ok(sql.execute(
                "UPDATE links SET revoked_at = ?1 WHERE lookup = ?2 AND revoked_at IS NULL AND (CAST(?3 AS TEXT) IS NULL OR channel = ?3)",
                params![now_ms(), &lookup, channel],
            )?)
        })
    }

    /// The keyed index of `identifier` (see `Keys::lookup`).
    pub fn lookup(&self, identifier: &str) -> [u8; 32] {
        self.shared.keys.lookup(identifier)
    }

    /// The signup a confirmation link confirms, and whether it was confirmed already.
    pub fn confirm_mail(&self, link_id: &[u8]) -> Result<Option<(String, bool)>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.row(
                "SELECT signup, confirmed_at IS NOT NULL FROM confirm_mail WHERE link_id = ?1",
                params![link_id],
            )?
            .map(|mut row| Ok((row.take(0)?, row.get(1)?)))
            .transpose()
        })
    }

    /// Confirmation mails due at `now`: unsent, unconfirmed, before their deadline.
    pub fn due_mails(&self, now: u64, limit: u32) -> Result<Vec<DueMail>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT link_id, address, locale, deadline, attempts FROM confirm_mail \
                 WHERE sent_at IS NULL AND confirmed_at IS NULL AND next_at <= ?1 AND deadline > ?1 ORDER BY next_at LIMIT ?2",
                params![now, limit],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(DueMail {
                    link_id: row.take(0)?,
                    address: row.take(1)?,
                    locale: row.take(2)?,
                    deadline: row.get(3)?,
                    attempts: row.get(4)?,
                })
            })
            .collect()
        })
    }

    /// Records a mail sent (`next_at` None) or its next try after a failure.
    pub fn mail_tried(&self, link_id: &[u8], now: u64, next_at: Option<u64>) -> Result<(), StoreError> {
        self.shared.pool.run(|sql| {
            match next_at {
                None => sql.execute(
                    "UPDATE confirm_mail SET sent_at = ?1, attempts = attempts + 1 WHERE link_id = ?2",
                    params![now, link_id],
                )?,
                Some(next) => sql.execute(
                    "UPDATE confirm_mail SET next_at = ?1, attempts = attempts + 1 WHERE link_id = ?2",
                    params![next, link_id],
                )?,
            };
            Ok(())
        })
    }

    /// Marks a confirmation link used.
    pub fn confirmed(&self, link_id: &[u8], at: u64) -> Result<(), StoreError> {
        self.shared.pool.transaction(|sql| {
            sql.execute(
                "UPDATE confirm_mail SET confirmed_at = ?1 WHERE link_id = ?2",
                params![at, link_id],
            )?;
            sql.execute("UPDATE links SET revoked_at = ?1 WHERE id = ?2", params![at, link_id])?;
            Ok(())
        })
    }

    /// The latest checkpoint, if anything was stored. With PostgreSQL, the latest any
    /// collector committed (read from the database; the tree here catches up to it), or,
    /// while the database cannot be read, the latest this collector knows of.
    pub fn latest(&self) -> Option<Checkpoint> {
        if self.shared.location.dialect() == Dialect::Postgres {
            if let Err(e) = self.refresh_latest() {
                tracing::warn!(error = %e, "could not read the latest checkpoint");
            }
        }
        self.shared.latest.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How far readers may read the log: what the latest checkpoint covers. A SQLite log
    /// written before every batch had its checkpoint holds records past it, still the
    /// log's: there, every record.
    fn covered(&self) -> u64 {
        match self.shared.location.dialect() {
            Dialect::Sqlite => u64::MAX,
            Dialect::Postgres => self.latest().map_or(0, |c| c.size),
        }
    }

    /// Reads the latest checkpoint from the database and brings the tree up to it.
    fn refresh_latest(&self) -> Result<(), StoreError> {
        let known = self
            .shared
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.size);
        let shared = &self.shared;
        shared.pool.run(|sql| {
            let Some(latest) = latest_checkpoint(sql)? else {
                return Ok(());
            };
            if latest.size <= known {
                return Ok(());
            }
            catch_up(sql, shared, &latest)?;
            let mut current = shared.latest.write().unwrap_or_else(|e| e.into_inner());
            if current.as_ref().is_none_or(|c| c.size < latest.size) {
                *current = Some(latest);
            }
            Ok(())
        })
    }

    /// The record stored under `id`, once a checkpoint covers it: its index and exact bytes.
    pub fn record(&self, id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let found = self.shared.pool.run(|sql| {
            sql.row(
                "SELECT idx, bytes FROM log WHERE id = ?1 AND received_at IS NOT NULL",
                params![id],
            )?
            .map(|mut row| Ok::<_, StoreError>((row.get::<u64>(0)?, bytes_text(row.take(1)?))))
            .transpose()
        })?;
        Ok(found)
    }

    /// The first checkpoint that covers `index`: the one its receipt was issued with.
    pub fn checkpoint_covering(&self, index: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.row(
                "SELECT size, root, signature, timestamp FROM checkpoints WHERE size > ?1 ORDER BY size LIMIT 1",
                params![index],
            )?
            .map(checkpoint_row)
            .transpose()
        })
    }

    /// The leaf hash at `index` and its inclusion proof in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Option<(Hash, Vec<Hash>)> {
        let tree = self.shared.tree.read().unwrap_or_else(|e| e.into_inner());
        Some((tree.leaf(index)?, tree.inclusion(index, size)?))
    }

    /// The consistency proof between two committed sizes.
    pub fn consistency(&self, from: u64, to: u64) -> Option<Vec<Hash>> {
        let committed = self.latest().map_or(0, |c| c.size);
        if to > committed {
            return None;
        }
        self.shared
            .tree
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .consistency(from, to)
    }

    /// A stored purpose text: `(purpose, version, locale, text)`.
    pub fn text(&self, sha256: &str) -> Result<Option<(String, u32, String, String)>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.row(
                "SELECT purpose, version, locale, text FROM texts WHERE sha256 = ?1",
                params![sha256],
            )?
            .map(|mut row| Ok((row.take(0)?, row.get(1)?, row.take(2)?, row.take(3)?)))
            .transpose()
        })
    }
}

/// A record's bytes as text (they were stored from a `String`).
fn bytes_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A link to keep ([`Store::add_links`]): its random id, kind, subject, channel and expiry.
pub struct NewLink<'a> {
    pub id: &'a [u8],
    pub kind: &'a str,
    pub identifier: &'a str,
    pub channel: &'a str,
    pub expires_at: u64,
}

/// A config the collector has served (crate::history): its SHA-256, and when it was first
/// and last served, ms since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    pub sha256: String,
    pub first_served: u64,
    pub last_served: u64,
}

/// The history of the configs served (crate::history), kept apart from the log: a few rows
/// written at start, hourly and at shutdown, each on a connection of its own.
impl Store {
    /// Records that the config whose exact text is `text` (without a byte order mark) and
    /// whose SHA-256 is `sha256` (`compile::config_sha256`) is served at `now_ms`: a new row,
    /// or a later `last_served` (never an earlier one, whatever the clock does).
    pub fn config_served(&self, sha256: &str, text: &str, now_ms: u64) -> Result<(), StoreError> {
        // SQLite's two-argument max() is PostgreSQL's GREATEST().
        let later = match self.shared.location.dialect() {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "GREATEST",
        };
        let statement = format!(
            "INSERT INTO configs (sha256, text, first_served, last_served) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (sha256) DO UPDATE SET last_served = {later}(configs.last_served, excluded.last_served)"
        );
        self.shared.pool.run(|sql| {
            sql.execute(&statement, params![sha256, text, now_ms])?;
            Ok(())
        })
    }

    /// Every config served, the first served first.
    pub fn configs(&self) -> Result<Vec<ConfigRow>, StoreError> {
        self.shared.pool.run(|sql| {
            sql.rows(
                "SELECT sha256, first_served, last_served FROM configs ORDER BY first_served, sha256",
                params![],
            )?
            .into_iter()
            .map(|mut row| {
                Ok(ConfigRow {
                    sha256: row.take(0)?,
                    first_served: row.get(1)?,
                    last_served: row.get(2)?,
                })
            })
            .collect()
        })
    }

    /// The exact text of the config stored under `sha256`.
    pub fn config_text(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        self.shared
            .pool
            .run(|sql| Ok(sql.value("SELECT text FROM configs WHERE sha256 = ?1", params![sha256])?))
    }

    /// Records every purpose text of `texts` (those of an older config, beside the ones
    /// [`Store::open`] records), so that what a shopper was shown under it can be printed.
    pub fn keep_texts(&self, texts: &Shown) -> Result<(), StoreError> {
        self.shared.pool.transaction(|sql| store_texts(sql, texts))
    }
}

/// Reports of one kind of violation on one page of one form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolationRow {
    pub kind: String,
    pub rule: String,
    pub form: String,
    pub page: String,
    pub count: u64,
    pub first_seen: u64,
    pub last_seen: u64,
}

/// Reports of one kind of violation on one page on one day (UTC), for crate::dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolationDay {
    /// Days since the epoch.
    pub day: u64,
    pub kind: String,
    /// The page's path, or `""` for the reports past the day's cap of pages.
    pub page: String,
    pub count: u64,
}

/// A record of the log with the time it was received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedEntry {
    pub index: u64,
    /// ms since the epoch, by the collector's clock; `None` only for a record sequenced
    /// but not yet covered by a checkpoint, which readers are not given.
    pub received_at: Option<u64>,
    pub bytes: String,
}

/// A preference or unsubscribe link, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRow {
    /// `preferences` or `unsubscribe`.
    pub kind: String,
    /// The subject's normalised identifier.
    pub identifier: String,
    pub channel: String,
    /// ms since the epoch.
    pub expires_at: u64,
    pub revoked: bool,
}

/// A disclosure as stored: log index, channel, identifier and salt (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRow {
    pub index: u64,
    pub channel: String,
    pub identifier: String,
    pub salt: String,
    /// `--MM-DD`, given with the record for a birthday purpose (R8).
    pub birthday: Option<String>,
}

fn subject_row(mut row: crate::db::Row) -> Result<SubjectRow, StoreError> {
    Ok(SubjectRow {
        index: row.get(0)?,
        channel: row.take(1)?,
        identifier: row.take(2)?,
        salt: hex(&row.take::<Vec<u8>>(3)?),
        birthday: row.take(4)?,
    })
}

fn checkpoint_row(mut row: crate::db::Row) -> Result<Checkpoint, StoreError> {
    let root: Vec<u8> = row.take(1)?;
    let root = root
        .try_into()
        .map_err(|_| DbError::Invalid("a checkpoint's root is not 32 bytes".into()))?;
    Ok(Checkpoint {
        size: row.get(0)?,
        root,
        signature: row.take(2)?,
        timestamp: row.get(3)?,
    })
}

/// Opens the SQLite file for the writer: created 0600, WAL, the schema, and the columns
/// older logs lack.
pub(crate) fn open_sqlite(path: &Path) -> Result<Db, StoreError> {
    create_private(path)?;
    let location = Location::Sqlite(path.to_path_buf());
    let mut write = Db::open(&location, Access::ReadWrite).map_err(|e| match e {
        DbError::Open { message, .. } => StoreError::Database {
            path: path.to_path_buf(),
            message,
        },
        other => StoreError::Db(other),
    })?;
    if let Some(sqlite) = write.sqlite() {
        // WAL with FULL: a commit is on disk when it returns (the 201 waits for it).
        sqlite
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(DbError::from)?;
    }
    write.run(|sql| {
        sql.batch(SCHEMA)?;
        sql.batch(subjects::SCHEMA)?;
        sql.batch(console::SCHEMA)?;
        // Logs made before the birthday field (R8) get its column; erasing a subject's rows
        // erases the birthday with them. And the salt of the record's commitment to it, so
        // `unticked verify` can check each birthday kept against its record. Birthdays kept
        // before have none (and their records no commitment): verify reports them as
        // unchecked.
        for (column, kind) in [("birthday", "TEXT"), ("birthday_salt", "BLOB")] {
            let has = sql
                .value::<i64>(
                    "SELECT 1 FROM pragma_table_info('subjects') WHERE name = ?1",
                    params![column],
                )?
                .is_some();
            if !has {
                sql.batch(&format!("ALTER TABLE subjects ADD COLUMN {column} {kind}"))?;
            }
        }
        Ok::<_, StoreError>(())
    })?;
    Ok(write)
}

/// Opens PostgreSQL for the writer and makes the schema, once, whoever starts first.
pub(crate) fn open_postgres(location: &Location) -> Result<Db, StoreError> {
    let mut write = Db::open(location, Access::ReadWrite)?;
    let schema = postgres_schema();
    write.transaction(|sql| {
        sql.value::<i64>("SELECT 1 FROM pg_advisory_xact_lock(?1)", params![SCHEMA_LOCK])?;
        sql.batch(&schema)?;
        Ok::<_, StoreError>(())
    })?;
    Ok(write)
}

/// A key file that did not sign the log's latest checkpoint belongs to another log: with it
/// new checkpoints would not extend the old ones, and the subject index (an HMAC under the
/// other key's secret) would find nobody, so no subject could be erased (GDPR Art. 17).
fn refuse_foreign_key(
    latest: Option<&Checkpoint>,
    location: &Location,
    key_path: &Path,
    keys: &Keys,
) -> Result<(), StoreError> {
    let Some(latest) = latest else {
        return Ok(());
    };
    let key = keys.verifying();
    let body = checkpoint_body(&origin_of(&key), latest.size, &latest.root, latest.timestamp);
    let signed = ed25519_dalek::Signature::from_slice(&latest.signature)
        .is_ok_and(|signature| key.verify_strict(body.as_bytes(), &signature).is_ok());
    if signed {
        Ok(())
    } else {
        Err(StoreError::ForeignKey {
            db: location.to_string(),
            key: key_path.to_path_buf(),
        })
    }
}

fn latest_checkpoint(sql: &mut dyn Sql) -> Result<Option<Checkpoint>, StoreError> {
    sql.row(
        "SELECT size, root, signature, timestamp FROM checkpoints ORDER BY size DESC LIMIT 1",
        params![],
    )?
    .map(checkpoint_row)
    .transpose()
}

/// Every text the config can show, by its SHA-256: each purpose of each form in each
/// locale, exactly as the widget renders it (DESIGN.md, trust model, layer 3).
fn store_texts(sql: &mut dyn Sql, texts: &Shown) -> Result<(), StoreError> {
    for (locale, shown) in texts.all() {
        sql.execute(
            "INSERT INTO texts (sha256, purpose, version, locale, text) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![&shown.sha256, &shown.purpose, shown.version, locale, &shown.text],
        )?;
    }
    Ok(())
}

/// Pushes the leaves of the stored records from the tree's size up to `size` (or every
/// record, with `u64::MAX`), in order; a missing index is a gap in the log.
fn extend_tree(sql: &mut dyn Sql, tree: &mut Tree, size: u64) -> Result<(), StoreError> {
    let mut gap = None;
    sql.each(
        "SELECT idx, bytes FROM log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
        params![tree.len(), size.min(i64::MAX as u64)],
        &mut |row| {
            let idx: u64 = row.get(0)?;
            if idx != tree.len() {
                gap = Some(tree.len());
                return Ok(false);
            }
            let bytes: Vec<u8> = row.get(1)?;
            tree.push(merkle::leaf_hash(&bytes));
            Ok(true)
        },
    )?;
    match gap {
        Some(at) => Err(StoreError::Gap(at)),
        None if size != u64::MAX && tree.len() < size => Err(StoreError::Gap(tree.len())),
        None => Ok(()),
    }
}

/// The tree's root at the checkpoint's size must be the signed one: otherwise the records
/// read are not the ones the checkpoint covered.
fn check_root(tree: &Tree, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    match tree.root(checkpoint.size) {
        Some(root) if root == checkpoint.root => Ok(()),
        _ => Err(StoreError::RootMismatch(checkpoint.size)),
    }
}

/// Brings the shared tree up to a checkpoint another collector committed (PostgreSQL).
fn catch_up(sql: &mut dyn Sql, shared: &Shared, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    let mut tree = shared.tree.write().unwrap_or_else(|e| e.into_inner());
    if tree.len() >= checkpoint.size {
        return Ok(());
    }
    let before = tree.len();
    let caught = extend_tree(sql, &mut tree, checkpoint.size).and_then(|()| check_root(&tree, checkpoint));
    if caught.is_err() {
        truncate(&mut tree, before);
    }
    caught
}

fn truncate(tree: &mut Tree, size: u64) {
    while tree.len() > size {
        tree.pop();
    }
}

/// How long the PostgreSQL writer waits for deliveries before it looks for records that
/// were sequenced but never integrated (their collector died in between).
const ORPHAN_CHECK: Duration = Duration::from_secs(1);

fn write_loop(mut db: Db, shared: &Shared, queue: &mpsc::Receiver<Job>) {
    let postgres = db.dialect() == Dialect::Postgres;
    loop {
        let first = if postgres {
            match queue.recv_timeout(ORPHAN_CHECK) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = reopen_if_closed(&mut db, shared)
                        .map_err(StoreError::from)
                        .and_then(|()| integrate(&mut db, shared, 0))
                    {
                        tracing::warn!(error = %e, "could not integrate the records waiting");
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcomes = if postgres {
            match reopen_if_closed(&mut db, shared) {
                Ok(()) => commit_batch_postgres(&mut db, shared, &batch),
                Err(e) => failed(&batch, e.into()),
            }
        } else {
            commit_batch(&mut db, shared, &batch)
        };
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            let _ = job.reply.send(outcome);
        }
    }
}

/// PostgreSQL: the writer's connection opened anew when the server dropped it (a restart,
/// a failover). While the server is away this fails, and the batch is answered 503.
fn reopen_if_closed(db: &mut Db, shared: &Shared) -> Result<(), DbError> {
    if db.is_closed() {
        *db = Db::open(&shared.location, Access::ReadWrite)?;
        tracing::info!("writer reconnected to the database");
    }
    Ok(())
}

/// Every job of a failed batch gets its error.
fn failed(batch: &[Job], e: StoreError) -> Vec<Result<Appended, StoreError>> {
    tracing::error!(error = %e, "could not store a batch");
    let shared = Arc::new(e);
    batch.iter().map(|_| Err(StoreError::Batch(shared.clone()))).collect()
}

/// SQLite: writes a batch in one transaction with one checkpoint. On failure nothing of it
/// is kept, in the database or in the tree, and every job gets the error.
fn commit_batch(db: &mut Db, shared: &Shared, batch: &[Job]) -> Vec<Result<Appended, StoreError>> {
    let before = shared.tree.read().unwrap_or_else(|e| e.into_inner()).len();
    // Each batch's time is strictly later than the last checkpoint's, whatever the clock
    // does (a step back, two batches in one millisecond): every record's `received_at` is
    // then the signed timestamp of the one checkpoint its batch made, and `unticked verify`
    // finds an edited time or a removed checkpoint by that equality.
    let received_at = next_timestamp(
        shared
            .latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.timestamp),
    );
    let committed = db.transaction(|sql| {
        let (outcomes, added) = sequence(sql, shared, batch, before, Some(received_at))?;
        let checkpoint = if added.is_empty() {
            None
        } else {
            let mut tree = shared.tree.write().unwrap_or_else(|e| e.into_inner());
            for job in &added {
                tree.push(merkle::leaf_hash(job.bytes.as_bytes()));
            }
            let checkpoint = sign_checkpoint(shared, &tree, received_at)?;
            drop(tree);
            insert_checkpoint(sql, &checkpoint)?;
            Some(checkpoint)
        };
        Ok::<_, StoreError>((outcomes, checkpoint))
    });
    match committed {
        Ok((outcomes, checkpoint)) => {
            if let Some(checkpoint) = checkpoint {
                publish(shared, checkpoint);
            }
            outcomes.into_iter().map(Ok).collect()
        }
        Err(e) => {
            truncate(&mut shared.tree.write().unwrap_or_else(|e| e.into_inner()), before);
            failed(batch, e)
        }
    }
}

/// A checkpoint time strictly after `previous`.
fn next_timestamp(previous: u64) -> u64 {
    now_ms().max(previous.saturating_add(1))
}

fn sign_checkpoint(shared: &Shared, tree: &Tree, timestamp: u64) -> Result<Checkpoint, StoreError> {
    let size = tree.len();
    let root = tree.root(size).ok_or(StoreError::NoRoot(size))?;
    let signature = shared
        .keys
        .signing
        .sign(checkpoint_body(&shared.origin, size, &root, timestamp).as_bytes());
    Ok(Checkpoint {
        size,
        root,
        signature: signature.to_bytes().to_vec(),
        timestamp,
    })
}

fn insert_checkpoint(sql: &mut dyn Sql, checkpoint: &Checkpoint) -> Result<(), StoreError> {
    sql.execute(
        "INSERT INTO checkpoints (size, root, signature, timestamp) VALUES (?1, ?2, ?3, ?4)",
        params![
            checkpoint.size,
            &checkpoint.root,
            &checkpoint.signature,
            checkpoint.timestamp
        ],
    )?;
    Ok(())
}

/// Makes a committed checkpoint the latest, after publishing it to the witness: with a
/// file witness, a 201 means the witness holds a checkpoint covering the record (an HTTP
/// witness only queues it here).
fn publish(shared: &Shared, checkpoint: Checkpoint) {
    if let Some(witness) = shared.witness.get() {
        let json = checkpoint.to_json(&shared.origin, &shared.keys.verifying()).to_string();
        witness.publish(checkpoint.size, json);
    }
    let mut latest = shared.latest.write().unwrap_or_else(|e| e.into_inner());
    if latest.as_ref().is_none_or(|c| c.size < checkpoint.size) {
        *latest = Some(checkpoint);
    }
}

/// Gives each new record of the batch the next index from `next` and writes it with its
/// disclosures and effects; a retry is found by id (in the log, or earlier in the batch).
/// Returns each job's outcome and the jobs added, in index order. `received_at` is the
/// batch's checkpoint time when known now (SQLite), or NULL until integration (PostgreSQL).
fn sequence<'b>(
    sql: &mut dyn Sql,
    shared: &Shared,
    batch: &'b [Job],
    next: u64,
    received_at: Option<u64>,
) -> Result<(Vec<Appended>, Vec<&'b Job>), StoreError> {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut added: Vec<&Job> = Vec::new();
    for job in batch {
        // The same bytes are the same delivery only with the same values beside them
        // (issue 13): other ones are refused, never silently dropped.
        let stored = sql
            .row("SELECT idx, bytes FROM log WHERE id = ?1", params![&job.id])?
            .map(|mut row| Ok::<_, StoreError>((row.get::<u64>(0)?, row.take::<Vec<u8>>(1)?)))
            .transpose()?;
        let earlier = match stored {
            Some((idx, bytes)) if bytes == job.bytes.as_bytes() => {
                let mut held = Held {
                    disclosures: Vec::new(),
                    birthday: None,
                };
                for mut row in sql.rows(
                    "SELECT channel, identifier, salt, birthday, birthday_salt FROM subjects WHERE idx = ?1 ORDER BY position",
                    params![idx],
                )? {
                    held.disclosures.push((row.take(0)?, row.take(1)?, row.take(2)?));
                    if let Some(value) = row.take::<Option<String>>(3)? {
                        held.birthday = Some((value, row.take(4)?));
                    }
                }
                Some((idx, job.matches(&held)))
            }
            Some((idx, _)) => Some((idx, false)),
            None => added.iter().position(|earlier| earlier.id == job.id).map(|at| {
                (
                    next + at as u64,
                    added[at].bytes == job.bytes && job.matches(&added[at].held()),
                )
            }),
        };
        match earlier {
            Some((idx, true)) => outcomes.push(Appended::Existing(idx)),
            Some((_, false)) => outcomes.push(Appended::Conflict),
            None => {
                let idx = next + added.len() as u64;
                sql.execute(
                    "INSERT INTO log (idx, id, bytes, received_at) VALUES (?1, ?2, ?3, ?4)",
                    params![idx, &job.id, job.bytes.as_bytes(), received_at],
                )?;
                let birthday = job.kept_birthday();
                for (position, d) in job.disclosures.iter().enumerate() {
                    sql.execute(
                        "INSERT INTO subjects (idx, position, channel, lookup, identifier, salt, birthday, birthday_salt) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            idx,
                            position,
                            d.channel.as_str(),
                            &shared.keys.lookup(&d.identifier),
                            &d.identifier,
                            &d.salt[..],
                            birthday.map(|b| b.value.as_str()),
                            birthday.map(|b| &b.salt[..]),
                        ],
                    )?;
                }
                for effect in &job.effects {
                    effect(sql, idx)?;
                }
                added.push(job);
                outcomes.push(Appended::New(idx));
            }
        }
    }
    Ok((outcomes, added))
}

/// PostgreSQL: sequences the batch (its own transaction, under the row lock of
/// `seq_coord`), then integrates until a checkpoint covers every record of it. A failure
/// after sequencing leaves the records durable but unacknowledged: the shopper's outbox
/// retries, finds them by id, and gets its receipt once an integration (this collector's or
/// another's) covers them.
fn commit_batch_postgres(db: &mut Db, shared: &Shared, batch: &[Job]) -> Vec<Result<Appended, StoreError>> {
    let sequenced = db.transaction(|sql| {
        let next: u64 = sql
            .value("SELECT next FROM seq_coord WHERE id = 1 FOR UPDATE", params![])?
            .ok_or_else(|| DbError::Invalid("seq_coord has no row".into()))?;
        let (outcomes, added) = sequence(sql, shared, batch, next, None)?;
        if !added.is_empty() {
            sql.execute(
                "UPDATE seq_coord SET next = ?1 WHERE id = 1",
                params![next + added.len() as u64],
            )?;
        }
        Ok::<_, StoreError>(outcomes)
    });
    let outcomes = match sequenced {
        Ok(outcomes) => outcomes,
        Err(e) => return failed(batch, e),
    };
    let needed = outcomes
        .iter()
        .filter_map(|o| match o {
            Appended::New(idx) | Appended::Existing(idx) => Some(idx + 1),
            Appended::Conflict => None,
        })
        .max()
        .unwrap_or(0);
    match integrate(db, shared, needed) {
        Ok(()) => outcomes.into_iter().map(Ok).collect(),
        Err(e) => failed(batch, e),
    }
}

/// Integrates until a checkpoint covers the first `needed` records (0: whatever waits).
/// Each round takes the integration lock (transaction-scoped: released at commit, or when a
/// collector dies mid-batch and its connection closes, which also rolls its batch back),
/// catches the tree up to the latest checkpoint, and covers up to [`INTEGRATE_AT_MOST`]
/// records sequenced past it with one new checkpoint.
fn integrate(db: &mut Db, shared: &Shared, needed: u64) -> Result<(), StoreError> {
    loop {
        let before = shared.tree.read().unwrap_or_else(|e| e.into_inner()).len();
        let round = db.transaction(|sql| {
            sql.value::<i64>("SELECT 1 FROM pg_advisory_xact_lock(?1)", params![INTEGRATION_LOCK])?;
            let latest = latest_checkpoint(sql)?;
            let size = latest.as_ref().map_or(0, |c| c.size);
            let previous = latest.as_ref().map_or(0, |c| c.timestamp);
            {
                let mut tree = shared.tree.write().unwrap_or_else(|e| e.into_inner());
                truncate(&mut tree, size);
            }
            if let Some(latest) = &latest {
                catch_up(sql, shared, latest)?;
            }
            if needed != 0 && size >= needed {
                return Ok::<_, StoreError>((latest, false));
            }
            let mut tree = shared.tree.write().unwrap_or_else(|e| e.into_inner());
            extend_tree(sql, &mut tree, size + INTEGRATE_AT_MOST).or_else(|e| match e {
                // Fewer records than the most one round takes: all there are.
                StoreError::Gap(at) if at == tree.len() => Ok(()),
                other => Err(other),
            })?;
            if tree.len() == size {
                return Ok((latest, false));
            }
            let timestamp = next_timestamp(previous);
            let checkpoint = sign_checkpoint(shared, &tree, timestamp)?;
            drop(tree);
            // Every record's `received_at` is the time of the checkpoint that first covers
            // it, as with SQLite: `unticked verify` checks that equality.
            sql.execute(
                "UPDATE log SET received_at = ?1 WHERE idx >= ?2 AND idx < ?3",
                params![timestamp, size, checkpoint.size],
            )?;
            insert_checkpoint(sql, &checkpoint)?;
            sql.execute(
                "UPDATE int_coord SET size = ?1, timestamp = ?2 WHERE id = 1",
                params![checkpoint.size, timestamp],
            )?;
            stall_for_fault_tests();
            Ok((Some(checkpoint), true))
        });
        match round {
            Ok((latest, made)) => {
                let covered = latest.as_ref().map_or(0, |c| c.size);
                if let Some(latest) = latest {
                    if made {
                        publish(shared, latest);
                    } else {
                        let mut current = shared.latest.write().unwrap_or_else(|e| e.into_inner());
                        if current.as_ref().is_none_or(|c| c.size < latest.size) {
                            *current = Some(latest);
                        }
                    }
                }
                if !made || covered >= needed {
                    return Ok(());
                }
            }
            Err(e) => {
                truncate(&mut shared.tree.write().unwrap_or_else(|e| e.into_inner()), before);
                return Err(e);
            }
        }
    }
}

/// `UNTICKED_FAULT_STALL_INTEGRATION_MS`: the fault tests' way to hold an integration open,
/// its checkpoint written but not committed, long enough to `kill -9` the collector in the
/// middle of its batch. Unset, it costs one environment read per integration.
fn stall_for_fault_tests() {
    if let Some(ms) = std::env::var("UNTICKED_FAULT_STALL_INTEGRATION_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(ms, "stalling integration (UNTICKED_FAULT_STALL_INTEGRATION_MS)");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identical new reports arriving together all count (issue 12, item 5): with an UPDATE
    /// then an INSERT, two racers both saw no row and the loser's INSERT failed (a 503, and
    /// its report lost, 1 to 4 in 800).
    #[test]
    fn racing_identical_violation_reports_are_all_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("log.db"),
            &crate::texts::Shown::of(&crate::testing::demo_config()),
        )
        .unwrap();
        const RACERS: usize = 64;
        const ROUNDS: usize = 20;
        for round in 0..ROUNDS {
            let page = format!("/race/{round}");
            let start = Arc::new(std::sync::Barrier::new(RACERS));
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    let (store, start, page) = (store.clone(), start.clone(), page.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        store.note_violation("submit-gated", "R3", "checkout", &page)
                    })
                })
                .collect();
            for racer in racers {
                racer.join().unwrap().expect("every report is counted, none refused");
            }
        }
        let rows = store.violations().unwrap();
        assert_eq!(rows.len(), ROUNDS);
        assert!(rows.iter().all(|row| row.count == RACERS as u64), "{rows:?}");
    }

    /// Reports per day (for crate::dashboard) are counted in the report's transaction and
    /// bounded: past a day's cap of pages they count in the kind's "other pages" row, and
    /// days older than those kept go, so made-up paths cannot grow the table.
    #[test]
    fn violation_days_are_counted_capped_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("log.db"),
            &crate::texts::Shown::of(&crate::testing::demo_config()),
        )
        .unwrap();
        let day = 20_790;
        let at = |d: u64| d * DAY_MS + 1000;
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(day - 1))
            .unwrap();
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(day))
            .unwrap();
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(day))
            .unwrap();
        for i in 1..MAX_VIOLATION_PAGES_PER_DAY + 5 {
            store
                .note_violation_at("hidden-box", "R1", "checkout", &format!("/p{i}"), at(day))
                .unwrap();
        }
        // A page the day already names still counts as itself.
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(day))
            .unwrap();
        let rows = store.violation_days(day).unwrap();
        let of = |kind: &str, page: &str| rows.iter().find(|r| r.kind == kind && r.page == page).map(|r| r.count);
        assert_eq!(of("submit-gated", "/a"), Some(3));
        assert_eq!(
            rows.iter().filter(|r| !r.page.is_empty()).count() as u64,
            MAX_VIOLATION_PAGES_PER_DAY
        );
        assert_eq!(
            of("hidden-box", ""),
            Some(5),
            "the reports past the cap, as other pages"
        );
        assert_eq!(
            rows.iter().map(|r| r.count).sum::<u64>(),
            3 + MAX_VIOLATION_PAGES_PER_DAY + 4
        );
        assert_eq!(
            store.violation_days(0).unwrap().len(),
            rows.len() + 1,
            "and the day before"
        );
        // The totals are counted as before, with the same reports.
        let totals = store.violations().unwrap();
        assert_eq!(totals.iter().find(|r| r.page == "/a").map(|r| r.count), Some(4));

        // The last day kept that still holds `day`: the day before it goes.
        let later = day + VIOLATION_DAYS_KEPT - 1;
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(later))
            .unwrap();
        let kept = store.violation_days(0).unwrap();
        assert_eq!(kept.len(), rows.len() + 1);
        assert_eq!((kept[0].day, kept[kept.len() - 1].day), (day, later));
        store
            .note_violation_at("submit-gated", "R3", "checkout", "/a", at(later + 1))
            .unwrap();
        assert!(store.violation_days(0).unwrap().iter().all(|r| r.day > day));
        // PostgreSQL has the table too, with its types (crate::migrate copies every table).
        assert!(postgres_schema().contains("CREATE TABLE IF NOT EXISTS violation_days (\n  day BIGINT NOT NULL"));
    }

    /// The database holds contacts: like its key, it and its WAL are the owner's only.
    #[cfg(unix)]
    #[test]
    fn the_database_and_its_wal_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let _store = Store::open(&db, &crate::texts::Shown::of(&crate::testing::demo_config())).unwrap();
        for path in [db.clone(), dir.path().join("log.db-wal"), Keys::path_for(&db)] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }

    /// Erasure finds a subject however their address was cased or composed (Art. 17): the
    /// widget lowercases ASCII only, so `Ē` (U+0112) or a decomposed `ē` arrive as typed.
    #[test]
    fn every_spelling_of_an_address_is_one_subject() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(&dir.path().join("k.key")).unwrap();
        let composed = "anna@bērziņš.lv";
        for spelling in [
            "anna@bĒrziŅŠ.lv",
            "anna@BĒRZIŅŠ.LV",
            "anna@be\u{304}rzin\u{327}s\u{30c}.lv",
        ] {
            assert_eq!(keys.lookup(spelling), keys.lookup(composed), "{spelling}");
        }
        assert_ne!(keys.lookup("anna@berzins.lv"), keys.lookup(composed));
    }
}

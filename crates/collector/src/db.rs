//! One way to speak SQL to either backend (issue 16): SQLite, the embedded default (a file
//! path), or PostgreSQL (a `postgres://` URL), so that every module writes its statements
//! once and one test suite runs on both.
//!
//! Statements are written with numbered parameters `?1, ?2, …`, which SQLite reads as they
//! are and which become `$1, $2, …` for PostgreSQL; the SQL used is the subset both
//! understand (`ON CONFLICT … DO NOTHING` rather than `INSERT OR IGNORE`, `RETURNING`, no
//! `PRAGMA` outside [`Dialect::Sqlite`] branches). Integers are 64-bit on both sides
//! (`BIGINT` in the PostgreSQL schema), blobs are `BYTEA`.
//!
//! The `postgres` client blocks, and must not block on a thread that drives async tasks
//! (its own runtime refuses to start there): [`Db::run`] moves the work onto a scoped thread
//! of its own when called from inside the async runtime, and runs it in place elsewhere
//! (the writer thread, the CLI commands).

use postgres::types::{IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where a collector keeps its log: `--db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A libpq-style URL, `postgres://user@host:port/database`.
    Postgres(String),
}

impl Location {
    /// `postgres://…` or `postgresql://…` is PostgreSQL; anything else is a SQLite file.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_string())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Location::Sqlite(_) => Dialect::Sqlite,
            Location::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite file, if this is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

/// For messages and logs: a PostgreSQL URL without its password (`user:secret@` → `user@`).
impl From<&Path> for Location {
    fn from(file: &Path) -> Location {
        Location::Sqlite(file.to_path_buf())
    }
}

impl Location {
    /// The location as given, password included: for the command line of a child process,
    /// never for a log line (that is what Display is for).
    pub fn to_url(&self) -> std::ffi::OsString {
        match self {
            Location::Sqlite(path) => path.clone().into_os_string(),
            Location::Postgres(url) => url.into(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = &rest[..at];
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{scheme}://{user}@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("{location}: {message}")]
    Open { location: String, message: String },
    #[error("column {index} of `{sql}` is not {wanted}")]
    Column {
        index: usize,
        wanted: &'static str,
        sql: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// A PostgreSQL error with what the server said: the crate's own Display of a server error
/// is only "db error", its message and SQLSTATE are in its source.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

impl DbError {
    /// Whether the connection itself is gone (the server restarted, the network failed), so
    /// that it must not go back into a pool.
    pub(crate) fn is_broken(&self) -> bool {
        match self {
            DbError::Postgres(e) => e.is_closed() || e.code().is_none(),
            DbError::Open { .. } => true,
            _ => false,
        }
    }
}

/// A parameter: borrowed, so that binding a record's bytes copies nothing.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl From<$t> for Param<'_> {
            #[allow(clippy::cast_possible_wrap)]
            fn from(value: $t) -> Self {
                // Log indices, times in ms and counts all fit in 63 bits.
                Param::Int(value as i64)
            }
        }
    )*};
}
int_param!(i64, u64, u32, i32, usize);

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Int(i64::from(value))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Blob(value)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Param::Blob(value)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Param<'a> {
    fn from(value: &'a [u8; N]) -> Self {
        Param::Blob(value)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// `params![a, b, …]`: the parameters of a statement, `?1` first.
macro_rules! params {
    () => { &[] as &[$crate::db::Param<'_>] };
    ($($value:expr),+ $(,)?) => { &[$($crate::db::Param::from($value)),+] as &[$crate::db::Param<'_>] };
}
pub(crate) use params;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(i) => ValueRef::Integer(i),
            Param::Text(t) => ValueRef::Text(t.as_bytes()),
            Param::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl PgToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Param::Text(t) => t.to_sql(ty, out),
            Param::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A value read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as a parameter, borrowed: to write a value read as it was.
    pub fn param(&self, index: usize) -> Result<Param<'_>, DbError> {
        match self.values.get(index) {
            Some(Value::Null) => Ok(Param::Null),
            Some(Value::Int(i)) => Ok(Param::Int(*i)),
            Some(Value::Text(t)) => Ok(Param::Text(t)),
            Some(Value::Blob(b)) => Ok(Param::Blob(b)),
            None => Err(DbError::Invalid(format!("no column {index} in the row"))),
        }
    }

    /// Column `index` as `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        self.values
            .get(index)
            .and_then(T::from_value)
            .ok_or_else(|| DbError::Column {
                index,
                wanted: T::WANTED,
                sql: String::new(),
            })
    }

    /// Column `index` as `T`, taking it out of the row (no copy of a blob).
    pub fn take<T: FromValue>(&mut self, index: usize) -> Result<T, DbError> {
        let value = self
            .values
            .get_mut(index)
            .map(|v| std::mem::replace(v, Value::Null))
            .unwrap_or(Value::Null);
        T::from_owned(value).ok_or(DbError::Column {
            index,
            wanted: T::WANTED,
            sql: String::new(),
        })
    }
}

/// What a column can be read as.
pub trait FromValue: Sized {
    const WANTED: &'static str;
    fn from_value(value: &Value) -> Option<Self>;
    fn from_owned(value: Value) -> Option<Self> {
        Self::from_value(&value)
    }
}

impl FromValue for i64 {
    const WANTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const WANTED: &'static str = concat!("an integer that fits ", stringify!($t));
            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    Value::Int(i) => <$t>::try_from(*i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
int_value!(u64, u32, i32, usize);

impl FromValue for bool {
    const WANTED: &'static str = "a boolean";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl FromValue for String {
    const WANTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
    fn from_owned(value: Value) -> Option<Self> {
        match value {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    const WANTED: &'static str = "a blob";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
    fn from_owned(value: Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const WANTED: &'static str = T::WANTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
    fn from_owned(value: Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_owned(other).map(Some),
        }
    }
}

/// Statements on one connection, inside a transaction or not.
pub trait Sql {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, DbError>;

    /// Calls `each` with every row of a query, in order, as it is read (a scan of the whole
    /// log never holds it all in memory); `each` returns false to stop early.
    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError>;

    /// Several statements with no parameters (a schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
}

/// The conveniences every [`Sql`] has.
pub trait SqlExt: Sql {
    /// Every row of a query.
    fn rows(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let mut rows = Vec::new();
        self.each(sql, params, &mut |row| {
            rows.push(row);
            Ok(true)
        })?;
        Ok(rows)
    }

    /// The first row of a query, if any.
    fn row(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, DbError> {
        let mut first = None;
        self.each(sql, params, &mut |row| {
            first = Some(row);
            Ok(false)
        })?;
        Ok(first)
    }

    /// The first column of the first row, if any.
    fn value<T: FromValue>(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<T>, DbError> {
        self.row(sql, params)?.map(|mut row| row.take(0)).transpose()
    }
}

impl<S: Sql + ?Sized> SqlExt for S {}

struct SqliteSql<'c>(&'c rusqlite::Connection);

impl Sql for SqliteSql<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, DbError> {
        Ok(self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params.iter()))?)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                    ValueRef::Real(_) => {
                        return Err(DbError::Column {
                            index,
                            wanted: "an integer, text or a blob (no column is REAL)",
                            sql: sql.to_string(),
                        })
                    }
                });
            }
            if !each(Row { values }).map_err(|e| with_sql(e, sql))? {
                break;
            }
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(sql)?)
    }
}

fn with_sql(e: DbError, statement: &str) -> DbError {
    match e {
        DbError::Column { index, wanted, sql } if sql.is_empty() => DbError::Column {
            index,
            wanted,
            sql: statement.to_string(),
        },
        other => other,
    }
}

/// `?N` → `$N`, outside quoted strings.
fn postgres_text(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        out.push(if c == '?' && !quoted { '$' } else { c });
    }
    out
}

struct PgSql<'c, C: postgres::GenericClient> {
    client: &'c mut C,
    statements: &'c mut HashMap<String, postgres::Statement>,
}

impl<C: postgres::GenericClient> PgSql<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&postgres_text(sql))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl<C: postgres::GenericClient> Sql for PgSql<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, DbError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|p| p as &(dyn PgToSql + Sync)).collect();
        Ok(usize::try_from(self.client.execute(&statement, &params)?).unwrap_or(usize::MAX))
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<bool, DbError>,
    ) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.statement(sql)?;
        let mut rows = self.client.query_raw(&statement, params.iter())?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(row.len());
            for (index, column) in row.columns().iter().enumerate() {
                let value = match *column.type_() {
                    Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
                    Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|i| Value::Int(i.into())),
                    Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(|i| Value::Int(i.into())),
                    Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|b| Value::Int(b.into())),
                    Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                        row.try_get::<_, Option<String>>(index)?.map(Value::Text)
                    }
                    Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
                    _ => {
                        return Err(DbError::Column {
                            index,
                            wanted: "bigint, integer, boolean, text or bytea",
                            sql: sql.to_string(),
                        })
                    }
                };
                values.push(value.unwrap_or(Value::Null));
            }
            if !each(Row { values }).map_err(|e| with_sql(e, sql))? {
                break;
            }
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.client.batch_execute(sql)?)
    }
}

/// How a [`Db`] is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// SQLite opens the file read-only; PostgreSQL sets the session read-only.
    ReadOnly,
}

enum Connection {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: Box<postgres::Client>,
        statements: HashMap<String, postgres::Statement>,
    },
}

/// One connection to either backend.
/// How long a PostgreSQL connection may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a PostgreSQL session may sit idle inside a transaction before the server ends it.
const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Db {
    location: Location,
    connection: Connection,
}

impl Db {
    /// Opens a connection. A SQLite file is created if missing (read-write) and waits up to
    /// 5 s for another writer; writes are durable when they return (`synchronous=FULL`,
    /// and PostgreSQL's default `synchronous_commit=on`).
    pub fn open(location: &Location, access: Access) -> Result<Db, DbError> {
        let connection = match location {
            Location::Sqlite(path) => {
                let flags = match access {
                    Access::ReadWrite => rusqlite::OpenFlags::default(),
                    Access::ReadOnly => rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                };
                let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| DbError::Open {
                    location: location.to_string(),
                    message: format!("SQLite: {e}"),
                })?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                if access == Access::ReadWrite {
                    conn.pragma_update(None, "synchronous", "FULL")?;
                }
                Connection::Sqlite(conn)
            }
            Location::Postgres(url) => {
                let open_error = |e: postgres::Error| DbError::Open {
                    location: location.to_string(),
                    message: format!("PostgreSQL: {}", postgres_message(&e)),
                };
                let mut config: postgres::Config = url.parse().map_err(open_error)?;
                // A database that is down must cost a request seconds, not the TCP timeout:
                // it is answered 503 and the widget's outbox sends the record again.
                if config.get_connect_timeout().is_none() {
                    config.connect_timeout(CONNECT_TIMEOUT);
                }
                let mut client = in_place(|| config.connect(postgres::NoTls)).map_err(open_error)?;
                // Our transactions never wait on the client side for long; one that does
                // belongs to a collector that hangs (or, in the fault tests, stalls on
                // purpose) while it holds the integration lock. PostgreSQL then ends its
                // session, which releases the lock and rolls its batch back, and the next
                // collector integrates the records (crate::store).
                // A read-only session (`unticked verify`) holds no lock a writer waits for, and
                // does its checking between the pages it reads: no timeout for it.
                let setup = match access {
                    Access::ReadWrite => format!(
                        "SET idle_in_transaction_session_timeout = {}; SET client_min_messages = warning;",
                        IDLE_IN_TRANSACTION.as_millis()
                    ),
                    Access::ReadOnly => {
                        "SET default_transaction_read_only = on; SET client_min_messages = warning;".to_string()
                    }
                };
                in_place(|| client.batch_execute(&setup))?;
                Connection::Postgres {
                    client: Box::new(client),
                    statements: HashMap::new(),
                }
            }
        };
        Ok(Db {
            location: location.clone(),
            connection,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.location.dialect()
    }

    /// The SQLite connection itself, for what only SQLite has (pragmas, the WAL).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.connection {
            Connection::Sqlite(conn) => Some(conn),
            Connection::Postgres { .. } => None,
        }
    }

    /// Runs `work` with statements that each commit on their own.
    pub fn run<T: Send, E: From<DbError> + Send>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        match &mut self.connection {
            Connection::Sqlite(conn) => work(&mut SqliteSql(conn)),
            Connection::Postgres { client, statements } => in_place(|| {
                work(&mut PgSql {
                    client: &mut **client,
                    statements,
                })
            }),
        }
    }

    /// Runs `work` in one transaction, committed when it returns Ok and rolled back
    /// otherwise. SQLite takes the write lock at the start (`BEGIN IMMEDIATE`), so that a
    /// read-then-write cannot fail half-way on a lock; PostgreSQL's default isolation (read
    /// committed) applies, and a statement that needs more locks for itself.
    pub fn transaction<T: Send, E: From<DbError> + Send>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        self.transaction_as(Isolation::Write, work)
    }

    /// Runs `work` in one read-only transaction that sees one moment of the database
    /// (SQLite's read transaction; PostgreSQL's REPEATABLE READ snapshot).
    pub fn snapshot<T: Send, E: From<DbError> + Send>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        self.transaction_as(Isolation::Snapshot, work)
    }

    fn transaction_as<T: Send, E: From<DbError> + Send>(
        &mut self,
        isolation: Isolation,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        match &mut self.connection {
            Connection::Sqlite(conn) => {
                let behavior = match isolation {
                    Isolation::Write => rusqlite::TransactionBehavior::Immediate,
                    Isolation::Snapshot => rusqlite::TransactionBehavior::Deferred,
                };
                let tx = conn.transaction_with_behavior(behavior).map_err(DbError::from)?;
                let out = work(&mut SqliteSql(&tx))?;
                tx.commit().map_err(DbError::from)?;
                Ok(out)
            }
            Connection::Postgres { client, statements } => in_place(|| {
                let mut builder = client.build_transaction();
                if isolation == Isolation::Snapshot {
                    builder = builder
                        .isolation_level(postgres::IsolationLevel::RepeatableRead)
                        .read_only(true);
                }
                let mut tx = builder.start().map_err(DbError::from)?;
                let out = work(&mut PgSql {
                    client: &mut tx,
                    statements,
                })?;
                tx.commit().map_err(DbError::from)?;
                Ok(out)
            }),
        }
    }

    /// Whether the connection is gone (PostgreSQL restarted, the network failed): it must be
    /// opened anew.
    pub fn is_closed(&self) -> bool {
        match &self.connection {
            Connection::Sqlite(_) => false,
            Connection::Postgres { client, .. } => client.is_closed(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    Write,
    Snapshot,
}

/// Runs blocking database work where it may block: here, unless this thread drives async
/// tasks, in which case on a scoped thread of its own (the `postgres` client runs its own
/// runtime, which refuses to start inside another).
fn in_place<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Connections kept open for reuse: opening one to PostgreSQL costs a round trip and an
/// authentication, too much for each request. A connection that broke (the server
/// restarted) is dropped, and the next use opens a fresh one, so the collector recovers by
/// itself once the database is back.
pub struct Pool {
    location: Location,
    access: Access,
    idle: Mutex<Vec<Db>>,
}

/// Connections kept idle at most; more are opened under load and closed after use.
const POOL_IDLE: usize = 8;

impl Pool {
    pub fn new(location: Location, access: Access) -> Pool {
        Pool {
            location,
            access,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes a connection (an idle one, or a new one).
    pub fn get(&self) -> Result<Pooled<'_>, DbError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let db = match idle {
            Some(db) if !db.is_closed() => db,
            _ => Db::open(&self.location, self.access)?,
        };
        Ok(Pooled {
            pool: self,
            db: Some(db),
            broken: false,
        })
    }

    /// [`Db::run`] on a pooled connection.
    pub fn run<T: Send, E: From<DbError> + Send + IsBroken>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut conn = self.get()?;
        let out = conn.db().run(work);
        conn.note(&out);
        out
    }

    /// [`Db::transaction`] on a pooled connection.
    pub fn transaction<T: Send, E: From<DbError> + Send + IsBroken>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut conn = self.get()?;
        let out = conn.db().transaction(work);
        conn.note(&out);
        out
    }

    /// [`Db::snapshot`] on a pooled connection.
    pub fn snapshot<T: Send, E: From<DbError> + Send + IsBroken>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        let mut conn = self.get()?;
        let out = conn.db().snapshot(work);
        conn.note(&out);
        out
    }
}

/// Whether an error means the connection it came from is unusable.
pub trait IsBroken {
    fn is_broken(&self) -> bool;
}

impl IsBroken for DbError {
    fn is_broken(&self) -> bool {
        DbError::is_broken(self)
    }
}

/// A connection taken from a [`Pool`], given back when dropped unless it broke.
pub struct Pooled<'p> {
    pool: &'p Pool,
    db: Option<Db>,
    broken: bool,
}

impl Pooled<'_> {
    pub fn db(&mut self) -> &mut Db {
        self.db.as_mut().expect("a pooled connection is held until dropped")
    }

    fn note<T, E: IsBroken>(&mut self, out: &Result<T, E>) {
        if let Err(e) = out {
            self.broken |= e.is_broken();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            if self.broken || db.is_closed() {
                return;
            }
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < POOL_IDLE {
                idle.push(db);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_postgres_and_anything_else_a_file() {
        assert_eq!(
            Location::parse("postgres://u@h/db"),
            Location::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(Location::parse("postgresql://h/db").dialect(), Dialect::Postgres);
        assert_eq!(Location::parse("unticked.db"), Location::Sqlite("unticked.db".into()));
    }

    #[test]
    fn a_password_never_shows() {
        let location = Location::parse("postgres://shop:s3cret@db.example:5432/unticked");
        assert_eq!(location.to_string(), "postgres://shop@db.example:5432/unticked");
        assert_eq!(
            Location::parse("postgres://db.example/unticked").to_string(),
            "postgres://db.example/unticked"
        );
    }

    #[test]
    fn numbered_parameters_become_dollars_outside_strings() {
        assert_eq!(
            postgres_text("SELECT ?1, '?' FROM t WHERE a = ?2"),
            "SELECT $1, '?' FROM t WHERE a = $2"
        );
    }

    #[test]
    fn sqlite_reads_back_what_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&Location::Sqlite(dir.path().join("t.db")), Access::ReadWrite).unwrap();
        db.run(|sql| {
            sql.batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")?;
            sql.execute("INSERT INTO t VALUES (?1, ?2, ?3)", params![7u64, "x", &[1u8, 2][..]])?;
            sql.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3)",
                params![8u64, None::<&str>, None::<&[u8]>],
            )?;
            let rows = sql.rows("SELECT a, b, c FROM t ORDER BY a", params![])?;
            assert_eq!(rows[0].get::<u64>(0)?, 7);
            assert_eq!(rows[0].get::<String>(1)?, "x");
            assert_eq!(rows[0].get::<Vec<u8>>(2)?, vec![1, 2]);
            assert_eq!(rows[1].get::<Option<String>>(1)?, None);
            assert!(rows[1].get::<String>(1).is_err(), "a NULL is not text");
            Ok::<_, DbError>(())
        })
        .unwrap();
    }
}

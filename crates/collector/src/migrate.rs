//! `unticked migrate --from unticked.db --to postgres://…`: copies a SQLite log, with
//! everything kept beside it (checkpoints, texts, configs served, subjects, restrictions,
//! links, violation reports and their days, mail and webhook outboxes), into an empty
//! PostgreSQL database, then verifies the copy against every checkpoint the source signed.
//! Every table of the source is copied ([`tables_of`] lists them from the source itself),
//! so a table added to the schema moves without a change here. The key file does not move:
//! the PostgreSQL collectors are given the same one with `--key`.
//!
//! The source is verified first (a broken log is not copied), held with its `<db>.lock` so
//! that no collector writes it meanwhile, and copied in one PostgreSQL transaction: a copy
//! that fails half-way leaves the target empty.

use crate::db::{params, Access, Db, DbError, Dialect, Location, Param, Sql, SqlExt};
use crate::store::{self, Keys};
use crate::verify::{self, Anchor, Broken};
use std::path::PathBuf;
use std::process::ExitCode;

pub struct Options {
    pub from: PathBuf,
    pub to: Location,
    pub key: Option<PathBuf>,
}

/// Rows read from the source at once.
const PAGE: i64 = 1000;

#[derive(Debug, thiserror::Error)]
enum MigrateError {
    /// Cannot run: exit 2.
    #[error("{0}")]
    Cannot(String),
    /// The source, or the copy, does not verify: exit 1.
    #[error("{0}")]
    Broken(String),
}

impl From<DbError> for MigrateError {
    fn from(e: DbError) -> MigrateError {
        MigrateError::Cannot(e.to_string())
    }
}

pub fn main(options: Options) -> ExitCode {
    match migrate(&options) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(MigrateError::Broken(why)) => {
            eprintln!("unticked migrate: {why}");
            ExitCode::from(1)
        }
        Err(MigrateError::Cannot(why)) => {
            eprintln!("unticked migrate: {why}");
            ExitCode::from(2)
        }
    }
}

fn broken_text(what: &str, broken: Broken) -> MigrateError {
    match broken {
        Broken::Unreadable(why) => MigrateError::Cannot(format!("{what}: {why}")),
        Broken::At { index, problem } => MigrateError::Broken(format!("{what}: index {index}: {problem}")),
        Broken::Text { sha256, problem } => MigrateError::Broken(format!("{what}: text {sha256}: {problem}")),
        Broken::Config { sha256, problem } => MigrateError::Broken(format!("{what}: config {sha256}: {problem}")),
    }
}

fn migrate(options: &Options) -> Result<String, MigrateError> {
    let from = &options.from;
    if !from.exists() {
        return Err(MigrateError::Cannot(format!("{}: no such file", from.display())));
    }
    if options.to.dialect() != Dialect::Postgres {
        return Err(MigrateError::Cannot(
            "--to must be a PostgreSQL URL (postgres://user@host/database)".into(),
        ));
    }
    let lock = crate::lock::hold(from).map_err(|e| MigrateError::Cannot(e.to_string()))?;
    let key_path = options.key.clone().unwrap_or_else(|| Keys::path_for(from));
    let keys = Keys::load(&key_path).map_err(|e| MigrateError::Cannot(e.to_string()))?;
    let public = keys.verifying();
    // Brings an older log's schema up to this version's (as `serve` would on start), so
    // that every column the PostgreSQL schema has exists in the source.
    drop(store::open_sqlite(from).map_err(|e| MigrateError::Cannot(e.to_string()))?);
    let source_location = Location::from(from.as_path());
    let source = verify::verify(&source_location, &public, Some(&keys), &[])
        .map_err(|b| broken_text("the source does not verify, so it is not copied", b))?;

    // The source's lock keeps every collector out, so it reads the same throughout.
    let mut source_db = Db::open(&source_location, Access::ReadOnly)?;
    let tables = source_db.run(|src| tables_of(src))?;
    let anchors = source_db.run(|src| checkpoints_of(src))?;
    let mut target = store::open_postgres(&options.to).map_err(|e| MigrateError::Cannot(e.to_string()))?;
    let tables = target.transaction(|dst| {
        refuse_non_empty(dst, &options.to, &tables)?;
        let mut copied = Vec::new();
        for (table, columns) in &tables {
            copied.push((table.clone(), copy_table(&mut source_db, dst, table, columns)?));
        }
        coordinate(dst)?;
        Ok::<_, MigrateError>(copied)
    })?;
    drop(source_db);
    lock.release();

    // The copy holds exactly the tree of every checkpoint the source signed, each checkpoint
    // itself, and every text, config and disclosure checks out.
    let copy = verify::verify(&options.to, &public, Some(&keys), &anchors)
        .map_err(|b| broken_text("the copy does not verify against the source's checkpoints", b))?;
    if copy.records != source.records || copy.root != source.root || copy.pending != 0 {
        return Err(MigrateError::Broken(format!(
            "the copy holds {} records (root {}), the source {} (root {})",
            copy.records,
            unticked_core::record::hex(&copy.root),
            source.records,
            unticked_core::record::hex(&source.root)
        )));
    }
    let rows: i64 = tables.iter().map(|(_, n)| n).sum();
    Ok(format!(
        "unticked migrate: copied {} ({} records, {} checkpoints, {} rows in {} tables) to {}; the copy verifies against all {} of the source's checkpoints, root {}\n\
         unticked migrate: serve it with `unticked serve --db <the same URL> --key {}` on each instance; keep {} as it is until they run",
        from.display(),
        copy.records,
        copy.checkpoints,
        rows,
        tables.len(),
        options.to,
        anchors.len(),
        unticked_core::record::hex(&copy.root),
        key_path.display(),
        from.display(),
    ))
}

/// The source's tables and their columns, in the order they were made (so a table another
/// refers to comes first).
fn tables_of(src: &mut dyn Sql) -> Result<Vec<(String, Vec<String>)>, MigrateError> {
    let names: Vec<String> = src
        .rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
            params![],
        )?
        .into_iter()
        .map(|mut row| row.take::<String>(0))
        .collect::<Result<_, _>>()?;
    let mut tables = Vec::new();
    for name in names {
        let columns = src
            .rows("SELECT name FROM pragma_table_info(?1) ORDER BY cid", params![&name])?
            .into_iter()
            .map(|mut row| row.take::<String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        tables.push((name, columns));
    }
    Ok(tables)
}

/// Every checkpoint of the source, as anchors the copy must still hold.
fn checkpoints_of(src: &mut dyn Sql) -> Result<Vec<Anchor>, MigrateError> {
    src.rows(
        "SELECT size, root, timestamp, signature FROM checkpoints ORDER BY size",
        params![],
    )?
    .into_iter()
    .map(|mut row| {
        let size: u64 = row.take(0)?;
        let root: Vec<u8> = row.take(1)?;
        Ok(Anchor {
            size,
            root: root
                .try_into()
                .map_err(|_| MigrateError::Broken(format!("the checkpoint of size {size} has no 32-byte root")))?,
            timestamp: row.take(2)?,
            signature: row.take(3)?,
            from: format!("the source's checkpoint of size {size}"),
        })
    })
    .collect()
}

/// A target that holds anything is refused: a copy must not mix with another log.
fn refuse_non_empty(dst: &mut dyn Sql, to: &Location, tables: &[(String, Vec<String>)]) -> Result<(), MigrateError> {
    for (table, _) in tables {
        let any = dst.value::<i64>(&format!("SELECT 1 FROM {} LIMIT 1", quoted(table)), params![]);
        match any {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(MigrateError::Cannot(format!(
                    "{to} is not empty (its table {table} has rows): migrate copies into an empty database only"
                )))
            }
            Err(e) => {
                return Err(MigrateError::Cannot(format!(
                    "{to} has no table {table} as this version makes it: {e}"
                )))
            }
        }
    }
    Ok(())
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copies one table, page by page (by rowid), into the same columns of the target.
fn copy_table(source: &mut Db, dst: &mut dyn Sql, table: &str, columns: &[String]) -> Result<i64, MigrateError> {
    let list = columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ");
    let select = format!(
        "SELECT rowid, {list} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        quoted(table)
    );
    let holes = (1..=columns.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let insert = format!("INSERT INTO {} ({list}) VALUES ({holes})", quoted(table));
    let (mut after, mut copied) = (i64::MIN, 0i64);
    loop {
        let page = source.run(|src| src.rows(&select, params![after, PAGE]))?;
        if page.is_empty() {
            return Ok(copied);
        }
        for row in page {
            after = row.get(0)?;
            let values: Vec<Param<'_>> = (1..=columns.len()).map(|i| row.param(i)).collect::<Result<_, _>>()?;
            dst.execute(&insert, &values)?;
            copied += 1;
        }
    }
}

/// The coordination rows of the target, as if its collectors had written the log: the next
/// index to sequence, the latest integration, and the outbox's identity past its rows.
fn coordinate(dst: &mut dyn Sql) -> Result<(), MigrateError> {
    dst.execute(
        "UPDATE seq_coord SET next = (SELECT count(*) FROM log) WHERE id = 1",
        params![],
    )?;
    dst.execute(
        "UPDATE int_coord SET size = COALESCE((SELECT max(size) FROM checkpoints), 0), \
         timestamp = COALESCE((SELECT max(timestamp) FROM checkpoints), 0) WHERE id = 1",
        params![],
    )?;
    dst.value::<i64>(
        "SELECT setval(pg_get_serial_sequence('webhook_outbox', 'seq'), COALESCE(max(seq), 0) + 1, false) FROM webhook_outbox",
        params![],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_for_sql() {
        assert_eq!(quoted("log"), "\"log\"");
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn a_missing_source_or_a_sqlite_target_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let missing = migrate(&Options {
            from: dir.path().join("none.db"),
            to: Location::Postgres("postgres://nobody@127.0.0.1:1/none".into()),
            key: None,
        });
        assert!(
            matches!(missing, Err(MigrateError::Cannot(ref m)) if m.contains("no such file")),
            "{missing:?}"
        );
        std::fs::write(dir.path().join("a.db"), b"").unwrap();
        let sqlite = migrate(&Options {
            from: dir.path().join("a.db"),
            to: Location::Sqlite(dir.path().join("b.db")),
            key: None,
        });
        assert!(
            matches!(sqlite, Err(MigrateError::Cannot(ref m)) if m.contains("PostgreSQL URL")),
            "{sqlite:?}"
        );
        assert!(!dir.path().join("b.db").exists());
    }
}

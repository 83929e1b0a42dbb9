//! A real PostgreSQL for the tests (issue 16, item 5): the cluster `./build.sh test` starts
//! (`start_postgres`) answers, and the row lock the sequencer rests on does what it
//! must. transparency-dev/tessera's MySQL and PostgreSQL drivers let any number of
//! front-ends reserve blocks of sequence numbers from a one-row table under
//! `SELECT next FROM SeqCoord … FOR UPDATE`; this is that round trip across two
//! connections, the lock our sequencer takes (crate::store, docs/operations.md).
//!
//! Skipped, with the reason printed, when `UNTICKED_TEST_POSTGRES` is unset, so plain
//! `cargo test` needs no database; `./build.sh test` sets it.

use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

const VARIABLE: &str = "UNTICKED_TEST_POSTGRES";

/// The cluster's URL, or `None` (and the reason printed) when there is none.
fn cluster() -> Option<String> {
    match std::env::var(VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {VARIABLE} is unset (`./build.sh test` starts a throwaway PostgreSQL and sets it)");
            None
        }
    }
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("postgres connection: {e}");
        }
    });
    client
}

/// A table of its own per test run, so runs against one cluster never meet.
fn table(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("seq_coord_{tag}_{}_{nanos}", std::process::id())
}

/// Reserves `size` sequence numbers: the first of the block, under the row lock, committed.
async fn reserve(client: &mut Client, table: &str, size: i64) -> i64 {
    let tx = client.transaction().await.expect("begin");
    let row = tx
        .query_one(&format!("SELECT next FROM {table} WHERE id = 0 FOR UPDATE"), &[])
        .await
        .expect("lock the coordination row");
    let first: i64 = row.get(0);
    // Give the other front-end every chance to slip in between the read and the write: the
    // lock, not luck, must keep it out.
    tokio::task::yield_now().await;
    tx.execute(
        &format!("UPDATE {table} SET next = $1 WHERE id = 0"),
        &[&(first + size)],
    )
    .await
    .expect("advance the coordination row");
    tx.commit().await.expect("commit");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_cluster_answers() {
    let Some(url) = cluster() else { return };
    let client = connect(&url).await;
    let version: String = client.query_one("SELECT version()", &[]).await.unwrap().get(0);
    eprintln!("{version}");
    assert!(version.starts_with("PostgreSQL "), "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_front_ends_reserving_blocks_under_a_row_lock_never_overlap() {
    let Some(url) = cluster() else { return };
    let setup = connect(&url).await;
    let table = table("blocks");
    setup
        .batch_execute(&format!(
            "CREATE TABLE {table} (id integer PRIMARY KEY, next bigint NOT NULL); INSERT INTO {table} VALUES (0, 0);"
        ))
        .await
        .unwrap();

    const ROUNDS: i64 = 200;
    let mut front_ends = Vec::new();
    for front_end in 0..2i64 {
        let url = url.clone();
        let table = table.clone();
        front_ends.push(tokio::spawn(async move {
            let mut client = connect(&url).await;
            let mut blocks = Vec::new();
            for round in 0..ROUNDS {
                // Blocks of 1 to 7, different on each side, as batches of records are.
                let size = 1 + (round * 3 + front_end * 5) % 7;
                let first = reserve(&mut client, &table, size).await;
                blocks.push((first, first + size));
            }
            blocks
        }));
    }
    let mut blocks = Vec::new();
    for front_end in front_ends {
        blocks.extend(front_end.await.unwrap());
    }
    blocks.sort_unstable();
    // Every number from 0 up is handed out exactly once: no overlap, no gap.
    let mut expected = 0;
    for (first, end) in &blocks {
        assert_eq!(*first, expected, "blocks overlap or leave a gap: {blocks:?}");
        expected = *end;
    }
    let next: i64 = setup
        .query_one(&format!("SELECT next FROM {table} WHERE id = 0"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        next, expected,
        "the coordination row does not cover the blocks handed out"
    );
    assert_eq!(blocks.len() as i64, 2 * ROUNDS);
    setup.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_front_end_waits_on_the_lock_and_then_reads_the_first_ones_commit() {
    let Some(url) = cluster() else { return };
    let mut first = connect(&url).await;
    let observer = connect(&url).await;
    let table = table("wait");
    observer
        .batch_execute(&format!(
            "CREATE TABLE {table} (id integer PRIMARY KEY, next bigint NOT NULL); INSERT INTO {table} VALUES (0, 100);"
        ))
        .await
        .unwrap();

    let holding = first.transaction().await.unwrap();
    let held: i64 = holding
        .query_one(&format!("SELECT next FROM {table} WHERE id = 0 FOR UPDATE"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 100);

    let mut second = connect(&url).await;
    let second_pid: i32 = second.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let waiting = {
        let table = table.clone();
        tokio::spawn(async move { reserve(&mut second, &table, 10).await })
    };
    // The server's own word that the second backend waits on a lock (pg_stat_activity),
    // not a sleep: it must be blocked while the first holds the row.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = observer
            .query_opt(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                &[&second_pid],
            )
            .await
            .unwrap();
        if row.is_some() {
            break;
        }
        assert!(
            !waiting.is_finished(),
            "the second front-end reserved while the row was locked"
        );
        assert!(
            Instant::now() < deadline,
            "the second front-end never waited on the row lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holding
        .execute(&format!("UPDATE {table} SET next = $1 WHERE id = 0"), &[&(held + 5)])
        .await
        .unwrap();
    holding.commit().await.unwrap();
    // Released, the second reads what the first committed, and reserves after it.
    assert_eq!(waiting.await.unwrap(), 105);
    let next: i64 = observer
        .query_one(&format!("SELECT next FROM {table} WHERE id = 0"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 115);
    observer.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
}

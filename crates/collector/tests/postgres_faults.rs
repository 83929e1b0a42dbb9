//! Several collectors on one PostgreSQL log, and what happens when one of them dies (issue
//! 16, items 2 and 3): with a real PostgreSQL (the throwaway cluster `./build.sh test`
//! starts) and real `unticked serve` processes killed with SIGKILL. In each case every
//! acknowledged record is in the log, served with its proof, and `unticked verify` passes.
//! PostgreSQL itself restarted under load is in `postgres_restart.rs` (its own test binary,
//! since it stops the cluster the other tests use).
//!
//! Skipped, with the reason printed, when `UNTICKED_TEST_POSTGRES` is unset, so plain
//! `cargo test` needs no database.

mod common;

use common::{lines, postgres_args, postgres_database, root, serve_demo_with, unticked, Served};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN: &str = "fault-test-admin-token-0123456789abcdef";

fn cluster() -> Option<String> {
    match std::env::var("UNTICKED_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: UNTICKED_TEST_POSTGRES is unset (`./build.sh test` starts a throwaway PostgreSQL and sets it)");
            None
        }
    }
}

/// A collector on the PostgreSQL log standing for `db`, with `env` set.
fn instance(cluster: &str, db: &Path, env: &[(&str, &str)]) -> Served {
    let mut env = env.to_vec();
    env.push(("UNTICKED_ADMIN_TOKEN", ADMIN));
    serve_demo_with(postgres_args(cluster, db), &["--daily-quota", "0"], &env)
}

/// `unticked bench` posting `n` fresh records to `addr`, each acknowledged id appended to
/// `acked`; not waited for.
fn bench(addr: &str, n: usize, acked: &Path, retry: bool) -> Child {
    let mut command = unticked();
    command
        .arg("bench")
        .args(["--url", &format!("http://{addr}"), "-n", &n.to_string(), "-c", "4"])
        .arg("--config")
        .arg(root().join("www/consent.json"))
        .arg("--acked")
        .arg(acked);
    if retry {
        command.arg("--retry");
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET /v1/records/{id}` on `addr`: the record's index and whether its inclusion proof
/// against the latest checkpoint came with it; `None` when the collector does not hold it.
fn served_with_proof(addr: &str, id: &str) -> Option<(u64, bool)> {
    let answer = common::request(addr, "GET", &format!("/v1/records/{id}"), None, "text/plain", "");
    if answer.status != 200 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let index = body["receipt"]["index"].as_u64().expect("a receipt names the index");
    Some((index, body["latest"]["inclusion"].is_array()))
}

/// `unticked verify` of the PostgreSQL log standing for `db`: exit code and report.
fn verify(cluster: &str, db: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_unticked"))
        .arg("verify")
        .args(postgres_args(cluster, db))
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Rows of one query on the database standing for `db`.
fn count(cluster: &str, db: &Path, sql: &str) -> i64 {
    let url = postgres_database(cluster, db);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

/// Three collectors take records at once into one log; one is killed (SIGKILL) in the
/// middle of its load while the other two keep accepting. Every record any of them
/// acknowledged is in the one log, each index is given once, and the log verifies.
#[test]
fn three_collectors_write_one_log_and_one_killed_loses_no_acknowledged_record() {
    let Some(cluster) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let survivors = [instance(&cluster, &db, &[]), instance(&cluster, &db, &[])];
    let mut victim = instance(&cluster, &db, &[]);
    let acked: Vec<_> = (0..3).map(|i| dir.path().join(format!("acked-{i}.txt"))).collect();
    let mut loads = Vec::new();
    for (server, acked) in survivors.iter().zip(&acked) {
        loads.push(bench(&server.addr, 120, acked, false));
        std::thread::sleep(Duration::from_millis(5)); // each bench its own record ids
    }
    let mut victim_load = bench(&victim.addr, 2000, &acked[2], false);
    wait_for("the victim to acknowledge records", Duration::from_secs(60), || {
        lines(&acked[2]).len() >= 20
    });
    victim.child.kill().unwrap(); // SIGKILL: no shutdown, mid-batch
    victim.child.wait().unwrap();
    let _ = victim_load.wait();
    for load in loads {
        let out = load.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
        assert!(said.contains(": 120 stored (201), 0 other answers"), "{said}");
    }
    // Every acknowledged record, from the survivors and from the killed one, is held by
    // both survivors with its proof, and no two share an index.
    let ids: Vec<String> = acked.iter().flat_map(|a| lines(a)).collect();
    assert!(ids.len() >= 260, "{}", ids.len());
    let mut indices = std::collections::HashSet::new();
    for id in &ids {
        for server in &survivors {
            let (index, proved) = served_with_proof(&server.addr, id).unwrap_or_else(|| panic!("{id} is lost"));
            assert!(proved, "{id} has no inclusion proof");
            if std::ptr::eq(server, &survivors[0]) {
                assert!(indices.insert(index), "index {index} given twice");
            }
        }
    }
    // The killed collector's last batch, sequenced but perhaps not integrated, is
    // integrated by a survivor within seconds.
    wait_for("every sequenced record integrated", Duration::from_secs(20), || {
        count(&cluster, &db, "SELECT count(*) FROM log WHERE received_at IS NULL") == 0
    });
    drop(survivors);
    let (code, report) = verify(&cluster, &db);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains(": clean"), "{report}");
    assert!(!report.contains("await integration"), "{report}");
}

/// A collector killed in the middle of integrating a batch (its checkpoint written, not
/// committed): the record it sequenced is not lost, and the next collector to run completes
/// the batch. Until then `unticked verify` names the record as waiting, not as broken.
#[test]
fn an_integrator_killed_mid_batch_is_completed_by_the_next_collector() {
    let Some(cluster) = cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    // A first record, integrated: the log is not empty when the fault comes.
    let first = instance(&cluster, &db, &[]);
    let acked = dir.path().join("acked.txt");
    let out = bench(&first.addr, 1, &acked, false).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(first);

    let mut stalled = instance(&cluster, &db, &[("UNTICKED_FAULT_STALL_INTEGRATION_MS", "60000")]);
    let pending = dir.path().join("pending.txt");
    let load = bench(&stalled.addr, 1, &pending, false);
    // The record is sequenced (committed, no time received) and the integration that
    // would cover it is open, holding the integration lock.
    wait_for("the stalled integration", Duration::from_secs(30), || {
        count(&cluster, &db, "SELECT count(*) FROM log WHERE received_at IS NULL") == 1
            && count(
                &cluster,
                &db,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'",
            ) >= 1
    });
    stalled.child.kill().unwrap();
    stalled.child.wait().unwrap();
    let out = load.wait_with_output().unwrap();
    assert!(
        lines(&pending).is_empty(),
        "a record was acknowledged before its checkpoint: {out:?}"
    );
    assert_eq!(
        count(&cluster, &db, "SELECT count(*) FROM checkpoints"),
        1,
        "the open batch was rolled back"
    );
    let (code, report) = verify(&cluster, &db);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains(": 1 records,") && report.contains("1 records sequenced after them await integration"),
        "{report}"
    );

    // The next collector completes the batch: the record is served with its proof.
    let next = instance(&cluster, &db, &[]);
    wait_for("the batch completed", Duration::from_secs(20), || {
        count(&cluster, &db, "SELECT count(*) FROM log WHERE received_at IS NULL") == 0
    });
    let id = id_at(&cluster, &db, 1);
    let (index, proved) = served_with_proof(&next.addr, &id).expect("the record is held");
    assert_eq!(index, 1);
    assert!(proved);
    drop(next);
    let (code, report) = verify(&cluster, &db);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains(": 2 records,") && report.contains(": clean"),
        "{report}"
    );
    assert!(!report.contains("await integration"), "{report}");
}

/// The id of the record at `index`.
fn id_at(cluster: &str, db: &Path, index: i64) -> String {
    let url = postgres_database(cluster, db);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .query_one("SELECT id FROM log WHERE idx = $1", &[&index])
        .unwrap()
        .get(0)
}

//! PostgreSQL restarted under load (issue 16, item 3): two collectors on one log answer 503
//! while the database is away, a client that sends again as the widget's outbox does
//! (`unticked bench --retry`) gets every record stored once it is back, and nothing
//! acknowledged is lost. Its own test binary: it stops the cluster every other test uses.
//!
//! Needs the commands that stop and start the throwaway cluster, which `./build.sh test`
//! exports (`UNTICKED_TEST_POSTGRES_STOP`, `UNTICKED_TEST_POSTGRES_START`); skipped, with the
//! reason printed, without them.

mod common;

use common::{postgres_args, root, serve_demo_with, unticked};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn shell(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|c| !c.is_empty())
}

fn run_shell(command: &str) {
    let status = Command::new("sh").args(["-c", command]).status().unwrap();
    assert!(status.success(), "{command}: {status}");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

#[test]
fn postgres_restarted_under_load_is_answered_503_and_the_outbox_covers_the_gap() {
    let (Some(cluster), Some(stop), Some(start)) = (
        shell("UNTICKED_TEST_POSTGRES"),
        shell("UNTICKED_TEST_POSTGRES_STOP"),
        shell("UNTICKED_TEST_POSTGRES_START"),
    ) else {
        eprintln!("skipped: needs UNTICKED_TEST_POSTGRES, _STOP and _START (`./build.sh test` sets them)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let a = serve_demo_with(postgres_args(&cluster, &db), &["--daily-quota", "0"], &[]);
    let origin = format!("http://{}", a.addr);
    let b = serve_demo_with(
        postgres_args(&cluster, &db),
        &["--daily-quota", "0", "--public-origin", &origin],
        &[],
    );
    let acked = dir.path().join("acked.txt");
    const N: usize = 300;
    let load = unticked()
        .arg("bench")
        .args(["--url", &origin, "--url", &format!("http://{}", b.addr)])
        .args(["-n", &N.to_string(), "-c", "4", "--retry"])
        .arg("--config")
        .arg(root().join("www/consent.json"))
        .arg("--acked")
        .arg(&acked)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&acked) < 30 {
        assert!(Instant::now() < deadline, "no records acknowledged before the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    run_shell(&stop);
    let during = lines(&acked);
    // Both collectors stay up and say the log is unavailable.
    std::thread::sleep(Duration::from_secs(2));
    for server in [&a, &b] {
        let answer = common::request(&server.addr, "GET", "/v1/records/none", None, "text/plain", "");
        assert_eq!(answer.status, 503, "{}", answer.body);
    }
    let stalled = lines(&acked);
    assert!(stalled - during <= 4, "records acknowledged with the database down");
    run_shell(&start);
    let out = load.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    // Every record acknowledged: 201, or 200 for one stored by a send whose answer was lost.
    assert!(
        said.contains(" other answers") && said.contains(", 0 other answers"),
        "{said}"
    );
    let number_after = |prefix: &str| {
        said.lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
    };
    let created = said
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("the bench names what it stored");
    assert_eq!(created + number_after("already").unwrap_or(0), N, "{said}");
    let retried = said
        .lines()
        .find_map(|l| l.strip_prefix("retried"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("the bench names its retries");
    assert!(retried > 0, "no send met a 503 during the gap: {said}");
    let ids: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), N);
    for id in &ids {
        let answer = common::request(&a.addr, "GET", &format!("/v1/records/{id}"), None, "text/plain", "");
        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
    }
    drop((a, b));
    let verified = unticked()
        .arg("verify")
        .args(postgres_args(&cluster, &db))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(
        report.contains(&format!(": {N} records,")) && report.contains(": clean"),
        "{report}"
    );
}

//! No acknowledged record is ever lost: a stream of posts, `kill -9` in the middle of it,
//! a restart on the same log, and every record the collector answered 201 for is there and
//! `unticked verify` finds the log clean. And a running collector can be verified over HTTP.

mod common;

use common::{lines, root, serve_demo, unticked, Served};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Kills a process the test leaves behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The admin token of the collectors these tests start (serve wants 32 characters or more).
const TOKEN: &str = "durability-test-admin-token-0123456789";

/// `unticked serve` on a free port over `db`, quota off; the process and its `host:port`.
fn serve(db: &Path) -> (Served, String) {
    let served = serve_demo(db, &["--daily-quota", "0"], &[("UNTICKED_ADMIN_TOKEN", TOKEN)]);
    let addr = served.addr.clone();
    (served, addr)
}

/// The HTTP status of `GET path`.
fn get_status(addr: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The attack's durability sweep, kept (issue 12): three times over one log, a stream of
/// posts, `kill -9` in the middle of it, a restart; every record acknowledged in any round is
/// there at the end, and `unticked verify` finds the log clean.
#[test]
fn every_acknowledged_record_survives_kill_9() {
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let acked = dir.path().join("acked.txt");
    for round in 0..ROUNDS {
        let before = lines(&acked).len();
        let (mut server, addr) = serve(&db);
        let bench = unticked()
            .arg("bench")
            .args(["--url", &format!("http://{addr}"), "-n", "700", "-c", "16"])
            .arg("--config")
            .arg(root().join("www/consent.json"))
            .arg("--acked")
            .arg(&acked)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unticked bench");
        let bench = Killed(bench);

        // Mid-stream: once a few hundred more are acknowledged, the collector dies without
        // warning.
        let deadline = Instant::now() + Duration::from_secs(120);
        while lines(&acked).len() < before + 200 {
            assert!(
                Instant::now() < deadline,
                "round {round}: the bench acknowledged too few records"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        drop(bench);
        assert!(
            lines(&acked).len() < before + 700,
            "round {round}: the kill came in the middle of the stream"
        );
    }

    let acknowledged = lines(&acked);
    let (_server, addr) = serve(&db);
    for id in &acknowledged {
        assert_eq!(
            get_status(&addr, &format!("/v1/records/{id}")),
            200,
            "acknowledged record {id} is there"
        );
    }
    let verified = common::verify_command(&db).output().unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(report.contains(": clean"), "{report}");
}

#[test]
fn a_running_collector_verifies_over_http_against_its_pinned_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let (_server, addr) = serve(&db);
    let posted = unticked()
        .arg("bench")
        .args(["--url", &format!("http://{addr}"), "-n", "40", "-c", "4"])
        .arg("--config")
        .arg(root().join("www/consent.json"))
        .output()
        .unwrap();
    assert!(posted.status.success(), "{}", String::from_utf8_lossy(&posted.stderr));
    let verify = |token: &str, key: Option<&str>| {
        let mut command = unticked();
        command
            .env("UNTICKED_ADMIN_TOKEN", token)
            .args(["verify", "--url", &format!("http://{addr}")]);
        if let Some(key) = key {
            command.args(["--public-key", key]);
        }
        let out = command.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, report) = verify(TOKEN, None);
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("40 records") && report.contains(": clean"), "{report}");
    // Held to another key, the same checkpoint is refused; without the token, nothing is read.
    let (code, report) = verify(TOKEN, Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"));
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(verify("wrong", None).0, Some(2));
}

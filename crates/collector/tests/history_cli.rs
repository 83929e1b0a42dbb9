//! `unticked serve` keeps every config it has served (issue 14): restarted with a corrected
//! config over the same log, it lists both, the old one no longer current, each with the
//! times it was served; its exact text stays readable. A real process over real TCP.

mod common;

use common::{root, unticked, Served};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Long enough for a debug build on a busy CI machine, short enough that a hang fails soon.
const LIMIT: Duration = Duration::from_secs(20);

/// `unticked serve --config CONFIG` over `db`, with a web root of its own (serve compiles
/// the config into it), on a free port; waits for the line that names its URL.
fn serve(config: &Path, www: &Path, db: &Path) -> Served {
    let mut child = unticked()
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--www")
        .arg(www)
        .args(common::db_args(db))
        .args(["--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unticked serve");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its URL").expect("UTF-8");
        if let Some(url) = line.split(" on http://").nth(1) {
            break url.trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        addr,
        key: String::new(),
    }
}

/// SIGTERM, and the graceful exit (0) that records `last_served` once more.
fn stop(mut served: Served) {
    let pid = served.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success(), "kill -TERM {pid}");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "unticked serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

/// `GET path` over a fresh connection: status, headers (lower case), body.
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{response:?}"));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// `GET /v1/configs`: (sha256, first_served, last_served, current) of each.
fn configs(addr: &str) -> Vec<(String, u64, u64, bool)> {
    let (status, _, body) = get(addr, "/v1/configs");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["sha256"].as_str().unwrap().to_string(),
                c["first_served"].as_u64().unwrap(),
                c["last_served"].as_u64().unwrap(),
                c["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_restart_with_a_corrected_config_keeps_the_old_one_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (www, db, config) = (
        dir.path().join("www"),
        dir.path().join("log.db"),
        dir.path().join("consent.json"),
    );
    std::fs::create_dir(&www).unwrap();
    let old = std::fs::read_to_string(root().join("www/consent.json")).unwrap();
    let corrected = old.replace("offers and news by e-mail", "offers and news by email");
    assert_ne!(old, corrected, "the demo's English e-mail label");
    let (old_sha256, corrected_sha256) = (sha256_hex(&old), sha256_hex(&corrected));

    std::fs::write(&config, &old).unwrap();
    let first = serve(&config, &www, &db);
    let listed = configs(&first.addr);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].0.as_str(), listed[0].3), (old_sha256.as_str(), true));
    stop(first);

    std::fs::write(&config, &corrected).unwrap();
    let second = serve(&config, &www, &db);
    let listed = configs(&second.addr);
    let names: Vec<(&str, bool)> = listed.iter().map(|c| (c.0.as_str(), c.3)).collect();
    assert_eq!(
        names,
        [(old_sha256.as_str(), false), (corrected_sha256.as_str(), true)],
        "both, the old one first and no longer current"
    );
    let (old_row, new_row) = (&listed[0], &listed[1]);
    assert!(old_row.2 > old_row.1, "recorded again at shutdown: {old_row:?}");
    assert!(new_row.1 >= old_row.2, "served after the old one stopped: {listed:?}");

    // Each config's exact text, as served.
    for (sha256, text) in [(&old_sha256, &old), (&corrected_sha256, &corrected)] {
        let (status, head, body) = get(&second.addr, &format!("/v1/configs/{sha256}"));
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("\r\ncontent-type: application/json\r\n"), "{head}");
        assert!(body == *text, "the exact text of {sha256}");
    }
    let (status, _, body) = get(&second.addr, &format!("/v1/configs/{}", sha256_hex("never served")));
    assert_eq!(status, 404, "{body}");
    stop(second);

    // Back to the old config: current again, still served first, nothing added.
    std::fs::write(&config, &old).unwrap();
    let third = serve(&config, &www, &db);
    let again = configs(&third.addr);
    let names: Vec<(&str, bool)> = again.iter().map(|c| (c.0.as_str(), c.3)).collect();
    assert_eq!(names, [(old_sha256.as_str(), true), (corrected_sha256.as_str(), false)]);
    assert_eq!(again[0].1, old_row.1, "first_served stays");
    stop(third);
}

//! `unticked serve --witness`: a real collector publishes every checkpoint it commits outside
//! its database, to a file or an http:// URL; `unticked verify --witness` then finds a cut-off
//! tail that the database alone cannot show. An unreachable witness never holds a record up.

mod common;

use common::{root, run, serve_command, serve_demo, unticked, Served};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Long enough for a debug build on a busy machine, short enough that a hang fails soon.
const LIMIT: Duration = Duration::from_secs(20);

/// `unticked serve --witness TARGET` on a free port; the process, its `host:port` and the
/// public key it prints.
fn serve(db: &Path, witness: &str) -> (Served, String, String) {
    let served = serve_demo(db, &["--witness", witness], &[]);
    assert!(!served.key.is_empty(), "serve printed its public key");
    let (addr, key) = (served.addr.clone(), served.key.clone());
    (served, addr, key)
}

/// Posts `n` real, browser-sealed records to the collector with `unticked bench`.
fn post(addr: &str, n: usize) {
    let posted = run(
        unticked()
            .arg("bench")
            .args(["--url", &format!("http://{addr}"), "-n", &n.to_string(), "-c", "2"])
            .arg("--config")
            .arg(root().join("www/consent.json")),
        LIMIT,
    );
    assert!(posted.status.success(), "{}", String::from_utf8_lossy(&posted.stderr));
}

/// `unticked verify --db DB --public-key KEY [extra…]`: exit code, and stdout then stderr
/// (where a verify that cannot run says why).
fn verify(db: &Path, key: &str, extra: &[&str]) -> (Option<i32>, String) {
    let out = run(
        common::verify_command(db).args(["--public-key", key]).args(extra),
        LIMIT,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// The checkpoint's signed note verifies under `key` (base64url), as an auditor checks it.
fn signed_by(checkpoint: &serde_json::Value, key: &str) -> bool {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let key: [u8; 32] = Base64UrlUnpadded::decode_vec(key).unwrap().try_into().unwrap();
    let key = VerifyingKey::from_bytes(&key).unwrap();
    let signature = Base64UrlUnpadded::decode_vec(checkpoint["signature"].as_str().unwrap()).unwrap();
    let note = checkpoint["note"].as_str().unwrap();
    let size = checkpoint["size"].as_u64().unwrap();
    note.lines().nth(1) == Some(size.to_string().as_str())
        && key
            .verify(note.as_bytes(), &Signature::from_slice(&signature).unwrap())
            .is_ok()
}

#[test]
fn a_witness_file_holds_every_checkpoint_and_finds_a_cut_off_tail() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let witness = outside.path().join("witness.jsonl");
    let (server, addr, key) = serve(&db, witness.to_str().unwrap());
    post(&addr, 30);
    drop(server);

    // Every line is a checkpoint signed by the collector's key, the sizes grow, and the
    // last covers every acknowledged record (the line is written before the 201).
    let text = std::fs::read_to_string(&witness).unwrap();
    let checkpoints: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(checkpoints.len() >= 2, "{text}");
    assert!(checkpoints.iter().all(|c| signed_by(c, &key)), "{text}");
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c["size"].as_u64().unwrap()).collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(sizes.last(), Some(&30));
    let witness_arg = ["--witness", witness.to_str().unwrap()];
    let (code, report) = verify(&db, &key, &witness_arg);
    assert_eq!(code, Some(0), "{report}");
    assert!(
        report.contains(&format!("{} outside checkpoints", checkpoints.len())),
        "{report}"
    );

    // Cut off the newest ten records with their checkpoints: no key is needed for that.
    let cut = sizes.iter().copied().filter(|s| *s <= 20).max().unwrap_or(0);
    common::sql_batch(
        &db,
        &format!(
            "DELETE FROM log WHERE idx >= {cut}; DELETE FROM subjects WHERE idx >= {cut}; DELETE FROM checkpoints WHERE size > {cut};"
        ),
    );
    let (code, report) = verify(&db, &key, &[]);
    assert_eq!(code, Some(0), "the database alone cannot tell: {report}");
    let (code, report) = verify(&db, &key, &witness_arg);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains(&format!("index {cut}:")), "{report}");
    assert!(report.contains("witness line"), "{report}");
}

/// A tiny witness service on 127.0.0.1: answers 200 to each POST and hands its body over.
fn witness_service() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (bodies, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Headers, then Content-Length bytes of body.
            let body = loop {
                let Ok(n) = stream.read(&mut buffer) else { break None };
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        assert!(head.starts_with("POST /checkpoints "), "{head}");
                        break Some(body[..length].to_string());
                    }
                }
            };
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if let Some(body) = body {
                let _ = bodies.send(body);
            }
        }
    });
    (addr, received)
}

#[test]
fn an_http_witness_gets_the_checkpoints_and_a_dead_one_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let (service, received) = witness_service();
    let (_server, addr, key) = serve(&dir.path().join("log.db"), &format!("http://{service}/checkpoints"));
    post(&addr, 12);
    // The publisher keeps the newest: sooner or later the checkpoint of all 12 arrives.
    let deadline = Instant::now() + LIMIT;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let body = received
            .recv_timeout(wait)
            .expect("the witness got the checkpoint of 12");
        let checkpoint: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(signed_by(&checkpoint, &key), "{body}");
        if checkpoint["size"] == 12 {
            break;
        }
    }

    // A witness nobody answers at: every record is still accepted, and soon.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let other = tempfile::tempdir().unwrap();
    let (_server, addr, _) = serve(&other.path().join("log.db"), &format!("http://{closed}/"));
    let started = Instant::now();
    post(&addr, 12);
    assert!(started.elapsed() < LIMIT, "records were held up by the witness");
}

#[test]
fn an_unusable_witness_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        serve_command(&dir.path().join("log.db")).args(["--witness", "https://witness.example/"]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("only http://"), "{stderr}");
}

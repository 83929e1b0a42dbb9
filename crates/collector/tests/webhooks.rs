//! Signed webhooks never drop an event (issue 15): a real receiver on a local port that
//! fails on purpose, every signature checked by an independent HMAC computation, a
//! `kill -9` of the collector between the 201 and the delivery, and dead-letter + replay.

mod common;

use base64ct::{Base64, Encoding};
use common::{root, serve_demo, unticked, Served};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "webhooks-test-admin-token-0123456789";
const SECRET: &[u8] = b"a webhook secret of 32 bytes!!!!";

/// What the receiver saw: each accepted event's (webhook-id, body).
#[derive(Default)]
struct Seen {
    accepted: Mutex<Vec<(String, serde_json::Value)>>,
    requests: AtomicUsize,
    bad_signatures: AtomicUsize,
    /// Answer 500 to the first this many requests.
    fail_first: AtomicUsize,
    /// Answer 500 to everything while set.
    fail_all: AtomicBool,
}

/// A real HTTP/1.1 receiver on `listener`: reads each request, checks its Standard Webhooks
/// signature with its own HMAC, and answers 500 or 204 as told.
fn receiver(listener: TcpListener, seen: Arc<Seen>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || answer(stream, &seen));
        }
    });
}

fn answer(stream: TcpStream, seen: &Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut headers = std::collections::HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    let n = seen.requests.fetch_add(1, Ordering::SeqCst);
    let id = headers["webhook-id"].clone();
    let timestamp = &headers["webhook-timestamp"];
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = format!("v1,{}", Base64::encode_string(&mac.finalize().into_bytes()));
    let good = headers["webhook-signature"].split(' ').any(|s| s == expected);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = timestamp.parse::<u64>().unwrap().abs_diff(now) < 300;
    let fail = !good || !fresh || n < seen.fail_first.load(Ordering::SeqCst) || seen.fail_all.load(Ordering::SeqCst);
    if !good || !fresh {
        seen.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    if !fail {
        seen.accepted
            .lock()
            .unwrap()
            .push((id, serde_json::from_str(&body).unwrap()));
    }
    let status = if fail {
        "500 Internal Server Error"
    } else {
        "204 No Content"
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn settings(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("settings.toml");
    std::fs::write(
        &path,
        format!(
            "[[webhooks]]\nurl = \"http://127.0.0.1:{port}/hooks/unticked\"\nevents = [\"given\"]\nsecret_env = \"HOOK_SECRET\"\nfirst_retry_ms = 100\n{extra}\n"
        ),
    )
    .unwrap();
    path
}

fn serve(db: &Path, settings: &Path) -> Served {
    let secret = format!("whsec_{}", Base64::encode_string(SECRET));
    serve_demo(
        db,
        &["--daily-quota", "0", "--settings", settings.to_str().unwrap()],
        &[("UNTICKED_ADMIN_TOKEN", TOKEN), ("HOOK_SECRET", &secret)],
    )
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Posts `n` demo records (every other one gives e-mail offers), returning the acknowledged ids.
fn post(addr: &str, n: usize, acked: &Path) -> Vec<String> {
    let out = unticked()
        .arg("bench")
        .args(["--url", &format!("http://{addr}"), "-n", &n.to_string(), "-c", "4"])
        .arg("--config")
        .arg(root().join("www/consent.json"))
        .arg("--acked")
        .arg(acked)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(acked)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether the stored record `id` gives the purpose `email-offers`.
fn gives_email_offers(addr: &str, id: &str) -> bool {
    let (status, body) = http(addr, "GET", &format!("/v1/records/{id}"), "");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record: serde_json::Value = serde_json::from_str(body["record"].as_str().unwrap()).unwrap();
    record["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "email-offers" && p["state"] == "given")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_event_is_lost_across_kill_9_and_a_failing_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    // The receiver's port, free again while the collector commits: it is down then.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = settings(dir.path(), port, "");
    let mut server = serve(&db, &settings);
    let acked = post(&server.addr, 20, &dir.path().join("acked.txt"));
    assert!(acked.len() >= 16, "{}", acked.len());
    let (_, pending) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let pending: serde_json::Value = serde_json::from_str(&pending).unwrap();
    // Every acknowledged record that gives e-mail offers has its event waiting.
    let expected: std::collections::BTreeSet<String> = pending["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    // Exactly the acknowledged records that gave e-mail offers have an event waiting: how
    // many of the 20 were acknowledged varies, so the count is read from the records.
    let giving: std::collections::BTreeSet<String> = acked
        .iter()
        .filter(|id| gives_email_offers(&server.addr, id))
        .map(|id| format!("msg_{id}_given"))
        .collect();
    assert!(giving.len() >= 4, "{acked:?}");
    assert_eq!(expected, giving, "{pending}");
    assert!(
        pending["events"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{pending}"
    );
    server.child.kill().unwrap(); // SIGKILL, between the 201s and any delivery
    server.child.wait().unwrap();

    let seen = Arc::new(Seen::default());
    seen.fail_first.store(5, Ordering::SeqCst);
    receiver(TcpListener::bind(("127.0.0.1", port)).unwrap(), seen.clone());
    let server = serve(&db, &settings);
    wait_for("every event delivered", Duration::from_secs(60), || {
        seen.accepted.lock().unwrap().len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(500));
    let accepted = seen.accepted.lock().unwrap().clone();
    assert_eq!(seen.bad_signatures.load(Ordering::SeqCst), 0);
    assert!(
        seen.requests.load(Ordering::SeqCst) >= expected.len() + 5,
        "the first 5 failed and were retried"
    );
    let ids: std::collections::BTreeSet<_> = accepted.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, expected, "each event delivered, none lost");
    assert_eq!(accepted.len(), expected.len(), "each once");
    for (_, event) in &accepted {
        assert_eq!(event["type"], "consent.given");
        assert_eq!(event["data"]["channel"], "email");
        assert!(event["data"]["identifier"].as_str().unwrap().ends_with("@example.lv"));
        let record = &event["data"]["record"];
        let id = record["id"].as_str().unwrap();
        assert!(acked.contains(&id.to_string()));
        assert_eq!(http(&server.addr, "GET", &format!("/v1/records/{id}"), "").0, 200);
        assert!(record["checkpoint"]["size"].as_u64().unwrap() > record["index"].as_u64().unwrap());
        assert_eq!(record["leaf_hash"].as_str().unwrap().len(), 64);
    }
    let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["counts"]["pending"], 0, "{list}");
    assert_eq!(list["counts"]["delivered"], expected.len(), "{list}");
}

#[test]
fn events_past_their_retry_window_are_dead_lettered_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    seen.fail_all.store(true, Ordering::SeqCst);
    receiver(listener, seen.clone());
    let settings = settings(dir.path(), port, "retry_for_seconds = 1");
    let server = serve(&db, &settings);
    post(&server.addr, 4, &dir.path().join("acked.txt"));
    let dead = || {
        let (_, body) = http(&server.addr, "GET", "/v1/admin/webhooks/dead", "");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    wait_for("2 dead events", Duration::from_secs(20), || {
        dead()["events"].as_array().unwrap().len() == 2
    });
    let list = dead();
    assert_eq!(list["events"][0]["last_error"], "HTTP 500", "{list}");
    assert!(seen.accepted.lock().unwrap().is_empty());
    let (status, body) = http(&server.addr, "POST", "/v1/admin/webhooks/replay", "{\"ids\":\"x\"}");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad-body"), "{body}");
    seen.fail_all.store(false, Ordering::SeqCst);
    let (status, body) = http(&server.addr, "POST", "/v1/admin/webhooks/replay", "{\"all\":true}");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"replayed\":2"), "{body}");
    wait_for("the replayed events", Duration::from_secs(20), || {
        seen.accepted.lock().unwrap().len() == 2
    });
    let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["counts"]["dead"], 0, "{list}");
    assert_eq!(list["counts"]["delivered"], 2, "{list}");
    // Erasing a subject erases their events too: the rows carry the identifier (Art. 17).
    let identifier = seen.accepted.lock().unwrap()[0].1["data"]["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/admin/subjects/erase",
        &format!("{{\"identifier\":\"{identifier}\"}}"),
    );
    assert_eq!(status, 200, "{body}");
    let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["counts"]["delivered"], 1, "{list}");
}

/// Deliveries per second to a local receiver (`cargo test --release --test webhooks --
/// --ignored --nocapture`): 4000 records posted with the receiver up, then the time until
/// their 2000 events are all accepted.
#[test]
#[ignore]
fn measure_deliveries_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    receiver(listener, seen.clone());
    // Posted with the receiver down-ish: the events wait in the outbox, then drain at once.
    let settings = settings(dir.path(), port, "");
    let server = serve(&db, &settings);
    let start = Instant::now();
    post(&server.addr, 4000, &dir.path().join("acked.txt"));
    let posted = start.elapsed();
    wait_for("every event", Duration::from_secs(600), || {
        seen.accepted.lock().unwrap().len() >= 2000
    });
    let total = start.elapsed();
    let n = seen.accepted.lock().unwrap().len();
    println!(
        "webhooks: {n} events delivered in {:.2} s from the first post ({:.0}/s); posting took {:.2} s",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        posted.as_secs_f64()
    );
}

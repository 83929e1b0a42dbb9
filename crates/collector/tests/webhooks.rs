//! Signed webhooks never drop an event (issue 15): a real receiver on a local port that
//! fails on purpose, every signature checked by an independent HMAC computation, a
//! `kill -9` of the collector between the 201 and the delivery, and dead-letter + replay.

mod common;

use base64ct::{Base64, Encoding};
use common::{post_demo_records, root, serve_demo, unticked, Served};
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
    /// Answer 500 to the first this many requests whose webhook-id contains the text.
    fail_matching: Mutex<Option<(String, usize)>>,
    /// Every request's webhook-id and whether it was accepted, in the order they came.
    order: Mutex<Vec<(String, bool)>>,
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

/// [`receiver`] over TLS: the certificate `tls` holds (made by rcgen, for `localhost`).
fn tls_receiver(listener: TcpListener, seen: Arc<Seen>, tls: Arc<tokio_rustls::rustls::ServerConfig>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (seen, tls) = (seen.clone(), tls.clone());
            std::thread::spawn(move || {
                let connection = tokio_rustls::rustls::ServerConnection::new(tls).unwrap();
                answer(tokio_rustls::rustls::StreamOwned::new(connection, stream), &seen);
            });
        }
    });
}

fn answer(stream: impl Read + Write, seen: &Seen) {
    let mut reader = BufReader::new(stream);
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
    let fail_this = {
        let mut matching = seen.fail_matching.lock().unwrap();
        match matching.as_mut() {
            Some((text, left)) if *left > 0 && id.contains(text.as_str()) => {
                *left -= 1;
                true
            }
            _ => false,
        }
    };
    let fail = fail_this
        || !good
        || !fresh
        || n < seen.fail_first.load(Ordering::SeqCst)
        || seen.fail_all.load(Ordering::SeqCst);
    seen.order.lock().unwrap().push((id.clone(), !fail));
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
    let stream = reader.get_mut();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.flush();
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

/// A settings file of one webhook to `url` subscribed to `events`, retried every 100 ms on.
fn settings_to(dir: &Path, url: &str, events: &[&str], extra: &str) -> std::path::PathBuf {
    let path = dir.join("settings.toml");
    let events: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "[[webhooks]]\nurl = \"{url}\"\nevents = [{}]\nsecret_env = \"HOOK_SECRET\"\nfirst_retry_ms = 100\n{extra}\n",
            events.join(", ")
        ),
    )
    .unwrap();
    path
}

/// The events the receiver accepted of `type` (`consent.given`, …).
fn accepted_of(seen: &Seen, kind: &str) -> Vec<serde_json::Value> {
    seen.accepted
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| e["type"] == kind)
        .map(|(_, e)| e.clone())
        .collect()
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
    let answer = common::request(addr, method, path, Some(TOKEN), "application/json", body);
    (answer.status, answer.body)
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
    let acked = post_demo_records(&server.addr, 20, &dir.path().join("acked.txt"));
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
    post_demo_records(&server.addr, 4, &dir.path().join("acked.txt"));
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
    // The receiver has them before the collector marks them delivered (one transaction
    // after the batch's answers, crate::webhooks): wait for that too.
    let counts = || {
        let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
        serde_json::from_str::<serde_json::Value>(&list).unwrap()
    };
    wait_for("the replayed events marked delivered", Duration::from_secs(20), || {
        counts()["counts"]["delivered"] == 2
    });
    let list = counts();
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

/// Deliveries per second to a local receiver (`cargo test --release -p unticked-collector
/// --test webhooks measure -- --ignored --nocapture`): 4000 records posted while the receiver
/// fails every request (each event dead-lettered at its first failure), then all replayed at
/// once with the receiver taking them, and the time until every one is accepted.
///
/// It once waited for a fixed 2000 events: when fewer of the 4000 posts were acknowledged
/// (the bench counts only 201/200), that number never came and the test hung. The count is
/// now read from the collector's own outbox.
#[test]
#[ignore]
fn measure_deliveries_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    seen.fail_all.store(true, Ordering::SeqCst);
    receiver(listener, seen.clone());
    let settings = settings(dir.path(), port, "retry_for_seconds = 0");
    let server = serve(&db, &settings);
    let start = Instant::now();
    let acked = post_demo_records(&server.addr, 4000, &dir.path().join("acked.txt"));
    let posted = start.elapsed();
    let counts = || {
        let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        list["counts"].clone()
    };
    let before = counts();
    let total = (before["pending"].as_u64().unwrap() + before["dead"].as_u64().unwrap()) as usize;
    assert!(total > 0, "{before}");
    seen.fail_all.store(false, Ordering::SeqCst);
    let replayed = Instant::now();
    let (status, body) = http(&server.addr, "POST", "/v1/admin/webhooks/replay", "{\"all\":true}");
    assert_eq!(status, 200, "{body}");
    wait_for("every event", Duration::from_secs(600), || {
        seen.accepted.lock().unwrap().len() >= total
    });
    let drained = replayed.elapsed();
    let after = counts();
    assert_eq!(after["pending"], 0, "{after}");
    assert_eq!(after["dead"], 0, "{after}");
    println!(
        "webhooks: {total} events delivered in {:.2} s after the replay ({:.0}/s); {} of 4000 posts acknowledged in {:.2} s ({:.0} records/s)",
        drained.as_secs_f64(),
        total as f64 / drained.as_secs_f64(),
        acked.len(),
        posted.as_secs_f64(),
        acked.len() as f64 / posted.as_secs_f64()
    );
}

#[test]
fn an_erasure_is_told_to_the_webhooks_by_an_event_that_names_no_contact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    receiver(listener, seen.clone());
    let url = format!("http://127.0.0.1:{port}/hooks/unticked");
    let settings = settings_to(dir.path(), &url, &["given", "erased"], "");
    let server = serve(&db, &settings);
    post_demo_records(&server.addr, 2, &dir.path().join("acked.txt"));
    wait_for("a given event", Duration::from_secs(20), || {
        !accepted_of(&seen, "consent.given").is_empty()
    });
    let given = accepted_of(&seen, "consent.given").remove(0);
    let identifier = given["data"]["identifier"].as_str().unwrap().to_string();
    let subject = given["data"]["subject"].as_str().unwrap().to_string();
    assert_eq!(subject.len(), 64, "{given}");

    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/admin/subjects/erase",
        &format!("{{\"identifier\":\"{identifier}\"}}"),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("the erased event", Duration::from_secs(20), || {
        !accepted_of(&seen, "consent.erased").is_empty()
    });
    let erased = accepted_of(&seen, "consent.erased");
    assert_eq!(erased.len(), 1);
    // The receiver finds its copy by the subject every earlier event carried.
    assert_eq!(erased[0]["data"]["subject"], subject.as_str(), "{}", erased[0]);
    assert!(!erased[0].to_string().contains(&identifier), "{}", erased[0]);
    // The store holds no event naming them: the given one went with the erasure (Art. 17),
    // the erased one never named them. Nor does any byte of the database file.
    let rows = common::sql_texts(&db, "SELECT type, payload FROM webhook_outbox");
    assert!(rows.iter().all(|r| !r[1].contains(&identifier)), "{rows:?}");
    assert!(rows.iter().any(|r| r[0] == "erased"), "{rows:?}");
    if common::on_sqlite() {
        let bytes = std::fs::read(&db).unwrap();
        assert!(
            !bytes.windows(identifier.len()).any(|w| w == identifier.as_bytes()),
            "the erased address is still in the database file"
        );
    }
    // Erasing someone the collector never held tells nobody anything.
    let (status, body) = http(
        &server.addr,
        "POST",
        "/v1/admin/subjects/erase",
        "{\"identifier\":\"nobody@example.lv\"}",
    );
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(accepted_of(&seen, "consent.erased").len(), 1);
}

#[test]
fn a_subjects_later_event_waits_for_their_failing_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    // Every given event fails its first 4 attempts (~1.5 s of backoff from 100 ms).
    *seen.fail_matching.lock().unwrap() = Some(("_given".into(), 4));
    receiver(listener, seen.clone());
    let url = format!("http://127.0.0.1:{port}/hooks/unticked");
    let settings = settings_to(dir.path(), &url, &["given", "withdrawn"], "");
    let server = serve(&db, &settings);
    post_demo_records(&server.addr, 2, &dir.path().join("acked.txt"));
    wait_for("a failed given attempt", Duration::from_secs(20), || {
        !seen.order.lock().unwrap().is_empty()
    });
    // Who the given event is about: the admin list names no contact, the record does.
    let given_id = seen.order.lock().unwrap()[0].0.clone();
    let record_id = given_id.strip_prefix("msg_").unwrap().strip_suffix("_given").unwrap();
    let (_, record) = http(&server.addr, "GET", &format!("/v1/records/{record_id}"), "");
    assert!(record.contains("email-offers"), "{record}");
    let (_, links) = http(
        &server.addr,
        "POST",
        "/v1/admin/links",
        "{\"identifier\":\"shopper0@example.lv\",\"channel\":\"email\"}",
    );
    let links: serde_json::Value = serde_json::from_str(&links).unwrap();
    let unsubscribe = links["unsubscribe"].as_str().unwrap();
    let path = &unsubscribe[unsubscribe.find("/unsubscribe/").unwrap()..];
    // The one-click unsubscribe (RFC 8058) withdraws: a second event of the same subject.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    let form = "List-Unsubscribe=One-Click";
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        server.addr,
        form.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, pending) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let pending: serde_json::Value = serde_json::from_str(&pending).unwrap();
    let types: Vec<&str> = pending["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"consent.given") && types.contains(&"consent.withdrawn"),
        "both wait: {pending}"
    );

    wait_for("both delivered", Duration::from_secs(30), || {
        !accepted_of(&seen, "consent.withdrawn").is_empty()
    });
    let order = seen.order.lock().unwrap().clone();
    let given_ok = order
        .iter()
        .position(|(id, ok)| *id == given_id && *ok)
        .expect("the given event delivered");
    let first_withdrawn = order.iter().position(|(id, _)| id.ends_with("_withdrawn")).unwrap();
    assert!(
        first_withdrawn > given_ok,
        "the withdrawal was sent before the given event it follows was delivered: {order:?}"
    );
    assert_eq!(
        order[..given_ok].iter().filter(|(id, _)| *id == given_id).count(),
        4,
        "{order:?}"
    );
}

/// `unticked serve --config CONFIG` over `db` with a web root of its own, the settings and
/// the environment of [`serve`].
fn serve_config(db: &Path, config: &Path, www: &Path, settings: &Path) -> Served {
    use std::io::BufRead;
    let secret = format!("whsec_{}", Base64::encode_string(SECRET));
    let mut child = unticked()
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--www")
        .arg(www)
        .args(common::db_args(db))
        .args(["--addr", "127.0.0.1:0", "--settings", settings.to_str().unwrap()])
        .envs([("UNTICKED_ADMIN_TOKEN", TOKEN), ("HOOK_SECRET", secret.as_str())])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve printed its URL").unwrap();
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

#[test]
fn a_new_purpose_version_tells_each_subject_outdated_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    receiver(listener, seen.clone());
    let url = format!("http://127.0.0.1:{port}/hooks/unticked");
    let settings = settings_to(dir.path(), &url, &["given", "outdated"], "");
    let mut server = serve(&db, &settings);
    post_demo_records(&server.addr, 6, &dir.path().join("acked.txt"));
    std::thread::sleep(Duration::from_millis(1000));
    wait_for("the given events", Duration::from_secs(20), || {
        let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
        list.contains("\"pending\":0")
    });
    let given = accepted_of(&seen, "consent.given");
    assert!(!given.is_empty());
    assert!(
        accepted_of(&seen, "consent.outdated").is_empty(),
        "nothing outdated under version 1"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The shop raises the version of its e-mail offers (a new wording, R11).
    let text = std::fs::read_to_string(root().join("www/consent.json")).unwrap();
    let needle = "\"id\": \"email-offers\",\n      \"version\": 1,";
    assert_eq!(text.matches(needle).count(), 1);
    let bumped = text
        .replace(needle, "\"id\": \"email-offers\",\n      \"version\": 2,")
        .replace(
            "I agree to receive offers and news by e-mail",
            "I agree to receive offers, news and surveys by e-mail",
        );
    let config = dir.path().join("consent-v2.json");
    std::fs::write(&config, bumped).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    let server = serve_config(&db, &config, &www, &settings);
    wait_for("an outdated event per given one", Duration::from_secs(30), || {
        accepted_of(&seen, "consent.outdated").len() >= given.len()
    });
    let outdated = accepted_of(&seen, "consent.outdated");
    assert_eq!(outdated.len(), given.len());
    for event in &outdated {
        let purpose = &event["data"]["purposes"][0];
        assert_eq!(purpose["id"], "email-offers", "{event}");
        assert_eq!(
            (purpose["version"].as_u64(), purpose["current"].as_u64()),
            (Some(1), Some(2)),
            "{event}"
        );
        assert_eq!(event["data"]["channel"], "email", "{event}");
        let told_given = given
            .iter()
            .find(|g| g["data"]["record"]["id"] == event["data"]["record"]["id"])
            .expect("the record the consent rests on");
        assert_eq!(told_given["data"]["identifier"], event["data"]["identifier"]);
        assert_eq!(told_given["data"]["subject"], event["data"]["subject"]);
    }
    // Delivery is at least once: a collector stopped between an endpoint's 2xx and writing
    // it down sends the event again (with the same webhook-id). Wait until it is written.
    wait_for("the deliveries written down", Duration::from_secs(10), || {
        let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
        serde_json::from_str::<serde_json::Value>(&list).is_ok_and(|l| l["counts"]["pending"] == 0)
    });
    drop(server);
    // Served again: what was told is remembered, nothing is sent twice.
    let server = serve_config(&db, &config, &www, &settings);
    std::thread::sleep(Duration::from_secs(2));
    let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["counts"]["pending"], 0, "{list}");
    assert_eq!(accepted_of(&seen, "consent.outdated").len(), given.len());
}

/// A CA and a certificate for `localhost` it signed: the CA's PEM and the server's TLS config.
fn tls_server() -> (String, Arc<tokio_rustls::rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn https_endpoints_are_delivered_to_when_their_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let (ca_pem, tls) = tls_server();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    tls_receiver(listener, seen.clone(), tls);
    // Two endpoints on the same TLS receiver: one trusts its CA, one knows only the public roots.
    let trusted = format!("https://localhost:{port}/trusted");
    let settings = settings_to(
        dir.path(),
        &trusted,
        &["given"],
        &format!(
            "ca_file = \"{}\"\n[[webhooks]]\nurl = \"https://localhost:{port}/untrusted\"\nevents = [\"given\"]\nsecret_env = \"HOOK_SECRET\"\nfirst_retry_ms = 100\n",
            ca.display()
        ),
    );
    let server = serve(&db, &settings);
    post_demo_records(&server.addr, 2, &dir.path().join("acked.txt"));
    wait_for("the event over TLS", Duration::from_secs(20), || {
        !accepted_of(&seen, "consent.given").is_empty()
    });
    assert_eq!(seen.bad_signatures.load(Ordering::SeqCst), 0);
    let (_, list) = http(&server.addr, "GET", "/v1/admin/webhooks", "");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let untrusted: Vec<&serde_json::Value> = list["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["endpoint"].as_str().unwrap().ends_with("/untrusted"))
        .collect();
    assert!(!untrusted.is_empty(), "{list}");
    for event in untrusted {
        let error = event["last_error"].as_str().unwrap_or("");
        assert!(error.starts_with("TLS:") && error.contains("UnknownIssuer"), "{event}");
    }
    assert_eq!(
        accepted_of(&seen, "consent.given").len(),
        list["counts"]["delivered"].as_u64().unwrap() as usize
    );
}

#[test]
fn serve_refuses_plain_http_to_a_remote_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_to(dir.path(), "http://crm.example/hooks", &["given"], "");
    let secret = format!("whsec_{}", Base64::encode_string(SECRET));
    let out = common::serve_command(&dir.path().join("log.db"))
        .args(["--settings", settings.to_str().unwrap()])
        .env("HOOK_SECRET", secret)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("webhooks[0].url is plain http to crm.example") && stderr.contains("https://"),
        "{stderr}"
    );
}

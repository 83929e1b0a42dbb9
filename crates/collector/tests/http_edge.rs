//! The HTTP edge of `unticked serve` under attack, over real TCP to the real process (issue
//! 12): the log's files are never under the web root, slow and idle connections are closed,
//! huge headers and absurd bodies are refused early, one address cannot hold every
//! connection, and SIGTERM leaves nothing on disk but the database and its key.

mod common;

use common::{root, run, serve_demo, unticked, Served};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// The header timeout and keep-alive idle timeout the server promises (`http.rs`), and the
/// slack a busy CI machine may need on top of it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const SLACK: Duration = Duration::from_secs(4);
const LIMIT: Duration = Duration::from_secs(20);

/// `unticked serve` of the demo shop on a free port over `db`.
fn serve(db: &Path) -> Served {
    serve_demo(db, &[], &[])
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset); how long that took, or
/// `None` if it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            Err(_) => return Some(start.elapsed()),
        }
    }
}

/// One request on a fresh connection; the status and the whole answer.
fn request(addr: &str, text: &str) -> (u16, String) {
    let mut stream = connect(addr);
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn healthz(addr: &str) -> u16 {
    request(
        addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .0
}

/// `--db www/unticked.db` would publish the key (checkpoint seed, subject-index secret) and
/// the WAL (shoppers' e-mails): serve refuses to start, also when a symlink hides the layout,
/// and creates nothing.
#[test]
fn serve_refuses_a_database_under_the_web_root() {
    if common::skip_unless_sqlite("a PostgreSQL log is no file that could lie under the web root") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "<!doctype html><title>shop</title>").unwrap();
    let hidden = dir.path().join("data");
    std::os::unix::fs::symlink(&www, &hidden).unwrap();
    for db in [www.join("unticked.db"), hidden.join("log.db"), www.join("../www/x.db")] {
        let output = run(
            unticked()
                .arg("serve")
                .arg("--config")
                .arg(root().join("www/consent.json"))
                .arg("--www")
                .arg(&www)
                .arg("--db")
                .arg(&db)
                .args(["--addr", "127.0.0.1:0"]),
            LIMIT,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}: {stderr}", db.display());
        assert!(stderr.contains("refusing to start"), "{stderr}");
        assert!(stderr.contains("--www"), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("serving"));
        let left: Vec<_> = std::fs::read_dir(&www)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["index.html"], "nothing was created under the web root");
    }
}

/// Half a header, then silence (slow-loris): the server closes the connection within the
/// header timeout instead of holding it and its buffer.
#[test]
fn a_stalled_header_is_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let mut stream = connect(&server.addr);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaa")
        .unwrap();
    let closed = closed_within(&mut stream, HEADER_TIMEOUT + SLACK);
    assert!(closed.is_some(), "still open after {:?}", HEADER_TIMEOUT + SLACK);
}

/// An answered keep-alive connection that then sends nothing is closed within the idle
/// timeout, so idle connections cannot pile up.
#[test]
fn an_idle_keep_alive_connection_is_closed_within_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let mut stream = connect(&server.addr);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 1024];
    let n = stream.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200 "));
    let closed = closed_within(&mut stream, HEADER_TIMEOUT + SLACK);
    assert!(closed.is_some(), "idle for {:?} and still open", HEADER_TIMEOUT + SLACK);
}

/// A 320 KiB header (800 of them pinned 269 MiB before) is answered 431 or cut off, never
/// served.
#[test]
fn a_huge_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let mut stream = connect(&server.addr);
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(320 * 1024)
    );
    // The server may close while we are still writing: that is a refusal too.
    let _ = stream.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(healthz(&server.addr), 200, "the server still answers others");
}

/// One address holding the per-address cap (64) of idle connections gets its next one closed
/// at once; once it lets go, `/healthz` answers again.
#[test]
fn connections_past_the_per_address_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let held: Vec<TcpStream> = (0..64).map(|_| connect(&server.addr)).collect();
    let mut extra = connect(&server.addr);
    let closed = closed_within(&mut extra, Duration::from_secs(3));
    assert!(closed.is_some(), "the 65th connection from one address was kept open");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if healthz(&server.addr) == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not answer after the others closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A declared `Content-Length` of 10^9 is answered 413 `too-large` at once, not after the
/// request timeout spent waiting for a body that never comes.
#[test]
fn an_absurd_content_length_gets_413_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let mut stream = connect(&server.addr);
    stream
        .write_all(
            b"POST /v1/records HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 1000000000\r\n\r\n{\"record\":",
        )
        .unwrap();
    let start = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 4096];
    let n = stream.read(&mut answer).expect("an answer within 5 s");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains(r#""code":"too-large""#), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// After SIGTERM the WAL is folded into the database and every connection closed: the
/// directory holds the database and its key, and no `-wal` or `-shm` with contacts in them.
#[test]
fn sigterm_leaves_only_the_database_and_its_key() {
    if common::skip_unless_sqlite("a PostgreSQL log leaves no files beside it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&dir.path().join("log.db"));
    let posted = run(
        unticked()
            .arg("bench")
            .args(["--url", &format!("http://{}", server.addr), "-n", "1", "-c", "1"])
            .arg("--config")
            .arg(root().join("www/consent.json")),
        LIMIT,
    );
    let report = String::from_utf8_lossy(&posted.stdout);
    assert!(report.contains("1 stored (201)"), "{report}");
    let wal_before = dir.path().join("log.db-wal").exists();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["log.db", "log.db.key"],
        "(a WAL existed while serving: {wal_before})"
    );
    // And the record is in the database itself.
    let verified = common::verify_command(&dir.path().join("log.db")).output().unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success() && report.contains("1 records"), "{report}");
}

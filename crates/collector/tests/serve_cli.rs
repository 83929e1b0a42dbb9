//! `unticked serve` as a process: it refuses an invalid config before listening, and with a
//! valid one it announces its URL, answers over real TCP, and stops cleanly on SIGTERM.

mod common;

use common::{root, run, serve_command, unticked, TempFile};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Long enough for a debug build on a busy CI machine, short enough that a hang fails soon.
const LIMIT: Duration = Duration::from_secs(20);

/// Kills the server if the test fails before it stops it, so no server outlives the test.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// An invalid config is never served: the process exits non-zero at once (it never reaches
/// the listener, or `run` would time out) and prints the problem on stderr.
#[test]
fn serve_refuses_an_invalid_config() {
    let vector: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("testdata/config/bad/pre-ticked-checked-true.json")).unwrap(),
    )
    .unwrap();
    let config = TempFile::new("serve-bad", &serde_json::to_string_pretty(&vector["config"]).unwrap());
    let output = run(
        unticked()
            .arg("serve")
            .arg("--config")
            .arg(config.path())
            .arg("--www")
            .arg(root().join("www"))
            .args(["--addr", "127.0.0.1:0"]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("/purposes/0/checked"), "{stderr}");
    assert!(stderr.contains("R1 pre-ticked"), "{stderr}");
    assert!(stderr.contains("refusing to serve an invalid config"), "{stderr}");
    assert!(!stdout.contains("serving"), "{stdout}");
}

/// The demo config is served: the printed URL (port 0 picks a free port) answers a plain
/// HTTP/1.1 request under the CSP, and SIGTERM shuts the server down gracefully with exit 0.
#[test]
fn serve_answers_on_the_printed_url_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = serve_command(&dir.path().join("log.db"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unticked serve");
    let mut server = Server(child);

    // Read stdout on a thread, so waiting for a line can time out.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = server.0.stdout.take().unwrap();
    // Reads stdout to its end, also once the address is found: this test reads the line
    // "stopped" after SIGTERM (serve_outlives_a_closed_stdout is the case of nobody reading).
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let next_line = || {
        let left = deadline.saturating_duration_since(Instant::now());
        lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no more output from unticked serve: {e}"))
    };

    let announcement = loop {
        let line = next_line();
        if line.starts_with("unticked: serving ") {
            break line;
        }
    };
    let url = announcement
        .split(" on ")
        .nth(1)
        .unwrap_or_else(|| panic!("{announcement}"));
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not an http://HOST:PORT/ URL: {announcement}"));
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "port 0 was resolved: {addr}"
    );

    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.set_write_timeout(Some(LIMIT)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{response:?}"));
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ncontent-security-policy: default-src 'self'"),
        "{head}"
    );
    assert_eq!(body, "ok\n");

    let pid = server.0.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -TERM {pid}");
    let status = wait_with_timeout(&mut server.0, LIMIT).expect("unticked serve did not stop on SIGTERM");
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let last = loop {
        let line = next_line();
        if line.starts_with("unticked: stopped") {
            break line;
        }
    };
    assert_eq!(last, "unticked: stopped");
}

/// Whoever read the start-up lines may go away (`unticked serve | head -2`, a supervisor
/// that drops the pipe): the collector keeps answering, and its last line, "stopped", which
/// now meets a broken pipe, does not turn a graceful SIGTERM into a panic.
#[test]
fn serve_outlives_a_closed_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let child = serve_command(&dir.path().join("log.db"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start unticked serve");
    let mut server = Server(child);
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve ended before its URL");
        if let Some(url) = line.trim_end().strip_prefix("unticked: serving ") {
            let url = url.split(" on http://").nth(1).unwrap();
            break url.trim_end_matches('/').to_string();
        }
    };
    drop(stdout);
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let pid = server.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_with_timeout(&mut server.0, LIMIT).expect("unticked serve did not stop on SIGTERM");
    let mut stderr = String::new();
    server.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "graceful shutdown exits 0, got {status}: {stderr}");
}

/// An admin token a guesser could find is never served: `serve` exits at once naming the
/// variable and the minimum length, before it opens the log or listens.
#[test]
fn serve_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        serve_command(&dir.path().join("log.db")).env("UNTICKED_ADMIN_TOKEN", "abcd"),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("UNTICKED_ADMIN_TOKEN"), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stdout.contains("serving"), "{stdout}");
    assert!(!dir.path().join("log.db").exists(), "nothing was opened");
}

/// A started `serve` with piped stdout and stderr: the server, the address it printed, and
/// its log (stderr), read until it exits.
fn logged(mut child: Child) -> (Server, String, thread::JoinHandle<String>) {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    // Reads stdout to its end, also once the address is found: this test reads the line
    // "stopped" after SIGTERM (serve_outlives_a_closed_stdout is the case of nobody reading).
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let log = thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let addr = loop {
        let line = lines.recv_timeout(LIMIT).expect("serve printed its URL");
        if let Some(url) = line.split(" on http://").nth(1) {
            break url.trim_end_matches('/').to_string();
        }
    };
    (server, addr, log)
}

/// Stops a [`logged`] server with SIGTERM and returns its whole log.
fn stop_logged(server: &mut Server, log: thread::JoinHandle<String>) -> String {
    let pid = server.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    wait_with_timeout(&mut server.0, LIMIT).expect("serve stops on SIGTERM");
    log.join().unwrap()
}

/// Over real TCP: wrong admin tokens from one address get 429 after a few, and the log
/// names the address and never the token.
#[test]
fn wrong_admin_tokens_over_tcp_are_held_back_and_logged_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = "serve-cli-admin-token-0123456789abcdef";
    let child = serve_command(&dir.path().join("log.db"))
        .env("UNTICKED_ADMIN_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start unticked serve");
    let (mut server, addr, log) = logged(child);
    let status_of = |bearer: &str| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        write!(
            stream,
            "GET /v1/admin/export HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.get(9..12).unwrap_or_default().to_string()
    };
    let statuses: Vec<String> = (0..10).map(|i| status_of(&format!("wrong-guess-{i}"))).collect();
    assert_eq!(statuses[0], "401", "{statuses:?}");
    assert_eq!(statuses[9], "429", "{statuses:?}");
    assert!(statuses.iter().filter(|s| *s == "401").count() <= 5, "{statuses:?}");
    // The site owner on the same address is never locked out by someone else's guesses.
    assert_eq!(
        status_of(token),
        "200",
        "the right token passes from a held-back address"
    );
    assert_eq!(
        status_of("wrong-guess-10"),
        "429",
        "while the guesses are still held back"
    );

    let log = stop_logged(&mut server, log);
    assert!(log.contains("wrong bearer token") && log.contains("127.0.0.1"), "{log}");
    assert!(!log.contains("wrong-guess") && !log.contains(token), "{log}");
}

/// Over real TCP: a subject's links are minted, opened and used (one-click unsubscribe), a
/// wrong one is refused, and the collector's log holds none of the tokens nor the address.
#[test]
fn links_and_tokens_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "serve-cli-admin-token-0123456789abcdef";
    let child = serve_command(&dir.path().join("log.db"))
        .env("UNTICKED_ADMIN_TOKEN", admin)
        .env("UNTICKED_ACCOUNT_SECRET", "serve-cli-account-secret-0123456789ab")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start unticked serve");
    let (mut server, addr, log) = logged(child);
    let request = |method: &str, path: &str, headers: &str, body: &str| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.get(9..12).unwrap_or_default().to_string();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (status, body)
    };
    let (status, links) = request(
        "POST",
        "/v1/admin/links",
        &format!("Authorization: Bearer {admin}\r\nContent-Type: application/json\r\n"),
        r#"{"identifier":"secret.person@example.lv","channel":"email"}"#,
    );
    assert_eq!(status, "200", "{links}");
    let links: serde_json::Value = serde_json::from_str(&links).unwrap();
    let path = |url: &serde_json::Value| format!("/{}", url.as_str().unwrap().splitn(4, '/').nth(3).unwrap());
    let (preferences, unsubscribe) = (path(&links["preferences"]), path(&links["unsubscribe"]));
    assert_eq!(request("GET", &preferences, "", "").0, "200");
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    assert_eq!(
        request("POST", &unsubscribe, form, "List-Unsubscribe=One-Click").0,
        "200"
    );
    assert_eq!(request("GET", "/preferences/AAAA.BBBB", "", "").0, "404");

    let log = stop_logged(&mut server, log);
    assert!(
        log.contains("links minted") && log.contains("wrong, expired or revoked token"),
        "{log}"
    );
    for secret in [
        &preferences[13..],
        &unsubscribe[13..],
        "AAAA.BBBB",
        "secret.person",
        admin,
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// A config that asks for double opt-in is not served without an SMTP relay: its signups
/// would wait for a mail that never goes out, and lapse.
#[test]
fn serve_refuses_double_opt_in_without_smtp() {
    let output = run(
        unticked()
            .arg("serve")
            .arg("--config")
            .arg(root().join("testdata/config/good/double-opt-in.json"))
            .arg("--www")
            .arg(root().join("www"))
            .args(["--addr", "127.0.0.1:0"]),
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.contains("double opt-in (forms: newsletter)"), "{stderr}");
    assert!(stderr.contains("[smtp]"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("serving"));
}

/// A bad `--trusted-proxy` is refused by the argument parser, naming the value.
#[test]
fn serve_refuses_a_trusted_proxy_that_is_not_a_cidr() {
    for bad in ["10.0.0.0/33", "proxy.internal"] {
        let output = run(
            unticked().args(["serve", "--addr", "127.0.0.1:0", "--trusted-proxy", bad]),
            LIMIT,
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--trusted-proxy") && stderr.contains(bad), "{stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("serving"));
    }
}

/// Behind a load balancer (issue 16): with `--trusted-proxy 127.0.0.1/32` the limits count
/// by the client `X-Forwarded-For` names (its rightmost untrusted entry; what the shopper
/// prepended is skipped), so one forwarded address is held back while another still gets
/// through, and the log names the forwarded address. Without the flag the header is ignored
/// and every request is one client, 127.0.0.1.
#[test]
fn trusted_proxy_limits_each_forwarded_client_and_without_it_the_header_is_ignored() {
    let token = "serve-cli-admin-token-0123456789abcdef";
    let (first, second) = ("6.6.6.6, 203.0.113.7", "198.51.100.9");
    for trusted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = serve_command(&dir.path().join("log.db"));
        command.args(["--rate-limit", "1"]).env("UNTICKED_ADMIN_TOKEN", token);
        if trusted {
            command.args(["--trusted-proxy", "127.0.0.1/32"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start unticked serve");
        let (mut server, addr, log) = logged(child);
        let send = |head: &str, forwarded_for: &str, body: &str| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(LIMIT)).unwrap();
            // One write: the whole request, its body only where it declares one (bytes the
            // server never reads would make it reset the connection on close).
            let request = format!(
                "{head}\r\nHost: {addr}\r\nX-Forwarded-For: {forwarded_for}\r\nConnection: close\r\n\r\n{body}"
            );
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response.get(9..12).unwrap_or_default().to_string()
        };
        let post = |forwarded_for: &str| {
            send(
                "POST /v1/records HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2",
                forwarded_for,
                "{}",
            )
        };
        let wrong_token = |forwarded_for: &str| {
            send(
                "GET /v1/admin/export HTTP/1.1\r\nAuthorization: Bearer wrong-guess",
                forwarded_for,
                "",
            )
        };

        // Posts: a burst of three a second is let through (and refused 400, being empty),
        // then 429. Sent back to back, far faster than one a second.
        let mut statuses = Vec::new();
        while statuses.last().map(String::as_str) != Some("429") && statuses.len() < 20 {
            statuses.push(post(first));
        }
        let held_back = Instant::now();
        assert_eq!(statuses.last().map(String::as_str), Some("429"), "{statuses:?}");
        assert!(statuses.iter().filter(|s| *s == "400").count() >= 3, "{statuses:?}");
        let other = post(second);
        if trusted {
            assert_eq!(other, "400", "another forwarded client is not held up");
        } else if held_back.elapsed() < Duration::from_millis(800) {
            // Within the second before the bucket refills, the same client (127.0.0.1).
            assert_eq!(other, "429", "without --trusted-proxy the header is ignored");
        }

        // Wrong admin tokens: five, then held back for a minute (no race with the clock).
        let guesses: Vec<String> = (0..6).map(|_| wrong_token(first)).collect();
        assert_eq!(guesses[0], "401", "{guesses:?}");
        assert_eq!(guesses[5], "429", "{guesses:?}");
        let other = wrong_token(second);
        assert_eq!(other, if trusted { "401" } else { "429" }, "trusted: {trusted}");

        let log = stop_logged(&mut server, log);
        assert!(log.contains("wrong bearer token"), "{log}");
        if trusted {
            assert!(log.contains("203.0.113.7") && log.contains("198.51.100.9"), "{log}");
            assert!(
                !log.contains("6.6.6.6"),
                "what the shopper wrote is not the client: {log}"
            );
        } else {
            assert!(log.contains("127.0.0.1") && !log.contains("203.0.113.7"), "{log}");
        }
    }
}

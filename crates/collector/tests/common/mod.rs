//! Helpers shared by the integration tests that run the real `unticked` binary.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The workspace root (where `www/` and `testdata/` live).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `unticked` binary that Cargo built for these tests.
pub fn unticked() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unticked"))
}

/// A file under the system temp directory, removed when dropped. Names carry the process id
/// and a counter, so tests running in parallel (and other test binaries) never collide.
pub struct TempFile(PathBuf);

impl TempFile {
    pub fn new(tag: &str, contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("unticked-test-{}-{n}-{tag}.json", std::process::id()));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempFile(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Runs a command to completion, failing the test (and killing the process) if it takes
/// longer than `limit`: a hang must fail, not block the test run forever.
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    // Read both pipes while waiting, so a chatty process cannot block on a full pipe.
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A running `unticked serve`, killed when dropped, so that no server outlives its test.
pub struct Served {
    pub child: std::process::Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// The collector's public key (base64url), as it prints it at start.
    pub key: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The variable that runs this suite on PostgreSQL (`./build.sh test` runs it once on each
/// backend): `postgres`, with the cluster's URL in `UNTICKED_TEST_POSTGRES`.
pub const BACKEND: &str = "UNTICKED_TEST_BACKEND";

/// The URL of the PostgreSQL cluster the suite runs on, when it runs on one.
pub fn postgres() -> Option<String> {
    if std::env::var(BACKEND).ok().as_deref() != Some("postgres") {
        return None;
    }
    let url = std::env::var("UNTICKED_TEST_POSTGRES")
        .unwrap_or_else(|_| panic!("{BACKEND}=postgres needs UNTICKED_TEST_POSTGRES (`./build.sh test` sets both)"));
    Some(url)
}

/// Whether this run is on SQLite.
pub fn on_sqlite() -> bool {
    postgres().is_none()
}

/// For a test of what holds on SQLite alone: true (and `why` printed) when this run is on
/// PostgreSQL, where the test returns at once.
pub fn skip_unless_sqlite(why: &str) -> bool {
    if on_sqlite() {
        return false;
    }
    eprintln!("SQLite only, skipped on PostgreSQL: {why}");
    true
}

/// The `--db` (and, on PostgreSQL, `--key`) arguments for the log a test names by a file
/// path: on SQLite the file itself (its key `<db>.key`, made on first start); on PostgreSQL
/// a fresh database of its own, named after the path, and a key file `<db>.key` made with
/// `unticked keygen` (a PostgreSQL log never makes its own key). The same path always
/// gives the same database, so a test can stop a collector and start another on its log.
pub fn db_args(db: &Path) -> Vec<std::ffi::OsString> {
    match postgres() {
        None => vec!["--db".into(), db.into()],
        Some(cluster) => postgres_args(&cluster, db),
    }
}

/// `--db` and `--key` for the PostgreSQL database standing for `db` on `cluster` (see
/// [`db_args`]), whatever backend the run is on: for the tests of PostgreSQL itself.
pub fn postgres_args(cluster: &str, db: &Path) -> Vec<std::ffi::OsString> {
    let url = postgres_database(cluster, db);
    let key = PathBuf::from(format!("{}.key", db.display()));
    if !key.exists() {
        let made = unticked().arg("keygen").arg("--out").arg(&key).output().unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    vec!["--db".into(), url.into(), "--key".into(), key.into()]
}

/// The PostgreSQL database standing for the file `db`: created on first use.
pub fn postgres_database(cluster: &str, db: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    db.hash(&mut hasher);
    let name = format!("t{}_{:016x}", std::process::id(), hasher.finish());
    let (base, _) = cluster.rsplit_once('/').expect("a URL ending in /database");
    let url = format!("{base}/{name}");
    let mut admin = postgres::Client::connect(cluster, postgres::NoTls).unwrap_or_else(|e| panic!("{cluster}: {e}"));
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .is_some();
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
    url
}

/// Runs `sql` (statements portable between SQLite and PostgreSQL) on the log a test names
/// by `db`, as someone with access to the database would: a test's way to tamper.
pub fn sql_batch(db: &Path, sql: &str) {
    match postgres() {
        None => rusqlite::Connection::open(db).unwrap().execute_batch(sql).unwrap(),
        Some(cluster) => {
            let url = postgres_database(&cluster, db);
            postgres::Client::connect(&url, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap();
        }
    }
}

/// The rows of `sql` on the log a test names by `db`, every column selected as text.
pub fn sql_texts(db: &Path, sql: &str) -> Vec<Vec<String>> {
    match postgres() {
        None => {
            let conn = rusqlite::Connection::open(db).unwrap();
            let mut statement = conn.prepare(sql).unwrap();
            let columns = statement.column_count();
            statement
                .query_map([], |row| (0..columns).map(|i| row.get::<_, String>(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        Some(cluster) => {
            let url = postgres_database(&cluster, db);
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|row| (0..row.len()).map(|i| row.get::<_, String>(i)).collect())
                .collect()
        }
    }
}

/// `unticked verify` of the log a test names by `db`, on this run's backend.
pub fn verify_command(db: &Path) -> Command {
    let mut command = unticked();
    command.arg("verify").args(db_args(db));
    command
}

/// `unticked serve` of the demo config and web root over the log `db`, on a free port of
/// 127.0.0.1: add arguments, environment and pipes to it.
pub fn serve_command(db: &Path) -> Command {
    serve_command_with(db_args(db))
}

/// `unticked serve` as [`serve_command`], over the log that `db_args` name.
pub fn serve_command_with(db_args: Vec<std::ffi::OsString>) -> Command {
    let mut command = unticked();
    command
        .arg("serve")
        .arg("--config")
        .arg(root().join("www/consent.json"))
        .arg("--www")
        .arg(root().join("www"))
        .args(db_args)
        .args(["--addr", "127.0.0.1:0"]);
    command
}

/// `unticked serve` of the demo shop on a free port over `db`, with the per-second limit
/// off, `args` added and `env` set; waits for the line that names its URL.
pub fn serve_demo(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
    serve_demo_with(db_args(db), args, env)
}

/// [`serve_demo`] over the log that `db_args` name.
pub fn serve_demo_with(db_args: Vec<std::ffi::OsString>, args: &[&str], env: &[(&str, &str)]) -> Served {
    use std::io::BufRead;
    let mut child = serve_command_with(db_args)
        .envs(env.iter().copied())
        .args(["--rate-limit", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unticked serve");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut key = String::new();
    let addr = loop {
        let line = lines.next().expect("serve printed its URL").expect("UTF-8");
        if let Some(rest) = line.split(", key ").nth(1) {
            key = rest.trim_end_matches(')').to_string();
        }
        if let Some(url) = line.split(" on http://").nth(1) {
            break url.trim_end_matches('/').to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    thread::spawn(move || for _ in lines {});
    Served { child, addr, key }
}

/// Posts `n` demo records to the collector at `addr` with `unticked bench --url` (every
/// other one gives e-mail offers to shopper{i}@example.lv), appending the acknowledged ids
/// to `acked`; returns them.
pub fn post_demo_records(addr: &str, n: usize, acked: &Path) -> Vec<String> {
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

/// The lines of a file (an `--acked` list), none when it is not there yet.
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// An HTTP/1.1 answer as the tests read it: the status, the head in lower case, and the
/// body (de-chunked when it came chunked).
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 request over a new connection (`Connection: close`), with `token` as the
/// bearer when given, read to its end within 30 s.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>, content_type: &str, body: &str) -> Answer {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let head = head.to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer { status, head, body }
}

/// The body of a chunked transfer (RFC 9112 §7.1), as a mailing tool's HTTP client reads it.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

//! `unticked bench`: posts N pre-signed records over loopback with C connections and prints
//! the collector's ingest rate, latency and peak memory beside the raw Ed25519 verification
//! rate of the same machine, measured in the same run. A command that prints figures, not a
//! test: nothing here asserts a timing.

use ed25519_dalek::{Signer, SigningKey};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use unticked_core::capture::{self, Capture, Submission, SALT_LEN};
use unticked_core::config::Config;
use unticked_core::record::{self, base64url, fill};

/// Why the bench could not run: a tool's error, printed and exited 1 (any failure of the
/// client, the collector it started or the config it read).
#[derive(Debug)]
pub struct BenchError(String);

impl<E: std::fmt::Display> From<E> for BenchError {
    fn from(e: E) -> Self {
        BenchError(e.to_string())
    }
}

pub struct Options {
    /// Running collectors (one log behind them); without any the bench starts its own.
    pub urls: Vec<String>,
    /// The log of the collectors the bench starts: a fresh SQLite file of its own by default,
    /// or a PostgreSQL database (with `key`), which should be empty.
    pub db: Option<crate::db::Location>,
    pub key: Option<PathBuf>,
    /// How many collectors the bench starts on `db`.
    pub instances: usize,
    /// Send a record again after a 503 or a lost connection, as the widget's outbox does,
    /// until it is stored.
    pub retry: bool,
    /// Grow the log to each of these sizes and time look-ups at each (receipt with its
    /// inclusion proof, consistency proof, subject), instead of one ingest.
    pub lookups_at: Vec<usize>,
    pub config: PathBuf,
    pub www: PathBuf,
    pub records: usize,
    pub concurrency: usize,
    /// Where to append the id of each record the collector acknowledged (one per line).
    pub acked: Option<PathBuf>,
    /// Time the audience and suppression lists after the ingest (crate::rights).
    pub audience: bool,
}

/// The admin token of the collectors the bench starts itself: only the bench talks to them.
const BENCH_TOKEN: &str = "unticked-bench-admin-token-not-a-secret-0123";

/// Seals a capture as `src/courier.js` does in the browser: SHA-256 into the digest holes,
/// Ed25519 over the unsigned text, the signature into its holes. Returns the delivery body.
pub fn seal(capture: &Capture, key: &SigningKey) -> String {
    seal_with(capture, key.verifying_key().as_bytes(), |message| {
        key.sign(message).to_bytes()
    })
}

/// [`seal`] with an Ed25519 signature made by `sign` for `public_key`: the collector seals
/// the records it signs itself so (crate::lifecycle), with the key of its checkpoints.
pub fn seal_with(capture: &Capture, public_key: &[u8], sign: impl FnOnce(&[u8]) -> [u8; 64]) -> String {
    let digests: Vec<String> = capture
        .digest_inputs()
        .iter()
        .map(|input| record::hex(&Sha256::digest(input)))
        .collect();
    let parts = capture.record.parts();
    let signature = sign(fill(&parts, &digests, None).as_bytes());
    let (public_key, value) = (base64url(public_key), base64url(&signature));
    let record = fill(&parts, &digests, Some(["Ed25519", &public_key, &value]));
    let disclosures = capture::disclosures_json(&capture.disclosures);
    let birthday = match &capture.birthday {
        Some(birthday) => format!(
            r#""birthday":{{"salt":"{}","value":"{}"}},"#,
            record::hex(&birthday.salt),
            birthday.value
        ),
        None => String::new(),
    };
    format!(
        r#"{{{birthday}"disclosures":{disclosures},"record":{}}}"#,
        serde_json::Value::String(record)
    )
}

/// `n` checkout submissions as shoppers of 64 browsers would send them from the collector's
/// own page at `origin` (the collector takes records from its own origin or the config's):
/// every other one gives e-mail offers (and so discloses an address), the rest refuse
/// everything. Each names the config by `config_sha256`, the hash of its text, as the
/// widget's records do: the collector takes records of the configs it has served.
fn deliveries(
    config: &Config,
    config_sha256: &str,
    origin: &str,
    n: usize,
) -> Result<Vec<(String, String)>, BenchError> {
    deliveries_of(config, config_sha256, origin, 0..n)
}

/// The deliveries of records `range` (shopper{i} for each i in it).
fn deliveries_of(
    config: &Config,
    config_sha256: &str,
    origin: &str,
    range: std::ops::Range<usize>,
) -> Result<Vec<(String, String)>, BenchError> {
    let n = range.len();
    let compiled = unticked_core::compiled::compile(config, config_sha256);
    let sheet = &compiled
        .sheet("checkout", &config.default_locale)
        .ok_or_else(|| BenchError("the config has no checkout form".into()))?
        .sheet;
    let keys: Vec<SigningKey> = (0..64u8)
        .map(|i| SigningKey::from_bytes(&[i.wrapping_add(1); 32]))
        .collect();
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let run = Sha256::digest(start.to_be_bytes());
    let first = range.start;
    let mut out = Vec::with_capacity(n);
    for i in range {
        let mut random = [0u8; 10];
        random[..2].copy_from_slice(&run[..2]);
        random[2..].copy_from_slice(&(i as u64).to_be_bytes());
        let id = record::record_id(start, random);
        let email = format!("shopper{i}@example.lv");
        let given: &[&str] = if i % 2 == 0 { &["email-offers"] } else { &[] };
        let page = Submission {
            id: &id,
            // A millisecond apart from the slice's signing time on: a slice is posted at
            // once, so each stays within the collector's 10 minutes ahead of its clock.
            captured_at: start + (i - first) as u64,
            page_origin: origin,
            page_path: "/checkout.html",
            widget: env!("CARGO_PKG_VERSION"),
            ticked: given,
            ticked_by_shopper: given,
            email: &email,
            phone: "",
            post: "",
            birthday_day: "",
            birthday_month: "",
        };
        let salt = || {
            let mut salt = [0u8; SALT_LEN];
            salt[..8].copy_from_slice(&(i as u64).to_be_bytes());
            salt
        };
        let assembled = capture::assemble(sheet, &page, salt);
        out.push((id, seal(&assembled.capture, &keys[i % keys.len()])));
    }
    Ok(out)
}

/// Raw `record::open` (strict Ed25519 verification plus parsing) rate over the deliveries,
/// on one core and on every core.
fn verification_rates(bodies: &[(String, String)]) -> (f64, f64, usize) {
    let records: Vec<String> = bodies
        .iter()
        .filter_map(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok())
        .filter_map(|v| v["record"].as_str().map(str::to_string))
        .collect();
    let sample = &records[..records.len().min(4000)];
    let start = Instant::now();
    let ok = sample.iter().filter(|r| record::open(r.as_bytes()).is_ok()).count();
    let one = ok as f64 / start.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| scope.spawn(|| sample.iter().filter(|r| record::open(r.as_bytes()).is_ok()).count()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let all = total as f64 / start.elapsed().as_secs_f64();
    (one, all, cores)
}

/// A collector of our own: this binary's `serve` on a free port and a fresh log.
fn start_collector(
    options: &Options,
    config: &std::path::Path,
    dir: &std::path::Path,
    public_origin: Option<&str>,
) -> Result<(Child, String), BenchError> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .env(crate::admin::TOKEN_VARIABLE, BENCH_TOKEN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--www")
        .arg(&options.www);
    match &options.db {
        Some(db) => command.arg("--db").arg(db.to_url()),
        None => command.arg("--db").arg(dir.join("bench.db")),
    };
    if let Some(key) = &options.key {
        command.arg("--key").arg(key);
    }
    // Several collectors behind one address take the same records: each is told the first
    // one's origin is its own, as instances behind a load balancer are told the shop's.
    if let Some(origin) = public_origin {
        command.args(["--public-origin", origin]);
    }
    let mut child = command
        .args(["--addr", "127.0.0.1:0", "--rate-limit", "0", "--daily-quota", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| BenchError("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        if let Some(url) = line
            .strip_prefix("unticked: serving ")
            .and_then(|l| l.split(" on ").nth(1))
        {
            // Read on: `serve` prints more after its URL, and a closed pipe makes that print
            // fail and the collector exit (the bench then met "connection refused").
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((child, url.trim_end_matches('/').to_string()));
        }
    }
    Err(BenchError("the collector did not start".into()))
}

/// How many look-ups of each kind are timed at each size.
const LOOKUPS: usize = 300;

/// Grows the log to each size of `--lookups-at` and times, at each, `LOOKUPS` look-ups of
/// each kind over records spread through the whole log: how their cost grows with the log
/// (an inclusion or consistency proof is O(log n) hashes; a subject is an index look-up).
fn grow_and_look_up(
    options: &Options,
    urls: &[String],
    config: &Config,
    config_sha256: &str,
) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Runtime::new()?;
    let authority = urls[0].trim_start_matches("http://").to_string();
    let mut ids: Vec<String> = Vec::new();
    let mut size = 0usize;
    for &target in &options.lookups_at {
        if target <= size {
            continue;
        }
        eprintln!("unticked bench: growing the log to {target} records…");
        // In slices, so that memory holds one slice of signed records at a time.
        while size < target {
            let end = (size + 100_000).min(target);
            let bodies = Arc::new(deliveries_of(config, config_sha256, &urls[0], size..end)?);
            // Keep every 100th id (and the first), for the look-ups.
            ids.extend(
                bodies
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| (size + i).is_multiple_of(100))
                    .map(|(_, (id, _))| id.clone()),
            );
            let (outcome, _) = runtime
                .block_on(post_all(urls, bodies, options.concurrency.max(1), None, true))
                .map_err(|e| BenchError(format!("growing the log: {}", e.0)))?;
            if let Some(status) = outcome.statuses.iter().find(|&&s| s != 201) {
                return Err(BenchError(format!(
                    "a record was answered {status} while growing the log"
                )));
            }
            size = end;
        }
        let timed = runtime
            .block_on(time_lookups(&authority, &ids, size))
            .map_err(|e| BenchError(format!("timing look-ups: {}", e.0)))?;
        let line = |name: &str, mut t: Vec<Duration>| {
            t.sort();
            let q = |q: f64| t[((t.len() as f64 * q) as usize).min(t.len() - 1)].as_secs_f64() * 1e3;
            format!("{name} p50 {:.2} ms p99 {:.2} ms", q(0.5), q(0.99))
        };
        println!(
            "look-ups at {size:>8} records: {}; {}; {}",
            line("receipt+inclusion", timed.0),
            line("consistency proof", timed.1),
            line("subject", timed.2)
        );
    }
    Ok(())
}

/// Times `LOOKUPS` of each: `GET /v1/records/{id}`, `GET /v1/proofs/consistency` from a
/// random earlier size, `POST /v1/admin/subjects` of a shopper who gave e-mail offers.
async fn time_lookups(
    authority: &str,
    ids: &[String],
    size: usize,
) -> Result<(Vec<Duration>, Vec<Duration>, Vec<Duration>), BenchError> {
    let mut random = [0u8; 8 * LOOKUPS];
    getrandom::fill(&mut random).map_err(|e| BenchError(e.to_string()))?;
    let picks: Vec<u64> = random
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let mut timed = (Vec::new(), Vec::new(), Vec::new());
    for (n, pick) in picks.iter().enumerate() {
        for kind in 0..3 {
            let request = match kind {
                0 => hyper::Request::get(format!("/v1/records/{}", ids[*pick as usize % ids.len()]))
                    .body(Full::new(Bytes::new()))?,
                1 => hyper::Request::get(format!(
                    "/v1/proofs/consistency?from={}&to={size}",
                    1 + *pick as usize % size.max(1)
                ))
                .body(Full::new(Bytes::new()))?,
                _ => hyper::Request::post("/v1/admin/subjects")
                    .header(hyper::header::AUTHORIZATION, format!("Bearer {BENCH_TOKEN}"))
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(format!(
                        "{{\"identifier\":\"shopper{}@example.lv\"}}",
                        2 * (*pick as usize % size.div_ceil(2).max(1))
                    ))))?,
            };
            let (mut parts, body) = request.into_parts();
            parts.headers.insert(
                hyper::header::HOST,
                authority.parse().map_err(|_| BenchError("bad host".into()))?,
            );
            // A connection of its own per look-up, opened before the clock starts (one kept
            // alive across the three kinds was closed by hyper as canceled; not understood).
            let mut sender = connect(authority).await?;
            let sent = Instant::now();
            let response = sender.send_request(hyper::Request::from_parts(parts, body)).await?;
            let status = response.status();
            response.into_body().collect().await?;
            if !status.is_success() {
                return Err(BenchError(format!("look-up {n} of kind {kind} answered {status}")));
            }
            let took = sent.elapsed();
            match kind {
                0 => timed.0.push(took),
                1 => timed.1.push(took),
                _ => timed.2.push(took),
            }
        }
    }
    Ok(timed)
}

/// Stops the collectors the bench started.
fn stop(children: &mut Vec<Child>) {
    for mut child in children.drain(..) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Peak resident memory of a process, from Linux's /proc (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Outcome {
    latencies: Vec<Duration>,
    statuses: Vec<u16>,
    /// Sends that met a 503, or no connection, and were made again (with `--retry`).
    retried: Retried,
}

#[derive(Default, Clone, Copy)]
struct Retried {
    unavailable: usize,
    unconnected: usize,
}

/// The longest a record is retried for before the bench gives up on it.
const RETRY_FOR: Duration = Duration::from_secs(120);

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> Result<Sender, BenchError> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Posts one record: its status and latency. With `retry`, a 503 or a lost connection is
/// waited out and the same bytes sent again (backing off from 50 ms to 1 s, as the widget's
/// outbox backs off), counting each retry; the latency is then from the first send.
async fn post_one(
    sender: &mut Option<Sender>,
    authority: &str,
    body: &str,
    retry: bool,
    retried: &mut Retried,
) -> Result<(u16, Duration), BenchError> {
    let first = Instant::now();
    let mut wait = Duration::from_millis(50);
    loop {
        let attempt = async {
            if sender.is_none() {
                *sender = Some(connect(authority).await?);
            }
            let request = hyper::Request::post("/v1/records")
                .header(hyper::header::HOST, authority)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?;
            let response = sender.as_mut().expect("connected").send_request(request).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<_, BenchError>(status)
        }
        .await;
        match attempt {
            Ok(503) | Err(_) if retry && first.elapsed() < RETRY_FOR => {
                if attempt.is_err() {
                    *sender = None;
                    retried.unconnected += 1;
                } else {
                    retried.unavailable += 1;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
            Ok(status) => return Ok((status, first.elapsed())),
            Err(e) => return Err(e),
        }
    }
}

async fn post_all(
    urls: &[String],
    bodies: Arc<Vec<(String, String)>>,
    concurrency: usize,
    acked: Option<Arc<Mutex<std::fs::File>>>,
    retry: bool,
) -> Result<(Outcome, Duration), BenchError> {
    let authorities = urls
        .iter()
        .map(|url| {
            url.strip_prefix("http://")
                .map(str::to_string)
                .ok_or_else(|| BenchError("the bench speaks plain http to a local collector".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for connection in 0..concurrency {
        // The connections are spread over the collectors in turn, as a load balancer would.
        let authority = authorities[connection % authorities.len()].clone();
        let (bodies, next, acked) = (bodies.clone(), next.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome {
                latencies: Vec::new(),
                statuses: Vec::new(),
                retried: Retried::default(),
            };
            let mut sender = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((id, body)) = bodies.get(i) else { break };
                let (status, latency) = post_one(&mut sender, &authority, body, retry, &mut outcome.retried).await?;
                outcome.latencies.push(latency);
                outcome.statuses.push(status);
                if status == 201 || status == 200 {
                    if let Some(file) = &acked {
                        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                        writeln!(file, "{id}")?;
                        file.flush()?;
                    }
                }
            }
            Ok::<_, BenchError>(outcome)
        }));
    }
    let mut all = Outcome {
        latencies: Vec::new(),
        statuses: Vec::new(),
        retried: Retried::default(),
    };
    for task in tasks {
        let outcome = task.await??;
        all.latencies.extend(outcome.latencies);
        all.statuses.extend(outcome.statuses);
        all.retried.unavailable += outcome.retried.unavailable;
        all.retried.unconnected += outcome.retried.unconnected;
    }
    Ok((all, start.elapsed()))
}

pub fn main(options: Options) -> ExitCode {
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unticked bench: {}", e.0);
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(&options.config)
        .map_err(|e| BenchError(format!("{}: {e}", options.config.display())))?;
    let config =
        Config::from_json(&text).map_err(|_| BenchError("the config is not valid; run `unticked lint`".into()))?;
    let dir = tempfile::tempdir()?;
    let mut children: Vec<Child> = Vec::new();
    let urls = if options.urls.is_empty() {
        let mut urls: Vec<String> = Vec::new();
        for _ in 0..options.instances.max(1) {
            match start_collector(options, &options.config, dir.path(), urls.first().map(String::as_str)) {
                Ok((child, url)) => {
                    children.push(child);
                    urls.push(url);
                }
                Err(e) => {
                    stop(&mut children);
                    return Err(e);
                }
            }
        }
        urls
    } else {
        options
            .urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect()
    };
    let url = urls[0].clone();
    if !options.lookups_at.is_empty() {
        let config_sha256 = crate::compile::config_sha256(&text);
        let grown = grow_and_look_up(options, &urls, &config, &config_sha256);
        stop(&mut children);
        return grown;
    }
    // The records come from the collector's own page, as the demo shop's do.
    eprintln!("unticked bench: signing {} records…", options.records);
    let config_sha256 = crate::compile::config_sha256(&text);
    let bodies = match deliveries(&config, &config_sha256, &url, options.records) {
        Ok(bodies) => Arc::new(bodies),
        Err(e) => {
            stop(&mut children);
            return Err(e);
        }
    };
    let acked = match &options.acked {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(path)?,
        ))),
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let posted = runtime.block_on(post_all(
        &urls,
        bodies.clone(),
        options.concurrency.max(1),
        acked,
        options.retry,
    ));
    let peak = children.iter().filter_map(|c| peak_rss_kib(c.id())).max();
    let lists = match (children.len(), options.audience, &posted) {
        (1, true, Ok(_)) => Some(time_lists(&url)),
        _ => None,
    };
    stop(&mut children);
    let (mut outcome, elapsed) = posted?;
    // After the run, so that it neither competes with the collector nor delays the first post.
    let (one_core, all_cores, cores) = verification_rates(&bodies);
    outcome.latencies.sort();
    let quantile = |q: f64| {
        let i = ((outcome.latencies.len() as f64 * q) as usize).min(outcome.latencies.len().saturating_sub(1));
        outcome.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let stored = outcome.statuses.iter().filter(|&&s| s == 201).count();
    // A record sent again after its 201 was lost (the connection dropped, or the integration
    // failed after it was stored) is answered 200: stored, once.
    let already = outcome.statuses.iter().filter(|&&s| s == 200).count();
    let other: Vec<&u16> = outcome.statuses.iter().filter(|&&s| s != 201 && s != 200).collect();
    println!(
        "{} records over {} connections to {}: {stored} stored (201), {} other answers",
        bodies.len(),
        options.concurrency,
        urls.join(" "),
        other.len()
    );
    if already > 0 {
        println!("already     {already} records answered 200: stored by an earlier send");
    }
    if options.retry {
        println!(
            "retried     {} sends after a 503 and {} after no connection, as the outbox does",
            outcome.retried.unavailable, outcome.retried.unconnected
        );
    }
    println!(
        "ingest     {:>9.0} records/s   p50 {:.2} ms   p99 {:.2} ms",
        outcome.statuses.len() as f64 / elapsed.as_secs_f64(),
        quantile(0.5),
        quantile(0.99)
    );
    match peak {
        Some(kib) => println!("collector peak RSS {:.1} MiB", kib as f64 / 1024.0),
        None => println!("collector peak RSS: not measured (an external collector, or no /proc)"),
    }
    println!(
        "raw record::open (Ed25519 strict + parse): {one_core:>9.0} /s on 1 core, {all_cores:.0} /s on {cores} cores"
    );
    if let Some(lists) = lists {
        print_lists(&lists?);
        // A new version of e-mail offers (R11): every consent to it is outdated now, and
        // the same subjects move from the audience to the suppression list.
        let outdated = dir.path().join("consent-v2.json");
        std::fs::write(&outdated, bumped_email_offers(&text)?)?;
        let (mut child, url) = start_collector(options, &outdated, dir.path(), None)?;
        let lists = time_lists(&url);
        let _ = child.kill();
        let _ = child.wait();
        println!("after a new version of email-offers:");
        print_lists(&lists?);
    }
    Ok(())
}

/// One timed list: its path, the lines and bytes read, and how long the whole read took.
struct Timed {
    path: &'static str,
    lines: usize,
    bytes: usize,
    elapsed: Duration,
}

const LISTS: [&str; 2] = [
    "/v1/admin/audience?channel=email",
    "/v1/admin/suppression?channel=email",
];

/// Reads each list whole, as a mailing tool would, timing it from the request to the last
/// byte.
fn time_lists(url: &str) -> Result<Vec<Timed>, BenchError> {
    LISTS
        .iter()
        .map(|path| {
            let started = Instant::now();
            let body = get_admin(url, path)?;
            Ok(Timed {
                path,
                lines: body.lines().count(),
                bytes: body.len(),
                elapsed: started.elapsed(),
            })
        })
        .collect()
}

fn print_lists(lists: &[Timed]) {
    for t in lists {
        println!(
            "{:<40} {:>7} lines  {:>6.1} MB  {:>7.2} s  {:>8.0} lines/s",
            t.path,
            t.lines,
            t.bytes as f64 / 1e6,
            t.elapsed.as_secs_f64(),
            t.lines as f64 / t.elapsed.as_secs_f64()
        );
    }
}

/// A GET with the bench's admin token over HTTP/1.1, the body read to its end.
fn get_admin(url: &str, path: &str) -> Result<String, BenchError> {
    let authority = url.trim_start_matches("http://");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {BENCH_TOKEN}"))
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            return Err(BenchError(format!(
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    })
}

/// The config `text` with the version of e-mail offers one higher.
fn bumped_email_offers(text: &str) -> Result<String, BenchError> {
    let mut config: serde_json::Value = serde_json::from_str(text)?;
    let purposes = config["purposes"]
        .as_array_mut()
        .ok_or_else(|| BenchError("no purposes".into()))?;
    let offers = purposes
        .iter_mut()
        .find(|p| p["id"] == "email-offers")
        .ok_or_else(|| BenchError("the config has no purpose email-offers".into()))?;
    let version = offers["version"].as_u64().unwrap_or(1);
    offers["version"] = (version + 1).into();
    Ok(serde_json::to_string_pretty(&config)?)
}

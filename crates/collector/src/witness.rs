//! `unticked serve --witness TARGET`: every checkpoint the collector commits is also sent
//! somewhere the collector's own disk cannot rewrite, so that cutting the newest records
//! *and* their checkpoints out of the database is found by `unticked verify --witness`.
//!
//! - A file path: one JSON line per checkpoint (the JSON of `GET /v1/checkpoint`), appended
//!   and synced (`fsync`) after the commit and before the records are acknowledged, so a 201
//!   means the witness holds a checkpoint that covers the record. Keep it on another disk or
//!   machine (a mounted volume): a copy beside the database falls with it.
//! - An `http://` URL: the same JSON, `POST`ed from a background thread with a bounded queue
//!   that keeps the newest; failures are retried with backoff and logged, and never hold up
//!   or refuse a record. A later checkpoint of the same log vouches for every earlier prefix
//!   (RFC 9162 §2.1.4), so dropping an older one for a newer one loses nothing the witness
//!   can prove.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Checkpoints waiting for the HTTP witness; beyond this the oldest are dropped.
const QUEUE: usize = 64;
/// How long one attempt to reach the HTTP witness may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where checkpoints are published.
pub enum Witness {
    File { path: PathBuf, file: Mutex<std::fs::File> },
    Http(HttpWitness),
}

/// A `--witness` target that cannot be used.
#[derive(Debug)]
pub enum WitnessError {
    NotHttp(String),
    BadUrl(String),
    File(String, std::io::Error),
    Thread(std::io::Error),
}

impl std::fmt::Display for WitnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessError::NotHttp(target) => write!(
                f,
                "--witness {target}: only http:// URLs (put a TLS proxy on this machine in front of an https one)"
            ),
            WitnessError::BadUrl(target) => write!(f, "--witness {target}: not an http://host:port/path URL"),
            WitnessError::File(target, e) => write!(f, "--witness {target}: {e}"),
            WitnessError::Thread(e) => write!(f, "--witness: cannot start the publishing thread: {e}"),
        }
    }
}

impl Witness {
    /// A file path, or an `http://` URL.
    ///
    /// # Errors
    /// An `https://` or malformed URL, or a file that cannot be opened for appending.
    pub fn open(target: &str) -> Result<Witness, WitnessError> {
        if let Some(rest) = target.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(at) => (&rest[..at], &rest[at..]),
                None => (rest, "/"),
            };
            if authority.is_empty() || authority.contains('@') || path.contains(char::is_whitespace) {
                return Err(WitnessError::BadUrl(target.into()));
            }
            return HttpWitness::start(authority.into(), path.into()).map(Witness::Http);
        }
        if target.contains("://") {
            return Err(WitnessError::NotHttp(target.into()));
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(target)
            .map_err(|e| WitnessError::File(target.into(), e))?;
        Ok(Witness::File {
            path: PathBuf::from(target),
            file: Mutex::new(file),
        })
    }

    /// Publishes one checkpoint (its JSON, one line). Never fails: a witness that cannot be
    /// reached is logged, and the records stay accepted.
    pub fn publish(&self, size: u64, json: String) {
        match self {
            Witness::File { path, file } => {
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                let mut line = json.into_bytes();
                line.push(b'\n');
                // One write per line: with O_APPEND a line is never interleaved with another.
                if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
                    tracing::error!(witness = %path.display(), size, error = %e, "could not write the checkpoint to the witness");
                }
            }
            Witness::Http(http) => http.enqueue(json),
        }
    }
}

struct Pending {
    lines: VecDeque<String>,
    closed: bool,
}

/// The background publisher of an HTTP witness.
pub struct HttpWitness {
    queue: Arc<(Mutex<Pending>, Condvar)>,
    worker: Option<JoinHandle<()>>,
}

impl HttpWitness {
    fn start(authority: String, path: String) -> Result<HttpWitness, WitnessError> {
        let queue = Arc::new((
            Mutex::new(Pending {
                lines: VecDeque::new(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let shared = queue.clone();
        let worker = std::thread::Builder::new()
            .name("unticked-witness".into())
            .spawn(move || publish_loop(&authority, &path, &shared))
            .map_err(WitnessError::Thread)?;
        Ok(HttpWitness {
            queue,
            worker: Some(worker),
        })
    }

    fn enqueue(&self, json: String) {
        let (pending, wake) = &*self.queue;
        let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.lines.push_back(json);
        if pending.lines.len() > QUEUE {
            pending.lines.pop_front();
        }
        wake.notify_one();
    }
}

impl Drop for HttpWitness {
    fn drop(&mut self) {
        let (pending, wake) = &*self.queue;
        pending.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        wake.notify_one();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Sends each queued checkpoint in order. One that fails is retried with a doubling wait,
/// until it is sent, a newer one is queued (which covers it), or the collector stops.
fn publish_loop(authority: &str, path: &str, queue: &(Mutex<Pending>, Condvar)) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "the witness publisher cannot start; no checkpoint will be witnessed");
            return;
        }
    };
    let (pending, wake) = queue;
    loop {
        let line = {
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                // Stopping: only the newest is worth the wait, it covers the others.
                let older = pending.lines.len().saturating_sub(1);
                if pending.closed && older > 0 {
                    pending.lines.drain(..older);
                }
                if let Some(line) = pending.lines.pop_front() {
                    break line;
                }
                if pending.closed {
                    return;
                }
                pending = wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
        };
        let mut backoff = Duration::from_millis(250);
        loop {
            let sent = runtime.block_on(async { tokio::time::timeout(ATTEMPT, post(authority, path, &line)).await });
            let error = match sent {
                Ok(Ok(())) => break,
                Ok(Err(e)) => e,
                Err(_) => format!("no answer within {} s", ATTEMPT.as_secs()),
            };
            let pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            if !pending.lines.is_empty() || pending.closed {
                tracing::warn!(witness = %authority, error = %error, "the witness missed a checkpoint; sending the newer one");
                break;
            }
            tracing::warn!(witness = %authority, error = %error, retry_in_ms = backoff.as_millis() as u64, "could not reach the witness");
            // A newer checkpoint, or the stop, wakes this wait early.
            let (woken, _) = wake.wait_timeout(pending, backoff).unwrap_or_else(|e| e.into_inner());
            if !woken.lines.is_empty() || woken.closed {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// `POST path` with the checkpoint's JSON; any 2xx is success. The answer is read to its
/// end, so the witness is not cut off mid-reply.
async fn post(authority: &str, path: &str, json: &str) -> Result<(), String> {
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(json.to_owned())))
        .map_err(|e| e.to_string())?;
    let (status, _) = crate::http::send_once(authority, request).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}

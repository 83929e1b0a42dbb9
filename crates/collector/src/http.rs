//! The collector's HTTP edge: its own accept loop over hyper's HTTP/1.1 server with bounded
//! header time, header size and connections per client address (but for `--trusted-proxy`
//! peers), graceful shutdown; and the
//! checks a write passes before its body is read (origin, media type, declared length).
//! docs/collector.md, "HTTP limits", lists every value and why.

use crate::error::{refuse, Code, Refusal};
use crate::limit::ClientKey;
use crate::proxy::TrustedProxies;
use crate::records::MAX_BODY;
use crate::violations::MAX_REPORT;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a client has to send a request's start line and headers, counted from the moment
/// the connection is ready for one: right after it is accepted, and again after each answer
/// on a kept-alive connection. hyper (1.x, `proto/h1/conn.rs`) re-arms this timer when a
/// connection goes idle, so it is also the keep-alive idle timeout: a connection that sends
/// half a header and stalls, and one that sends nothing at all, are both closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's read buffer per connection (its default is ~400 KiB): with headers capped below,
/// this bounds what a connection can pin in memory at 64 KiB; bodies are read through it
/// in pieces, so it limits no body.
pub const MAX_BUFFER: usize = 64 * 1024;

/// The start line and headers together; more is answered 431 (RFC 6585 §5) and the connection
/// closed. 16 KiB is well above what a browser sends (cookies included) for this site.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long in-flight requests may finish after SIGTERM before their connections are dropped:
/// a little more than the request timeout, which bounds each of them already.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(crate::serve::REQUEST_TIMEOUT.as_secs() + 1);

/// The largest body any route takes (axum's default body limit, which the shop form uses):
/// a larger declared `Content-Length` is refused before anything is read.
pub const MAX_ANY_BODY: u64 = 2 * 1024 * 1024;

/// Caps on open connections. A connection past either cap is closed as soon as it is
/// accepted, before anything is read, so it costs one file descriptor for a moment only.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// All connections at once: kept below the file-descriptor limit, so the database, static
    /// files and `/healthz` always have descriptors left.
    pub total: usize,
    /// Connections from one client address (one IPv6 /64, see [`ClientKey`]); not applied
    /// to a `--trusted-proxy` peer, a load balancer that holds connections for many shoppers
    /// (the total still is).
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            total: 512,
            per_address: 64,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_client: HashMap<ClientKey, usize>,
}

/// One open connection's place in the counts; given back when dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    /// `None` for a trusted proxy's connection, counted in the total only.
    client: Option<ClientKey>,
}

impl Slot {
    fn take(
        counts: &Arc<Mutex<Counts>>,
        peer: IpAddr,
        limits: ConnectionLimits,
        trusted: &TrustedProxies,
    ) -> Option<Slot> {
        // A connection is accepted before any header is read, so the client a proxy names is
        // not known here: the proxy's own connections are bounded by the total alone.
        let client = (!trusted.contains(peer)).then(|| ClientKey::of(peer));
        let mut held = counts.lock().unwrap_or_else(|e| e.into_inner());
        if held.total >= limits.total {
            return None;
        }
        if let Some(client) = client {
            let of_client = held.by_client.get(&client).copied().unwrap_or(0);
            if of_client >= limits.per_address {
                return None;
            }
            held.by_client.insert(client, of_client + 1);
        }
        held.total += 1;
        Some(Slot {
            counts: counts.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(client) = self.client {
            if let Some(n) = held.by_client.get_mut(&client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.by_client.remove(&client);
                }
            }
        }
    }
}

/// hyper's HTTP/1.1 connection settings (HTTP/2 is not offered: browsers speak it over TLS
/// only, and TLS is the reverse proxy's job).
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // The header timeout needs a timer; without one hyper panics on the first connection.
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .max_header_size(MAX_HEADER_BYTES)
        // Keep-alive stays on (the widget and the bench reuse connections); its idle time is
        // bounded by the header timeout above.
        .keep_alive(true);
    builder
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (at most [`SHUTDOWN_GRACE`]) and returns once every connection is closed, so that nothing
/// holds the store any more. Each request carries `ConnectInfo<SocketAddr>`, as with axum's
/// `into_make_service_with_connect_info`, and the `trusted` proxies: the rate limits count
/// by the client they give ([`crate::limit::Client`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    trusted: TrustedProxies,
    shutdown: impl Future<Output = ()>,
) {
    let builder = http1();
    let counts = Arc::new(Mutex::new(Counts::default()));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset before it was
                        // accepted: wait a moment rather than spin.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(slot) = Slot::take(&counts, peer.ip(), limits, &trusted) else {
                    // Closed at once: no log line per connection, which a flood would fill.
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let trusted = trusted.clone();
                let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request.extensions_mut().insert(trusted.clone());
                    app.clone().oneshot(request)
                });
                let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    let _slot = slot;
                    if let Err(e) = connection.await {
                        // A client that timed out, sent garbage or hung up: not our error.
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace; closing them");
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// The origins that may post records and reports: the collector's own public origins
/// (`--public-origin`, or its loopback address) and the config's `origins`.
#[derive(Debug, Clone)]
pub struct Writers {
    origins: Arc<Vec<String>>,
}

impl Writers {
    pub fn new(origins: &[String]) -> Writers {
        Writers {
            origins: Arc::new(origins.to_vec()),
        }
    }

    /// Whether `origin` (RFC 6454 §6.2 serialisation) may write, compared without regard to
    /// ASCII case (RFC 3986 §3.1, §3.2.2).
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// A browser sends `Origin` with every POST (Fetch standard, "append a request Origin
    /// header"), and a `text/plain` form post needs no CORS preflight, so CORS alone does not
    /// stop a foreign page from writing: the origin is checked here, against a list fixed at
    /// start. Never against the request's `Host`: a page on a foreign name that resolves to
    /// the collector (DNS rebinding) sends a `Host` equal to its own `Origin`. `Origin: null`
    /// (sandboxed frames, `file:`, some redirects; RFC 6454 §7.3) is refused. No `Origin` at
    /// all is a non-browser client (`unticked bench`, curl), which CSRF does not concern:
    /// allowed, and the record it carries must still name an allowed page (records.rs).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let forbidden = || {
            refuse(
                Code::ForbiddenOrigin,
                "this origin may not post to the collector; add it to the config's origins, or give the collector's own with --public-origin",
            )
        };
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Ok(());
        };
        if origins.next().is_some() {
            return Err(forbidden());
        }
        match origin.to_str() {
            Ok(origin) if origin != "null" && self.allows(origin) => Ok(()),
            _ => Err(forbidden()),
        }
    }
}

/// `application/json`, with parameters such as `; charset=utf-8` (RFC 9110 §8.3.1); one
/// `Content-Type` only.
fn is_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (Some(value), None) => value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json")),
        _ => false,
    }
}

/// A declared `Content-Length` above `limit`, refused before the body is read: otherwise the
/// server waits for a gigabyte that never comes until the request timeout.
fn check_declared_length(headers: &HeaderMap, limit: usize, what: &str) -> Result<(), Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            Err(refuse(Code::TooLarge, format!("{what} is at most {limit} bytes")))
        }
        _ => Ok(()),
    }
}

/// In front of `POST /v1/records` and `POST /v1/violations`, before the body is read:
/// the origin (403 `forbidden-origin`), the media type (415 `unsupported-media-type`) and
/// the declared length (413 `too-large`).
pub async fn writers_only(State(writers): State<Writers>, request: Request, next: Next) -> Response {
    if request.method() == Method::POST {
        if let Err(refusal) = writers.check_origin(request.headers()) {
            tracing::warn!(code = refusal.code.as_str(), "write refused");
            return refusal.into_response();
        }
        if !is_json(request.headers()) {
            return refuse(Code::UnsupportedMediaType, "post with content-type: application/json").into_response();
        }
        let (limit, what) = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
            Some("/v1/violations") => (MAX_REPORT, "a report"),
            _ => (MAX_BODY, "a delivery"),
        };
        if let Err(refusal) = check_declared_length(request.headers(), limit, what) {
            return refusal.into_response();
        }
    }
    next.run(request).await
}

/// In front of every route: a declared body over [`MAX_ANY_BODY`] is refused at once.
pub async fn bounded_bodies(request: Request, next: Next) -> Response {
    match check_declared_length(request.headers(), MAX_ANY_BODY as usize, "a request body") {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// One HTTP/1.1 request to `authority` (`host:port`) over a connection of its own, as the
/// collector's own clients make them (`verify --url`, the http witness): the status and the
/// whole body, read to its end.
pub async fn send_once<B>(
    authority: &str,
    request: hyper::Request<B>,
) -> Result<(hyper::StatusCode, hyper::body::Bytes), String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_ipv4_address_and_per_ipv6_slash_64() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnectionLimits {
            total: 3,
            per_address: 2,
        };
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let none = TrustedProxies::default();
        let first = Slot::take(&counts, a, limits, &none).expect("first");
        let second = Slot::take(&counts, same_64, limits, &none).expect("second");
        assert!(
            Slot::take(&counts, a, limits, &none).is_none(),
            "a third from the same /64"
        );
        let other = Slot::take(&counts, "10.0.0.1".parse().unwrap(), limits, &none).expect("another client");
        assert!(
            Slot::take(&counts, "10.0.0.2".parse().unwrap(), limits, &none).is_none(),
            "the total cap"
        );
        drop((first, second, other));
        assert!(
            Slot::take(&counts, a, limits, &none).is_some(),
            "closed connections give their place back"
        );
        assert_eq!(
            ClientKey::of("::ffff:10.0.0.1".parse().unwrap()),
            ClientKey::of("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn a_trusted_proxy_is_held_to_the_total_cap_only() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnectionLimits {
            total: 4,
            per_address: 1,
        };
        let trusted = TrustedProxies::new(vec![crate::proxy::parse_cidr("10.0.0.0/8").unwrap()]);
        let balancer: IpAddr = "10.0.0.5".parse().unwrap();
        let held: Vec<Slot> = (0..3)
            .map(|i| Slot::take(&counts, balancer, limits, &trusted).unwrap_or_else(|| panic!("{i}")))
            .collect();
        let shopper: IpAddr = "203.0.113.7".parse().unwrap();
        let direct = Slot::take(&counts, shopper, limits, &trusted).expect("a direct client");
        assert!(
            Slot::take(&counts, shopper, limits, &trusted).is_none(),
            "a direct client still has its cap"
        );
        assert!(
            Slot::take(&counts, balancer, limits, &trusted).is_none(),
            "the total cap holds for the balancer too"
        );
        drop(held);
        assert!(Slot::take(&counts, balancer, limits, &trusted).is_some());
        drop(direct);
        let held = counts.lock().unwrap();
        assert_eq!((held.total, held.by_client.len()), (0, 0), "every place given back");
    }

    #[test]
    fn json_with_parameters_is_json_and_nothing_else_is() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        for other in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!with(other), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}

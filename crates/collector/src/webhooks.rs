//! Signed webhooks that never drop an event (issue 15). Each event is a row of the
//! `webhook_outbox` table, written in the same transaction as the record that caused it
//! ([`crate::store::Effect`]): it exists exactly when the record does. A dispatcher task
//! delivers the rows, at least once, in order per (endpoint, subject), signed as Standard
//! Webhooks asks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256>`), retrying with exponential backoff until `retry_for_seconds`, then
//! dead-letters them for `POST /v1/admin/webhooks/replay`. See docs/webhooks.md.

use crate::db::{params, DbError, Dialect, Sql, SqlExt};
use crate::records::Accepted;
use crate::settings::{Webhook, WebhookEvent};
use crate::state::Collector;
use crate::store::{now_ms, Effect};
use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use unticked_core::consent::Now;
use unticked_core::record::{self, Act, State};

/// The longest wait between two attempts (Standard Webhooks suggests hours at most).
const MAX_BACKOFF_MS: u64 = 3_600_000;

/// The outbox rows of one new record: for each contact it discloses, one event per
/// subscribed endpoint and kind of change among the purposes that contact is reached by
/// (an SMS purpose goes with the phone number, not the address beside it).
///
/// A double opt-in signup's e-mail consents are not in force until confirmed: they are
/// told as `given` with the confirmation (and `confirmed`), never with the signup, or a
/// tool that mails on `given` would mail before the subject confirmed.
pub fn effects(collector: &Collector, accepted: &Accepted) -> Vec<Effect> {
    let hooks = &collector.server.webhooks;
    if hooks.is_empty() || accepted.disclosures.is_empty() {
        // No contact travels with it: no subject a mailing tool could act on.
        return Vec::new();
    }
    let record = &accepted.opened.record;
    let awaits_confirmation = crate::optin::awaits(&collector.history, record).is_some();
    let config = collector
        .history
        .version(&record.config_sha256)
        .map_or(&collector.config, |v| &v.config);
    let channel_of = |purpose: &str| config.purpose(purpose).map(|p| p.channel);
    // Each purpose goes with the first contact of its channel's kind; one no contact of
    // the record reaches (a change through a link of another kind) goes with the first.
    let reaches = |d: usize, purpose: &str| {
        let kind = channel_of(purpose).and_then(|c| c.contact());
        let home = accepted
            .disclosures
            .iter()
            .position(|x| x.channel.contact() == kind)
            .unwrap_or(0);
        home == d
    };
    let leaf = record::hex(&unticked_core::merkle::leaf_hash(accepted.bytes.as_bytes()));
    let mut events = Vec::new();
    for (d, disclosure) in accepted.disclosures.iter().enumerate() {
        let told: Vec<_> = record
            .purposes
            .iter()
            .filter(|p| reaches(d, &p.id))
            .filter(|p| {
                !(awaits_confirmation
                    && matches!(p.state, State::Given | State::Renewed)
                    && channel_of(&p.id) == Some(unticked_core::config::Channel::Email))
            })
            .collect();
        let mut types = Vec::new();
        if d == 0 && matches!(record.act, Some(Act::Confirms(_))) {
            types.push(WebhookEvent::Confirmed);
        }
        for entry in &told {
            let t = match entry.state {
                State::Given => WebhookEvent::Given,
                State::Withdrawn => WebhookEvent::Withdrawn,
                State::Renewed => WebhookEvent::Renewed,
                State::Refused => continue,
            };
            if !types.contains(&t) {
                types.push(t);
            }
        }
        let purposes: Vec<serde_json::Value> = told
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id,
                    "version": p.version,
                    "state": p.state.as_str(),
                    "channel": channel_of(&p.id).map(|c| c.as_str()),
                })
            })
            .collect();
        for hook in hooks {
            for t in &types {
                if hook.events.contains(t) {
                    // The first contact's ids stay as they were; the others' carry their place.
                    let event_id = match d {
                        0 => format!("msg_{}_{}", record.id, t.as_str()),
                        _ => format!("msg_{}_{}_{d}", record.id, t.as_str()),
                    };
                    events.push(Pending {
                        url: hook.url.clone(),
                        event: *t,
                        event_id,
                        subject: collector.store.lookup_hex(&disclosure.identifier),
                        identifier: disclosure.identifier.clone(),
                        channel: disclosure.channel.as_str(),
                        purposes: purposes.clone(),
                    });
                }
            }
        }
    }
    if events.is_empty() {
        return Vec::new();
    }
    let id = record.id.clone();
    vec![Box::new(move |tx: &mut dyn Sql, idx: u64| {
        let now = now_ms();
        for e in &events {
            let payload = serde_json::json!({
                "type": format!("consent.{}", e.event.as_str()),
                "timestamp": now,
                "data": {
                    "identifier": e.identifier,
                    "channel": e.channel,
                    // The subject's keyed index: what an `erased` event names them by.
                    "subject": e.subject,
                    "purposes": e.purposes,
                    "record": {"id": id, "index": idx, "leaf_hash": leaf},
                }
            });
            enqueue(tx, &e.url, &e.subject, &e.event_id, e.event, Some(idx), &payload, now)?;
        }
        Ok(())
    })]
}

/// One event of a new record, before its log index is known.
struct Pending {
    url: String,
    event: WebhookEvent,
    event_id: String,
    subject: String,
    identifier: String,
    channel: &'static str,
    purposes: Vec<serde_json::Value>,
}

/// Writes one event to the outbox, due now.
#[allow(clippy::too_many_arguments)] // one column each
fn enqueue(
    tx: &mut dyn Sql,
    endpoint: &str,
    subject: &str,
    event_id: &str,
    event: WebhookEvent,
    record_idx: Option<u64>,
    payload: &serde_json::Value,
    now: u64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO webhook_outbox (endpoint, subject, event_id, type, record_idx, payload, created_at, next_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            endpoint,
            subject,
            event_id,
            event.as_str(),
            record_idx,
            &payload.to_string(),
            now
        ],
    )?;
    Ok(())
}

/// The endpoints subscribed to `event`.
fn subscribed(collector: &Collector, event: WebhookEvent) -> Vec<String> {
    collector
        .server
        .webhooks
        .iter()
        .filter(|h| h.events.contains(&event))
        .map(|h| h.url.clone())
        .collect()
}

/// What an erasure writes in its own transaction ([`crate::store::Store::erase_with`]): one
/// `erased` event per subscribed endpoint. The erasure deletes the subject's earlier events
/// (they carry the contact, Art. 17); this one carries only the subject's keyed index, the
/// `subject` every earlier event carried beside the identifier, so that a receiver can find
/// and erase its copy (Art. 17(2): tell those the data was disclosed to, Art. 19).
pub fn erased(collector: &Collector) -> impl Fn(&mut dyn Sql, &str) -> Result<(), DbError> + Send + Sync + 'static {
    let endpoints = subscribed(collector, WebhookEvent::Erased);
    move |tx, subject| {
        let now = now_ms();
        let payload = serde_json::json!({
            "type": "consent.erased",
            "timestamp": now,
            "data": {"subject": subject},
        });
        let event_id = format!("msg_erased_{}_{now}", &subject[..subject.len().min(32)]);
        for url in &endpoints {
            enqueue(tx, url, subject, &event_id, WebhookEvent::Erased, None, &payload, now)?;
        }
        Ok(())
    }
}

/// How often the sweep looks for consents that stopped standing by time or by a new
/// config version (and once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Enqueues one `outdated` or `expired` event per subscribed endpoint for each subject's
/// purpose whose consent became so (at `now`, by the state function of crate::lifecycle)
/// and that the endpoint was not told yet: no record marks these changes, time or a new
/// purpose version does (R11, Art. 5(1)(e)). What was told is kept in `webhook_notified`, in
/// the event's transaction, so each change is sent once, across restarts; an endpoint added
/// later is told of every consent that stands so now. Only purposes on the channel of the
/// subject's contact are told (the contact a mailing tool acts on). Returns the events
/// enqueued.
///
/// # Errors
/// The store cannot be read or written.
pub fn sweep(collector: &Collector, now: u64) -> Result<usize, String> {
    let outdated = subscribed(collector, WebhookEvent::Outdated);
    let expired = subscribed(collector, WebhookEvent::Expired);
    if outdated.is_empty() && expired.is_empty() {
        return Ok(0);
    }
    let terms = unticked_core::consent::Terms::of(&collector.config);
    // One ordered scan of every subject (crate::rights, as the audience lists read them),
    // keeping only the purposes that stand outdated or expired on a channel of the kind of
    // the subject's contact (a number disclosed for phone calls is told of its SMS purposes
    // too). Those are few; they are written one transaction each below.
    let mut lapsed: Vec<(Vec<u8>, String, Vec<unticked_core::consent::Standing>)> = Vec::new();
    collector
        .store
        .scan_subjects(&CONTACT_CHANNELS, crate::rights::carried, |subject| {
            let kinds: Vec<Option<&str>> = subject
                .channels
                .iter()
                .map(|c| {
                    <unticked_core::config::Channel as unticked_core::vocabulary::Named>::from_name(c)
                        .and_then(|c| c.contact())
                })
                .collect();
            let told: Vec<_> = crate::rights::standing_of(collector, &terms, &subject, &[], now)
                .into_iter()
                .filter(|s| matches!(s.now, Now::Outdated { .. } | Now::Expired { .. }))
                .filter(|s| kinds.contains(&s.channel.contact()))
                .collect();
            if !told.is_empty() {
                lapsed.push((subject.lookup, subject.identifier, told));
            }
            true
        })
        .map_err(|e| e.to_string())?;
    // When the events are written (and due): the clock, whatever `now` the states are at.
    let written = now_ms();
    let mut enqueued = 0;
    for (lookup, identifier, standings) in lapsed {
        let subject = record::hex(&lookup);
        for standing in standings {
            let (event, endpoints, record_id, entry) = match &standing.now {
                Now::Outdated {
                    record,
                    version,
                    current,
                    ..
                } => (
                    WebhookEvent::Outdated,
                    &outdated,
                    record,
                    serde_json::json!({"id": standing.purpose, "version": version, "state": "outdated", "current": current}),
                ),
                Now::Expired {
                    record, version, ended, ..
                } => (
                    WebhookEvent::Expired,
                    &expired,
                    record,
                    serde_json::json!({"id": standing.purpose, "version": version, "state": "expired", "ended": ended}),
                ),
                _ => continue,
            };
            let stored = collector.store.record(record_id).map_err(|e| e.to_string())?;
            // The write lock first (SQLite's BEGIN IMMEDIATE; on PostgreSQL the subject's
            // rows locked, which an erasure's first UPDATE of them waits for), then the
            // check that no erasure came between the read above and now (an event must not
            // carry an erased contact).
            let held_check = match collector.store.location().dialect() {
                Dialect::Sqlite => "SELECT 1 FROM subjects WHERE lookup = ?1",
                Dialect::Postgres => "SELECT 1 FROM subjects WHERE lookup = ?1 FOR UPDATE",
            };
            let written_here = collector.store.pool().transaction(|tx| {
            let mut enqueued = 0;
            let still_held = tx.value::<i64>(held_check, params![&lookup])?.is_some();
            if !still_held {
                return Ok::<_, DbError>(None);
            }
            for url in endpoints {
                let told = tx.execute(
                        "INSERT INTO webhook_notified (endpoint, subject, purpose, state, record, notified_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                        params![url, &subject, &standing.purpose, event.as_str(), record_id, written],
                    )?;
                if told == 0 {
                    continue; // this endpoint knows already
                }
                let mut reference = serde_json::json!({"id": record_id});
                if let Some((index, bytes)) = &stored {
                    reference["index"] = (*index).into();
                    reference["leaf_hash"] = record::hex(&unticked_core::merkle::leaf_hash(bytes.as_bytes())).into();
                }
                let payload = serde_json::json!({
                    "type": format!("consent.{}", event.as_str()),
                    "timestamp": written,
                    "data": {
                        "identifier": identifier,
                        "channel": standing.channel.as_str(),
                        "subject": subject,
                        "purposes": [entry],
                        "record": reference,
                    }
                });
                let event_id = format!("msg_{record_id}_{}_{}", standing.purpose, event.as_str());
                let index = stored.as_ref().map(|(i, _)| *i);
                enqueue(tx, url, &subject, &event_id, event, index, &payload, written)?;
                enqueued += 1;
            }
            Ok(Some(enqueued))
            }).map_err(|e| e.to_string())?;
            match written_here {
                Some(n) => enqueued += n,
                // Erased meanwhile: nothing more of them.
                None => break,
            }
        }
    }
    Ok(enqueued)
}

struct Due {
    seq: i64,
    endpoint: String,
    event_id: String,
    record_idx: Option<u64>,
    payload: String,
    created_at: u64,
    attempts: u32,
}

/// Every channel a subject's contact can be disclosed for.
const CONTACT_CHANNELS: [&str; 4] = ["email", "sms", "phone", "post"];

/// How many events of different subjects go out at once.
const IN_FLIGHT: usize = 32;

/// The TLS client of each `https://` endpoint: the public roots (webpki-roots) and the
/// endpoint's `ca_file`, or why it could not be made (every attempt then fails with it).
type Tls = std::collections::HashMap<String, Result<tokio_rustls::TlsConnector, String>>;

fn tls_connectors(hooks: &[Webhook]) -> Tls {
    hooks
        .iter()
        .filter(|h| h.url.starts_with("https://"))
        .map(|h| (h.url.clone(), tls_connector(h)))
        .collect()
}

fn tls_connector(hook: &Webhook) -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &hook.ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("ca_file {}: no certificate in it", path.display()));
        }
        for certificate in certificates {
            roots
                .add(certificate)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Starts the dispatcher, and the sweep of changes by time and config ([`sweep`]); they
/// run as long as the server.
pub fn start(collector: Arc<Collector>) {
    if collector.server.webhooks.is_empty() {
        return;
    }
    let tls = Arc::new(tls_connectors(&collector.server.webhooks));
    for (url, connector) in tls.iter() {
        if let Err(why) = connector {
            // The URL is the shop's own setting, no subject's data.
            tracing::error!(url, why, "webhooks: this endpoint cannot be reached over TLS");
        }
    }
    let dispatcher = collector.clone();
    tokio::spawn(async move {
        loop {
            // With several collectors on one PostgreSQL log, one delivers (an event sent
            // twice at once would break the order per subject).
            if !dispatcher.store.leads_background_work() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let delivered = match run_once(&dispatcher, &tls).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: dispatcher pass failed");
                    0
                }
            };
            if delivered == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let by_time = [WebhookEvent::Outdated, WebhookEvent::Expired];
    if collector
        .server
        .webhooks
        .iter()
        .any(|h| h.events.iter().any(|e| by_time.contains(e)))
    {
        tokio::spawn(async move {
            loop {
                let c = collector.clone();
                if !collector.store.leads_background_work() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                match tokio::task::spawn_blocking(move || sweep(&c, now_ms())).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(events = n, "webhooks: consents outdated or expired, told"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "webhooks: sweep failed"),
                    Err(e) => tracing::warn!(error = %e, "webhooks: sweep stopped"),
                }
                tokio::time::sleep(SWEEP_EVERY).await;
            }
        });
    }
}

/// One pass: every due event whose earlier events (same endpoint and subject) are settled.
/// The events of one pass are of different (endpoint, subject) pairs, so they may go out at
/// once ([`IN_FLIGHT`]) without breaking the order per subject; their outcomes are written
/// in one transaction.
async fn run_once(collector: &Arc<Collector>, tls: &Arc<Tls>) -> Result<usize, DbError> {
    let pool = collector.store.pool();
    let due = pool.run(|sql| {
        sql.rows(
            "SELECT seq, endpoint, event_id, record_idx, payload, created_at, attempts FROM webhook_outbox o \
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_at <= ?1 AND NOT EXISTS ( \
               SELECT 1 FROM webhook_outbox p WHERE p.endpoint = o.endpoint AND p.subject = o.subject \
               AND p.seq < o.seq AND p.delivered_at IS NULL AND p.dead_at IS NULL) \
             ORDER BY seq LIMIT 256",
            params![now_ms()],
        )?
        .into_iter()
        .map(|mut row| {
            Ok(Due {
                seq: row.get(0)?,
                endpoint: row.take(1)?,
                event_id: row.take(2)?,
                record_idx: row.get(3)?,
                payload: row.take(4)?,
                created_at: row.get(5)?,
                attempts: row.get(6)?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()
    })?;
    let mut delivered = 0;
    let mut due = due.into_iter().peekable();
    while due.peek().is_some() {
        let mut flying = tokio::task::JoinSet::new();
        for event in due.by_ref().take(IN_FLIGHT) {
            let Some(hook) = collector.server.webhooks.iter().find(|h| h.url == event.endpoint) else {
                continue; // the endpoint left the settings: kept, listed by the admin API.
            };
            let (hook, tls) = (hook.clone(), tls.clone());
            let payload = complete(collector, &event);
            flying.spawn(async move {
                let outcome = send(&hook, tls.get(&hook.url), &event.event_id, &payload).await;
                (event, hook, payload, outcome)
            });
        }
        let mut outcomes = Vec::new();
        while let Some(done) = flying.join_next().await {
            if let Ok(done) = done {
                outcomes.push(done);
            }
        }
        let now = now_ms();
        delivered += pool.transaction(|tx| {
        let mut delivered = 0;
        for (event, hook, payload, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    tx.execute(
                        "UPDATE webhook_outbox SET delivered_at = ?1, attempts = attempts + 1, last_error = NULL, payload = ?2 WHERE seq = ?3",
                        params![now, &payload, event.seq],
                    )?;
                    delivered += 1;
                }
                Err(error) => {
                    let attempts = event.attempts + 1;
                    let dead = now.saturating_sub(event.created_at) >= hook.retry_for_seconds.saturating_mul(1000);
                    let wait = backoff(hook.first_retry_ms, attempts);
                    tracing::warn!(seq = event.seq, attempts, dead, %error, "webhooks: delivery failed");
                    tx.execute(
                        "UPDATE webhook_outbox SET attempts = ?1, last_error = ?2, next_at = ?3, dead_at = ?4, payload = ?5 WHERE seq = ?6",
                        params![attempts, &error, now + wait, dead.then_some(now), &payload, event.seq],
                    )?;
                }
            }
        }
        Ok::<_, DbError>(delivered)
        })?;
    }
    Ok(delivered)
}

/// The delay before attempt `attempts + 1`: `first` doubled per attempt, at most an hour,
/// with ±20 % jitter so that endpoints coming back are not hit by every retry at once.
fn backoff(first: u64, attempts: u32) -> u64 {
    let base = first
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(30))
        .min(MAX_BACKOFF_MS);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = u16::from_le_bytes(r) as u64 % 400; // 0..40 % of base, centred
    base * (800 + jitter) / 1000
}

/// The payload with the record's checkpoint (the first that covers it, as GET
/// /v1/checkpoint served it), added at the first attempt and kept with its outcome, so that
/// every retry sends the same bytes (and the first covering checkpoint never changes).
fn complete(collector: &Collector, event: &Due) -> String {
    let Some(idx) = event.record_idx else {
        return event.payload.clone();
    };
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&event.payload) else {
        return event.payload.clone();
    };
    if value["data"]["record"].get("checkpoint").is_some() {
        return event.payload.clone();
    }
    let Ok(Some(checkpoint)) = collector.store.checkpoint_covering(idx) else {
        return event.payload.clone();
    };
    value["data"]["record"]["checkpoint"] = checkpoint.to_json(collector.store.origin(), &collector.store.public_key());
    value.to_string()
}

/// `v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>` (Standard Webhooks, "Signature scheme").
pub fn signature(secret: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", Base64::encode_string(&mac.finalize().into_bytes()))
}

/// The parts of an endpoint URL a request needs.
struct Target<'a> {
    https: bool,
    /// `host[:port]`, the `Host` header.
    authority: &'a str,
    /// The host alone (no brackets): what TLS checks the certificate against.
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn target(url: &str) -> Result<Target<'_>, String> {
    let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!("not an http(s) URL: {url}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an unclosed [ in the URL")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("a bad port in {url}"))?,
        None if https => 443,
        None => 80,
    };
    Ok(Target {
        https,
        authority,
        host,
        port,
        path,
    })
}

/// POSTs one event; `Ok` on a 2xx answer within 15 s. An `https://` endpoint goes through
/// `tls`, its connector (certificate checked against the host, TLS 1.2 or 1.3).
async fn send(
    hook: &Webhook,
    tls: Option<&Result<tokio_rustls::TlsConnector, String>>,
    id: &str,
    body: &str,
) -> Result<(), String> {
    let target = target(&hook.url)?;
    let timestamp = now_ms() / 1000;
    let request = hyper::Request::post(target.path)
        .header("host", target.authority)
        .header("content-type", "application/json")
        .header("user-agent", "unticked-webhooks/1")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature(&hook.secret, id, timestamp, body))
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((target.host, target.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let status = if target.https {
            let connector = match tls {
                Some(Ok(connector)) => connector,
                Some(Err(why)) => return Err(format!("TLS: {why}")),
                None => return Err("TLS: no connector for this endpoint".into()),
            };
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(target.host.to_string())
                .map_err(|e| format!("TLS: {e}"))?;
            let stream = connector.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
            exchange(stream, request).await?
        } else {
            exchange(stream, request).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .map_err(|_| "timed out after 15 s".to_string())?
}

/// One HTTP/1.1 request over `io`, and the answer's status.
async fn exchange<I>(
    io: I,
    request: hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
) -> Result<hyper::StatusCode, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    Ok(answer.status())
}

/// The rows the admin API lists: pending (`dead = false`) or dead-lettered.
pub fn list(collector: &Collector, dead: bool) -> Result<serde_json::Value, DbError> {
    let condition = if dead {
        "dead_at IS NOT NULL"
    } else {
        "delivered_at IS NULL AND dead_at IS NULL"
    };
    let statement = format!(
        "SELECT seq, endpoint, event_id, type, attempts, last_error, next_at, created_at, dead_at FROM webhook_outbox WHERE {condition} ORDER BY seq LIMIT 1000"
    );
    collector.store.pool().snapshot(|sql| {
        let events = sql
            .rows(&statement, params![])?
            .into_iter()
            .map(|mut row| {
                Ok(serde_json::json!({
                    "seq": row.get::<i64>(0)?,
                    "endpoint": row.take::<String>(1)?,
                    "id": row.take::<String>(2)?,
                    "type": format!("consent.{}", row.take::<String>(3)?),
                    "attempts": row.get::<i64>(4)?,
                    "last_error": row.take::<Option<String>>(5)?,
                    "next_attempt_at": row.get::<i64>(6)?,
                    "created_at": row.get::<i64>(7)?,
                    "dead_at": row.get::<Option<i64>>(8)?,
                }))
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        let mut count = |statement: &str| -> Result<i64, DbError> { Ok(sql.value(statement, params![])?.unwrap_or(0)) };
        Ok(serde_json::json!({
            "events": events,
            "counts": {
                "pending": count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL")?,
                "delivered": count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NOT NULL")?,
                "dead": count("SELECT COUNT(*) FROM webhook_outbox WHERE dead_at IS NOT NULL")?,
            }
        }))
    })
}

/// Puts dead events (`seqs`, or all) back to pending, due now, their retry window restarted.
pub fn replay(collector: &Collector, seqs: Option<&[i64]>) -> Result<usize, DbError> {
    let now = now_ms();
    collector.store.pool().transaction(|sql| match seqs {
        None => sql.execute(
            "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, next_at = ?1, created_at = ?1 WHERE dead_at IS NOT NULL",
            params![now],
        ),
        Some(seqs) => {
            let mut n = 0;
            for seq in seqs {
                n += sql.execute(
                    "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, next_at = ?1, created_at = ?1 WHERE dead_at IS NOT NULL AND seq = ?2",
                    params![now, *seq],
                )?;
            }
            Ok(n)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ServerSettings;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A receiver on a local port that answers 204 to every request and hands over each
    /// request's bytes.
    async fn receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (sender, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sender = sender.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // Until the head and the body its Content-Length announces are in.
                    loop {
                        let n = socket.read(&mut buffer).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        bytes.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&bytes).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap())
                                })
                                .unwrap_or(0);
                            if body.len() >= length {
                                let _ = socket
                                    .write_all(
                                        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                    )
                                    .await;
                                let _ = sender.send(text);
                                return;
                            }
                        }
                    }
                });
            }
        });
        (port, requests)
    }

    #[tokio::test]
    async fn a_double_opt_in_signup_is_told_given_only_where_it_needs_no_confirmation() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let (config, sha) = crate::optin_tests::optin_config(7);
        let hook = Webhook {
            // Nobody listens: the events stay in the outbox, where this test reads them.
            url: "http://127.0.0.1:9/hooks".into(),
            events: vec![WebhookEvent::Given, WebhookEvent::Confirmed],
            secret: vec![7; 32],
            retry_for_seconds: 3600,
            first_retry_ms: 600_000,
            ca_file: None,
        };
        let app = crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config.clone(),
            crate::store::Store::open(&db, &crate::texts::Shown::of(&config)).unwrap(),
            crate::serve::Settings {
                config_sha256: sha.clone(),
                server: ServerSettings {
                    webhooks: vec![hook],
                    ..Default::default()
                },
                ..crate::testing::settings()
            },
        );
        crate::optin_tests::sign_up(&app, &config, &sha).await;
        let conn = rusqlite::Connection::open(&db).unwrap();
        let events: Vec<serde_json::Value> = conn
            .prepare("SELECT payload FROM webhook_outbox ORDER BY seq")
            .unwrap()
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
            .collect();
        // E-mail offers wait for the confirmation: a tool that mails on `given` must not
        // hear of them yet. The SMS offer needs none, and goes with the number.
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "consent.given");
        assert_eq!(events[0]["data"]["identifier"], "+48601234567");
        assert_eq!(events[0]["data"]["channel"], "sms");
        let purposes = events[0]["data"]["purposes"].as_array().unwrap();
        assert!(
            purposes
                .iter()
                .any(|p| p["id"] == "sms-offers" && p["state"] == "given"),
            "{purposes:?}"
        );
        assert!(purposes.iter().all(|p| p["channel"] != "email"), "{purposes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unconfirmed_signup_past_its_window_is_told_expired_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let (config, sha) = crate::optin_tests::optin_config(1);
        let app = crate::optin_tests::app(&config, &sha, &db, None);
        crate::optin_tests::sign_up(&app, &config, &sha).await;

        let (port, mut requests) = receiver().await;
        let hook = Webhook {
            url: format!("http://127.0.0.1:{port}/hooks"),
            events: vec![WebhookEvent::Expired, WebhookEvent::Outdated],
            secret: vec![7; 32],
            retry_for_seconds: 60,
            first_retry_ms: 100,
            ca_file: None,
        };
        // A second collector over the same log, with the webhook: its sweep is called with
        // the clock given here, not the minute's timer.
        let collector = Collector::new(
            config.clone(),
            &sha,
            crate::store::Store::open(&db, &crate::texts::Shown::of(&config)).unwrap(),
            None,
            crate::limit::Limits::new(0, 0),
            crate::http::Writers::new(&[]),
            crate::lifecycle::Settings::default(),
            ServerSettings {
                webhooks: vec![hook],
                smtp: None,
                staff_token: None,
            },
        );
        let now = now_ms();
        let day = 86_400_000;
        assert_eq!(
            sweep(&collector, now).unwrap(),
            0,
            "unconfirmed within its window: nothing yet"
        );
        assert_eq!(
            sweep(&collector, now + day + 1000).unwrap(),
            1,
            "the e-mail offer lapsed"
        );
        assert_eq!(sweep(&collector, now + day + 2000).unwrap(), 0, "told once");
        let pending = list(&collector, false).unwrap();
        assert_eq!(pending["counts"]["pending"], 1, "{pending}");
        assert_eq!(pending["events"][0]["type"], "consent.expired", "{pending}");

        let tls = Arc::new(tls_connectors(&collector.server.webhooks));
        assert_eq!(run_once(&collector, &tls).await.unwrap(), 1);
        let request = tokio::time::timeout(Duration::from_secs(10), requests.recv())
            .await
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["type"], "consent.expired", "{body}");
        assert_eq!(body["data"]["identifier"], "jan@example.pl", "{body}");
        assert_eq!(body["data"]["channel"], "email", "{body}");
        assert_eq!(
            body["data"]["subject"],
            collector.store.lookup_hex("jan@example.pl"),
            "{body}"
        );
        let purpose = &body["data"]["purposes"][0];
        assert_eq!(
            (purpose["id"].as_str(), purpose["state"].as_str()),
            (Some("email-offers"), Some("expired")),
            "{body}"
        );
        assert!(purpose["ended"].as_u64().unwrap() <= now + day, "{body}");
        assert!(
            body["data"]["record"]["checkpoint"]["size"].as_u64().is_some(),
            "{body}"
        );
        // The SMS offer (no double opt-in for it) stands given: nothing told of it.
        assert_eq!(list(&collector, false).unwrap()["counts"]["pending"], 0);
        // The erasure deletes what was told, and a sweep after it finds nobody.
        collector.store.erase("jan@example.pl").unwrap();
        assert_eq!(sweep(&collector, now + day + 3000).unwrap(), 0);
    }

    #[test]
    fn endpoint_urls_are_split_for_the_request() {
        let t = target("https://crm.example/hooks/u?x=1").unwrap();
        assert_eq!(
            (t.https, t.authority, t.host, t.port, t.path),
            (true, "crm.example", "crm.example", 443, "/hooks/u?x=1")
        );
        let t = target("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.https, t.authority, t.host, t.port, t.path),
            (false, "[::1]:8080", "::1", 8080, "/")
        );
        assert!(target("http://127.0.0.1:x/h").is_err());
    }
}

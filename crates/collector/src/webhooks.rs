//! Signed webhooks that never drop an event (issue 15). Each event is a row of the
//! `webhook_outbox` table, written in the same transaction as the record that caused it
//! ([`crate::store::Effect`]): it exists exactly when the record does. A dispatcher task
//! delivers the rows, at least once, in order per (endpoint, subject), signed as Standard
//! Webhooks asks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
//! HMAC-SHA256>`), retrying with exponential backoff until `retry_for_seconds`, then
//! dead-letters them for `POST /v1/admin/webhooks/replay`. See docs/webhooks.md.

use crate::records::Accepted;
use crate::settings::{Webhook, WebhookEvent};
use crate::state::Collector;
use crate::store::{now_ms, open_connection, Effect};
use base64ct::{Base64, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use rusqlite::{params, Connection, OpenFlags};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use unticked_core::record::{self, Act, State};

/// The longest wait between two attempts (Standard Webhooks suggests hours at most).
const MAX_BACKOFF_MS: u64 = 3_600_000;

/// The outbox rows of one new record: one event per subscribed endpoint and change.
pub fn effects(collector: &Collector, accepted: &Accepted) -> Vec<Effect> {
    let hooks = &collector.server.webhooks;
    if hooks.is_empty() {
        return Vec::new();
    }
    let record = &accepted.opened.record;
    let mut types = Vec::new();
    if matches!(record.act, Some(Act::Confirms(_))) {
        types.push(WebhookEvent::Confirmed);
    }
    for entry in &record.purposes {
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
    let Some(disclosure) = accepted.disclosures.first() else {
        // No contact travels with it: no subject a mailing tool could act on.
        return Vec::new();
    };
    let subject = collector.store.lookup_hex(&disclosure.identifier);
    let purposes: Vec<serde_json::Value> = record
        .purposes
        .iter()
        .map(|p| serde_json::json!({"id": p.id, "version": p.version, "state": p.state.as_str()}))
        .collect();
    let leaf = record::hex(&unticked_core::merkle::leaf_hash(accepted.bytes.as_bytes()));
    let mut rows = Vec::new();
    for hook in hooks {
        for t in &types {
            if hook.events.contains(t) {
                rows.push((hook.url.clone(), *t));
            }
        }
    }
    if rows.is_empty() {
        return Vec::new();
    }
    let id = record.id.clone();
    let identifier = disclosure.identifier.clone();
    let channel = disclosure.channel.as_str().to_string();
    vec![Box::new(move |tx: &rusqlite::Transaction<'_>, idx: u64| {
        let now = now_ms();
        for (url, t) in &rows {
            let payload = serde_json::json!({
                "type": format!("consent.{}", t.as_str()),
                "timestamp": now,
                "data": {
                    "identifier": identifier,
                    "channel": channel,
                    "purposes": purposes,
                    "record": {"id": id, "index": idx, "leaf_hash": leaf},
                }
            });
            tx.execute(
                "INSERT INTO webhook_outbox (endpoint, subject, event_id, type, record_idx, payload, created_at, next_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![url, subject, format!("msg_{id}_{}", t.as_str()), t.as_str(), idx, payload.to_string(), now],
            )?;
        }
        Ok(())
    })]
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

/// Starts the dispatcher on its own connection; it runs as long as the server.
pub fn start(collector: Arc<Collector>) {
    if collector.server.webhooks.is_empty() {
        return;
    }
    tokio::spawn(async move {
        loop {
            let delivered = match run_once(&collector).await {
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
}

fn connection(collector: &Collector) -> rusqlite::Result<Connection> {
    open_connection(collector.store.path(), OpenFlags::default())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e.to_string()))))
}

/// One pass: every due event whose earlier events (same endpoint and subject) are settled.
async fn run_once(collector: &Arc<Collector>) -> rusqlite::Result<usize> {
    let due = {
        let conn = connection(collector)?;
        let mut statement = conn.prepare(
            "SELECT seq, endpoint, event_id, record_idx, payload, created_at, attempts FROM webhook_outbox o \
             WHERE delivered_at IS NULL AND dead_at IS NULL AND next_at <= ?1 AND NOT EXISTS ( \
               SELECT 1 FROM webhook_outbox p WHERE p.endpoint = o.endpoint AND p.subject = o.subject \
               AND p.seq < o.seq AND p.delivered_at IS NULL AND p.dead_at IS NULL) \
             ORDER BY seq LIMIT 256",
        )?;
        let rows = statement.query_map([now_ms()], |row| {
            Ok(Due {
                seq: row.get(0)?,
                endpoint: row.get(1)?,
                event_id: row.get(2)?,
                record_idx: row.get(3)?,
                payload: row.get(4)?,
                created_at: row.get(5)?,
                attempts: row.get(6)?,
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut delivered = 0;
    for event in due {
        let Some(hook) = collector.server.webhooks.iter().find(|h| h.url == event.endpoint) else {
            continue; // the endpoint left the settings: kept, listed by the admin API.
        };
        let payload = complete(collector, &event)?;
        let outcome = send(hook, &event.event_id, &payload).await;
        let conn = connection(collector)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let now = now_ms();
        match outcome {
            Ok(()) => {
                conn.execute(
                    "UPDATE webhook_outbox SET delivered_at = ?1, attempts = attempts + 1, last_error = NULL WHERE seq = ?2",
                    params![now, event.seq],
                )?;
                delivered += 1;
            }
            Err(error) => {
                let attempts = event.attempts + 1;
                let dead = now.saturating_sub(event.created_at) >= hook.retry_for_seconds.saturating_mul(1000);
                let wait = backoff(hook.first_retry_ms, attempts);
                tracing::warn!(seq = event.seq, attempts, dead, %error, "webhooks: delivery failed");
                conn.execute(
                    "UPDATE webhook_outbox SET attempts = ?1, last_error = ?2, next_at = ?3, dead_at = ?4 WHERE seq = ?5",
                    params![attempts, error, now + wait, dead.then_some(now), event.seq],
                )?;
            }
        }
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
/// /v1/checkpoint served it), added once and kept, so that every retry sends the same bytes.
fn complete(collector: &Collector, event: &Due) -> rusqlite::Result<String> {
    let Some(idx) = event.record_idx else {
        return Ok(event.payload.clone());
    };
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&event.payload) else {
        return Ok(event.payload.clone());
    };
    if value["data"]["record"].get("checkpoint").is_some() {
        return Ok(event.payload.clone());
    }
    let Ok(Some(checkpoint)) = collector.store.checkpoint_covering(idx) else {
        return Ok(event.payload.clone());
    };
    value["data"]["record"]["checkpoint"] = checkpoint.to_json(collector.store.origin(), &collector.store.public_key());
    let text = value.to_string();
    let conn = connection(collector)?;
    conn.execute(
        "UPDATE webhook_outbox SET payload = ?1 WHERE seq = ?2",
        params![text, event.seq],
    )?;
    Ok(text)
}

/// `v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>` (Standard Webhooks, "Signature scheme").
pub fn signature(secret: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", Base64::encode_string(&mac.finalize().into_bytes()))
}

/// POSTs one event; `Ok` on a 2xx answer within 15 s.
async fn send(hook: &Webhook, id: &str, body: &str) -> Result<(), String> {
    let Some(rest) = hook.url.strip_prefix("http://") else {
        return Err("https endpoints are not supported yet: use http:// (e.g. a local TLS proxy)".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let timestamp = now_ms() / 1000;
    let request = hyper::Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .header("user-agent", "unticked-webhooks/1")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature(&hook.secret, id, timestamp, body))
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", answer.status().as_u16()))
        }
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .map_err(|_| "timed out after 15 s".to_string())?
}

/// The rows the admin API lists: pending (`dead = false`) or dead-lettered.
pub fn list(collector: &Collector, dead: bool) -> rusqlite::Result<serde_json::Value> {
    let conn = connection(collector)?;
    let condition = if dead {
        "dead_at IS NOT NULL"
    } else {
        "delivered_at IS NULL AND dead_at IS NULL"
    };
    let mut statement = conn.prepare(&format!(
        "SELECT seq, endpoint, event_id, type, attempts, last_error, next_at, created_at, dead_at FROM webhook_outbox WHERE {condition} ORDER BY seq LIMIT 1000"
    ))?;
    let events = statement
        .query_map([], |row| {
            Ok(serde_json::json!({
                "seq": row.get::<_, i64>(0)?,
                "endpoint": row.get::<_, String>(1)?,
                "id": row.get::<_, String>(2)?,
                "type": format!("consent.{}", row.get::<_, String>(3)?),
                "attempts": row.get::<_, i64>(4)?,
                "last_error": row.get::<_, Option<String>>(5)?,
                "next_attempt_at": row.get::<_, i64>(6)?,
                "created_at": row.get::<_, i64>(7)?,
                "dead_at": row.get::<_, Option<i64>>(8)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0));
    Ok(serde_json::json!({
        "events": events,
        "counts": {
            "pending": count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND dead_at IS NULL")?,
            "delivered": count("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NOT NULL")?,
            "dead": count("SELECT COUNT(*) FROM webhook_outbox WHERE dead_at IS NOT NULL")?,
        }
    }))
}

/// Puts dead events (`seqs`, or all) back to pending, due now, their retry window restarted.
pub fn replay(collector: &Collector, seqs: Option<&[i64]>) -> rusqlite::Result<usize> {
    let conn = connection(collector)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let now = now_ms();
    match seqs {
        None => conn.execute(
            "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, next_at = ?1, created_at = ?1 WHERE dead_at IS NOT NULL",
            [now],
        ),
        Some(seqs) => {
            let mut n = 0;
            for seq in seqs {
                n += conn.execute(
                    "UPDATE webhook_outbox SET dead_at = NULL, attempts = 0, next_at = ?1, created_at = ?1 WHERE dead_at IS NOT NULL AND seq = ?2",
                    params![now, seq],
                )?;
            }
            Ok(n)
        }
    }
}

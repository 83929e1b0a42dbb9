//! Consent where it is used (issue 15): who may be contacted now and who must not be, for
//! the site owner's mailing tools, and the subject's rights to rectification (GDPR Art. 16)
//! and restriction (Art. 18). Access (Art. 15) is `POST /v1/admin/subjects/export`
//! (crate::admin), which carries the current state and the proofs.
//!
//! Every answer comes from the core state function ([`consent::standing`], then
//! [`consent::restricted`] and [`consent::reach`]): nothing here decides consent itself.

use crate::admin::{authorised, identifier_in};
use crate::error::{refuse, unavailable, Code, Refusal};
use crate::lifecycle::{identifier_channel, now_json, store_signed_by_collector, COLLECTOR_WIDGET};
use crate::limit::Client;
use crate::state::Collector;
use crate::store::{now_ms, ScannedSubject};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use unticked_core::capture::{Capture, Disclosure, SALT_LEN};
use unticked_core::config::Channel;
use unticked_core::consent::{self, Event, Reach, Restriction, Standing, Terms};
use unticked_core::record::{self, Act, ConsentRecord, Signer};
use unticked_core::vocabulary::{Named, Source};

// ---------------------------------------------------------------------------------------
// Who may be contacted now

/// Which of the two lists a request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Audience,
    Suppression,
}

/// The channels a contact can be reached on; `web` reaches nobody by a contact.
const CONTACT_CHANNELS: &str = "email, sms, phone or post";

/// The channel and purpose a list request names: `?channel=email|sms|phone|post[&purpose=ID]`.
fn list_query(
    config: &unticked_core::config::Config,
    query: &HashMap<String, String>,
) -> Result<(Channel, Option<String>), Refusal> {
    let channel = match query.get("channel").map(String::as_str) {
        Some(name) => Channel::from_name(name)
            .filter(|c| c.contact().is_some())
            .ok_or_else(|| {
                refuse(
                    Code::BadChannel,
                    format!("channel \"{name}\" is not {CONTACT_CHANNELS}"),
                )
            })?,
        None => {
            return Err(refuse(
                Code::BadChannel,
                format!("?channel= is required: {CONTACT_CHANNELS}"),
            ))
        }
    };
    let purpose = match query.get("purpose") {
        None => None,
        Some(id) => match config.purpose(id) {
            Some(p) if p.channel == channel => Some(id.clone()),
            Some(p) => {
                return Err(refuse(
                    Code::UnknownPurpose,
                    format!(
                        "purpose \"{id}\" is on channel {}, not {}",
                        p.channel.as_str(),
                        channel.as_str()
                    ),
                ))
            }
            None => {
                return Err(refuse(
                    Code::UnknownPurpose,
                    format!("the config has no purpose \"{id}\""),
                ))
            }
        },
    };
    Ok((channel, purpose))
}

/// The ids of the records a stored record carries over (a rectification's), read cheaply:
/// most records are not one.
pub(crate) fn carried(bytes: &str) -> Vec<String> {
    if !bytes.contains("\"rectifies\"") {
        return Vec::new();
    }
    match record::read(bytes.as_bytes()) {
        Ok((
            ConsentRecord {
                act: Some(Act::Rectifies(ids)),
                ..
            },
            _,
            _,
        )) => ids,
        _ => Vec::new(),
    }
}

/// Where a scanned subject stands, restrictions applied. Records were checked when they
/// were stored; one that no longer reads is damage `unticked verify` reports.
pub(crate) fn standing_of(
    collector: &Collector,
    terms: &[Terms],
    subject: &ScannedSubject,
    restrictions: &[Restriction],
    now: u64,
) -> Vec<Standing> {
    let events: Vec<Event> = subject
        .records
        .iter()
        .filter_map(|(index, bytes)| match record::read(bytes.as_bytes()) {
            Ok((r, _, _)) => Some(Event {
                awaits: crate::optin::awaits(&collector.history, &r),
                ..Event::of(&r)
            }),
            Err(_) => {
                tracing::error!(index, "a stored record no longer reads; run `unticked verify`");
                None
            }
        })
        .collect();
    consent::restricted(consent::standing(terms, &events, now), restrictions)
}

/// One line of a list: the contact, the channel, and per purpose what the line rests on.
fn line(list: List, channel: Channel, identifier: &str, reach: &Reach<'_>) -> Option<String> {
    let purposes = match (list, reach) {
        (List::Audience, Reach::Contact(given)) | (List::Suppression, Reach::Suppress(given)) => given,
        _ => return None,
    };
    let purposes: Vec<serde_json::Value> = purposes
        .iter()
        .map(|s| {
            let mut json = now_json(&s.now);
            json["id"] = s.purpose.clone().into();
            if list == List::Suppression {
                // The reason is the state's name: withdrawn, refused, expired, outdated,
                // unconfirmed, restricted.
                json["reason"] = json["state"].take();
                json.as_object_mut().map(|o| o.remove("state"));
            } else {
                json.as_object_mut().map(|o| o.remove("state"));
            }
            json
        })
        .collect();
    let mut text =
        serde_json::json!({ "identifier": identifier, "channel": channel.as_str(), "purposes": purposes }).to_string();
    text.push('\n');
    Some(text)
}

/// An NDJSON body sent in chunks as the scan makes them: the first lines go out before
/// the last are computed. A scan that fails half-way ends the body with an error, so a
/// client sees a broken transfer, never a short list it could take for the whole one.
struct Streamed(tokio::sync::mpsc::UnboundedReceiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }
}

/// Bytes gathered before a chunk goes out.
const CHUNK: usize = 64 * 1024;

async fn list(
    collector: Arc<Collector>,
    client: crate::limit::ClientKey,
    headers: HeaderMap,
    query: HashMap<String, String>,
    list: List,
) -> Response {
    let (channel, purpose) =
        match authorised(&collector, &headers, client).and_then(|()| list_query(&collector.config, &query)) {
            Ok(asked) => asked,
            Err(refusal) => return refusal.into_response(),
        };
    // Unbounded: the scan runs at its own pace, never at a slow client's, so its read
    // transaction ends in seconds and never holds the write-ahead log (which an erasure
    // must fold in) for as long as a download takes. The price is memory: at most the
    // whole list (34.5 MB for 10^5 suppressed contacts) for a client that reads slowly.
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let terms = Terms::of(&collector.config);
        let now = now_ms();
        let restrictions = match collector.store.all_restrictions() {
            Ok(r) => r,
            Err(e) => {
                let _ = send.send(Err(std::io::Error::other(unavailable(e).message)));
                return;
            }
        };
        // A contact disclosed for any channel of the same kind reaches this one: the phone
        // number given for SMS offers is the one the phone calls would use.
        let kinds: Vec<&str> = Channel::ALL
            .iter()
            .filter(|c| c.contact() == channel.contact())
            .map(|c| c.as_str())
            .collect();
        let (mut chunk, mut lines) = (String::with_capacity(CHUNK), 0usize);
        let scanned = collector.store.scan_subjects(&kinds, carried, |subject| {
            let standing = standing_of(
                &collector,
                &terms,
                &subject,
                restrictions.get(&subject.lookup).map_or(&[], Vec::as_slice),
                now,
            );
            if let Some(text) = line(
                list,
                channel,
                &subject.identifier,
                &consent::reach(&standing, channel, purpose.as_deref()),
            ) {
                chunk.push_str(&text);
                lines += 1;
            }
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, String::with_capacity(CHUNK));
                // The client went away: stop scanning.
                return send.send(Ok(Bytes::from(full))).is_ok();
            }
            true
        });
        match scanned {
            Ok(()) => {
                if !chunk.is_empty() {
                    let _ = send.send(Ok(Bytes::from(chunk)));
                }
                // Counts only: contact data never goes to the logs.
                tracing::info!(
                    list = if list == List::Audience {
                        "audience"
                    } else {
                        "suppression"
                    },
                    channel = channel.as_str(),
                    lines,
                    ms = started.elapsed().as_millis() as u64,
                    "admin: list streamed"
                );
            }
            Err(e) => {
                let _ = send.send(Err(std::io::Error::other(unavailable(e).message)));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::new(Streamed(receive)),
    )
        .into_response()
}

/// `GET /v1/admin/audience?channel=…[&purpose=ID]`: one NDJSON line per contact that may
/// be contacted now on the channel, with the purposes given (record id, version, time).
pub async fn audience(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list(collector, client, headers, query, List::Audience).await
}

/// `GET /v1/admin/suppression?channel=…[&purpose=ID]`: one NDJSON line per contact that
/// must not be contacted on the channel, each purpose with its reason.
pub async fn suppression(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    list(collector, client, headers, query, List::Suppression).await
}

// ---------------------------------------------------------------------------------------
// Restriction (Art. 18)

/// The purposes a body names (`"purposes": ["id", …]`), each one of the config's.
fn purposes_in(collector: &Collector, body: &serde_json::Value) -> Result<Vec<String>, Refusal> {
    let Some(list) = body["purposes"].as_array().filter(|l| !l.is_empty()) else {
        return Err(refuse(
            Code::UnknownPurpose,
            "\"purposes\" is a non-empty list of purpose ids",
        ));
    };
    list.iter()
        .map(|p| match p.as_str() {
            Some(id) if collector.config.purpose(id).is_some() => Ok(id.to_string()),
            Some(id) => Err(refuse(
                Code::UnknownPurpose,
                format!("the config has no purpose \"{id}\""),
            )),
            None => Err(refuse(Code::UnknownPurpose, "each purpose is a purpose id (a string)")),
        })
        .collect()
}

/// `POST /v1/admin/subjects/restrict` `{"identifier", "purposes": [...], "lift": false}`:
/// pauses processing for those purposes (Art. 18(1)); the audience leaves them out and the
/// suppression list names them `restricted` until the restriction is lifted (`"lift": true`,
/// Art. 18(3)). The consent itself is untouched and stands again once lifted.
pub async fn restrict(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        authorised(&collector, &headers, client)?;
        let identifier = identifier_in(&body)?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let purposes = purposes_in(&collector, &value)?;
        let lift = match &value["lift"] {
            serde_json::Value::Null => false,
            serde_json::Value::Bool(lift) => *lift,
            _ => return Err(refuse(Code::BadBody, "\"lift\" is true or false")),
        };
        restrict_purposes(&collector, &identifier, &purposes, lift).map(axum::Json)
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// Restricts (or, with `lift`, lifts the restriction of) `purposes` for the subject known
/// by the normalised `identifier`; the API and the console (crate::console) both do it here.
pub(crate) fn restrict_purposes(
    collector: &Collector,
    identifier: &str,
    purposes: &[String],
    lift: bool,
) -> Result<serde_json::Value, Refusal> {
    if collector.store.subject(identifier).map_err(unavailable)?.is_empty() {
        return Err(refuse(Code::UnknownSubject, "no record names this subject"));
    }
    let changed = if lift {
        collector.store.lift_restriction(identifier, purposes)
    } else {
        collector.store.restrict(identifier, purposes, now_ms())
    }
    .map_err(unavailable)?;
    let restrictions = collector.store.restrictions(identifier).map_err(unavailable)?;
    tracing::info!(changed, lift, "admin: restriction changed");
    Ok(serde_json::json!({
        "changed": changed,
        "restricted": restrictions.iter().map(|r| serde_json::json!({"purpose": r.purpose, "since": r.since})).collect::<Vec<_>>(),
    }))
}

// ---------------------------------------------------------------------------------------
// Rectification (Art. 16)

/// The record of a rectification: signed by the collector, no purposes, naming the records
/// whose disclosures go, and disclosing the new contact so that the subject index finds
/// those records' decisions under it. It stands on the preferences form, the collector's
/// own, with its source (`preferences`, the collector's own way in); the member
/// `rectifies` says what the step was.
fn rectification(collector: &Collector, replacement: &str, carried: Vec<String>) -> Result<Capture, Refusal> {
    let now = now_ms();
    let notice = &collector.config.privacy_notice;
    let record = ConsentRecord {
        beside: Vec::new(),
        id: record::record_id(now, crate::lifecycle::random()?),
        captured_at: now,
        form: unticked_core::config::PREFERENCES.to_string(),
        source: Source::Preferences,
        locale: collector.config.default_locale.clone(),
        page_origin: collector.lifecycle.public_origin.clone(),
        page_path: "/v1/admin/subjects/rectify".to_string(),
        notice_url: notice.url.clone(),
        notice_version: notice.version.clone(),
        config_sha256: collector.config_sha256().to_string(),
        widget: COLLECTOR_WIDGET.to_string(),
        purposes: Vec::new(),
        subjects: Vec::new(),
        signer: Signer::Collector,
        act: Some(Act::Rectifies(carried)),
    };
    let disclosure = Disclosure {
        channel: identifier_channel(replacement),
        identifier: replacement.to_string(),
        salt: crate::lifecycle::random::<SALT_LEN>()?,
    };
    Ok(Capture::new(record, Vec::new(), vec![disclosure], None))
}

/// `POST /v1/admin/subjects/rectify` `{"identifier": old, "replacement": new}`: replaces a
/// contact (Art. 16). A new record, signed by the collector, discloses the new contact and
/// names every record of the old one; then the old disclosures are erased, as in Art. 17.
/// The log only grows, so every proof still verifies, and the subject's consent stands
/// under the new contact exactly as it stood under the old.
pub async fn rectify(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = async {
        authorised(&collector, &headers, client)?;
        let old = identifier_in(&body)?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        rectify_contact(
            &collector,
            old,
            value["replacement"].as_str().unwrap_or(""),
            value["merge"] == serde_json::Value::Bool(true),
        )
        .await
        .map(axum::Json)
    };
    answer
        .await
        .map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// Replaces the contact `old` (normalised) by `replacement` as typed (Art. 16); `merge`
/// allows a replacement that already names a subject. The API and the console
/// (crate::console) both rectify here.
pub(crate) async fn rectify_contact(
    collector: &Arc<Collector>,
    old: String,
    replacement: &str,
    merge: bool,
) -> Result<serde_json::Value, Refusal> {
    let new = crate::lifecycle::normalise_identifier(replacement).ok_or_else(|| {
        refuse(
            Code::BadIdentifier,
            "replacement is an e-mail address or an international phone number (+371…)",
        )
    })?;
    if new == old {
        return Err(refuse(
            Code::BadIdentifier,
            "the replacement is the contact it replaces",
        ));
    }
    if identifier_channel(&new) != identifier_channel(&old) {
        return Err(refuse(
            Code::BadIdentifier,
            "an e-mail address is rectified by an e-mail address, a phone number by a phone number",
        ));
    }
    // A replacement that already names a subject would pour one person's consents into
    // another's contact: only on purpose (`"merge": true`), for two contacts of one person.
    if !merge && !collector.store.subject(&new).map_err(unavailable)?.is_empty() {
        return Err(refuse(
            Code::SubjectExists,
            "the replacement already names a subject; send \"merge\": true if both are this person's",
        ));
    }
    let history = crate::lifecycle::history(collector, &old)?;
    if history.records.is_empty() {
        return Err(refuse(Code::UnknownSubject, "no record names this subject"));
    }
    let ids: Vec<String> = history.records.iter().map(|(_, r, _)| r.id.clone()).collect();
    if ids.len() > record::MAX_RECTIFIED {
        return Err(refuse(
            Code::BadBody,
            format!(
                "the subject appears in {} records; one rectification carries at most {}",
                ids.len(),
                record::MAX_RECTIFIED
            ),
        ));
    }
    let carried = ids.len();
    let capture = rectification(collector, &new, ids)?;
    let id = store_signed_by_collector(collector, &capture).await?;
    // The restrictions go with the subject; the old contact's rows go as on erasure.
    collector.store.carry_restrictions(&old, &new).map_err(unavailable)?;
    let store = collector.store.clone();
    // The webhooks are told of the old contact's erasure as of any (Art. 19).
    let told = crate::webhooks::erased(collector);
    let erasure = tokio::task::spawn_blocking(move || store.erase_with(&old, &told))
        .await
        .map_err(unavailable)?;
    // The rows are gone once the erasure commits; a reader holding the write-ahead log
    // only delays folding the old pages in. The rectification is done: say so, and say
    // that erasing the old contact again finishes the folding (a retry of the whole
    // rectification would find no subject).
    let (erased, folded) = match erasure {
        Ok(erased) => (Some(erased), true),
        Err(crate::store::StoreError::WalBusy) => (None, false),
        Err(e) => return Err(unavailable(e)),
    };
    tracing::info!(carried, folded, "admin: subject rectified");
    Ok(serde_json::json!({ "record": id, "carried": carried, "erased": erased, "wal_folded": folded }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_over_only_what_a_rectification_names() {
        assert!(carried(r#"{"id":"x"}"#).is_empty());
        // A text that names the member but does not read as a record carries nothing.
        assert!(carried(r#"{"rectifies":["a"]}"#).is_empty());
    }

    #[test]
    fn the_channel_must_reach_a_contact() {
        let mut q = HashMap::new();
        let config = crate::testing::demo_config();
        q.insert("channel".to_string(), "web".to_string());
        assert_eq!(list_query(&config, &q).err().map(|r| r.code), Some(Code::BadChannel));
        q.insert("channel".to_string(), "email".to_string());
        q.insert("purpose".to_string(), "sms-offers".to_string());
        assert_eq!(
            list_query(&config, &q).err().map(|r| r.code),
            Some(Code::UnknownPurpose)
        );
        q.insert("purpose".to_string(), "email-offers".to_string());
        assert!(list_query(&config, &q).is_ok());
    }
}

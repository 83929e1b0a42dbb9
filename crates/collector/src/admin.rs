//! The site owner's endpoints, behind a bearer token (`UNTICKED_ADMIN_TOKEN`): what a
//! subject agreed to and when (Art. 7(1)), everything held about them (Art. 15), everything
//! (an export for the site owner's own systems), and erasure (Art. 17).
//!
//! The identifier travels in the request body, never in a URL: URLs end up in access logs.
//!
//! A subject is found by their e-mail address or phone number through the keyed index
//! (HMAC under the collector's secret): the log itself holds only commitments (R10). A
//! subject appears in the records where they granted a channel and gave that contact; a
//! record where they refused everything carries no contact (R8) and cannot be tied to them.

use crate::error::{refuse, too_many, Code, Refusal};
use crate::limit::{Client, ClientKey};
use crate::state::Collector;
use crate::store::SubjectRow;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use unticked_core::capture::{normalise_email, normalise_phone};
use unticked_core::config::ExtraField;
use unticked_core::consent::Now;

/// The environment variable holding the admin token; without it the admin endpoints are off.
pub const TOKEN_VARIABLE: &str = "UNTICKED_ADMIN_TOKEN";

/// The shortest admin token `serve` starts with: 32 characters of a random token are
/// beyond guessing even without the limit on wrong tries (a 4-character one fell in a second).
pub const MIN_TOKEN_LEN: usize = 32;

/// Whether `token` may guard the admin endpoints (empty: they stay off).
///
/// # Errors
/// What to do, naming the variable and the minimum, for a token that is too short.
pub fn check_token(token: &str) -> Result<(), String> {
    let len = token.chars().count();
    if len > 0 && len < MIN_TOKEN_LEN {
        return Err(format!(
            "{TOKEN_VARIABLE} is {len} characters long; an admin token needs at least {MIN_TOKEN_LEN} \
             (for example `openssl rand -base64 32`)"
        ));
    }
    Ok(())
}

/// Checks `Authorization: Bearer <token>` in constant time (both sides hashed first).
///
/// Wrong tokens are limited per address: after [`crate::limit::ADMIN_FAILURES`] of them,
/// 429 `rate-limited`, and every wrong try while held back makes the wait longer (up to an
/// hour), so guessing a token of 32 characters or more is hopeless. The right token always
/// passes, even from an address held back: otherwise anyone sharing the site owner's
/// address (or, behind a proxy, anyone at all) could lock the owner out with five wrong
/// tries. A request without the header is refused (401) but not counted: browsers and
/// crawlers that know nothing of the API send none, and a guesser gains nothing by it.
pub(crate) fn authorised(collector: &Collector, headers: &HeaderMap, client: ClientKey) -> Result<(), Refusal> {
    let Some(expected) = &collector.admin_token else {
        return Err(refuse(
            Code::AdminDisabled,
            format!("set {TOKEN_VARIABLE} to enable the admin endpoints"),
        ));
    };
    bearer_matches(collector, headers, client, expected, "admin")
}

/// Checks `Authorization: Bearer <expected>` in constant time (both sides hashed first),
/// counting wrong tries against the address as [`authorised`] says. Every role (`admin`,
/// `staff`) shares one budget of wrong tries per address: a guesser gets no second one.
pub(crate) fn bearer_matches(
    collector: &Collector,
    headers: &HeaderMap,
    client: ClientKey,
    expected: &str,
    role: &'static str,
) -> Result<(), Refusal> {
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Err(refuse(
            Code::Unauthorised,
            format!("a valid {role} bearer token is required"),
        ));
    };
    let given = given
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    token_matches(collector, client, given, expected, role)
}

/// Whether `given` is `expected`, compared in constant time (both sides hashed first); a
/// wrong one is counted against the address as [`authorised`] says. The console's sign-in
/// (crate::console) shares this budget with the bearer tokens.
pub(crate) fn token_matches(
    collector: &Collector,
    client: ClientKey,
    given: &str,
    expected: &str,
    role: &'static str,
) -> Result<(), Refusal> {
    let unauthorised = || refuse(Code::Unauthorised, format!("a valid {role} bearer token is required"));
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(expected.as_bytes()));
    if a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0 {
        return Ok(());
    }
    let failures = &collector.limits.admin;
    let now = std::time::Instant::now();
    let held_back = failures.check(client, now).is_err();
    let wait = failures.charge(client, now);
    // The address, never the token (nor any part of it).
    if wait.is_zero() {
        tracing::warn!(client = %client.address(), role, "wrong bearer token");
    } else {
        tracing::warn!(client = %client.address(), role, wait_s = wait.as_secs(), "wrong bearer token; address held back");
    }
    if held_back {
        return Err(too_many(
            Code::RateLimited,
            &format!("too many wrong {role} tokens from this address"),
            wait,
        ));
    }
    Err(unauthorised())
}

/// The normalised identifier in a body `{"identifier": …}`: an e-mail address, or a phone
/// number in international form (`+371…` or `00371…`).
pub(crate) fn identifier_in(body: &[u8]) -> Result<String, Refusal> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    identifier_from(value["identifier"].as_str().unwrap_or(""), value["channel"] == "post")
}

/// `raw` normalised as an identifier: an e-mail address or an international phone number,
/// or, when `post`, a postal address.
pub(crate) fn identifier_from(raw: &str, post: bool) -> Result<String, Refusal> {
    // A postal address is a contact too (the post channel): found, exported, restricted
    // and erased like any (Art. 15, 17), named by `"channel": "post"`, since an address
    // has no shape of its own to tell it from a mistyped number.
    if post {
        return unticked_core::capture::normalise_address(raw)
            .ok_or_else(|| refuse(Code::BadIdentifier, "identifier is a postal address (channel post)"));
    }
    let normalised = if raw.contains('@') {
        normalise_email(raw)
    } else {
        normalise_phone(raw, "")
    };
    normalised.ok_or_else(|| {
        refuse(
            Code::BadIdentifier,
            "identifier is an e-mail address or an international phone number (+371…), or a postal address with \"channel\": \"post\"",
        )
    })
}

fn disclosure_json(row: &SubjectRow) -> serde_json::Value {
    let mut json = serde_json::json!({ "channel": row.channel, "identifier": row.identifier, "salt": row.salt });
    if let Some(birthday) = &row.birthday {
        json["birthday"] = birthday.clone().into();
    }
    json
}

/// `POST /v1/admin/subjects` `{"identifier"}`: where the subject's consent to each purpose
/// stands now (`unticked_core::consent::standing`: given, refused, withdrawn, outdated,
/// expired; purposes never asked are left out), and the full history.
pub async fn subject(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        authorised(&collector, &headers, client)?;
        let identifier = identifier_in(&body)?;
        let history = crate::lifecycle::history(&collector, &identifier)?;
        let standing = crate::lifecycle::standing(&collector, &history);
        // Where processing is restricted (Art. 18), the answer says so, and what stands under it.
        let restrictions = collector
            .store
            .restrictions(&identifier)
            .map_err(crate::error::unavailable)?;
        let current: BTreeMap<String, serde_json::Value> =
            unticked_core::consent::restricted(standing.clone(), &restrictions)
                .iter()
                .filter(|s| !matches!(s.now, Now::Unasked))
                .map(|s| (s.purpose.clone(), crate::lifecycle::standing_json(s)))
                .collect();
        let history_json: Vec<serde_json::Value> = history
            .records
            .iter()
            .map(|(index, r, rows)| {
                serde_json::json!({
                    "index": index,
                    "record": r.id,
                    "captured_at": r.captured_at,
                    "form": r.form,
                    "source": r.source.as_str(),
                    "signer": r.signer.as_str(),
                    // A double opt-in confirmation names its signup: both times are kept.
                    "confirms": match &r.act {
                        Some(unticked_core::record::Act::Confirms(signup)) => serde_json::Value::from(signup.clone()),
                        _ => serde_json::Value::Null,
                    },
                    // Consent taken on the phone names who took it and the call's recording.
                    "assisted": match &r.act {
                        Some(unticked_core::record::Act::Assisted { staff, recording }) => serde_json::json!({"staff": staff, "recording": recording}),
                        _ => serde_json::Value::Null,
                    },
                    // An imported contact: where the shop says it came from, and when
                    // (`unticked import`), kept after they answer.
                    "imported": match &r.act {
                        Some(unticked_core::record::Act::Imported { provenance, collected_at, until }) => serde_json::json!({
                            "provenance": provenance.as_str(), "collected_at": collected_at, "until": until,
                        }),
                        _ => serde_json::Value::Null,
                    },
                    "channels": rows.iter().map(|row| row.channel.clone()).collect::<Vec<_>>(),
                    "purposes": r.purposes.iter().map(|p| serde_json::json!({"id": p.id, "state": p.state.as_str(), "version": p.version})).collect::<Vec<_>>(),
                })
            })
            .collect();
        // The latest birthday given (R8), while a purpose that asks for it stands given:
        // once withdrawn, the purpose that needed it is gone.
        let asked = standing.iter().any(|s| {
            s.now.may_contact()
                && collector
                    .config
                    .purpose(&s.purpose)
                    .is_some_and(|p| p.fields.contains(&ExtraField::Birthday))
        });
        let birthday = history
            .records
            .iter()
            .rev()
            .find_map(|(_, _, rows)| rows.iter().find_map(|r| r.birthday.clone()))
            .filter(|_| asked);
        // Counts only: contact data never goes to the logs.
        tracing::info!(records = history_json.len(), "admin: subject looked up");
        Ok::<_, Refusal>(axum::Json(
            serde_json::json!({ "purposes": current, "history": history_json, "birthday": birthday }),
        ))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

fn ndjson(lines: Vec<String>) -> Response {
    let mut body = lines.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn export_line(index: u64, bytes: &str, rows: &[SubjectRow]) -> String {
    serde_json::json!({
        "index": index,
        "record": bytes,
        "disclosures": rows.iter().map(disclosure_json).collect::<Vec<_>>(),
    })
    .to_string()
}

/// `POST /v1/admin/subjects/export` `{"identifier"}`: everything held about the subject
/// (Art. 15), one JSON object per line. First every record they appear in (those a
/// rectification carried over to them included), with its exact bytes, what is held beside
/// it, its leaf hash and its inclusion proof against the latest checkpoint (RFC 9162
/// §2.1.3); then one last line with where their consent stands now per purpose, their
/// restrictions (Art. 18) and that signed checkpoint, so the whole answer can be checked
/// without trusting the collector.
pub async fn export_subject(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        authorised(&collector, &headers, client)?;
        let identifier = identifier_in(&body)?;
        let history = crate::lifecycle::history(&collector, &identifier)?;
        let latest = collector.store.latest();
        let mut lines = Vec::new();
        for (index, _, rows) in &history.records {
            let Some(bytes) = collector.store.record_at(*index).map_err(crate::error::unavailable)? else {
                continue;
            };
            let mut line: serde_json::Value =
                serde_json::from_str(&export_line(*index, &bytes, rows)).unwrap_or_default();
            if let Some((leaf, proof)) = latest.as_ref().and_then(|c| collector.store.inclusion(*index, c.size)) {
                line["leaf_hash"] = unticked_core::record::hex(&leaf).into();
                line["inclusion"] = proof
                    .iter()
                    .map(|h| unticked_core::record::hex(h))
                    .collect::<Vec<_>>()
                    .into();
            }
            lines.push(line.to_string());
        }
        let restrictions = collector
            .store
            .restrictions(&identifier)
            .map_err(crate::error::unavailable)?;
        let standing =
            unticked_core::consent::restricted(crate::lifecycle::standing(&collector, &history), &restrictions);
        let now: BTreeMap<String, serde_json::Value> = standing
            .iter()
            .filter(|s| !matches!(s.now, Now::Unasked))
            .map(|s| (s.purpose.clone(), crate::lifecycle::standing_json(s)))
            .collect();
        lines.push(
            serde_json::json!({
                "standing": now,
                "restrictions": restrictions.iter().map(|r| serde_json::json!({"purpose": r.purpose, "since": r.since})).collect::<Vec<_>>(),
                "checkpoint": latest.map(|c| c.to_json(collector.store.origin(), &collector.store.public_key())),
            })
            .to_string(),
        );
        Ok::<_, Refusal>(ndjson(lines))
    })();
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /v1/admin/export`: the whole log in order, each record with the disclosures still held.
pub async fn export_all(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    // A whole-log scan: off the async threads, on a connection of its own.
    let store = collector.store.clone();
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        store
            .export(|index, bytes, rows| lines.push(export_line(index, bytes, rows)))
            .map(|()| lines)
    })
    .await;
    match lines {
        Ok(Ok(lines)) => ndjson(lines),
        Ok(Err(e)) => crate::error::unavailable(e).into_response(),
        Err(e) => crate::error::unavailable(e).into_response(),
    }
}

/// Most records one `GET /v1/admin/log` answers.
pub const LOG_PAGE: u64 = 1000;

/// `GET /v1/admin/log?start=N`: up to 1000 stored records from index N, exact bytes, for
/// `unticked verify --url`.
pub async fn log(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refusal) = authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    let start = query
        .get("start")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        .min(i64::MAX as u64);
    match collector.store.entries(start, LOG_PAGE) {
        Ok(entries) => axum::Json(serde_json::json!({
            "entries": entries.iter().map(|(index, bytes)| serde_json::json!({"index": index, "record": bytes})).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => crate::error::unavailable(e).into_response(),
    }
}

/// `POST /v1/admin/subjects/erase` `{"identifier"}`: erases the subject (Art. 17). Their
/// disclosures are deleted; the records stay, and so does every proof, since the log holds
/// only salted commitments that no longer lead anywhere.
pub async fn erase(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let identifier = match authorised(&collector, &headers, client).and_then(|()| identifier_in(&body)) {
        Ok(identifier) => identifier,
        Err(refusal) => return refusal.into_response(),
    };
    match erase_subject(&collector, identifier).await {
        Ok(erased) => axum::Json(serde_json::json!({ "erased": erased })).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Erases the subject known by the normalised `identifier` (Art. 17); returns how many of
/// their rows went. The API and the console (crate::console) both erase through here.
pub(crate) async fn erase_subject(collector: &Arc<Collector>, identifier: String) -> Result<usize, Refusal> {
    // It may wait for readers to let go of the write-ahead log: off the async threads.
    let store = collector.store.clone();
    // The subscribed webhooks are told, in the erasure's transaction (docs/webhooks.md).
    let told = crate::webhooks::erased(collector);
    match tokio::task::spawn_blocking(move || store.erase_with(&identifier, &told)).await {
        Ok(Ok(erased)) => {
            tracing::info!(erased, "admin: subject erased");
            Ok(erased)
        }
        Ok(Err(e)) => Err(crate::error::unavailable(e)),
        Err(e) => Err(crate::error::unavailable(e)),
    }
}

/// `GET /v1/admin/webhooks`: the events not delivered yet (attempts, last error, next
/// attempt) and the counts of pending, delivered and dead events (docs/webhooks.md).
pub async fn webhooks(State(collector): State<Arc<Collector>>, Client(client): Client, headers: HeaderMap) -> Response {
    webhook_list(collector, client, headers, false).await
}

/// `GET /v1/admin/webhooks/dead`: the dead-lettered events.
pub async fn webhooks_dead(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
) -> Response {
    webhook_list(collector, client, headers, true).await
}

async fn webhook_list(collector: Arc<Collector>, client: ClientKey, headers: HeaderMap, dead: bool) -> Response {
    if let Err(refusal) = authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    match tokio::task::spawn_blocking(move || crate::webhooks::list(&collector, dead)).await {
        Ok(Ok(list)) => axum::Json(list).into_response(),
        Ok(Err(e)) => crate::error::unavailable(e).into_response(),
        Err(e) => crate::error::unavailable(e).into_response(),
    }
}

/// `POST /v1/admin/webhooks/replay` `{"ids":[seq…]}` or `{"all":true}`: dead events back to
/// pending, due now.
pub async fn webhooks_replay(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let seqs: Option<Vec<i64>> = if value["all"] == serde_json::Value::Bool(true) {
        None
    } else if let Some(ids) = value["ids"]
        .as_array()
        .and_then(|ids| ids.iter().map(|i| i.as_i64()).collect())
    {
        Some(ids)
    } else {
        return refuse(Code::BadBody, "the body is {\"ids\":[seq, …]} or {\"all\":true}").into_response();
    };
    match tokio::task::spawn_blocking(move || crate::webhooks::replay(&collector, seqs.as_deref())).await {
        Ok(Ok(n)) => axum::Json(serde_json::json!({ "replayed": n })).into_response(),
        Ok(Err(e)) => crate::error::unavailable(e).into_response(),
        Err(e) => crate::error::unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Keys, Store};
    use crate::testing::{capture, demo_config, seal};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const TOKEN: &str = "admin-test-token-0123456789abcdef";

    async fn call(
        app: &axum::Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: String,
    ) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("host", "127.0.0.1:8080");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_subject_is_found_exported_and_erased_and_the_log_still_verifies() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let app = crate::serve::app(
            www,
            config.clone(),
            Store::open(&db, &crate::texts::Shown::of(&config)).unwrap(),
            crate::serve::Settings {
                admin_token: Some(TOKEN.into()),
                ..crate::testing::settings()
            },
        );
        // Two records that give e-mail offers (and disclose jan@example.pl), one that refuses
        // everything (and names nobody), and a later one that gives only birthday greetings.
        for given in [
            &["email-offers"][..],
            &[],
            &["email-offers", "sms-offers"],
            &["birthday-greetings"],
        ] {
            let (status, _) = call(&app, "POST", "/v1/records", None, seal(&capture(&config, given), 1)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let who = r#"{"identifier":" JAN@Example.PL"}"#.to_string();
        let admin = |path: &'static str, body: String| {
            let app = app.clone();
            async move { call(&app, "POST", path, Some(TOKEN), body).await }
        };

        assert_eq!(
            call(&app, "POST", "/v1/admin/subjects", None, who.clone()).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, "POST", "/v1/admin/subjects", Some("guess"), who.clone())
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = admin("/v1/admin/subjects", r#"{"identifier":"nobody"}"#.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = admin("/v1/admin/subjects", r#"{"identifier":"+371 2000 0000"}"#.into()).await;
        assert_eq!(status, StatusCode::OK, "a phone number in international form: {body}");

        let (status, body) = admin("/v1/admin/subjects", who.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let found: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            found["history"].as_array().unwrap().len(),
            3,
            "the refusal names nobody (R8)"
        );
        // Left unticked later is not withdrawn (Art. 7(3)): the consent given stands.
        assert_eq!(found["purposes"]["email-offers"]["state"], "given");
        assert_eq!(found["purposes"]["sms-offers"]["state"], "given");
        assert_eq!(found["purposes"]["birthday-greetings"]["state"], "given");
        assert_eq!(found["purposes"]["phone-calls"]["state"], "refused");
        assert_eq!(found["birthday"], "--11-07", "R8: given with birthday greetings");

        let (status, lines) = admin("/v1/admin/subjects/export", who.clone()).await;
        assert_eq!(status, StatusCode::OK);
        // The three records, then where consent stands now with the checkpoint (Art. 15).
        assert_eq!(lines.lines().count(), 4);
        let (records, last) = lines.trim_end().rsplit_once('\n').unwrap();
        assert!(records.lines().all(|l| l.contains("\"identifier\":\"jan@example.pl\"")));
        assert!(records.lines().all(|l| l.contains("\"inclusion\":[")));
        let last: serde_json::Value = serde_json::from_str(last).unwrap();
        assert_eq!(last["standing"]["email-offers"]["state"], "given", "{last}");
        assert_eq!(last["checkpoint"]["size"], 4);
        let (_, all) = call(&app, "GET", "/v1/admin/export", Some(TOKEN), String::new()).await;
        assert_eq!(all.lines().count(), 4);

        // Erasing the phone number (of the SMS record) leaves the e-mail's rows, and the
        // birthday only where the phone was not given beside it.
        let phone = r#"{"identifier":"+48601234567"}"#.to_string();
        let (status, erased) = admin("/v1/admin/subjects/erase", phone.clone()).await;
        assert_eq!((status, erased.as_str()), (StatusCode::OK, r#"{"erased":1}"#));
        let (_, lines) = admin("/v1/admin/subjects/export", who.clone()).await;
        assert_eq!(lines.matches("--11-07").count(), 1, "{lines}");

        let (status, erased) = admin("/v1/admin/subjects/erase", who.clone()).await;
        assert_eq!((status, erased.as_str()), (StatusCode::OK, r#"{"erased":3}"#));
        let (_, after) = admin("/v1/admin/subjects", who.clone()).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&after).unwrap()["history"],
            serde_json::json!([])
        );
        let (_, all) = call(&app, "GET", "/v1/admin/export", Some(TOKEN), String::new()).await;
        assert!(!all.contains("jan@example.pl"), "no trace of the subject is left");
        assert!(!all.contains("--11-07"), "nor of the birthday given with them");
        assert_eq!(all.lines().count(), 4, "the records stay");
        let key = crate::verify::public_key(None, &Keys::path_for(&db)).unwrap();
        assert!(
            crate::verify::verify(&crate::db::Location::from(db.as_path()), &key, None, &[]).is_ok(),
            "and the log still verifies"
        );
    }

    /// Guessing the token from one address is held back after a few tries, longer the
    /// more it goes on; another address is not, and the right token still works there.
    #[tokio::test]
    async fn wrong_tokens_from_one_address_are_held_back_and_others_are_not() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config.clone(),
            Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap(),
            crate::serve::Settings {
                admin_token: Some(TOKEN.into()),
                ..crate::testing::settings()
            },
        );
        let from = |ip: [u8; 4], token: &str| {
            let mut request = Request::get("/v1/admin/export")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((ip, 50000))));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let wait = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, wait, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let guesser = [10, 0, 0, 1];
        for i in 0..crate::limit::ADMIN_FAILURES {
            let (status, _, _) = from(guesser, &format!("guess-{i}")).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "try {i}");
        }
        let (status, first_wait, body) = from(guesser, "guess-again").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(body.contains(r#""code":"rate-limited""#), "{body}");
        let (_, second_wait, _) = from(guesser, "and-again").await;
        assert!(
            second_wait > first_wait,
            "the wait grows: {first_wait:?} {second_wait:?}"
        );
        // The site owner sharing that address is never locked out by someone else's guesses.
        let (status, _, _) = from(guesser, TOKEN).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the right token passes even from a held-back address"
        );
        let (status, _, _) = from(guesser, "still-guessing").await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "and the guesser is still held back"
        );
        // Requests without the header (a crawler, a browser) are refused but not counted.
        for _ in 0..3 * crate::limit::ADMIN_FAILURES {
            let mut request = Request::get("/v1/admin/export").body(Body::empty()).unwrap();
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                    [10, 0, 0, 4],
                    50000,
                ))));
            assert_eq!(
                app.clone().oneshot(request).await.unwrap().status(),
                StatusCode::UNAUTHORIZED
            );
        }
        let (status, _, _) = from([10, 0, 0, 4], "a first wrong token").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "no header counts as no wrong token");
        let (status, _, _) = from([10, 0, 0, 2], "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "another address is not held back");
        let (status, _, _) = from([10, 0, 0, 3], TOKEN).await;
        assert_eq!(status, StatusCode::OK, "the right token works from another address");
    }

    #[test]
    fn a_short_token_is_refused_with_the_variable_and_the_minimum() {
        let why = super::check_token("abcd").unwrap_err();
        assert!(why.contains("UNTICKED_ADMIN_TOKEN") && why.contains("32"), "{why}");
        assert!(!why.contains("abcd"), "never the token itself");
        assert!(super::check_token(TOKEN).is_ok() && super::check_token("").is_ok());
    }

    #[tokio::test]
    async fn without_a_token_the_admin_endpoints_are_off() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let app = crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config,
            store,
            crate::testing::settings(),
        );
        let (status, body) = call(&app, "GET", "/v1/admin/export", Some(""), String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("admin-disabled"));
    }

    /// Art. 17 whatever the spelling: the widget lowercases ASCII only, so an address typed
    /// with capital Latvian letters is stored as typed; a look-up and an erasure with the
    /// address in lower case still find it, and nothing of it is left in the export.
    #[tokio::test]
    async fn an_address_typed_in_capitals_is_found_and_erased_in_lower_case() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config.clone(),
            Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap(),
            crate::serve::Settings {
                admin_token: Some(TOKEN.into()),
                ..crate::testing::settings()
            },
        );
        let typed = crate::testing::capture_from(&config, &["email-offers"], "Anna@BĒRZIŅŠ.lv");
        let (status, body) = call(&app, "POST", "/v1/records", None, seal(&typed, 1)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let who = r#"{"identifier":"anna@bērziņš.lv"}"#.to_string();
        let (_, found) = call(&app, "POST", "/v1/admin/subjects", Some(TOKEN), who.clone()).await;
        let found: serde_json::Value = serde_json::from_str(&found).unwrap();
        assert_eq!(found["history"].as_array().map(Vec::len), Some(1), "{found}");
        let (status, erased) = call(&app, "POST", "/v1/admin/subjects/erase", Some(TOKEN), who).await;
        assert_eq!((status, erased.as_str()), (StatusCode::OK, r#"{"erased":1}"#));
        let (_, all) = call(&app, "GET", "/v1/admin/export", Some(TOKEN), String::new()).await;
        assert!(!all.to_lowercase().contains("anna@"), "{all}");
    }
}

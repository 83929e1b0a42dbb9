//! `POST /v1/records`: what the collector accepts as a consent record.
//!
//! A delivery is `{"disclosures":[{"channel","identifier","salt"}…],"record":"<bytes>"}`
//! (see `unticked_core::capture`). The record must open (`record::open`: canonical bytes,
//! every field, the browser's signature), must match the config the collector serves (the
//! form, each purpose's version and the hash of the exact text it shows in that locale),
//! and every subject commitment must be backed by a disclosure that hashes to it, for a
//! channel the shopper granted in this very record (R8, R10).
//!
//! Storage here is in memory and ends with the process: issue 4 replaces it with the
//! SQLite append-only log and its receipts. The contract (status codes, error codes,
//! idempotency by record id) is the one the widget relies on and stays.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use unticked_core::capture::{Disclosure, SALT_LEN};
use unticked_core::config::{Channel, Config, Named};
use unticked_core::json::{self, Json};
use unticked_core::record::{self, OpenedRecord, RecordError, State as ConsentState};
use unticked_core::{locale, view};

/// Largest delivery accepted (issue 4): a record of dozens of purposes is under 8 KiB.
pub const MAX_BODY: usize = 16 * 1024;

/// Shared by the handlers.
pub struct Collector {
    pub config: Config,
    /// Record id → the exact bytes acknowledged under it.
    stored: Mutex<HashMap<String, String>>,
}

impl Collector {
    pub fn new(config: Config) -> Arc<Collector> {
        Arc::new(Collector {
            config,
            stored: Mutex::new(HashMap::new()),
        })
    }
}

/// A refusal: HTTP status, stable code, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.code, "message": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A delivery that passed every check.
#[derive(Debug)]
pub struct Accepted {
    pub bytes: String,
    pub opened: OpenedRecord,
    pub disclosures: Vec<Disclosure>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    record::hex(&Sha256::digest(bytes))
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> Refusal {
    refuse(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Checks a delivery body against `config`. Pure: no storage, no clock.
///
/// # Errors
/// A [`Refusal`] with a 4xx status and a stable code.
pub fn check(body: &[u8], config: &Config) -> Result<Accepted, Refusal> {
    let bad = |message: &str| refuse(StatusCode::BAD_REQUEST, "bad-body", message.to_string());
    if body.len() > MAX_BODY {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("a delivery is at most {MAX_BODY} bytes"),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let Ok(Json::Object(members)) = json::parse(text) else {
        return Err(bad("the body is not a JSON object"));
    };
    let mut record_bytes = None;
    let mut disclosures_json = None;
    for (key, value) in &members {
        match (key.as_str(), value) {
            ("record", Json::String(bytes)) => record_bytes = Some(bytes.clone()),
            ("disclosures", Json::Array(items)) => disclosures_json = Some(items.clone()),
            _ => {
                return Err(bad(&format!(
                    "unexpected member \"{key}\" (expected record and disclosures)"
                )))
            }
        }
    }
    let (Some(bytes), Some(disclosure_items)) = (record_bytes, disclosures_json) else {
        return Err(bad("a delivery has a record (string) and disclosures (array)"));
    };
    let disclosures = disclosure_items
        .iter()
        .map(read_disclosure)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("each disclosure is {channel, identifier, salt (32 hex digits)}"))?;

    let opened = record::open(bytes.as_bytes()).map_err(|e| {
        let code = match e {
            RecordError::NotJson(_) => "not-json",
            RecordError::NotCanonical => "not-canonical",
            RecordError::Shape { .. } => "shape",
            RecordError::UnknownAlgorithm(_) => "unknown-algorithm",
            RecordError::BadSignature => "bad-signature",
        };
        refuse(StatusCode::BAD_REQUEST, code, e.to_string())
    })?;
    matches_config(&opened, config)?;
    matches_disclosures(&opened, &disclosures, config)?;
    Ok(Accepted {
        bytes,
        opened,
        disclosures,
    })
}

fn read_disclosure(item: &Json) -> Option<Disclosure> {
    let Json::Object(members) = item else { return None };
    if members.len() != 3 {
        return None;
    }
    let text = |key: &str| match members.iter().find(|(k, _)| k == key)?.1 {
        Json::String(ref s) => Some(s.clone()),
        _ => None,
    };
    let salt = text("salt")?;
    let salt: Vec<u8> = (0..salt.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(salt.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    Some(Disclosure {
        channel: Channel::from_name(&text("channel")?)?,
        identifier: text("identifier")?,
        salt: <[u8; SALT_LEN]>::try_from(salt).ok()?,
    })
}

/// The record was captured from a form this config describes, showing exactly its texts.
fn matches_config(opened: &OpenedRecord, config: &Config) -> Result<(), Refusal> {
    let record = &opened.record;
    let form = config
        .form(&record.form)
        .ok_or_else(|| unprocessable("unknown-form", format!("the config has no form \"{}\"", record.form)))?;
    if form.source != record.source {
        return Err(unprocessable(
            "source-mismatch",
            format!("form \"{}\" has source \"{}\"", form.kind, form.source.as_str()),
        ));
    }
    if !config.locales.iter().any(|l| l == &record.locale) {
        return Err(unprocessable(
            "unknown-locale",
            format!("\"{}\" is not a declared locale", record.locale),
        ));
    }
    // What the widget showed for this form in this locale, rendered by the same code.
    let tree = view::choices(config, form, &record.locale, Some(locale::primary(&record.locale)), "u");
    let shown = view::purpose_texts(&tree);
    for entry in &record.purposes {
        let Some((_, text)) = shown.iter().find(|(id, _)| *id == entry.id) else {
            return Err(unprocessable(
                "unknown-purpose",
                format!("form \"{}\" offers no purpose \"{}\"", form.kind, entry.id),
            ));
        };
        let version = config.purpose(&entry.id).map(|p| p.version);
        if version != Some(entry.version) {
            return Err(unprocessable(
                "purpose-version",
                format!("purpose \"{}\" is at version {}", entry.id, version.unwrap_or(0)),
            ));
        }
        if entry.text_sha256 != sha256_hex(text.as_bytes()) {
            return Err(unprocessable(
                "text-mismatch",
                format!(
                    "the text recorded for \"{}\" is not the text this config shows in \"{}\"",
                    entry.id, record.locale
                ),
            ));
        }
    }
    Ok(())
}

/// Each subject commitment has its disclosure, for a channel granted in this record (R8).
fn matches_disclosures(opened: &OpenedRecord, disclosures: &[Disclosure], config: &Config) -> Result<(), Refusal> {
    let record = &opened.record;
    if disclosures.len() != record.subjects.len() {
        return Err(unprocessable(
            "disclosure-mismatch",
            "each subject commitment needs exactly one disclosure",
        ));
    }
    for (subject, disclosure) in record.subjects.iter().zip(disclosures) {
        if subject.channel != disclosure.channel || subject.commitment != sha256_hex(&disclosure.committed_bytes()) {
            return Err(unprocessable(
                "disclosure-mismatch",
                "a disclosure does not hash to its subject commitment",
            ));
        }
        let granted = record.purposes.iter().any(|p| {
            p.state == ConsentState::Given && config.purpose(&p.id).map(|c| c.channel) == Some(subject.channel)
        });
        if !granted {
            return Err(unprocessable(
                "subject-not-granted",
                format!("no purpose on the {} channel was given", subject.channel.as_str()),
            ));
        }
    }
    Ok(())
}

/// `POST /v1/records`: 201 when stored, 200 when the same bytes were stored before, 409
/// when other bytes hold the id, 4xx JSON `{code, message}` for anything refused.
pub async fn post_record(State(collector): State<Arc<Collector>>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("a delivery is at most {MAX_BODY} bytes"),
            )
            .into_response()
        }
    };
    let accepted = match check(&body, &collector.config) {
        Ok(accepted) => accepted,
        Err(refusal) => {
            tracing::warn!(code = refusal.code, "record refused");
            return refusal.into_response();
        }
    };
    let id = accepted.opened.record.id.clone();
    let mut stored = collector.stored.lock().unwrap_or_else(|e| e.into_inner());
    let status = match stored.get(&id) {
        Some(bytes) if *bytes == accepted.bytes => StatusCode::OK,
        Some(_) => {
            return refuse(
                StatusCode::CONFLICT,
                "id-conflict",
                "another record is stored under this id",
            )
            .into_response()
        }
        None => {
            stored.insert(id.clone(), accepted.bytes);
            StatusCode::CREATED
        }
    };
    // No contact data in logs: the id and the counts only.
    tracing::info!(%id, purposes = accepted.opened.record.purposes.len(), subjects = accepted.disclosures.len(), "record stored");
    (status, axum::Json(serde_json::json!({ "id": id }))).into_response()
}

/// `GET /v1/records/{id}`: the exact bytes stored.
pub async fn get_record(State(collector): State<Arc<Collector>>, UrlPath(id): UrlPath<String>) -> Response {
    let stored = collector.stored.lock().unwrap_or_else(|e| e.into_inner());
    match stored.get(&id) {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes.clone()).into_response(),
        None => refuse(StatusCode::NOT_FOUND, "not-found", "no record with this id").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use unticked_core::capture::{normalise_email, Capture};
    use unticked_core::record::{base64url, fill, ConsentRecord, PurposeEntry};

    fn demo_config() -> Config {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
        Config::from_json(&text).unwrap()
    }

    /// The demo checkout in Polish with `given` ticked, the e-mail disclosed when granted.
    fn capture(config: &Config, given: &[&str]) -> Capture {
        let form = config.form("checkout").unwrap();
        let texts = view::purpose_texts(&view::choices(config, form, "pl", Some("pl"), "x"));
        let purposes = texts
            .iter()
            .map(|(id, _)| PurposeEntry {
                id: id.clone(),
                version: 1,
                state: if given.contains(&id.as_str()) {
                    ConsentState::Given
                } else {
                    ConsentState::Refused
                },
                text_sha256: String::new(),
            })
            .collect();
        let record = ConsentRecord {
            id: record::record_id(1_763_782_620_000, [3; 10]),
            captured_at: 1_763_782_620_001,
            form: "checkout".into(),
            source: form.source,
            locale: "pl".into(),
            page_origin: "http://127.0.0.1:8080".into(),
            page_path: "/checkout.html".into(),
            notice_url: "/privacy.html".into(),
            notice_version: "2026-09".into(),
            config_sha256: sha256_hex(b"config"),
            widget: "0.1.0".into(),
            purposes,
            subjects: vec![],
        };
        let disclosures = vec![Disclosure {
            channel: Channel::Email,
            identifier: normalise_email("jan@example.pl").unwrap(),
            salt: [5; 16],
        }];
        Capture::new(record, texts.into_iter().map(|(_, t)| t).collect(), disclosures)
    }

    /// Seals as src/courier.js does, with the given key; returns the delivery body.
    fn seal(capture: &Capture, key_seed: u8) -> String {
        use ed25519_dalek::Signer;
        let digests: Vec<String> = capture.digest_inputs().iter().map(|i| sha256_hex(i)).collect();
        let parts = capture.record.parts();
        let key = ed25519_dalek::SigningKey::from_bytes(&[key_seed; 32]);
        let signature = key.sign(fill(&parts, &digests, None).as_bytes());
        let (public_key, value) = (
            base64url(key.verifying_key().as_bytes()),
            base64url(&signature.to_bytes()),
        );
        let record = fill(&parts, &digests, Some(["Ed25519", &public_key, &value]));
        let disclosures = unticked_core::capture::disclosures_json(&capture.disclosures);
        format!(
            r#"{{"disclosures":{disclosures},"record":{}}}"#,
            serde_json::to_string(&record).unwrap()
        )
    }

    fn code(body: &str, config: &Config) -> &'static str {
        match check(body.as_bytes(), config) {
            Ok(_) => "ok",
            Err(refusal) => refusal.code,
        }
    }

    #[test]
    fn a_record_sealed_as_the_browser_does_is_accepted() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers", "phone-calls"]), 1);
        let accepted = check(body.as_bytes(), &config).unwrap();
        assert_eq!(accepted.disclosures[0].identifier, "jan@example.pl");
        assert_eq!(accepted.opened.record.subjects.len(), 1);
    }

    #[test]
    fn a_text_the_config_does_not_show_is_refused() {
        let config = demo_config();
        let mut shown_other = capture(&config, &["email-offers"]);
        shown_other.texts[0].push_str(" (and partners)");
        assert_eq!(code(&seal(&shown_other, 1), &config), "text-mismatch");
        let mut old_version = capture(&config, &["email-offers"]);
        old_version.record.purposes[0].version = 2;
        assert_eq!(code(&seal(&old_version, 1), &config), "purpose-version");
    }

    #[test]
    fn disclosures_must_back_the_commitments_of_granted_channels() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers"]), 1);
        let swapped = body.replace("jan@example.pl", "eve@example.pl");
        assert_eq!(code(&swapped, &config), "disclosure-mismatch");
        let none = body.replacen(&body[body.find('[').unwrap()..=body.find(']').unwrap()], "[]", 1);
        assert_eq!(code(&none, &config), "disclosure-mismatch");
        // An e-mail committed to although no e-mail purpose was given (R8).
        assert_eq!(
            code(&seal(&capture(&config, &["phone-calls"]), 1), &config),
            "subject-not-granted"
        );
    }

    #[test]
    fn damaged_or_foreign_bodies_are_refused_with_their_code() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers"]), 1);
        assert_eq!(
            code(&body.replacen("\\\"pl\\\"", "\\\"cs\\\"", 1), &config),
            "bad-signature"
        );
        assert_eq!(code("[]", &config), "bad-body");
        assert_eq!(code(r#"{"record":"{}","disclosures":[],"x":1}"#, &config), "bad-body");
        assert_eq!(code(r#"{"record":"{}","disclosures":[]}"#, &config), "shape");
        assert_eq!(code(&" ".repeat(MAX_BODY + 1), &config), "too-large");
    }

    async fn send(app: &axum::Router, method: &str, uri: &str, body: String) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_endpoint_stores_once_and_is_idempotent_by_id() {
        let config = demo_config();
        let app = crate::serve::app(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(), config.clone());
        let capture = capture(&config, &["email-offers"]);
        let body = seal(&capture, 1);
        let id = &capture.record.id;
        assert_eq!(
            send(&app, "POST", "/v1/records", body.clone()).await.0,
            StatusCode::CREATED
        );
        assert_eq!(send(&app, "POST", "/v1/records", body.clone()).await.0, StatusCode::OK);
        let (status, conflict) = send(&app, "POST", "/v1/records", seal(&capture, 2)).await;
        assert_eq!(
            (status, conflict.contains("\"id-conflict\"")),
            (StatusCode::CONFLICT, true)
        );
        let (status, stored) = send(&app, "GET", &format!("/v1/records/{id}"), String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(record::open(stored.as_bytes()).is_ok());
        assert!(
            body.contains(&serde_json::to_string(&stored).unwrap()),
            "the exact bytes are kept"
        );
        let (status, too_large) = send(&app, "POST", "/v1/records", "x".repeat(MAX_BODY + 10)).await;
        assert_eq!(
            (status, too_large.contains("\"too-large\"")),
            (StatusCode::PAYLOAD_TOO_LARGE, true)
        );
        let (status, _) = send(&app, "GET", "/v1/records/nope", String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

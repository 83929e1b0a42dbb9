//! The attack's bad-body sweep, kept as a regression test (issue 12): thousands of damaged
//! deliveries and violation reports, each answered with a 4xx and a JSON `code`, never a 5xx,
//! never a hang, and nothing stored.

use crate::serve::app;
use crate::store::Store;
use crate::testing::{capture, demo_config, seal};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// Damaged copies of a valid delivery: cut short anywhere, one byte changed anywhere, each
/// value of each member swapped for another JSON type, and bodies built to hurt a parser.
fn damaged(valid: &str) -> Vec<Vec<u8>> {
    let bytes = valid.as_bytes();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let step = (bytes.len() / 600).max(1);
    for cut in (0..bytes.len()).step_by(step) {
        bodies.push(bytes[..cut].to_vec());
    }
    for at in (0..bytes.len()).step_by(step) {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut body = bytes.to_vec();
            body[at] ^= flip;
            bodies.push(body);
        }
        let mut body = bytes.to_vec();
        body.insert(at, b'"');
        bodies.push(body);
    }
    let value: serde_json::Value = serde_json::from_str(valid).expect("a valid delivery is JSON");
    let replacements = [
        serde_json::json!(null),
        serde_json::json!(true),
        serde_json::json!(-1),
        serde_json::json!(1e308),
        serde_json::json!(18446744073709551615u64),
        serde_json::json!(""),
        serde_json::json!("x".repeat(10_000)),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!([{"channel": "email"}]),
    ];
    for member in ["record", "disclosures", "birthday"] {
        for replacement in &replacements {
            let mut body = value.clone();
            body[member] = replacement.clone();
            bodies.push(body.to_string().into_bytes());
        }
    }
    // Inside the signed record: every string value swapped for a long one, every number for
    // an absurd one (the signature then fails, but only after the parser has read them).
    let record = value["record"].as_str().unwrap_or_default();
    let inner: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
    if let serde_json::Value::Object(members) = &inner {
        for key in members.keys() {
            for replacement in &replacements {
                let mut changed = inner.clone();
                changed[key] = replacement.clone();
                let mut body = value.clone();
                body["record"] = changed.to_string().into();
                bodies.push(body.to_string().into_bytes());
            }
        }
    }
    let nested = |open: &str, close: &str, depth: usize| format!("{}{}", open.repeat(depth), close.repeat(depth));
    for depth in [64, 1_000, 8_000] {
        bodies.push(nested("[", "]", depth).into_bytes());
        bodies.push(nested("{\"record\":", "}", depth.min(1_500)).into_bytes());
        bodies.push(
            format!(
                "{{\"record\":\"{}\",\"disclosures\":[]}}",
                nested("[", "]", depth).replace('"', "\\\"")
            )
            .into_bytes(),
        );
    }
    for odd in [
        &b""[..],
        b"\xef\xbb\xbf{}",
        b"\xff\xfe",
        b"{\"record\":\"\\ud800\",\"disclosures\":[]}",
        b"{\"record\":\"\\u0000\",\"disclosures\":[]}",
        b"{\"record\":1e999999,\"disclosures\":[]}",
        b"{\"record\":-0.0e-99999,\"disclosures\":[]}",
        b"{\"record\":\"x\",\"record\":\"y\",\"disclosures\":[]}",
        b"{\"record\":\"x\",\"disclosures\":[]} trailing",
        b"\0\0\0\0",
        b"NaN",
        b"{\"kind\":\"submit-gated\",\"form\":\"checkout\",\"page\":\"/\x00\"}",
    ] {
        bodies.push(odd.to_vec());
    }
    bodies
}

#[tokio::test]
async fn thousands_of_damaged_bodies_get_a_4xx_with_a_code_and_store_nothing() {
    let config = demo_config();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
    let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
    let app = app(www, config.clone(), store.clone(), crate::testing::settings());
    let valid = seal(
        &capture(&config, &["email-offers", "sms-offers", "birthday-greetings"]),
        1,
    );
    let bodies = damaged(&valid);
    assert!(bodies.len() > 2_500, "a sweep of {} bodies", bodies.len());
    let started = Instant::now();
    let mut stored = 0;
    for body in &bodies {
        for path in ["/v1/records", "/v1/violations"] {
            let request = Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let response = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(request))
                .await
                .unwrap_or_else(|_| panic!("{path} hung on {:?}", String::from_utf8_lossy(body)))
                .unwrap();
            let status = response.status();
            let answer = response.into_body().collect().await.unwrap().to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            if status == StatusCode::CREATED {
                // A flip inside the signature's base64 padding bits may still verify; then
                // it is a valid record, stored once.
                stored += 1;
                continue;
            }
            assert!(
                status.is_client_error() || status == StatusCode::OK,
                "{path}: {status} for {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
            assert!(
                status == StatusCode::OK || answer["code"].is_string(),
                "{path}: {status} without a JSON code: {answer}"
            );
        }
    }
    assert!(stored <= 1, "{stored} damaged bodies were stored");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the sweep took {:?}",
        started.elapsed()
    );
}

/// Every API answer is the API's JSON with a code, a wrong method and an undecodable path
/// included (docs/collector.md: "Errors are JSON with a stable code").
#[tokio::test]
async fn a_wrong_method_or_an_undecodable_path_gets_the_apis_json() {
    let config = demo_config();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
    let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
    let app = app(www, config, store, crate::testing::settings());
    for (method, path, status, code) in [
        (
            "PUT",
            "/v1/records",
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        (
            "DELETE",
            "/v1/checkpoint",
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        ("GET", "/v1/texts/%ff", StatusCode::NOT_FOUND, "not-found"),
        ("GET", "/v1/records/%ff%fe", StatusCode::NOT_FOUND, "not-found"),
    ] {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(body["code"], code, "{method} {path}");
    }
}

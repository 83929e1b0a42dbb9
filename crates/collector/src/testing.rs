//! Test helpers shared by the collector's unit tests: the demo config, and deliveries
//! captured and sealed natively exactly as the widget does in the browser.

use unticked_core::capture::{normalise_email, Capture, Disclosure};
use unticked_core::config::{Channel, Config};
use unticked_core::record::{self, ConsentRecord, PurposeEntry, State as ConsentState};
use unticked_core::view;

pub(crate) use crate::records::sha256_hex;

pub fn demo_config() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
    Config::from_json(&text).unwrap()
}

/// The demo checkout in Polish with `given` ticked, the e-mail disclosed when granted.
pub fn capture(config: &Config, given: &[&str]) -> Capture {
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
    // A fresh id per capture, as the widget makes one per submit.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut random = [0u8; 10];
    random[6..].copy_from_slice(&n.to_be_bytes());
    let record = ConsentRecord {
        id: record::record_id(1_763_782_620_000, random),
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
    // The e-mail travels only when a purpose on its channel is given (R8).
    let email_given = given
        .iter()
        .any(|id| config.purpose(id).is_some_and(|p| p.channel == Channel::Email));
    let disclosures = if email_given {
        vec![Disclosure {
            channel: Channel::Email,
            identifier: normalise_email("jan@example.pl").unwrap(),
            salt: [5; 16],
        }]
    } else {
        vec![]
    };
    Capture::new(record, texts.into_iter().map(|(_, t)| t).collect(), disclosures)
}

/// Seals as src/courier.js does, with the key made from `key_seed`; returns the delivery body.
pub fn seal(capture: &Capture, key_seed: u8) -> String {
    crate::bench::seal(capture, &ed25519_dalek::SigningKey::from_bytes(&[key_seed; 32]))
}

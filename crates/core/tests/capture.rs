//! A capture, sealed natively exactly as `src/platform.js` seals it in the browser (fill the
//! digest holes with SHA-256, sign the unsigned text, fill the signature holes), opens with
//! `record::open`, and says what the shopper chose.

#![cfg(feature = "verify")]

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use unticked_core::capture::{normalise_email, normalise_phone, Capture, Disclosure, SALT_LEN};
use unticked_core::config::{Channel, Config};
use unticked_core::jcs;
use unticked_core::json::{self, Json};
use unticked_core::record::{self, base64url, fill, ConsentRecord, Part, PurposeEntry, State};
use unticked_core::view;

fn demo() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
    Config::from_json(&text).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    record::hex(&Sha256::digest(bytes))
}

/// The demo checkout in Latvian, e-mail offers and phone calls given, the rest refused.
fn checkout_capture(config: &Config) -> Capture {
    let form = config.form("checkout").unwrap();
    let tree = view::choices(config, form, "lv", Some("lv"), "u1");
    let texts = view::purpose_texts(&tree);
    let given = ["email-offers", "phone-calls"];
    let purposes = texts
        .iter()
        .map(|(id, _)| PurposeEntry {
            id: id.clone(),
            version: config.purpose(id).unwrap().version,
            state: if given.contains(&id.as_str()) {
                State::Given
            } else {
                State::Refused
            },
            text_sha256: String::new(),
        })
        .collect();
    let record = ConsentRecord {
        id: record::record_id(1_763_782_620_123, [9; 10]),
        captured_at: 1_763_782_620_456,
        form: "checkout".into(),
        source: form.source,
        locale: "lv".into(),
        page_origin: "http://127.0.0.1:8080".into(),
        page_path: "/checkout.html".into(),
        notice_url: config.privacy_notice.url.clone(),
        notice_version: config.privacy_notice.version.clone(),
        config_sha256: sha256_hex(b"config"),
        widget: "0.1.0".into(),
        purposes,
        subjects: vec![],
    };
    let disclosures = vec![
        Disclosure {
            channel: Channel::Email,
            identifier: normalise_email(" Anna.Ozola@Example.LV").unwrap(),
            salt: [1; SALT_LEN],
        },
        Disclosure {
            channel: Channel::Phone,
            identifier: normalise_phone("2000 0000", "lv").unwrap(),
            salt: [2; SALT_LEN],
        },
    ];
    Capture::new(record, texts.into_iter().map(|(_, t)| t).collect(), disclosures)
}

/// What platform.js does with a sealable: returns the delivery body's record string.
fn seal_like_the_browser(sealable: &str) -> String {
    let sealable = json::parse(sealable).unwrap();
    let Json::Object(members) = &sealable else { panic!() };
    let get = |k: &str| members.iter().find(|(key, _)| key == k).map(|(_, v)| v).unwrap();
    let Json::Array(inputs) = get("inputs") else { panic!() };
    let digests: Vec<String> = inputs
        .iter()
        .map(|i| match i {
            Json::String(hex) => sha256_hex(&unhex(hex)),
            _ => panic!(),
        })
        .collect();
    let parts = parts_of(get("parts"));
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    use ed25519_dalek::Signer;
    let message = fill(&parts, &digests, None);
    let public_key = base64url(key.verifying_key().as_bytes());
    let value = base64url(&key.sign(message.as_bytes()).to_bytes());
    fill(&parts, &digests, Some(["Ed25519", &public_key, &value]))
}

fn parts_of(json: &Json) -> Vec<Part> {
    let Json::Array(items) = json else {
        panic!("parts are an array")
    };
    items
        .iter()
        .map(|item| match item {
            Json::String(text) => Part::Text(text.clone()),
            Json::Number(n) => match n.as_str() {
                "-1" => Part::Alg,
                "-2" => Part::PublicKey,
                "-3" => Part::Value,
                n => Part::Digest(n.parse().unwrap()),
            },
            Json::Array(_) => Part::Signature(parts_of(item)),
            _ => panic!("unexpected part {item:?}"),
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_sealed_capture_opens_and_says_what_was_chosen() {
    let config = demo();
    let capture = checkout_capture(&config);
    let bytes = seal_like_the_browser(&capture.sealable());
    assert!(jcs::is_canonical(&bytes), "{bytes}");
    let opened = record::open(bytes.as_bytes()).expect("the browser's record verifies");
    let given: Vec<_> = opened
        .record
        .purposes
        .iter()
        .filter(|p| p.state == State::Given)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(given, ["email-offers", "phone-calls"]);
    assert_eq!(opened.record.purposes.len(), 5, "refusals are recorded too");

    // Each text hash is the SHA-256 of the text displayed, as the collector can recompute
    // it from its own config.
    for (entry, text) in opened.record.purposes.iter().zip(&capture.texts) {
        assert_eq!(entry.text_sha256, sha256_hex(text.as_bytes()));
        assert!(text.contains(&config.purpose(&entry.id).unwrap().text_in("lv").unwrap().label));
    }
    // Commitments, never the contact itself (R10).
    assert!(!bytes.contains("anna") && !bytes.contains("37120000000"));
    let commitments: Vec<_> = opened
        .record
        .subjects
        .iter()
        .map(|s| (s.channel, s.commitment.clone()))
        .collect();
    let expected: Vec<_> = capture
        .disclosures
        .iter()
        .map(|d| (d.channel, sha256_hex(&d.committed_bytes())))
        .collect();
    assert_eq!(commitments, expected);
    assert_eq!(capture.disclosures[0].identifier, "anna.ozola@example.lv");
    assert_eq!(capture.disclosures[1].identifier, "+37120000000");
}

#[test]
fn with_nothing_granted_the_record_has_no_contact_data() {
    let config = demo();
    let mut capture = checkout_capture(&config);
    capture.disclosures.clear();
    capture.record.subjects.clear();
    for p in &mut capture.record.purposes {
        p.state = State::Refused;
    }
    let capture = Capture::new(capture.record, capture.texts, vec![]);
    let sealable = capture.sealable();
    assert!(sealable.starts_with(r#"{"disclosures":[],"#), "{sealable}");
    let bytes = seal_like_the_browser(&sealable);
    let opened = record::open(bytes.as_bytes()).unwrap();
    assert!(opened.record.subjects.is_empty());
    assert!(opened.record.purposes.iter().all(|p| p.state == State::Refused));
}

#[test]
fn the_parts_writer_is_canonical_json() {
    // The record writer writes members in JCS order by hand; the generic JCS writer agrees.
    let config = demo();
    let capture = checkout_capture(&config);
    let digests: Vec<String> = capture.digest_inputs().iter().map(|i| sha256_hex(i)).collect();
    let parts = capture.record.parts();
    for signature in [None, Some(["ES256", "AAAA", "BBBB"])] {
        let text = fill(&parts, &digests, signature);
        let reparsed = jcs::canonical(&json::parse(&text).unwrap()).unwrap();
        assert_eq!(text, reparsed);
    }
}

proptest! {
    #[test]
    fn base64url_agrees_with_base64ct(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        use base64ct::Encoding;
        prop_assert_eq!(base64url(&bytes), base64ct::Base64UrlUnpadded::encode_string(&bytes));
    }

    #[test]
    fn record_text_survives_any_string_content(origin_host in "[a-z]{1,10}", path in "/[^?#]{0,30}", notice in "\\PC{1,30}") {
        // Quotes, backslashes, control characters and non-ASCII in config strings stay
        // canonical and verifiable.
        let config = demo();
        let mut capture = checkout_capture(&config);
        capture.record.page_origin = format!("https://{origin_host}.example");
        capture.record.page_path = path;
        capture.record.notice_version = notice;
        let bytes = seal_like_the_browser(&capture.sealable());
        prop_assert!(record::open(bytes.as_bytes()).is_ok(), "{}", bytes);
    }
}

#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! A capture, sealed natively exactly as `src/courier.js` seals it in the browser (fill the
//! digest holes with SHA-256, sign the unsigned text, fill the signature holes), opens with
//! `record::open`, and says what the shopper chose.

#![cfg(feature = "verify")]

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use unticked_core::capture::{self, Assembled, Capture, Submission, SALT_LEN};
use unticked_core::config::{Channel, Config};
use unticked_core::jcs;
use unticked_core::json::{self, Json};
use unticked_core::record::{self, base64url, fill, Part, State};
use unticked_core::{compiled, view};

/// The config hash the test records name.
const CONFIG_SHA256: &str = "7f418f1865994815ea8857eb2480d690112f0fb7929e62936e9c882406c7d2c9";

fn demo() -> Config {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
    Config::from_json(&text).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    record::hex(&Sha256::digest(bytes))
}

/// What the demo checkout's page held at submit: e-mail offers and phone calls ticked by the
/// shopper, both contact fields filled in as typed.
fn checkout_submission<'a>(ticked: &'a [&'a str], by_shopper: &'a [&'a str]) -> Submission<'a> {
    Submission {
        id: "01a201ab-9952-7db1-b727-737f95dc0e73",
        captured_at: 1_763_782_620_456,
        page_origin: "http://127.0.0.1:8080",
        page_path: "/checkout.html",
        widget: "0.1.0",
        ticked,
        ticked_by_shopper: by_shopper,
        email: " Anna.Ozola@Example.LV",
        phone: "2000 0000",
        post: "",
        birthday_day: "",
        birthday_month: "",
    }
}

/// Salts 1, 2, 3… as the widget's random bytes would supply them.
fn counting_salts() -> impl FnMut() -> [u8; SALT_LEN] {
    let mut n = 0;
    move || {
        n += 1;
        [n; SALT_LEN]
    }
}

/// The demo checkout rendered in `locale` and submitted with `page`.
fn assemble_checkout(config: &Config, locale: &str, page: &Submission) -> Assembled {
    let compiled = compiled::compile(config, CONFIG_SHA256);
    let rendered = compiled.sheet("checkout", locale).unwrap();
    // The texts a record hashes are those the rows show.
    let shown = view::purpose_texts(&rendered.choices(Some(locale), "u1"));
    let listed: Vec<_> = rendered
        .sheet
        .purposes
        .iter()
        .map(|p| (p.id.clone(), p.text.clone()))
        .collect();
    assert_eq!(shown, listed);
    capture::assemble(&rendered.sheet, page, counting_salts())
}

/// The demo checkout in Latvian, e-mail offers and phone calls given, the rest refused.
fn checkout_capture(config: &Config) -> Capture {
    let both = ["email-offers", "phone-calls"];
    assemble_checkout(config, "lv", &checkout_submission(&both, &both)).capture
}

/// What src/courier.js does with a sealable: returns the delivery body's record string.
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
    capture::read_parts(json).expect("a sealable's parts")
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
    assert_eq!(opened.record.purposes.len(), 6, "refusals are recorded too");

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
    let capture = Capture::new(capture.record, capture.texts, vec![], None);
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

#[test]
fn the_birthday_and_the_postal_address_travel_only_for_a_purpose_given_that_needs_them() {
    let config = demo();
    let with = |ticked: &[&str]| {
        let mut page = checkout_submission(ticked, ticked);
        page.post = "Anna  Ozola, Brīvības iela 1, , LV-1010 Rīga";
        page.birthday_day = "7";
        page.birthday_month = "11";
        assemble_checkout(&config, "lv", &page).capture
    };
    let neither = with(&["email-offers"]);
    assert_eq!(neither.birthday, None, "R8: no birthday without the birthday purpose");
    assert!(neither.disclosures.iter().all(|d| d.channel != Channel::Post));
    let both = with(&["birthday-greetings", "catalogue-post"]);
    let birthday = both.birthday.clone().expect("the birthday travels beside");
    // Its own salt, after the contacts' (counting salts: e-mail 1, post 2, birthday 3).
    assert_eq!((birthday.value.as_str(), birthday.salt), ("--11-07", [3; SALT_LEN]));
    let post = both
        .disclosures
        .iter()
        .find(|d| d.channel == Channel::Post)
        .expect("the address is disclosed");
    assert_eq!(post.identifier, "Anna Ozola, Brīvības iela 1, LV-1010 Rīga");
    let salt = "03".repeat(SALT_LEN);
    assert!(both.sealable().starts_with(&format!(
        r#"{{"birthday":{{"salt":"{salt}","value":"--11-07"}},"disclosures":["#
    )));
    let mut no_contact = checkout_submission(&["birthday-greetings"], &["birthday-greetings"]);
    (no_contact.email, no_contact.birthday_day, no_contact.birthday_month) = ("", "7", "11");
    let capture = assemble_checkout(&config, "lv", &no_contact).capture;
    assert_eq!(capture.birthday, None, "no contact to keep it beside: not collected");
}

/// The birthday travels beside the record, never in it (R8, R10), yet the signed record
/// commits to it: SHA-256(salt ‖ `--MM-DD`), so a one-byte change in transit is found.
#[test]
fn the_signed_record_commits_to_the_birthday_beside_it() {
    let config = demo();
    let given = ["email-offers", "birthday-greetings"];
    let mut page = checkout_submission(&given, &given);
    (page.birthday_day, page.birthday_month) = ("23", "1");
    let capture = assemble_checkout(&config, "lv", &page).capture;
    let birthday = capture.birthday.clone().unwrap();
    let bytes = seal_like_the_browser(&capture.sealable());
    assert!(jcs::is_canonical(&bytes), "{bytes}");
    assert!(!bytes.contains("01-23"), "the signed record holds no birthday");
    let opened = record::open(bytes.as_bytes()).expect("the browser's record verifies");
    assert_eq!(opened.record.beside.len(), 1);
    assert_eq!(opened.record.beside[0].field.as_str(), "birthday");
    let commitment = &opened.record.beside[0].commitment;
    assert_eq!(
        *commitment,
        sha256_hex(&capture::committed_bytes(&birthday.salt, "--01-23"))
    );
    assert_ne!(
        *commitment,
        sha256_hex(&capture::committed_bytes(&birthday.salt, "--11-23"))
    );
    // The text hashes and the subjects still come after it, in their holes.
    assert_eq!(
        opened.record.purposes[0].text_sha256,
        sha256_hex(capture.texts[0].as_bytes())
    );
    assert_eq!(
        opened.record.subjects[0].commitment,
        sha256_hex(&capture.disclosures[0].committed_bytes())
    );
}

proptest! {
    #[test]
    fn base64url_agrees_with_base64ct(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        use base64ct::Encoding;
        prop_assert_eq!(base64url(&bytes), base64ct::Base64UrlUnpadded::encode_string(&bytes));
    }

    #[test]
    fn record_text_survives_any_string_content(origin_host in "[a-z]{1,10}", path in "/[^?#]{0,30}", notice in "\\PC{1,16}") {
        // Quotes, backslashes, control characters and non-ASCII in config strings stay
        // canonical and verifiable (a notice version is at most 64 bytes: 16 characters
        // of up to four).
        let config = demo();
        let mut capture = checkout_capture(&config);
        capture.record.page_origin = format!("https://{origin_host}.example");
        capture.record.page_path = path;
        capture.record.notice_version = notice;
        let bytes = seal_like_the_browser(&capture.sealable());
        prop_assert!(record::open(bytes.as_bytes()).is_ok(), "{}", bytes);
    }
}

#[test]
fn only_ticks_by_the_shopper_are_given_and_script_ticks_are_named() {
    let config = demo();
    let ticked = ["email-offers", "sms-offers", "birthday-greetings"];
    // The shopper ticked e-mail offers and phone calls, then unticked phone calls; a script
    // ticked SMS and birthday greetings.
    let by_shopper = ["email-offers"];
    let assembled = assemble_checkout(&config, "en", &checkout_submission(&ticked, &by_shopper));
    let states: Vec<(&str, State)> = assembled
        .capture
        .record
        .purposes
        .iter()
        .map(|p| (p.id.as_str(), p.state))
        .collect();
    assert_eq!(
        states,
        [
            ("email-offers", State::Given),
            ("sms-offers", State::Refused),
            ("phone-calls", State::Refused),
            ("catalogue-post", State::Refused),
            ("birthday-greetings", State::Refused),
            ("personalised-offers", State::Refused),
        ]
    );
    assert_eq!(assembled.untrusted, ["sms-offers", "birthday-greetings"]);
    // Only the granted channel's contact travels (R8): e-mail, not the phone.
    let channels: Vec<Channel> = assembled.capture.disclosures.iter().map(|d| d.channel).collect();
    assert_eq!(channels, [Channel::Email]);
    assert_eq!(assembled.capture.disclosures[0].identifier, "anna.ozola@example.lv");
}

#[test]
fn sms_and_calls_each_disclose_the_phone_with_their_own_salt() {
    let config = demo();
    let both = ["sms-offers", "phone-calls"];
    let capture = assemble_checkout(&config, "lv", &checkout_submission(&both, &both)).capture;
    let disclosed: Vec<(Channel, &str, u8)> = capture
        .disclosures
        .iter()
        .map(|d| (d.channel, d.identifier.as_str(), d.salt[0]))
        .collect();
    assert_eq!(
        disclosed,
        [(Channel::Sms, "+37120000000", 1), (Channel::Phone, "+37120000000", 2)]
    );
}

#[test]
fn a_granted_channel_without_a_usable_contact_is_given_without_one() {
    let config = demo();
    let email = ["email-offers"];
    let page = Submission {
        email: "not an address",
        ..checkout_submission(&email, &email)
    };
    let capture = assemble_checkout(&config, "en", &page).capture;
    assert_eq!(capture.record.purposes[0].state, State::Given);
    assert!(capture.disclosures.is_empty() && capture.record.subjects.is_empty());
}
proptest! {
    /// What the widget does at submit does not depend on the choices (R3, Art. 7(4)): for
    /// any ticks, flipping any one still captures a record, of the same form and purposes,
    /// differing in that purpose's state only. (That the widget never blocks a submit is
    /// shown in the browser: tests/e2e/records.test.mjs and hostile.test.mjs.)
    #[test]
    fn flipping_a_choice_changes_that_purpose_and_nothing_else(ticks in proptest::collection::vec(any::<bool>(), 6), flip in 0usize..6) {
        let config = demo();
        let ids = ["email-offers", "sms-offers", "phone-calls", "catalogue-post", "birthday-greetings", "personalised-offers"];
        let chosen = |ticks: &[bool]| ids.iter().zip(ticks).filter(|(_, t)| **t).map(|(id, _)| *id).collect::<Vec<_>>();
        let before = chosen(&ticks);
        let mut flipped = ticks.clone();
        flipped[flip] = !flipped[flip];
        let after = chosen(&flipped);
        let a = assemble_checkout(&config, "lv", &checkout_submission(&before, &before)).capture.record;
        let b = assemble_checkout(&config, "lv", &checkout_submission(&after, &after)).capture.record;
        prop_assert_eq!(a.purposes.len(), 6);
        prop_assert_eq!(b.purposes.len(), 6);
        for (i, (x, y)) in a.purposes.iter().zip(&b.purposes).enumerate() {
            prop_assert_eq!(&x.id, &y.id);
            prop_assert_eq!(x.state == y.state, i != flip, "purpose {}", x.id);
            prop_assert_eq!(y.state == State::Given, flipped[i]);
        }
        prop_assert_eq!((&a.form, a.source, &a.locale), (&b.form, b.source, &b.locale));
    }
}

//! Native tests of the wasm's exports, on the demo config compiled as `unticked build` does:
//! what `src/widget.js` calls, with good arguments and with each kind of bad one. The same
//! calls through the shipped wasm and its glue are in `tests/wasm/exports.test.mjs`.

use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, vec};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};
use unticked_core::compiled::{self, sheet_name, Compiled};
use unticked_core::config::Config;
use unticked_core::json::{self, Json};
use unticked_core::record::{self, base64url, fill, Part, State};

use super::*;

const SHA: &str = "a767fd7d2c09a572d31f265e2c8e55e92e7d905bfa578df060c81e5b8c62cafe";

fn demo() -> Compiled {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/www/consent.json")).unwrap();
    compiled::compile(&Config::from_json(&text).unwrap(), SHA)
}

/// The compiled file `name` of the demo.
fn file(name: &str) -> String {
    demo().files().into_iter().find(|(n, _)| n == name).unwrap().1
}

fn placement(kind: &str, locale: &str) -> String {
    format!(r#"{{"configSha256":"{SHA}","kind":"{kind}","locale":"{locale}","pageLang":"{locale}"}}"#)
}

fn checkout(locale: &str) -> Form {
    Form::mount(&file(&sheet_name("checkout", locale)), &placement("checkout", locale)).unwrap()
}

/// What the form held: e-mail offers ticked by the shopper, an address typed.
fn held(edit: impl FnOnce(&mut Vec<(&'static str, String)>)) -> String {
    let mut members: Vec<(&str, String)> = vec![
        ("id", "\"0190f5d2-7a1c-7def-8abc-0123456789ab\"".into()),
        ("ticked", "[\"email-offers\"]".into()),
        ("byShopper", "[\"email-offers\"]".into()),
        ("email", "\" Jan@Example.pl \"".into()),
        ("phone", "\"\"".into()),
        ("post", "\"\"".into()),
        ("birthdayDay", "\"\"".into()),
        ("birthdayMonth", "\"\"".into()),
        ("origin", "\"https://shop.example\"".into()),
        ("path", "\"/checkout.html\"".into()),
        ("now", "1763782620000".into()),
    ];
    edit(&mut members);
    let inner: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

const RANDOM: [u8; SALTS * SALT_LEN] = [7; SALTS * SALT_LEN];

/// Seals a capture's sealable as `src/courier.js` does, and opens the record.
fn seal_and_open(sealable: &Json) -> record::OpenedRecord {
    let Json::Object(members) = sealable else {
        panic!("a sealable is an object")
    };
    let get = |k: &str| &members.iter().find(|(key, _)| key == k).unwrap().1;
    let Json::Array(inputs) = get("inputs") else { panic!() };
    let digests: Vec<String> = inputs
        .iter()
        .map(|i| match i {
            Json::String(hex) => record::hex(&Sha256::digest(record::unhex(hex).unwrap())),
            _ => panic!(),
        })
        .collect();
    let parts = parts_of(get("parts"));
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let message = fill(&parts, &digests, None);
    let signature = base64url(&key.sign(message.as_bytes()).to_bytes());
    let bytes = fill(
        &parts,
        &digests,
        Some(["Ed25519", &base64url(key.verifying_key().as_bytes()), &signature]),
    );
    record::open(bytes.as_bytes()).unwrap()
}

fn parts_of(json: &Json) -> Vec<Part> {
    capture::read_parts(json).expect("a sealable's parts")
}

fn member<'a>(json: &'a Json, key: &str) -> &'a Json {
    let Json::Object(members) = json else {
        panic!("{json:?} is no object")
    };
    &members
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

#[test]
fn the_site_names_the_endpoint_and_chooses_each_forms_locale() {
    let site = Site::open(&file(compiled::SITE_FILE), SHA).unwrap();
    assert_eq!(site.endpoint(), "/v1/records");
    let choice = json::parse(&site.choose("checkout", "lv-LV fi en").unwrap()).unwrap();
    assert_eq!(member(&choice, "locale"), &Json::String("lv".into()));
    assert_eq!(member(&choice, "sheet"), &Json::String("checkout.lv.json".into()));
    let fallback = json::parse(&site.choose("newsletter", "fi").unwrap()).unwrap();
    assert_eq!(member(&fallback, "sheet"), &Json::String("newsletter.en.json".into()));
    let unknown = site.choose("contest", "en").unwrap_err();
    assert_eq!(unknown.code, "form-unknown");
    assert!(unknown.message.contains("checkout newsletter"), "{}", unknown.message);
}

#[test]
fn a_site_of_another_config_or_format_is_refused() {
    let text = file(compiled::SITE_FILE);
    assert_eq!(
        Site::open(&text, &"0".repeat(64)).unwrap_err().code,
        "compiled-mismatch"
    );
    let other_format = text.replace("\"format\":1", "\"format\":2");
    assert_eq!(Site::open(&other_format, SHA).unwrap_err().code, "compiled-format");
    let more = text.replace("\"format\":1", "\"format\":1,\"extra\":true");
    let e = Site::open(&more, SHA).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.contains("unknown field \"extra\"")),
        ("compiled-invalid", true),
        "{}",
        e.message
    );
}

#[test]
fn a_mounted_form_says_its_purposes_texts_contact_fields_and_language() {
    let form = checkout("lv");
    let view = json::parse(&form.view()).unwrap();
    assert_eq!(
        member(&view, "lang"),
        &Json::Bool(false),
        "the page speaks Latvian already"
    );
    assert_eq!(
        member(member(&view, "contact"), "email"),
        &Json::String("#email".into())
    );
    let Json::Array(purposes) = member(&view, "purposes") else {
        panic!()
    };
    assert_eq!(purposes.len(), 6);
    let rendered = demo();
    let sheet = &rendered.sheet("checkout", "lv").unwrap().sheet;
    assert_eq!(
        member(&purposes[0], "text"),
        &Json::String(sheet.purposes[0].text.clone())
    );
    let english_page = Form::mount(
        &file("checkout.lv.json"),
        &placement("checkout", "lv").replace("\"pageLang\":\"lv\"", "\"pageLang\":\"en-GB\""),
    )
    .unwrap();
    assert_eq!(
        member(&json::parse(&english_page.view()).unwrap(), "lang"),
        &Json::Bool(true)
    );
}

#[test]
fn a_sheet_with_an_unknown_value_renders_nothing_and_names_it() {
    // Defect 2 of issue 13: a channel typo rendered as e-mail, a safeguard typo as standard
    // contractual clauses. Now nothing is defaulted.
    let text = file("checkout.en.json").replacen("\"channel\":\"sms\"", "\"channel\":\"smss\"", 1);
    let e = Form::mount(&text, &placement("checkout", "en")).unwrap_err();
    assert_eq!(e.code, "compiled-invalid");
    assert!(
        e.message.contains("/purposes/1/channel: unknown value \"smss\""),
        "{}",
        e.message
    );
    // The birthday field's words misnamed: missing, and an unknown member.
    let misnamed = file("checkout.en.json").replacen("\"birthday\":{", "\"birthdays\":{", 1);
    let e = Form::mount(&misnamed, &placement("checkout", "en")).unwrap_err();
    assert!(e.message.contains("unknown field \"birthdays\""), "{}", e.message);
    let other = Form::mount(&file("checkout.en.json"), &placement("checkout", "lv")).unwrap_err();
    assert_eq!(other.code, "compiled-mismatch");
}

#[test]
fn a_placement_without_a_member_or_with_one_more_is_refused() {
    let sheet = file("checkout.en.json");
    let without = placement("checkout", "en").replace(",\"pageLang\":\"en\"", "");
    let e = Form::mount(&sheet, &without).unwrap_err();
    assert_eq!(e.code, "bad-argument");
    assert!(e.message.contains("missing field \"pageLang\""), "{}", e.message);
    let number = placement("checkout", "en").replace("\"pageLang\":\"en\"", "\"pageLang\":1");
    assert!(Form::mount(&sheet, &number).unwrap_err().message.contains("/pageLang"));
    assert_eq!(Form::mount(&sheet, "not json").unwrap_err().code, "bad-argument");
}

#[test]
fn a_capture_gives_only_what_the_shopper_ticked_and_opens_as_a_record() {
    let form = checkout("pl");
    let answer = json::parse(&form.capture(&held(|_| {}), &RANDOM).unwrap()).unwrap();
    assert_eq!(member(&answer, "untrusted"), &Json::Array(vec![]));
    let opened = seal_and_open(member(&answer, "sealable"));
    let record = &opened.record;
    assert_eq!(
        (
            record.form.as_str(),
            record.locale.as_str(),
            record.config_sha256.as_str()
        ),
        ("checkout", "pl", SHA)
    );
    let given: Vec<&str> = record
        .purposes
        .iter()
        .filter(|p| p.state == State::Given)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(given, ["email-offers"]);
    assert_eq!(record.purposes.len(), 6, "every purpose shown is in the record");
    assert_eq!(record.subjects.len(), 1, "the e-mail address, as a commitment");
    assert_eq!(record.widget, VERSION);
}

#[test]
fn a_tick_that_was_not_the_shoppers_is_not_consent() {
    let form = checkout("en");
    let script_ticked = held(|m| m[2].1 = "[]".into());
    let answer = json::parse(&form.capture(&script_ticked, &RANDOM).unwrap()).unwrap();
    assert_eq!(
        member(&answer, "untrusted"),
        &Json::Array(vec![Json::String("email-offers".into())])
    );
    let opened = seal_and_open(member(&answer, "sealable"));
    assert!(opened.record.purposes.iter().all(|p| p.state == State::Refused));
}

#[test]
fn a_capture_missing_any_member_is_an_error_not_an_empty_answer() {
    // Defect 1 of issue 13: one argument fewer returned "" and the record was dropped.
    let form = checkout("en");
    for i in 0..11 {
        let mut name = "";
        let text = held(|m| name = m.remove(i).0);
        let e = form.capture(&text, &RANDOM).unwrap_err();
        assert_eq!(e.code, "bad-argument", "{name}");
        assert!(
            e.message.contains(&format!("missing field \"{name}\"")),
            "{}",
            e.message
        );
    }
    let extra = held(|m| m.push(("handle", "0".into())));
    assert!(form
        .capture(&extra, &RANDOM)
        .unwrap_err()
        .message
        .contains("unknown field \"handle\""));
}

#[test]
fn a_capture_with_wrong_values_is_refused_with_their_names() {
    let form = checkout("en");
    let cases: [(usize, &str, &str, &str); 5] = [
        (1, "[\"email-offers\", 3]", "bad-argument", "/ticked/1"),
        (1, "[\"lottery\"]", "capture-unknown-purpose", "\"lottery\""),
        (10, "\"1763782620000\"", "bad-argument", "/now"),
        (10, "0", "bad-argument", "/now"),
        (0, "null", "bad-argument", "/id"),
    ];
    for (i, value, code, names) in cases {
        let text = held(|m| m[i].1 = value.to_string());
        let e = form.capture(&text, &RANDOM).unwrap_err();
        assert_eq!(e.code, code, "{value}");
        assert!(e.message.contains(names), "{value}: {}", e.message);
    }
    let short = form
        .capture(&held(|_| {}), &RANDOM[..SALTS * SALT_LEN - 1])
        .unwrap_err();
    assert_eq!(short.code, "capture-randomness");
}

#[test]
fn the_birthday_travels_beside_the_record_only_with_a_contact_and_committed_to() {
    let form = checkout("en");
    let text = held(|m| {
        m[1].1 = "[\"birthday-greetings\"]".into();
        m[2].1 = "[\"birthday-greetings\"]".into();
        m[6].1 = "\"7\"".into();
        m[7].1 = "\"11\"".into();
    });
    let answer = json::parse(&form.capture(&text, &RANDOM).unwrap()).unwrap();
    let sealable = member(&answer, "sealable");
    assert_eq!(
        member(member(sealable, "birthday"), "value"),
        &Json::String("--11-07".into())
    );
    let opened = seal_and_open(sealable);
    assert_eq!(opened.record.beside.len(), 1, "the record commits to the birthday");
}

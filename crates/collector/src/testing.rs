//! Test helpers shared by the collector's unit tests: the demo config, and deliveries
//! captured and sealed natively exactly as the widget does in the browser.

use unticked_core::capture::{self, Capture, Submission, SALT_LEN};
use unticked_core::config::Config;
use unticked_core::record;

/// The clock, ms since the epoch: captures are made now, as the collector checks their time.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The demo config's text, www/consent.json.
pub fn demo_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap()
}

/// The SHA-256 by which records made under the demo config name it.
pub fn demo_sha256() -> String {
    crate::compile::config_sha256(&demo_text())
}

pub fn demo_config() -> Config {
    Config::from_json(&demo_text()).unwrap()
}

/// The demo config's text with the Polish label of e-mail offers (the one [`capture`]
/// shows) reworded, its version unchanged: a correction (docs/rules.md, "Config history").
pub fn corrected_text() -> String {
    let text = demo_text();
    let (label, corrected) = ("ofert i nowości e-mailem", "ofert oraz nowości e-mailem");
    assert_eq!(text.matches(label).count(), 1, "the demo's Polish e-mail label");
    text.replace(label, corrected)
}

/// The demo checkout in Polish with `given` ticked by the shopper, assembled by the widget's
/// own code (`capture::assemble`) from the demo config's sheet, which the record names by
/// the config's hash ([`demo_sha256`]). `config` is the demo config, or the demo config
/// with other `origins`, which neither the sheet nor the record depends on: anything else
/// needs [`capture_under`], with its own hash.
pub fn capture(config: &Config, given: &[&str]) -> Capture {
    capture_from(config, given, "jan@example.pl")
}

/// [`capture`] with another e-mail address typed into the form.
pub fn capture_from(config: &Config, given: &[&str], email: &str) -> Capture {
    let demo = Config {
        origins: config.origins.clone(),
        ..demo_config()
    };
    assert!(
        *config == demo,
        "a capture under another config than the demo's needs its hash: capture_under"
    );
    capture_made(config, &demo_sha256(), given, email)
}

/// [`capture`] under `config`, whose text hashes to `config_sha256`.
pub fn capture_under(config: &Config, config_sha256: &str, given: &[&str]) -> Capture {
    capture_made(config, config_sha256, given, "jan@example.pl")
}

fn capture_made(config: &Config, config_sha256: &str, given: &[&str], email: &str) -> Capture {
    let compiled = unticked_core::compiled::compile(config, config_sha256);
    let sheet = &compiled.sheet("checkout", "pl").unwrap().sheet;
    // A fresh id per capture, as the widget makes one per submit.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut random = [0u8; 10];
    random[6..].copy_from_slice(&n.to_be_bytes());
    let id = record::record_id(1_763_782_620_000, random);
    let page = Submission {
        id: &id,
        captured_at: now_ms(),
        page_origin: "http://127.0.0.1:8080",
        page_path: "/checkout.html",
        widget: "0.1.0",
        ticked: given,
        ticked_by_shopper: given,
        email,
        phone: "+48 601 234 567",
        post: "",
        birthday_day: "7",
        birthday_month: "11",
    };
    capture::assemble(sheet, &page, || [5; SALT_LEN]).capture
}

/// Seals as src/courier.js does, with the key made from `key_seed`; returns the delivery body.
pub fn seal(capture: &Capture, key_seed: u8) -> String {
    crate::bench::seal(capture, &ed25519_dalek::SigningKey::from_bytes(&[key_seed; 32]))
}

/// The app's settings in tests: the test captures' page, `http://127.0.0.1:8080`, is the
/// collector's own public origin (as `serve` makes it when listening there), and the config
/// served is the demo's, under its hash.
pub fn settings() -> crate::serve::Settings {
    crate::serve::Settings {
        public_origins: vec!["http://127.0.0.1:8080".into()],
        config_sha256: demo_sha256(),
        ..Default::default()
    }
}

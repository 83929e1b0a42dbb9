//! Evidence bundles (issue 17) end to end: a real `unticked serve` (SQLite, or PostgreSQL
//! with `UNTICKED_TEST_BACKEND=postgres`) hands out a subject's and a record's bundle over
//! real HTTP behind the admin token; the real `unticked verify --bundle` checks them offline,
//! with no database, and names the part a changed byte is in.

mod common;

use common::{post_demo_records, run, serve_demo, unticked, TempFile};
use std::time::Duration;

const TOKEN: &str = "bundle-test-admin-token-0123456789abcdef";

/// Long enough for a debug build on a busy machine; a hang fails.
const LIMIT: Duration = Duration::from_secs(60);

fn admin(addr: &str, method: &str, path: &str, body: &str) -> common::Answer {
    common::request(addr, method, path, Some(TOKEN), "application/json", body)
}

/// `unticked verify --bundle FILE [--public-key KEY]`: exit code and stdout + stderr.
fn verify(file: &TempFile, key: Option<&str>) -> (i32, String) {
    let mut command = unticked();
    command.arg("verify").arg("--bundle").arg(file.path());
    if let Some(key) = key {
        command.args(["--public-key", key]);
    }
    let out = run(&mut command, LIMIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `bundle` with one byte changed: the first letter or digit at or after `offset` bytes past
/// the first `marker`, replaced by another letter or digit (so the file stays JSON in its
/// canonical form, and only what the byte means changes).
fn flip_after(bundle: &str, marker: &str, offset: usize) -> String {
    let start = bundle
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the bundle"))
        + marker.len()
        + offset;
    let mut bytes = bundle.as_bytes().to_vec();
    let at = (start..bytes.len())
        .find(|&i| bytes[i].is_ascii_alphanumeric())
        .expect("a letter or digit");
    bytes[at] = match bytes[at] {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        b => b + 1,
    };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn bundles_are_served_behind_the_token_and_verified_offline_naming_what_was_changed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let server = serve_demo(&db, &["--daily-quota", "0"], &[("UNTICKED_ADMIN_TOKEN", TOKEN)]);
    let addr = server.addr.clone();
    post_demo_records(&addr, 6, &dir.path().join("acked.txt"));

    // A subject who gave e-mail offers at checkout, and the record that says so.
    let export = admin(&addr, "GET", "/v1/admin/export", "");
    assert_eq!(export.status, 200, "{}", export.body);
    let (email, given_in) = export
        .body
        .lines()
        .find_map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            let email = line["disclosures"][0]["identifier"].as_str()?.to_string();
            let record: serde_json::Value = serde_json::from_str(line["record"].as_str()?).unwrap();
            Some((email, record["id"].as_str()?.to_string()))
        })
        .expect("a record that names its subject");
    // They unsubscribe (RFC 8058 one-click): a second record, signed by the collector.
    let who = serde_json::json!({"identifier": email, "channel": "email"}).to_string();
    let links = admin(&addr, "POST", "/v1/admin/links", &who);
    assert_eq!(links.status, 200, "{}", links.body);
    let links: serde_json::Value = serde_json::from_str(&links.body).unwrap();
    let unsubscribe = links["unsubscribe"].as_str().unwrap();
    let path = &unsubscribe[unsubscribe.find("/unsubscribe/").unwrap()..];
    let answer = common::request(
        &addr,
        "POST",
        path,
        None,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click",
    );
    assert!(answer.status < 300, "{} {}", answer.status, answer.body);

    // The subject's bundle: only with the token; without contacts unless asked.
    let body = serde_json::json!({ "identifier": email }).to_string();
    let refused = common::request(
        &addr,
        "POST",
        "/v1/admin/subjects/bundle",
        None,
        "application/json",
        &body,
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let subject = admin(&addr, "POST", "/v1/admin/subjects/bundle", &body);
    assert_eq!(subject.status, 200, "{}", subject.body);
    assert!(
        subject.head.contains("content-type: application/json"),
        "{}",
        subject.head
    );
    assert!(
        subject
            .head
            .contains("content-disposition: attachment; filename=\"unticked-evidence-subject-"),
        "{}",
        subject.head
    );
    let (local, _) = email.split_once('@').unwrap();
    assert!(!subject.head.contains(local), "no contact in a file name");
    assert!(
        !subject.body.contains(&email) && !subject.body.contains(local),
        "no contact data"
    );
    let file = TempFile::new("subject-bundle", &subject.body);

    // Pinned to the key the collector printed at start: clean, a line per record.
    let (code, out) = verify(&file, Some(&server.key));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("record {given_in} ")), "{out}");
    assert!(
        out.contains("signed by the browser's key") && out.contains("signed by the collector's key"),
        "{out}"
    );
    assert!(
        out.contains("2 records (subject)") && out.contains("(the pinned key): clean"),
        "{out}"
    );
    assert!(out.contains("contacts left out"), "{out}");
    // Unpinned, it still checks, and says what that leaves open.
    let (code, out) = verify(&file, None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NOT pinned") && out.contains("--public-key"), "{out}");
    // Another collector's key: not this collector's bundle.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let other = unticked_core::record::base64url(other.as_bytes());
    let (code, out) = verify(&file, Some(&other));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pinned key mismatch"), "{out}");

    // One byte changed, in each of several parts: exit 1, the part named.
    for (marker, offset, part) in [
        (r#""text":""#, 2, "text hash"),
        (r#""manifest":""#, 40, "manifest"),
        (r#""latest_inclusion":[""#, 3, "latest-checkpoint inclusion"),
        (r#""leaf_hash":""#, 10, "receipt"),
        (r#""inclusion":[""#, 5, "receipt inclusion"),
        (r#""made_at":"#, 0, "bundle signature"),
    ] {
        let changed = TempFile::new("changed-bundle", &flip_after(&subject.body, marker, offset));
        let (code, out) = verify(&changed, Some(&server.key));
        assert_eq!(code, 1, "{marker}: {out}");
        assert!(out.contains(part), "{marker}: {part} not named: {out}");
    }
    let latest = subject.body.find(r#""latest":{"#).unwrap();
    let signature = latest + subject.body[latest..].find(r#""signature":""#).unwrap();
    let mut changed = subject.body.clone();
    changed.replace_range(
        signature..,
        &flip_after(&subject.body[signature..], r#""signature":""#, 4),
    );
    let (code, out) = verify(&TempFile::new("changed-bundle", &changed), Some(&server.key));
    assert_eq!((code, out.contains("latest checkpoint signature")), (1, true), "{out}");

    // With contacts: the address is in it, and hashes to the records' commitments.
    let body = serde_json::json!({ "identifier": email, "contacts": true }).to_string();
    let with = admin(&addr, "POST", "/v1/admin/subjects/bundle", &body);
    assert_eq!(with.status, 200, "{}", with.body);
    assert!(with.body.contains(&email));
    let file = TempFile::new("subject-contacts", &with.body);
    let (code, out) = verify(&file, Some(&server.key));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("1 contact matches its commitment").count(), 2, "{out}");
    let changed = TempFile::new("changed-contact", &flip_after(&with.body, r#""identifier":""#, 0));
    let (code, out) = verify(&changed, Some(&server.key));
    assert_eq!((code, out.contains("contact commitment")), (1, true), "{out}");

    // One record's bundle, by id; `?contacts=true` for its disclosures.
    let record = admin(&addr, "GET", &format!("/v1/admin/records/{given_in}/bundle"), "");
    assert_eq!(record.status, 200, "{}", record.body);
    assert!(
        record
            .head
            .contains(&format!("filename=\"unticked-evidence-{given_in}.json\"")),
        "{}",
        record.head
    );
    assert!(!record.body.contains(&email));
    let (code, out) = verify(&TempFile::new("record-bundle", &record.body), Some(&server.key));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 records (record)"), "{out}");
    let record = admin(
        &addr,
        "GET",
        &format!("/v1/admin/records/{given_in}/bundle?contacts=true"),
        "",
    );
    assert!(record.body.contains(&email));
    let (code, out) = verify(&TempFile::new("record-contacts", &record.body), Some(&server.key));
    assert_eq!(
        (code, out.contains("1 contact matches its commitment")),
        (0, true),
        "{out}"
    );
    let changed = flip_after(&record.body, r#""bytes":""#, 40);
    let (code, out) = verify(&TempFile::new("changed-record", &changed), Some(&server.key));
    assert_eq!((code, out.contains("record bytes")), (1, true), "{out}");
    let unauthorised = common::request(
        &addr,
        "GET",
        &format!("/v1/admin/records/{given_in}/bundle"),
        None,
        "application/json",
        "",
    );
    assert_eq!(unauthorised.status, 401);

    // Nothing there: the API's JSON 404.
    let missing = admin(
        &addr,
        "GET",
        "/v1/admin/records/0190e5a0-0000-7000-8000-000000000000/bundle",
        "",
    );
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains(r#""code":"not-found""#), "{}", missing.body);
    let nobody = admin(
        &addr,
        "POST",
        "/v1/admin/subjects/bundle",
        r#"{"identifier":"nobody@example.lv"}"#,
    );
    assert_eq!(nobody.status, 404);
    assert!(nobody.body.contains(r#""code":"unknown-subject""#), "{}", nobody.body);

    // Cannot run: exit 2.
    let (code, out) = verify(&TempFile::new("not-a-bundle", r#"{"records":[]}"#), None);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not an evidence bundle"), "{out}");
    let gone = TempFile::new("gone", "");
    let gone_path = gone.path().to_path_buf();
    drop(gone);
    let out = run(unticked().arg("verify").arg("--bundle").arg(&gone_path), LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let (code, out) = verify(&file, Some("not a key"));
    assert_eq!(code, 2, "{out}");
}

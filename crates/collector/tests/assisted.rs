//! Consent given on the phone (issue 15, item 5), against the real `unticked serve` over
//! TCP: the staff token and only it records an assisted consent; the admin token does not,
//! and the staff token opens no admin endpoint; bad input is refused with its named code;
//! the record is signed by the collector, marked assisted, verifies with `unticked verify`,
//! carries the SHA-256 of the very texts the config shows, and the subject's look-up shows
//! the purposes given with source `phone`.

mod common;

use common::{root, serve_demo, unticked, Served};
use sha2::{Digest, Sha256};

const ADMIN: &str = "assisted-test-admin-token-0123456789";
const STAFF: &str = "assisted-test-staff-token-9876543210";

fn serve(db: &std::path::Path) -> Served {
    serve_demo(
        db,
        &["--daily-quota", "0"],
        &[("UNTICKED_ADMIN_TOKEN", ADMIN), ("UNTICKED_STAFF_TOKEN", STAFF)],
    )
}

/// One HTTP/1.1 request with `token` as its bearer (none when empty): (status, body).
fn http(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let token = Some(token).filter(|t| !t.is_empty());
    let answer = common::request(addr, method, path, token, "application/json", body);
    (answer.status, answer.body)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn code(body: &str) -> String {
    json(body)["code"].as_str().unwrap_or("").to_string()
}

/// Anna, on the phone in Latvian: yes to offers by e-mail, no to birthday greetings.
fn annas_call() -> serde_json::Value {
    serde_json::json!({
        "identifier": " Anna.Ozola@Example.LV ",
        "channel": "email",
        "purposes": ["email-offers"],
        "refused": ["birthday-greetings"],
        "staff": "Līga K. (call centre, Rīga)",
        "recording": "calls/2026-12-02/0042.opus",
        "locale": "lv",
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_staff_token_records_a_phone_consent_that_verifies_with_the_texts_read_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let served = serve(&db);
    let addr = served.addr.as_str();

    // The script: what the agent reads out, in Latvian.
    let (status, script) = http(addr, "GET", "/v1/admin/assisted?locale=lv", STAFF, "");
    assert_eq!(status, 200, "{script}");
    let script = json(&script);
    let read_out = |id: &str| {
        script["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {script}"))
            .clone()
    };
    let offers = read_out("email-offers");
    assert_eq!(offers["channel"], "email");
    // The config's own words, in the locale asked for.
    let config = json(&std::fs::read_to_string(root().join("www/consent.json")).unwrap());
    let label = config["purposes"][0]["text"]["lv"]["label"].as_str().unwrap();
    assert!(offers["text"].as_str().unwrap().contains(label), "{offers}");

    let (status, answer) = http(addr, "POST", "/v1/admin/assisted", STAFF, &annas_call().to_string());
    assert_eq!(status, 201, "{answer}");
    let answer = json(&answer);
    let id = answer["id"].as_str().unwrap().to_string();
    assert_eq!(
        answer["recorded"],
        serde_json::json!([{"id": "email-offers", "state": "given"}, {"id": "birthday-greetings", "state": "refused"}])
    );

    // The stored record: the collector's signature, source phone, the staff member and the
    // recording, the purposes at their current versions.
    let (status, stored) = http(addr, "GET", &format!("/v1/records/{id}"), "", "");
    assert_eq!(status, 200, "{stored}");
    let bytes = json(&stored)["record"].as_str().unwrap().to_string();
    let record = json(&bytes);
    assert_eq!(record["signer"], "collector");
    assert_eq!(record["source"], "phone");
    assert_eq!(record["form"], "preferences");
    assert_eq!(record["locale"], "lv");
    assert_eq!(
        record["assisted"],
        serde_json::json!({"staff": "Līga K. (call centre, Rīga)", "recording": "calls/2026-12-02/0042.opus"})
    );
    assert!(!bytes.contains("anna"), "no contact in the record itself (R10)");
    assert_eq!(record["subjects"][0]["channel"], "email");
    assert_eq!(
        record["signature"]["public_key"], served.key,
        "signed with the collector's key"
    );

    // Each text hash is the SHA-256 of the text the compiled config shows in Latvian (the
    // sheet the widget would render), computed here independently, and the script's too.
    let sha = record["config_sha256"].as_str().unwrap();
    let sheet = root().join(format!("www/pkg/c/{sha}/preferences.lv.json"));
    let sheet = json(&std::fs::read_to_string(&sheet).unwrap_or_else(|e| panic!("{}: {e}", sheet.display())));
    for purpose in record["purposes"].as_array().unwrap() {
        let id = purpose["id"].as_str().unwrap();
        let shown = sheet["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap();
        let text = shown["text"].as_str().unwrap();
        let expected = hex(&Sha256::digest(text.as_bytes()));
        assert_eq!(purpose["text_sha256"], expected.as_str(), "{id}");
        assert_eq!(
            read_out(id)["text_sha256"],
            expected.as_str(),
            "{id}: the script's hash"
        );
        assert_eq!(
            read_out(id)["text"],
            text,
            "{id}: the script reads out the sheet's text"
        );
        let version = config["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap()["version"]
            .clone();
        assert_eq!(purpose["version"], version, "{id}: the current version");
    }

    // The subject's look-up (admin token) shows the consent given on the phone.
    let who = r#"{"identifier":"anna.ozola@example.lv"}"#;
    let (status, found) = http(addr, "POST", "/v1/admin/subjects", ADMIN, who);
    assert_eq!(status, 200, "{found}");
    let found = json(&found);
    assert_eq!(found["purposes"]["email-offers"]["state"], "given");
    assert_eq!(found["purposes"]["email-offers"]["record"], id.as_str());
    assert_eq!(found["purposes"]["birthday-greetings"]["state"], "refused");
    let history = found["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{found}");
    assert_eq!(history[0]["source"], "phone");
    assert_eq!(history[0]["signer"], "collector");
    assert_eq!(history[0]["assisted"]["recording"], "calls/2026-12-02/0042.opus");

    // Later on the phone she says no to the offers too: that withdraws them (Art. 7(3)).
    let mut call = annas_call();
    call["purposes"] = serde_json::json!([]);
    call["refused"] = serde_json::json!(["email-offers"]);
    let (status, answer) = http(addr, "POST", "/v1/admin/assisted", STAFF, &call.to_string());
    assert_eq!(status, 201, "{answer}");
    assert_eq!(json(&answer)["recorded"][0]["state"], "withdrawn");
    let (_, found) = http(addr, "POST", "/v1/admin/subjects", ADMIN, who);
    let found = json(&found);
    assert_eq!(found["purposes"]["email-offers"]["state"], "withdrawn");
    assert_eq!(found["purposes"]["email-offers"]["path"], "phone");

    // An SMS consent with a national number, read in the locale's country (+371).
    let sms = serde_json::json!({
        "identifier": "2000 0000", "channel": "sms", "purposes": ["sms-offers"],
        "staff": "Līga K.", "recording": "calls/0043", "locale": "lv",
    });
    let (status, answer) = http(addr, "POST", "/v1/admin/assisted", STAFF, &sms.to_string());
    assert_eq!(status, 201, "{answer}");
    let (_, found) = http(
        addr,
        "POST",
        "/v1/admin/subjects",
        ADMIN,
        r#"{"identifier":"+37120000000"}"#,
    );
    let found = json(&found);
    assert_eq!(found["purposes"]["sms-offers"]["state"], "given", "{found}");
    assert_eq!(found["history"][0]["channels"], serde_json::json!(["sms"]));

    // `unticked verify` finds the log clean: every record opens, the tree and its
    // checkpoints hold, and each collector-signed record is the collector's.
    let verified = unticked()
        .args(["verify", "--url", &format!("http://{addr}")])
        .env("UNTICKED_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(said.contains(": 3 records,") && said.contains(": clean"), "{said}");
    drop(served);
    let verified = common::verify_command(&db).output().unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains(": 3 records,") && said.contains(": clean"),
        "{said}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// Wrong tokens here count against the address as at the admin endpoints (5, then 429);
/// the admin token is one of them.
#[test]
fn the_admin_token_is_refused_here_and_guessing_is_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&dir.path().join("log.db"));
    let addr = served.addr.as_str();
    let call = annas_call().to_string();
    let (got, body) = http(addr, "POST", "/v1/admin/assisted", "", &call);
    assert_eq!((got, code(&body).as_str()), (401, "unauthorised"), "no token");
    for token in [ADMIN, "a-guess"] {
        let (got, body) = http(addr, "POST", "/v1/admin/assisted", token, &call);
        assert_eq!((got, code(&body).as_str()), (401, "unauthorised"), "token {token:?}");
        let (got, _) = http(addr, "GET", "/v1/admin/assisted?locale=lv", token, "");
        assert_eq!(got, 401, "the script, token {token:?}");
    }
    let (got, _) = http(addr, "POST", "/v1/admin/assisted", "guess-5", &call);
    assert_eq!(got, 401, "the fifth wrong token");
    let (got, body) = http(addr, "POST", "/v1/admin/assisted", "guess-6", &call);
    assert_eq!((got, code(&body).as_str()), (429, "rate-limited"), "{body}");
    // Nothing was recorded by any of it; the agent's own token still works from there.
    let (_, log) = http(addr, "GET", "/v1/admin/log", ADMIN, "");
    assert_eq!(json(&log)["entries"], serde_json::json!([]));
    let (got, body) = http(addr, "POST", "/v1/admin/assisted", STAFF, &call);
    assert_eq!(got, 201, "{body}");
}

#[test]
fn the_staff_token_opens_no_admin_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&dir.path().join("log.db"));
    let addr = served.addr.as_str();
    let who = r#"{"identifier":"anna.ozola@example.lv"}"#;
    // Five: the sixth wrong token from this address would be held back (429).
    for (method, path, body) in [
        ("POST", "/v1/admin/subjects", who),
        ("POST", "/v1/admin/subjects/export", who),
        ("POST", "/v1/admin/subjects/erase", who),
        ("GET", "/v1/admin/export", ""),
        (
            "POST",
            "/v1/admin/links",
            r#"{"identifier":"anna.ozola@example.lv","channel":"email"}"#,
        ),
    ] {
        let (got, answer) = http(addr, method, path, STAFF, body);
        assert_eq!((got, code(&answer).as_str()), (401, "unauthorised"), "{method} {path}");
    }
}

#[test]
fn bad_calls_are_refused_with_the_code_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&dir.path().join("log.db"));
    let addr = served.addr.as_str();
    let with = |key: &str, value: serde_json::Value| {
        let mut call = annas_call();
        if value.is_null() {
            call.as_object_mut().unwrap().remove(key);
        } else {
            call[key] = value;
        }
        call.to_string()
    };
    let long = "x".repeat(257);
    let cases = [
        (with("purposes", serde_json::json!(["no-such-purpose"])), 422, "unknown-purpose"),
        (with("purposes", serde_json::json!(["sms-offers"])), 422, "purpose-channel"),
        (with("refused", serde_json::json!(["email-offers"])), 400, "bad-body"),
        (
            with("purposes", serde_json::json!(["email-offers", "email-offers"])),
            400,
            "bad-body",
        ),
        (
            serde_json::json!({"identifier":"anna@example.lv","channel":"email","purposes":[],"staff":"L","recording":"r","locale":"lv"}).to_string(),
            400,
            "bad-body",
        ),
        (with("identifier", serde_json::json!("anna.ozola")), 400, "bad-identifier"),
        (with("identifier", serde_json::json!("+371 2000 0000")), 400, "bad-identifier"),
        (with("channel", serde_json::json!("web")), 400, "bad-body"),
        (with("channel", serde_json::json!("fax")), 400, "bad-body"),
        (with("staff", serde_json::json!("  ")), 400, "bad-reference"),
        (with("staff", serde_json::Value::Null), 400, "bad-reference"),
        (with("recording", serde_json::json!(long)), 400, "bad-reference"),
        (with("recording", serde_json::json!("a\nb")), 400, "bad-reference"),
        (with("locale", serde_json::json!("fr")), 422, "unknown-locale"),
        (with("note", serde_json::json!("hello")), 400, "bad-body"),
        ("not json".to_string(), 400, "bad-body"),
    ];
    for (body, status, expected) in &cases {
        let (got, answer) = http(addr, "POST", "/v1/admin/assisted", STAFF, body);
        assert_eq!(
            (got, code(&answer)),
            (*status, expected.to_string()),
            "{body}: {answer}"
        );
        assert!(!json(&answer)["message"].as_str().unwrap_or("").is_empty(), "{answer}");
    }
    let (got, answer) = http(addr, "GET", "/v1/admin/assisted?locale=fr", STAFF, "");
    assert_eq!((got, code(&answer).as_str()), (422, "unknown-locale"));
    let (_, log) = http(addr, "GET", "/v1/admin/log", ADMIN, "");
    assert_eq!(json(&log)["entries"], serde_json::json!([]), "nothing half-recorded");
}

#[test]
fn serve_refuses_a_staff_token_equal_to_the_admin_token_or_too_short() {
    let dir = tempfile::tempdir().unwrap();
    for (staff, says) in [(ADMIN, "equals UNTICKED_ADMIN_TOKEN"), ("short", "at least 32")] {
        let out = common::run(
            common::serve_command(&dir.path().join("log.db"))
                .env("UNTICKED_ADMIN_TOKEN", ADMIN)
                .env("UNTICKED_STAFF_TOKEN", staff),
            std::time::Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("UNTICKED_STAFF_TOKEN") && stderr.contains(says),
            "{stderr}"
        );
        assert!(!stderr.contains(staff), "never the token itself");
    }
    // Without it, the endpoints are off and say how to turn them on.
    let served = serve_demo(&dir.path().join("off.db"), &[], &[("UNTICKED_ADMIN_TOKEN", ADMIN)]);
    let (status, answer) = http(
        &served.addr,
        "POST",
        "/v1/admin/assisted",
        ADMIN,
        &annas_call().to_string(),
    );
    assert_eq!((status, code(&answer).as_str()), (404, "staff-disabled"));
    assert!(answer.contains("UNTICKED_STAFF_TOKEN"));
}

/// A catalogue by post agreed on the phone: the address is a subject like any other, which
/// the admin finds and erases by naming its channel (Art. 15, 17).
#[test]
fn a_postal_address_given_on_the_phone_is_found_and_erased() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let call = serde_json::json!({
        "identifier": "Brīvības iela 1, Rīga, LV-1010",
        "channel": "post",
        "purposes": ["catalogue-post"],
        "staff": "Līga K.",
        "recording": "calls/2026-12-02/0043.opus",
        "locale": "lv",
    });
    let (status, body) = http(&server.addr, "POST", "/v1/admin/assisted", STAFF, &call.to_string());
    assert_eq!(status, 201, "{body}");
    let who = serde_json::json!({"identifier": "Brīvības iela 1, Rīga, LV-1010", "channel": "post"}).to_string();
    let (status, body) = http(&server.addr, "POST", "/v1/admin/subjects", ADMIN, &who);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["purposes"]["catalogue-post"]["state"], "given", "{body}");
    let (status, body) = http(&server.addr, "POST", "/v1/admin/subjects/erase", ADMIN, &who);
    assert_eq!((status, json(&body)["erased"].as_u64()), (200, Some(1)), "{body}");
    let (_, body) = http(&server.addr, "POST", "/v1/admin/subjects", ADMIN, &who);
    assert_eq!(json(&body)["history"], serde_json::json!([]), "{body}");
    // Without the channel, an address is neither an e-mail address nor a number.
    let bare = serde_json::json!({"identifier": "Brīvības iela 1, Rīga, LV-1010"}).to_string();
    let (status, body) = http(&server.addr, "POST", "/v1/admin/subjects", ADMIN, &bare);
    assert_eq!((status, code(&body)), (400, "bad-identifier".to_string()));
}

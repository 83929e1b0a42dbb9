//! Consent where it is used (issue 15) against a real collector over TCP: who may be
//! contacted now and who must not be (NDJSON, read as a mailing tool would), restriction
//! (Art. 18), rectification (Art. 16) with the log still verifying, and the access export
//! (Art. 15) whose proofs are checked here by the core's own RFC 9162 code.

mod common;

use common::{post_demo_records, serve_demo, Served};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const TOKEN: &str = "rights-test-admin-token-0123456789abcdef";

fn serve(db: &Path) -> Served {
    serve_demo(db, &["--daily-quota", "0"], &[("UNTICKED_ADMIN_TOKEN", TOKEN)])
}

/// One HTTP/1.1 request; `token` None sends no Authorization header.
fn http(addr: &str, method: &str, path: &str, body: &str, content_type: &str, token: Option<&str>) -> (u16, String) {
    let answer = common::request(addr, method, path, token, content_type, body);
    (answer.status, answer.body)
}

fn admin(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http(addr, method, path, body, "application/json", Some(TOKEN))
}

/// The lines of an NDJSON list, by identifier.
fn list(addr: &str, path: &str) -> BTreeMap<String, serde_json::Value> {
    let (status, body) = admin(addr, "GET", path, "");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            (line["identifier"].as_str().unwrap().to_string(), line)
        })
        .collect()
}

/// The subjects the acknowledged records gave e-mail offers to, with their record ids.
fn givers(addr: &str, acked: &[String]) -> BTreeMap<String, String> {
    let (status, export) = admin(addr, "GET", "/v1/admin/export", "");
    assert_eq!(status, 200);
    export
        .lines()
        .filter_map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            let record: serde_json::Value = serde_json::from_str(line["record"].as_str().unwrap()).unwrap();
            let id = record["id"].as_str().unwrap().to_string();
            let gives = record["purposes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == "email-offers" && p["state"] == "given");
            let email = line["disclosures"][0]["identifier"].as_str()?.to_string();
            (gives && acked.contains(&id)).then_some((email, id))
        })
        .collect()
}

#[test]
fn the_audience_and_the_suppression_list_follow_withdrawal_restriction_and_rectification() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let server = serve(&db);
    let addr = server.addr.clone();
    let acked = post_demo_records(&addr, 12, &dir.path().join("acked.txt"));
    let givers = givers(&addr, &acked);
    assert!(givers.len() >= 3, "{givers:?}");

    // Everyone who gave e-mail offers may be e-mailed, with the record that proves it.
    let audience = list(&addr, "/v1/admin/audience?channel=email");
    assert_eq!(
        audience.keys().cloned().collect::<BTreeSet<_>>(),
        givers.keys().cloned().collect()
    );
    for (email, id) in &givers {
        let purposes = &audience[email]["purposes"];
        assert_eq!(purposes.as_array().unwrap().len(), 1, "{purposes}");
        assert_eq!(purposes[0]["id"], "email-offers");
        assert_eq!(&purposes[0]["record"], id);
        assert_eq!(purposes[0]["version"], 1);
    }
    assert!(list(&addr, "/v1/admin/suppression?channel=email").is_empty());
    // Nobody gave SMS offers: neither list names anyone for SMS.
    assert!(list(&addr, "/v1/admin/audience?channel=sms").is_empty());
    assert!(list(&addr, "/v1/admin/suppression?channel=sms").is_empty());

    let mut emails = givers.keys();
    let (withdrawer, restricted, rectified) = (
        emails.next().unwrap().clone(),
        emails.next().unwrap().clone(),
        emails.next().unwrap().clone(),
    );

    // A one-click unsubscribe (RFC 8058) moves the contact to the suppression list.
    let (status, links) = admin(
        &addr,
        "POST",
        "/v1/admin/links",
        &serde_json::json!({"identifier": withdrawer, "channel": "email"}).to_string(),
    );
    assert_eq!(status, 200, "{links}");
    let links: serde_json::Value = serde_json::from_str(&links).unwrap();
    let unsubscribe = links["unsubscribe"].as_str().unwrap();
    let path = &unsubscribe[unsubscribe.find("/unsubscribe/").unwrap()..];
    let (status, body) = http(
        &addr,
        "POST",
        path,
        "List-Unsubscribe=One-Click",
        "application/x-www-form-urlencoded",
        None,
    );
    assert!(status < 300, "{status} {body}");

    // A restriction (Art. 18) pauses the purpose: suppressed, and says what stands under it.
    let (status, body) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects/restrict",
        &serde_json::json!({"identifier": restricted, "purposes": ["email-offers"]}).to_string(),
    );
    assert_eq!(status, 200, "{body}");

    let audience = list(&addr, "/v1/admin/audience?channel=email");
    let suppression = list(&addr, "/v1/admin/suppression?channel=email&purpose=email-offers");
    assert!(!audience.contains_key(&withdrawer) && !audience.contains_key(&restricted));
    assert_eq!(audience.len(), givers.len() - 2);
    assert_eq!(suppression.len(), 2, "{suppression:?}");
    let why = &suppression[&withdrawer]["purposes"][0];
    assert_eq!(why["reason"], "withdrawn", "{why}");
    assert_eq!(why["path"], "unsubscribe");
    let why = &suppression[&restricted]["purposes"][0];
    assert_eq!(why["reason"], "restricted", "{why}");
    assert_eq!(why["under"]["state"], "given");
    assert_eq!(&why["under"]["record"], &givers[&restricted]);
    // The admin's own view of the subject says it too.
    let (_, subject) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects",
        &serde_json::json!({"identifier": restricted}).to_string(),
    );
    let subject: serde_json::Value = serde_json::from_str(&subject).unwrap();
    assert_eq!(subject["purposes"]["email-offers"]["state"], "restricted", "{subject}");

    // Lifted (Art. 18(3)), the consent stands again as it stood.
    let (status, _) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects/restrict",
        &serde_json::json!({"identifier": restricted, "purposes": ["email-offers"], "lift": true}).to_string(),
    );
    assert_eq!(status, 200);
    assert!(list(&addr, "/v1/admin/audience?channel=email").contains_key(&restricted));

    // Rectification (Art. 16): the new contact carries the consent, the old one is gone.
    let replacement = "corrected.address@example.lv";
    let (status, body) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects/rectify",
        &serde_json::json!({"identifier": rectified, "replacement": "Corrected.Address@EXAMPLE.lv"}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let rectification: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(rectification["carried"], 1);
    let audience = list(&addr, "/v1/admin/audience?channel=email");
    assert!(!audience.contains_key(&rectified), "the old contact is erased");
    assert_eq!(&audience[replacement]["purposes"][0]["record"], &givers[&rectified]);
    let (_, old) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects",
        &serde_json::json!({"identifier": rectified}).to_string(),
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&old).unwrap()["history"],
        serde_json::json!([])
    );

    // Access (Art. 15): every record with its proof, then the state and the checkpoint; the
    // proofs hold against the signed root, checked here with the core's RFC 9162 code.
    let (status, export) = admin(
        &addr,
        "POST",
        "/v1/admin/subjects/export",
        &serde_json::json!({"identifier": replacement}).to_string(),
    );
    assert_eq!(status, 200, "{export}");
    let lines: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = lines.last().unwrap();
    assert_eq!(last["standing"]["email-offers"]["state"], "given", "{last}");
    let size = last["checkpoint"]["size"].as_u64().unwrap();
    let root = unticked_core::record::unhex(last["checkpoint"]["root"].as_str().unwrap()).unwrap();
    let records = &lines[..lines.len() - 1];
    assert_eq!(records.len(), 2, "the checkout record and the rectification: {export}");
    for line in records {
        let bytes = line["record"].as_str().unwrap();
        let leaf = unticked_core::merkle::leaf_hash(bytes.as_bytes());
        assert_eq!(unticked_core::record::hex(&leaf), line["leaf_hash"].as_str().unwrap());
        let proof: Vec<[u8; 32]> = line["inclusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                unticked_core::record::unhex(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect();
        assert!(unticked_core::merkle::verify_inclusion(
            &leaf,
            line["index"].as_u64().unwrap(),
            size,
            &proof,
            &root.clone().try_into().unwrap()
        ));
    }
    // The checkout record's disclosure of the old contact is gone; the new one is held.
    assert_eq!(records[0]["disclosures"], serde_json::json!([]));
    assert_eq!(records[1]["disclosures"][0]["identifier"], replacement);
    drop(server);

    // The log only grew: it verifies, every record and every checkpoint.
    let out = common::verify_command(&db).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_lists_and_the_rights_refuse_what_they_cannot_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("log.db"));
    let addr = &server.addr;
    let code = |(status, body): (u16, String)| {
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        (status, body["code"].as_str().unwrap_or("").to_string())
    };
    let refused = |path: &str| code(admin(addr, "GET", path, ""));
    assert_eq!(refused("/v1/admin/audience"), (400, "bad-channel".into()));
    assert_eq!(refused("/v1/admin/audience?channel=web"), (400, "bad-channel".into()));
    assert_eq!(
        refused("/v1/admin/suppression?channel=fax"),
        (400, "bad-channel".into())
    );
    assert_eq!(
        refused("/v1/admin/audience?channel=email&purpose=sms-offers"),
        (422, "unknown-purpose".into())
    );
    assert_eq!(
        refused("/v1/admin/audience?channel=email&purpose=nothing"),
        (422, "unknown-purpose".into())
    );
    assert_eq!(
        code(http(
            addr,
            "GET",
            "/v1/admin/audience?channel=email",
            "",
            "application/json",
            None
        )),
        (401, "unauthorised".into())
    );
    let post = |path: &str, body: serde_json::Value| code(admin(addr, "POST", path, &body.to_string()));
    assert_eq!(
        post(
            "/v1/admin/subjects/restrict",
            serde_json::json!({"identifier": "nobody@example.lv", "purposes": ["email-offers"]})
        ),
        (404, "unknown-subject".into())
    );
    assert_eq!(
        post(
            "/v1/admin/subjects/restrict",
            serde_json::json!({"identifier": "nobody@example.lv", "purposes": ["nothing"]})
        ),
        (422, "unknown-purpose".into())
    );
    assert_eq!(
        post(
            "/v1/admin/subjects/rectify",
            serde_json::json!({"identifier": "nobody@example.lv", "replacement": "x@example.lv"})
        ),
        (404, "unknown-subject".into())
    );
    // A replacement that is someone already: refused, unless merged on purpose.
    let acked = post_demo_records(addr, 4, &dir.path().join("acked.txt"));
    assert!(!acked.is_empty());
    let (status, export) = admin(addr, "GET", "/v1/admin/export", "");
    assert_eq!(status, 200);
    let subjects: Vec<String> = export
        .lines()
        .filter_map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["disclosures"][0]["identifier"].as_str().map(str::to_string)
        })
        .collect();
    assert!(subjects.len() >= 2, "{subjects:?}");
    let into = serde_json::json!({"identifier": subjects[0], "replacement": subjects[1]});
    assert_eq!(
        post("/v1/admin/subjects/rectify", into.clone()),
        (409, "subject-exists".into())
    );
    let mut merged = into;
    merged["merge"] = true.into();
    assert_eq!(post("/v1/admin/subjects/rectify", merged).0, 200);
    assert_eq!(
        post(
            "/v1/admin/subjects/rectify",
            serde_json::json!({"identifier": "a@example.lv", "replacement": "+37120000000"})
        ),
        (400, "bad-identifier".into())
    );
    assert_eq!(
        post(
            "/v1/admin/subjects/rectify",
            serde_json::json!({"identifier": "a@example.lv", "replacement": "A@example.lv"})
        ),
        (400, "bad-identifier".into())
    );
}

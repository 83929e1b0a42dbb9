//! `unticked import` (issue 15, item 4): a legacy list into a real SQLite log through the
//! real binary, looked up and answered through a real `unticked serve` over HTTP.

mod common;

use common::{root, run, serve_demo, unticked, Served};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LIMIT: Duration = Duration::from_secs(60);
const TOKEN: &str = "import-test-admin-token-0123456789abcdef";
const ORIGIN: &str = "https://consent.shop.example";
const DAY_MS: u64 = 86_400_000;

struct Imported {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn import(db: &Path, csv: &Path, extra: &[&str]) -> Imported {
    let output = run(
        unticked()
            .arg("import")
            .args(common::db_args(db))
            .arg("--config")
            .arg(root().join("www/consent.json"))
            .args(["--source", "unknown", "--public-origin", ORIGIN])
            .args(extra)
            .arg(csv),
        LIMIT,
    );
    Imported {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `unticked verify --db`: its exit code and report.
fn verify(db: &Path) -> (Option<i32>, String) {
    let output = run(&mut common::verify_command(db), LIMIT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The number of records `unticked verify` finds in a clean log.
fn records_in(db: &Path) -> u64 {
    let (code, report) = verify(db);
    assert_eq!(code, Some(0), "{report}");
    report
        .split(": ")
        .nth(2)
        .and_then(|part| part.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"))
}

fn serve(db: &Path) -> Served {
    serve_demo(db, &[], &[("UNTICKED_ADMIN_TOKEN", TOKEN)])
}

/// One HTTP/1.1 request: (status, head in lower case, body).
fn http(addr: &str, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String, String) {
    let answer = common::request(addr, method, path, Some(TOKEN), content_type, body);
    (answer.status, answer.head, answer.body)
}

/// `POST /v1/admin/subjects`: where the subject stands, and their history.
fn subject(addr: &str, identifier: &str) -> serde_json::Value {
    let body = serde_json::json!({ "identifier": identifier }).to_string();
    let (status, _, text) = http(addr, "POST", "/v1/admin/subjects", "application/json", &body);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The links file: (email, phone, link) per line after the header.
fn links(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("email,phone,link"));
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 3, "{line}");
            (cells[0].to_string(), cells[1].to_string(), cells[2].to_string())
        })
        .collect()
}

const LIST: &str = "\
Phone,email,name,source,collected_at
,Anna@Example.LV,Anna Ozola,order,2023-04-01
+371 2000 0000,,Jānis,,
+48 500 000 000,jan@example.pl,Jan,contest,2024-01-02T10:00:00Z
";

#[test]
fn a_list_is_imported_as_contacts_to_ask_again_never_as_consent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let csv = write(dir.path(), "list.csv", LIST);
    let before = now_ms();
    let done = import(&db, &csv, &["--answer-within-days", "30"]);
    assert_eq!(done.code, Some(0), "{}{}", done.stdout, done.stderr);
    assert!(
        done.stdout
            .contains("3 rows: 4 contacts imported in 3 records, 0 already in the log"),
        "{}",
        done.stdout
    );
    assert!(done.stdout.contains("rows/s"), "{}", done.stdout);
    // Counts only: nothing of the list in what the import prints.
    for contact in ["anna", "2000", "jan@"] {
        assert!(
            !done.stdout.to_lowercase().contains(contact),
            "{contact} in {}",
            done.stdout
        );
    }
    // Appended as serve appends, checkpointed: the log verifies.
    assert_eq!(records_in(&db), 3);
    // No lock file is left once the import is done.
    assert!(!dir.path().join("log.db.lock").exists());

    let served = serve(&db);
    // The address as the list spelt it is the subject the index finds.
    let anna = subject(&served.addr, "anna@example.lv");
    let offers = &anna["purposes"]["email-offers"];
    assert_eq!(offers["state"], "unconfirmed", "{anna}");
    assert_eq!(offers["awaiting"], "answer");
    assert_eq!(offers["provenance"], "order", "the row's own source");
    let until = offers["until"].as_u64().unwrap();
    assert!(
        until >= before + 30 * DAY_MS && until <= now_ms() + 30 * DAY_MS,
        "{until}"
    );
    assert_eq!(anna["purposes"]["birthday-greetings"]["state"], "unconfirmed");
    // An address is asked about the e-mail purposes only; nothing is ever given.
    assert!(anna["purposes"].get("sms-offers").is_none(), "{anna}");
    assert!(
        anna["purposes"]
            .as_object()
            .unwrap()
            .values()
            .all(|p| p["state"] != "given"),
        "{anna}"
    );
    let record = &anna["history"][0];
    assert_eq!(
        (
            record["source"].as_str(),
            record["signer"].as_str(),
            record["form"].as_str()
        ),
        (Some("import"), Some("collector"), Some("preferences"))
    );
    assert_eq!(record["purposes"], serde_json::json!([]));
    assert_eq!(record["imported"]["provenance"], "order");
    assert_eq!(
        record["imported"]["collected_at"], 1_680_307_200_000u64,
        "2023-04-01, midnight UTC"
    );

    // A number without a source of its own has --source's; it is asked about SMS and calls.
    let janis = subject(&served.addr, "+37120000000");
    for purpose in ["sms-offers", "phone-calls"] {
        assert_eq!(janis["purposes"][purpose]["state"], "unconfirmed", "{janis}");
        assert_eq!(janis["purposes"][purpose]["provenance"], "unknown");
    }
    assert!(janis["purposes"].get("email-offers").is_none(), "{janis}");
    // A row with both contacts is one record, found under either.
    let jan_by_mail = subject(&served.addr, "jan@example.pl");
    let jan_by_phone = subject(&served.addr, "+48500000000");
    assert_eq!(
        jan_by_mail["history"][0]["record"],
        jan_by_phone["history"][0]["record"]
    );
    assert_eq!(jan_by_mail["purposes"]["sms-offers"]["provenance"], "contest");
}

#[test]
fn bad_rows_are_all_reported_by_line_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let good = write(dir.path(), "good.csv", "email\nfirst@example.lv\n");
    assert_eq!(import(&db, &good, &[]).code, Some(0));
    let csv = write(
        dir.path(),
        "bad.csv",
        "email,phone,source,collected_at\n\
         anna@example.lv,,,\n\
         foo@,,,\n\
         ,29123456,,\n\
         ,,,\n\
         jan@example.lv,,shop,\n\
         mara@example.lv,,,01.04.2023\n\
         ANNA@example.lv,,,\n\
         ilze@example.lv,,,2999-01-01\n",
    );
    let done = import(&db, &csv, &["--links", dir.path().join("links.csv").to_str().unwrap()]);
    assert_eq!(done.code, Some(1), "{}{}", done.stdout, done.stderr);
    for expected in [
        "line 3: \"foo@\" is not an e-mail address",
        "line 4: \"29123456\" is not a phone number in international form",
        "line 5: neither an e-mail address nor a phone number",
        "line 6: source \"shop\" is not one of order, newsletter, popup, contest, unknown",
        "line 7: collected_at \"01.04.2023\" is not an RFC 3339 date",
        "line 8: anna@example.lv is on line 2 already",
        "line 9: collected_at \"2999-01-01\" is in the future",
    ] {
        assert!(done.stderr.contains(expected), "{expected} not in:\n{}", done.stderr);
    }
    assert!(
        done.stderr.contains("7 problems in") && done.stderr.contains("nothing was imported"),
        "{}",
        done.stderr
    );
    assert!(!done.stderr.contains("line 2:"), "the good row is no problem");
    // Nothing of the file is in the log: not even its good rows.
    assert_eq!(records_in(&db), 1);
    assert!(!dir.path().join("links.csv").exists());
}

#[test]
fn a_contact_is_imported_once_however_often_it_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    // Within one file: a duplicate is a bad row, however it is spelt.
    let twice = write(
        dir.path(),
        "twice.csv",
        "email,phone\nanna@example.lv,\n,+371 2000 0000\n Anna@EXAMPLE.lv ,\n,0037120000000\n",
    );
    let done = import(&db, &twice, &[]);
    assert_eq!(done.code, Some(1));
    assert!(
        done.stderr.contains("line 4: anna@example.lv is on line 2 already"),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.contains("line 5: +37120000000 is on line 3 already"),
        "{}",
        done.stderr
    );
    assert!(!db.exists(), "nothing was written");

    // Across imports: what the log knows is skipped, so the same file again adds nothing,
    // and a longer list adds only its new contacts.
    let list = write(dir.path(), "list.csv", "email\nanna@example.lv\njan@example.pl\n");
    assert_eq!(import(&db, &list, &[]).code, Some(0));
    let again = import(&db, &list, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again
            .stdout
            .contains("2 rows: 0 contacts imported in 0 records, 2 already in the log (skipped)"),
        "{}",
        again.stdout
    );
    let longer = write(
        dir.path(),
        "longer.csv",
        "email\nanna@example.lv\njan@example.pl\nmara@example.lv\n",
    );
    let more = import(&db, &longer, &[]);
    assert!(
        more.stdout
            .contains("3 rows: 1 contacts imported in 1 records, 2 already in the log"),
        "{}",
        more.stdout
    );
    assert_eq!(records_in(&db), 3);
}

#[test]
fn import_refuses_a_log_that_serve_holds() {
    if common::skip_unless_sqlite("on PostgreSQL several processes write one log, so import runs beside serve") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let csv = write(dir.path(), "list.csv", "email\nanna@example.lv\n");
    let mut served = serve(&db);
    let done = import(&db, &csv, &[]);
    assert_eq!(done.code, Some(2), "{}{}", done.stdout, done.stderr);
    assert!(
        done.stderr.contains("log.db is in use by another unticked process"),
        "{}",
        done.stderr
    );
    assert!(done.stderr.contains("stop it first"), "{}", done.stderr);
    // Nor does a second collector start on it.
    let second = run(&mut common::serve_command(&db), LIMIT);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to start") && stderr.contains("is in use"),
        "{stderr}"
    );
    // Nothing reached the log the server serves.
    let (status, _, body) = http(&served.addr, "GET", "/v1/checkpoint", "application/json", "");
    assert_ne!(status, 200, "no record, no checkpoint: {body}");

    // Once serve stops, the import goes through, and the log verifies.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + LIMIT;
    while served.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    let done = import(&db, &csv, &[]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(records_in(&db), 1);

    // And a serve killed with -9 leaves no lock behind (the lock is the process's).
    let mut killed = serve(&db);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let more = write(dir.path(), "more.csv", "email\njan@example.pl\n");
    assert_eq!(import(&db, &more, &[]).code, Some(0));
    assert_eq!(records_in(&db), 2);
}

/// The path (and query) of a link the import minted for the collector's public origin.
fn path_of(link: &str) -> String {
    link.strip_prefix(ORIGIN)
        .unwrap_or_else(|| panic!("{link}"))
        .to_string()
}

#[test]
fn the_answer_on_a_links_preference_page_is_recorded_with_source_import() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let csv = write(dir.path(), "list.csv", LIST);
    let out = dir.path().join("links.csv");
    let done = import(&db, &csv, &["--links", out.to_str().unwrap()]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(done.stdout.contains("4 re-permission links written"), "{}", done.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the links file names contacts");
    }
    let links = links(&out);
    let find = |email: &str, phone: &str| {
        links
            .iter()
            .find(|(e, p, _)| e == email && p == phone)
            .unwrap_or_else(|| panic!("{email}{phone} in {links:?}"))
            .2
            .clone()
    };
    assert_eq!(links.len(), 4, "one per contact: {links:?}");
    let anna = path_of(&find("anna@example.lv", ""));
    let janis = path_of(&find("", "+37120000000"));
    assert!(anna.starts_with("/preferences/"), "{anna}");

    let served = serve(&db);
    let form = "application/x-www-form-urlencoded";
    // The page asks, every box unticked: nothing was ever given.
    let (status, _, page) = http(&served.addr, "GET", &anna, "text/html", "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"consent.email-offers\""), "{page}");
    assert!(!page.contains("checked"), "{page}");

    // Anna ticks e-mail offers and leaves the birthday greetings unticked: her answer.
    let (status, head, _) = http(
        &served.addr,
        "POST",
        &anna,
        form,
        "action=save&consent.email-offers=yes",
    );
    assert_eq!(status, 303, "{head}");
    let now = subject(&served.addr, "anna@example.lv");
    assert_eq!(now["purposes"]["email-offers"]["state"], "given", "{now}");
    assert_eq!(now["purposes"]["birthday-greetings"]["state"], "refused", "{now}");
    let answer = &now["history"][1];
    assert_eq!(
        (answer["source"].as_str(), answer["signer"].as_str()),
        (Some("import"), Some("collector")),
        "{now}"
    );
    assert_eq!(
        answer["purposes"],
        serde_json::json!([
            {"id": "email-offers", "state": "given", "version": 1},
            {"id": "birthday-greetings", "state": "refused", "version": 1},
        ])
    );
    // Once answered, a later change is an ordinary one from the preference page.
    http(&served.addr, "POST", &anna, form, "action=save");
    let later = subject(&served.addr, "anna@example.lv");
    assert_eq!(later["purposes"]["email-offers"]["state"], "withdrawn");
    assert_eq!(later["history"][2]["source"], "preferences");

    // "Withdraw from everything" from a contact never asked before is a refusal.
    let (status, _, _) = http(&served.addr, "POST", &janis, form, "action=withdraw-all");
    assert_eq!(status, 303);
    let now = subject(&served.addr, "+37120000000");
    for purpose in ["sms-offers", "phone-calls"] {
        assert_eq!(now["purposes"][purpose]["state"], "refused", "{now}");
    }
    assert_eq!(now["history"][1]["source"], "import");

    // Jan has not answered: still unconfirmed, and nobody was made `given` by the import.
    let jan = subject(&served.addr, "jan@example.pl");
    assert_eq!(jan["purposes"]["email-offers"]["state"], "unconfirmed");
    // His one-click unsubscribe (RFC 8058), from a link the shop minted, is a "no" too: the
    // e-mail purposes are refused, and his number is still asked.
    let (status, _, minted) = http(
        &served.addr,
        "POST",
        "/v1/admin/links",
        "application/json",
        r#"{"identifier":"jan@example.pl","channel":"email"}"#,
    );
    assert_eq!(status, 200, "{minted}");
    let minted: serde_json::Value = serde_json::from_str(&minted).unwrap();
    let unsubscribe = minted["unsubscribe"].as_str().unwrap();
    let unsubscribe = &unsubscribe[unsubscribe.find("/unsubscribe/").unwrap()..];
    let (status, _, _) = http(&served.addr, "POST", unsubscribe, form, "List-Unsubscribe=One-Click");
    assert_eq!(status, 200);
    let jan = subject(&served.addr, "jan@example.pl");
    assert_eq!(jan["purposes"]["email-offers"]["state"], "refused", "{jan}");
    assert_eq!(jan["purposes"]["birthday-greetings"]["state"], "refused");
    assert_eq!(jan["purposes"]["sms-offers"]["state"], "unconfirmed");
    drop(served);
    // The answers are records like any other: the log verifies.
    assert_eq!(records_in(&db), 7);
}

#[test]
fn a_second_run_with_links_mints_them_for_those_still_awaiting_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let csv = write(dir.path(), "list.csv", "email\nanna@example.lv\njan@example.pl\n");
    assert_eq!(import(&db, &csv, &[]).code, Some(0));
    let out = dir.path().join("links.csv");
    let done = import(&db, &csv, &["--links", out.to_str().unwrap()]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let minted = links(&out);
    assert_eq!(minted.len(), 2, "{minted:?}");
    let served = serve(&db);
    let (status, _, _) = http(&served.addr, "GET", &path_of(&minted[0].2), "text/html", "");
    assert_eq!(status, 200);
    // Anna answers; a third run has a link for Jan only.
    let anna = minted.iter().find(|(e, _, _)| e == "anna@example.lv").unwrap();
    http(
        &served.addr,
        "POST",
        &path_of(&anna.2),
        "application/x-www-form-urlencoded",
        "action=save&consent.email-offers=yes",
    );
    drop(served);
    import(&db, &csv, &["--links", out.to_str().unwrap()]);
    let minted = links(&out);
    assert_eq!(
        minted.iter().map(|(e, _, _)| e.as_str()).collect::<Vec<_>>(),
        ["jan@example.pl"]
    );
}

#[test]
fn import_refuses_what_it_cannot_do_before_touching_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let csv = write(dir.path(), "list.csv", "email\nanna@example.lv\n");
    let bad_origin = run(
        unticked()
            .arg("import")
            .args(common::db_args(&db))
            .arg("--config")
            .arg(root().join("www/consent.json"))
            .args(["--source", "unknown", "--public-origin", "consent.shop.example"])
            .arg(&csv),
        LIMIT,
    );
    assert_eq!(bad_origin.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_origin.stderr).contains("is not an origin"));
    let bad_days = import(&db, &csv, &["--answer-within-days", "400"]);
    assert_eq!(bad_days.code, Some(2), "{}", bad_days.stderr);
    assert!(bad_days.stderr.contains("400 is not in 1..=365"), "{}", bad_days.stderr);
    let bad_source = run(
        unticked()
            .arg("import")
            .args(["--source", "shop", "--public-origin", ORIGIN])
            .arg(&csv),
        LIMIT,
    );
    assert_eq!(bad_source.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_source.stderr).contains("one of order, newsletter, popup, contest, unknown"));
    assert!(!db.exists());
}

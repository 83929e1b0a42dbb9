//! `unticked migrate --from unticked.db --to postgres://…` (issue 16, item 4), with a real
//! SQLite log made by `unticked serve` and a real PostgreSQL: everything is copied, the copy
//! verifies against the source's checkpoints, collectors on PostgreSQL serve it (proofs,
//! subjects, an erasure made before the move stays made) and extend it, and a target that
//! is not empty, or a source still served, is refused.
//!
//! Skipped, with the reason printed, when `UNTICKED_TEST_POSTGRES` is unset.

mod common;

use common::{post_demo_records, postgres_database, request, serve_demo_with, unticked};
use std::ffi::OsString;

const ADMIN: &str = "migrate-test-admin-token-0123456789abcdef";

#[test]
fn a_sqlite_log_moves_to_postgresql_whole_and_verified() {
    let Ok(cluster) = std::env::var("UNTICKED_TEST_POSTGRES") else {
        eprintln!(
            "skipped: UNTICKED_TEST_POSTGRES is unset (`./build.sh test` starts a throwaway PostgreSQL and sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A SQLite log, whatever backend the rest of the suite runs on.
    let db = dir.path().join("shop.db");
    let sqlite_args = vec![OsString::from("--db"), db.clone().into()];
    let served = serve_demo_with(sqlite_args.clone(), &[], &[("UNTICKED_ADMIN_TOKEN", ADMIN)]);
    let acked = post_demo_records(&served.addr, 40, &dir.path().join("acked.txt"));
    let erased = request(
        &served.addr,
        "POST",
        "/v1/admin/subjects/erase",
        Some(ADMIN),
        "application/json",
        r#"{"identifier":"shopper0@example.lv"}"#,
    );
    assert_eq!(erased.status, 200, "{}", erased.body);
    let mut indices = Vec::new();
    for id in &acked {
        let answer = request(
            &served.addr,
            "GET",
            &format!("/v1/records/{id}"),
            None,
            "text/plain",
            "",
        );
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        indices.push(body["receipt"]["index"].as_u64().unwrap());
    }
    let target = postgres_database(&cluster, &dir.path().join("target"));
    let migrate = || {
        unticked()
            .args(["migrate", "--from"])
            .arg(&db)
            .args(["--to", &target])
            .output()
            .unwrap()
    };
    // Not while a collector serves the source.
    let refused = migrate();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{refused:?}"
    );
    drop(served);

    let moved = migrate();
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(
        said.contains("(40 records,") && said.contains("verifies against all"),
        "{said}"
    );

    // Collectors on PostgreSQL, with the same key file, serve what was moved.
    let key = format!("{}.key", db.display());
    let pg_args = vec![
        OsString::from("--db"),
        target.clone().into(),
        "--key".into(),
        key.clone().into(),
    ];
    let on_pg = serve_demo_with(pg_args.clone(), &[], &[("UNTICKED_ADMIN_TOKEN", ADMIN)]);
    for (id, index) in acked.iter().zip(&indices) {
        let answer = request(&on_pg.addr, "GET", &format!("/v1/records/{id}"), None, "text/plain", "");
        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["receipt"]["index"].as_u64(), Some(*index));
        assert!(body["latest"]["inclusion"].is_array());
    }
    let subject = |identifier: &str| {
        request(
            &on_pg.addr,
            "POST",
            "/v1/admin/subjects",
            Some(ADMIN),
            "application/json",
            &format!(r#"{{"identifier":"{identifier}"}}"#),
        )
    };
    let kept = subject("shopper2@example.lv");
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert!(kept.body.contains("email-offers"), "{}", kept.body);
    let gone = subject("shopper0@example.lv");
    assert!(
        !gone.body.contains("email-offers"),
        "the erasure came undone: {}",
        gone.body
    );
    // And extend it: new records follow the moved ones.
    let more = post_demo_records(&on_pg.addr, 5, &dir.path().join("more.txt"));
    assert_eq!(more.len(), 5);
    drop(on_pg);
    let verified = unticked().arg("verify").args(&pg_args).output().unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{report}");
    assert!(
        report.contains(": 45 records,") && report.contains(": clean"),
        "{report}"
    );

    // A target that holds a log is never mixed with another.
    let again = migrate();
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{again:?}"
    );
    // The source is as it was, and still verifies.
    let verified = unticked().arg("verify").args(&sqlite_args).output().unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

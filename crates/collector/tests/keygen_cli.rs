//! `unticked keygen` and `unticked serve --key` (issue 16, groundwork): the key file several
//! instances will share, made once and never overwritten, taken by serve instead of
//! `<db>.key`, and refused when it is another log's. Real binary, real SQLite files.

mod common;

use common::{root, run, serve_command, serve_demo, unticked};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `unticked keygen --out FILE`: (exit code, stdout, stderr).
fn keygen(out: &Path) -> (Option<i32>, String, String) {
    let output = run(unticked().arg("keygen").arg("--out").arg(out), LIMIT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The public key (base64url) keygen printed.
fn printed_key(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.split(", key ").nth(1))
        .unwrap_or_else(|| panic!("no key in {stdout}"))
        .trim()
        .to_string()
}

/// A new key file in `dir`, and its public key.
fn new_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(name);
    let (code, stdout, stderr) = keygen(&path);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    (path, printed_key(&stdout))
}

/// A log with records in it: one imported contact, recorded and checkpointed under `<db>.key`.
fn log_with_records(db: &Path) {
    let csv = db.with_extension("csv");
    std::fs::write(&csv, "email\nanna@example.com\n").unwrap();
    let output = run(
        unticked()
            .arg("import")
            .arg("--db")
            .arg(db)
            .arg("--config")
            .arg(root().join("www/consent.json"))
            .args(["--source", "unknown", "--public-origin", "https://consent.shop.example"])
            .arg(&csv),
        LIMIT,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `unticked serve` that must refuse: (exit code, stderr).
fn refused_serve(db: &Path, key: &Path) -> (Option<i32>, String) {
    let output = run(serve_command(db).arg("--key").arg(key), LIMIT);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn keygen_writes_a_key_file_only_its_owner_can_read_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = new_key(dir.path(), "collector.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the key file is mode {mode:o}");
    }
    // The format of `<db>.key`: the Ed25519 seed and the subject index secret, hex, a line each.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    assert_eq!(public.len(), 43, "a base64url Ed25519 key: {public}");

    let (code, stdout, stderr) = keygen(&path);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("already exists") && stderr.contains("refusing to overwrite"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the key file was changed"
    );

    // Two runs make two different keys.
    let (_, other) = new_key(dir.path(), "other.key");
    assert_ne!(other, public);
}

#[test]
fn serve_with_a_missing_key_file_refuses_and_makes_neither_a_key_nor_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let key = dir.path().join("missing.key");
    let (code, stderr) = refused_serve(&db, &key);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("missing.key") && stderr.contains("unticked keygen"),
        "{stderr}"
    );
    assert!(!key.exists(), "serve made the key file it was told to read");
    assert!(!db.exists(), "serve created the log before refusing");
    assert!(!dir.path().join("log.db.key").exists(), "serve fell back to <db>.key");
}

#[test]
fn serve_signs_with_the_given_key_file_and_two_logs_share_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = new_key(dir.path(), "shared.key");
    let key_arg = key.to_str().unwrap();
    let first = serve_demo(&dir.path().join("a.db"), &["--key", key_arg], &[]);
    let second = serve_demo(&dir.path().join("b.db"), &["--key", key_arg], &[]);
    assert_eq!(first.key, public, "serve --key signs with another key than the file's");
    assert_eq!(
        second.key, public,
        "a second log with the same key file names another key"
    );
    drop((first, second));
    assert!(!dir.path().join("a.db.key").exists(), "serve --key made <db>.key too");
}

#[test]
fn a_log_is_served_and_verified_with_its_own_key_file_and_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    // A key made by keygen, installed as the log's key before its first records.
    let (key, public) = new_key(dir.path(), "shop.key");
    let db = dir.path().join("shop.db");
    std::fs::copy(&key, dir.path().join("shop.db.key")).unwrap();
    log_with_records(&db);

    let served = serve_demo(&db, &["--key", key.to_str().unwrap()], &[]);
    assert_eq!(served.key, public);
    drop(served);
    // Every checkpoint in the log is signed by the key file's key.
    let output = run(
        unticked().arg("verify").arg("--db").arg(&db).arg("--key").arg(&key),
        LIMIT,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // Another log's key file: refused, and the log left as it was.
    let (stranger, _) = new_key(dir.path(), "stranger.key");
    let (code, stderr) = refused_serve(&db, &stranger);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("did not sign this log's checkpoints"), "{stderr}");
    let output = run(
        unticked().arg("verify").arg("--db").arg(&db).arg("--key").arg(&key),
        LIMIT,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn without_key_a_wrong_db_key_beside_an_existing_log_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    log_with_records(&db);
    // `<db>.key` swapped for a fresh one (a restore from the wrong backup).
    let beside = dir.path().join("shop.db.key");
    std::fs::remove_file(&beside).unwrap();
    keygen(&beside);
    let output = run(&mut serve_command(&db), LIMIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not sign this log's checkpoints"), "{stderr}");
}

#[test]
fn import_takes_the_key_file_serve_is_given_and_refuses_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = new_key(dir.path(), "shop.key");
    let db = dir.path().join("shop.db");
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, "email\nanna@example.com\n").unwrap();
    let import = |key: &Path| {
        run(
            unticked()
                .arg("import")
                .arg("--db")
                .arg(&db)
                .arg("--key")
                .arg(key)
                .arg("--config")
                .arg(root().join("www/consent.json"))
                .args(["--source", "unknown", "--public-origin", "https://consent.shop.example"])
                .arg(&csv),
            LIMIT,
        )
    };
    let missing = import(&dir.path().join("missing.key"));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.key"), "{stderr}");
    assert!(!db.exists(), "import created the log before refusing");

    let imported = import(&key);
    assert_eq!(
        imported.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        !dir.path().join("shop.db.key").exists(),
        "import --key made <db>.key too"
    );
    // The import's records are signed with the key file: serve --key takes the log.
    let served = serve_demo(&db, &["--key", key.to_str().unwrap()], &[]);
    assert_eq!(served.key, public);
    drop(served);
    let output = run(
        unticked().arg("verify").arg("--db").arg(&db).arg("--key").arg(&key),
        LIMIT,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

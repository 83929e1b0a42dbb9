//! `unticked lint` as a site owner (or CI) runs it: the real binary, its exit codes, and
//! both report formats, over the shared corpus in `testdata/config/`.

mod common;

use common::{root, run, unticked, TempFile};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const DEMO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json");

/// Generous: a debug build linting one small file takes milliseconds.
const LIMIT: Duration = Duration::from_secs(30);

fn lint(file: &Path) -> Output {
    run(unticked().arg("lint").arg(file), LIMIT)
}

fn lint_json(file: &Path) -> (Output, Value) {
    let output = run(unticked().arg("lint").arg("--json").arg(file), LIMIT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{}: --json printed something that is not JSON ({e}):\n{stdout}",
            file.display()
        )
    });
    (output, report)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A bad vector's config, exactly as `crates/core/tests/corpus.rs` builds it: `config_text`
/// verbatim (for defects that cannot survive a JSON round trip), else `config` serialised.
fn vector_text(case: &Value) -> String {
    match case.get("config_text") {
        Some(text) => text.as_str().expect("config_text is a string").to_string(),
        None => serde_json::to_string_pretty(&case["config"]).unwrap(),
    }
}

fn vector(name: &str) -> Value {
    let path = root().join("testdata/config/bad").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Writes a bad vector's config to a temp file and lints it as text.
fn lint_vector(name: &str) -> String {
    let file = TempFile::new(name.trim_end_matches(".json"), &vector_text(&vector(name)));
    let output = lint(file.path());
    assert_eq!(output.status.code(), Some(1), "{name}: {}", stdout(&output));
    stdout(&output)
}

/// The demo shop's own config is the example site owners copy: it must lint clean.
#[test]
fn lint_accepts_the_demo_config() {
    let output = lint(Path::new(DEMO_CONFIG));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains(": ok, no problems"), "{text}");
}

/// Every good vector exits 0 and its JSON report says `ok` with no problems.
#[test]
fn lint_accepts_every_good_vector() {
    let paths = json_files("testdata/config/good");
    assert!(paths.len() >= 5, "the corpus keeps at least 5 good configs");
    for path in &paths {
        let output = lint(path);
        assert_eq!(output.status.code(), Some(0), "{}: {}", path.display(), stdout(&output));
        let (output, report) = lint_json(path);
        assert_eq!(output.status.code(), Some(0), "{}: --json", path.display());
        assert_eq!(report["ok"], true, "{}: {report}", path.display());
        assert_eq!(report["problems"], serde_json::json!([]), "{}", path.display());
    }
}

/// Every bad vector: exit 2 when it is not JSON at all, else exit 1 and a JSON report whose
/// (code, path) set is exactly the vector's `expect`, every problem explained and attributed
/// to a rule. All failures are collected, so one run shows every divergence.
#[test]
fn lint_rejects_every_bad_vector_with_exactly_its_problems() {
    let paths = json_files("testdata/config/bad");
    assert!(paths.len() >= 25, "the corpus keeps at least 25 bad configs");
    let mut failures = Vec::new();
    let mut not_json = 0;
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let file = TempFile::new(&name, &vector_text(&case));
        let file_name = file.path().display().to_string();

        let text_run = lint(file.path());
        let (json_run, report) = lint_json(file.path());
        let expected_code = if case["expect"] == "not-json" { 2 } else { 1 };
        for (format, run) in [("text", &text_run), ("--json", &json_run)] {
            if run.status.code() != Some(expected_code) {
                failures.push(format!(
                    "{name} ({format}): exit {:?}, expected {expected_code}",
                    run.status.code()
                ));
            }
        }
        assert_eq!(report["file"], file_name.as_str(), "{name}: the report names the file");
        assert_eq!(report["ok"], false, "{name}: {report}");

        let problems = report["problems"].as_array().expect("problems is an array");
        if expected_code == 2 {
            not_json += 1;
            let error = report["error"].as_str().unwrap_or_default();
            assert!(error.contains("not valid JSON"), "{name}: error {error:?}");
            assert!(problems.is_empty(), "{name}: not JSON, yet problems {problems:?}");
            continue;
        }

        let want: BTreeSet<(String, String)> = case["expect"]
            .as_array()
            .expect("expect is a list or \"not-json\"")
            .iter()
            .map(|e| {
                (
                    e["code"].as_str().unwrap().to_string(),
                    e["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let got: BTreeSet<(String, String)> = problems
            .iter()
            .map(|p| {
                (
                    p["code"].as_str().unwrap_or("?").to_string(),
                    p["path"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        if want != got {
            failures.push(format!("{name}: expected {want:?}\n    got {got:?}"));
        }
        for p in problems {
            let rule = p["rule"].as_str().unwrap_or_default();
            let is_rule_id = rule == "schema" || (rule.starts_with('R') && rule[1..].parse::<u8>().is_ok());
            assert!(is_rule_id, "{name}: rule {rule:?} in {p}");
            let message = p["message"].as_str().unwrap_or_default();
            assert!(!message.trim().is_empty(), "{name}: no message in {p}");
            let source = p["source"].as_str().unwrap_or_default();
            assert!(!source.is_empty(), "{name}: no source in {p}");
        }

        // The text report counts the same problems the JSON report lists.
        let first_line = stdout(&text_run).lines().next().unwrap_or_default().to_string();
        let count = problems.len();
        let plural = if count == 1 { "" } else { "s" };
        let heading = format!("{file_name}: {count} problem{plural}");
        if first_line != heading {
            failures.push(format!("{name}: text heading {first_line:?}, expected {heading:?}"));
        }
    }
    assert!(not_json >= 1, "the corpus keeps a not-json vector");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A file that is not there is unusable (exit 2), not "clean" and not "rule violations".
#[test]
fn lint_reports_a_missing_file_as_unreadable() {
    let missing = std::env::temp_dir().join(format!("unticked-test-{}-missing.json", std::process::id()));
    assert!(!missing.exists());
    let output = lint(&missing);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("cannot read"), "{text}");

    let (output, report) = lint_json(&missing);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(report["ok"], false);
    assert!(
        report["error"].as_str().is_some_and(|e| e.contains("cannot read")),
        "{report}"
    );
}

/// The human-readable report tells the site owner where (JSON Pointer), what (rule and
/// code) and why (the legal source: R1 is the Planet49 judgment), in that order.
#[test]
fn lint_text_report_names_pointer_rule_and_legal_source() {
    let text = lint_vector("pre-ticked-checked-true.json");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with(": 1 problem"), "{text}");
    assert_eq!(lines[1], "  /purposes/0/checked", "{text}");
    assert!(lines[2].starts_with("    R1 pre-ticked: "), "{text}");
    assert!(
        lines[2].len() > "    R1 pre-ticked: ".len(),
        "the problem is explained: {text}"
    );
    assert!(
        lines[3].starts_with("    see ") && lines[3].contains("Planet49"),
        "{text}"
    );
}

/// Shape problems come from the schema, not from the law: no legal source is cited for them.
#[test]
fn lint_text_report_cites_no_legal_source_for_schema_problems() {
    let text = lint_vector("unknown-root-field.json");
    assert!(text.contains(" schema unknown-field: "), "{text}");
    assert!(!text.contains("see "), "{text}");
}

/// A problem with the whole document (JSON Pointer "") is shown as "/", never a blank line.
#[test]
fn lint_text_report_shows_the_root_pointer_as_slash() {
    let text = lint_vector("duplicate-key.json");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "  /", "{text}");
    assert!(lines[2].starts_with("    schema duplicate-key: "), "{text}");
}

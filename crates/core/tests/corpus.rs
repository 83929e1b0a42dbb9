#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! Shared test vectors for configs, read by one runner.
//!
//! `testdata/config/good/*.json` are plain configs that must lint clean.
//! `testdata/config/bad/<defect>.json` each carry `desc`, `expect` (the exact set of
//! problems, as code and JSON Pointer, or "not-json") and the config itself, either as
//! `config` or, where the defect cannot survive a JSON round trip, as `config_text`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use unticked_core::config::{Config, ConfigProblem};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn good_configs_lint_clean() {
    let mut paths = files("testdata/config/good");
    paths.push(root().join("www/consent.json"));
    assert!(paths.len() >= 5);
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(problem) = Config::from_json(&text) {
            panic!("{}: {problem}", path.display());
        }
    }
}

#[test]
fn bad_configs_report_exactly_their_defect() {
    let paths = files("testdata/config/bad");
    assert!(paths.len() >= 25, "the corpus keeps at least 25 bad configs");
    let mut failures = Vec::new();
    for path in &paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(case["desc"].as_str().is_some_and(|d| !d.is_empty()), "{name}: no desc");
        let text = match case.get("config_text") {
            Some(t) => t.as_str().unwrap().to_string(),
            None => serde_json::to_string_pretty(&case["config"]).unwrap(),
        };
        let result = Config::from_json(&text);
        match (&case["expect"], result) {
            (serde_json::Value::String(s), Err(ConfigProblem::NotJson(_))) if s == "not-json" => {}
            (serde_json::Value::Array(expected), Err(ConfigProblem::Invalid(errors))) => {
                let want: BTreeSet<(String, String)> = expected
                    .iter()
                    .map(|e| {
                        (
                            e["code"].as_str().unwrap().to_string(),
                            e["path"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect();
                let got: BTreeSet<(String, String)> = errors
                    .iter()
                    .map(|e| (e.code.as_str().to_string(), e.path.clone()))
                    .collect();
                if want != got {
                    failures.push(format!("{name}: expected {want:?}\n    got {got:?}"));
                }
                for e in &errors {
                    assert!(!e.message.is_empty(), "{name}: empty message");
                    // Rule problems cite their rule in the report line.
                    assert!(e.to_string().contains(e.rule().id()), "{name}: {e}");
                }
            }
            (expect, other) => failures.push(format!("{name}: expected {expect}, got {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_config_lints_clean() {
    // The README's example is what newcomers copy: it must be a valid config.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = &readme[readme.find("## The config").expect("README has a config section")..];
    let start = section.find("```json\n").expect("a json block") + "```json\n".len();
    let end = start + section[start..].find("```").expect("the block ends");
    if let Err(problem) = Config::from_json(&section[start..end]) {
        panic!("README config: {problem}");
    }
}

#[test]
fn a_byte_order_mark_is_ignored() {
    // Editors on Windows add one; the browser's Response.text() drops it, so must the linter.
    let text = std::fs::read_to_string(root().join("www/consent.json")).unwrap();
    assert!(Config::from_json(&format!("\u{feff}{text}")).is_ok());
}

#[test]
fn rule_breaking_configs_cite_the_rule() {
    for (file, rule) in [
        ("pre-ticked-checked-true", "R1"),
        ("required-purpose", "R3"),
        ("accept-all-switch", "R2"),
        ("channel-array", "R2"),
        ("legal-basis-contract", "R4"),
        ("missing-translation", "R5"),
    ] {
        let case: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(format!("testdata/config/bad/{file}.json"))).unwrap(),
        )
        .unwrap();
        let Err(ConfigProblem::Invalid(errors)) = Config::from_json(&case["config"].to_string()) else {
            panic!("{file} must be invalid");
        };
        assert_eq!(errors[0].rule().id(), rule, "{file}");
        assert!(!errors[0].rule().source().is_empty());
    }
}

/// docs/rules.md documents every code that breaks a rule, with that rule, and the codes are
/// distinct.
#[test]
fn every_rule_code_is_documented_with_its_rule() {
    use unticked_core::config::{ErrorCode, Rule};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules = std::fs::read_to_string(root.join("docs/rules.md")).unwrap();
    let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ErrorCode::ALL.len(), "codes are distinct");
    for code in ErrorCode::ALL {
        if code.rule() == Rule::Schema {
            continue;
        }
        let row = format!("| `{}` | {} |", code.as_str(), code.rule().id());
        assert!(rules.contains(&row), "docs/rules.md lacks the row {row}");
    }
}

/// `ErrorCode::ALL` names every code: as many as `as_str` has arms.
#[test]
fn the_list_of_codes_is_complete() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config/error.rs")).unwrap();
    let body = source.split("pub fn as_str(self)").nth(1).unwrap();
    let body = &body[..body.find("\n    }\n").unwrap()];
    let arms = body.lines().filter(|l| l.contains(" => \"")).count();
    assert_eq!(arms, unticked_core::config::ErrorCode::ALL.len());
}

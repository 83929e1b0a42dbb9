#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! `schema/consent.schema.json` (for editors) and the parser agree on every vector: the
//! schema rejects a config exactly when the parser finds a problem the schema can express
//! (shape, names, formats), and accepts everything the parser accepts.

use std::path::Path;
use unticked_core::config::{Config, ConfigProblem};

#[test]
fn schema_and_parser_agree_on_the_whole_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("schema/consent.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");

    let mut configs: Vec<(String, String)> = Vec::new();
    configs.push((
        "www/consent.json".into(),
        std::fs::read_to_string(root.join("www/consent.json")).unwrap(),
    ));
    for dir in ["good", "bad"] {
        for entry in std::fs::read_dir(root.join("testdata/config").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let name = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
            if dir == "good" {
                configs.push((name, text));
                continue;
            }
            let case: serde_json::Value = serde_json::from_str(&text).unwrap();
            if case.get("config_text").is_none() {
                configs.push((name, case["config"].to_string()));
            }
        }
    }
    assert!(configs.len() > 40);

    let mut disagreements = Vec::new();
    for (name, text) in &configs {
        let instance: serde_json::Value = serde_json::from_str(text).unwrap();
        let schema_valid = validator.is_valid(&instance);
        let parser_expects_schema_valid = match Config::from_json(text) {
            Ok(_) => true,
            Err(ConfigProblem::Invalid(errors)) => !errors.iter().any(|e| e.code.schema_checkable()),
            Err(ConfigProblem::NotJson(e)) => panic!("{name}: {e}"),
        };
        if schema_valid != parser_expects_schema_valid {
            let why: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
            disagreements.push(format!(
                "{name}: schema says {schema_valid}, parser says {parser_expects_schema_valid} ({why:?}; parser: {:?})",
                Config::from_json(text).err()
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

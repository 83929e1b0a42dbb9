#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! RFC 8785 canonical JSON: the core's small writer and the `serde_jcs` crate against the
//! shared vectors in `testdata/jcs/` (the RFC author's published test data, and ours), and
//! against each other on random documents.

use proptest::prelude::*;
use std::path::Path;
use unticked_core::jcs::{self, JcsError};
use unticked_core::json;

fn vectors() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/jcs");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".in.json") {
            let input = std::fs::read_to_string(&path).unwrap();
            let output = std::fs::read_to_string(dir.join(format!("{stem}.out.json"))).unwrap();
            out.push((stem.to_string(), input, output));
        }
    }
    out.sort();
    assert!(out.len() >= 7, "the vectors are all there");
    out
}

#[test]
fn serde_jcs_produces_every_published_output() {
    for (name, input, output) in vectors() {
        let value: serde_json::Value = serde_json::from_str(&input).unwrap();
        assert_eq!(serde_jcs::to_string(&value).unwrap(), output, "{name}");
    }
}

#[test]
fn the_core_writer_produces_every_output_within_its_scope() {
    for (name, input, output) in vectors() {
        let result = jcs::canonical(&json::parse(&input).unwrap());
        if name == "values" {
            // Fractions and 1e30: never in a consent record; refused, not guessed.
            assert!(
                matches!(result, Err(JcsError::UnsupportedNumber(_))),
                "{name}: {result:?}"
            );
            continue;
        }
        assert_eq!(result.as_deref(), Ok(output.as_str()), "{name}");
        assert!(jcs::is_canonical(&output), "{name}: the output is canonical");
        assert!(!jcs::is_canonical(&input), "{name}: the input is not");
    }
}

/// JSON values as records hold them: no fractions, integers within ±2^53.
fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(|n| serde_json::json!(n)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn agrees_with_serde_jcs(v in value(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { v.to_string() };
        let ours = jcs::canonical(&json::parse(&text).unwrap()).unwrap();
        prop_assert_eq!(&ours, &serde_jcs::to_string(&v).unwrap());
        prop_assert!(jcs::is_canonical(&ours));
    }
}

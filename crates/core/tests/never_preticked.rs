#![cfg(all(feature = "lint", feature = "words", feature = "verify"))]
//! R1 and R3 as a property: whatever a site owner writes, a config that the validator
//! accepts never renders a consent box that is ticked, required or disabled.
//!
//! Starting from every valid config in the corpus, proptest inserts keys (the forbidden
//! ones among many others) with arbitrary values at arbitrary depths, rewrites strings and
//! drops members; every mutant the validator accepts is rendered in every locale and
//! every form, and each box is checked.

use proptest::prelude::*;
use std::path::Path;
use unticked_core::config::Config;
use unticked_core::view;

const KEYS: &[&str] = &[
    "checked",
    "defaultChecked",
    "pre-ticked",
    "selected",
    "default",
    "value",
    "required",
    "aria-required",
    "mandatory",
    "disabled",
    "hidden",
    "readonly",
    "style",
    "class",
    "attrs",
    "html",
    "onclick",
    "label",
    "description",
    "state",
    "initial",
    "accept_all",
    "channels",
    "terms",
    "id",
    "version",
    "name",
];

fn valid_configs() -> Vec<serde_json::Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut texts = vec![std::fs::read_to_string(root.join("www/consent.json")).unwrap()];
    for entry in std::fs::read_dir(root.join("testdata/config/good")).unwrap() {
        texts.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert {
        at: usize,
        key: usize,
        value: serde_json::Value,
    },
    Rewrite {
        at: usize,
        text: String,
    },
    Remove {
        at: usize,
    },
}

fn value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<bool>().prop_map(serde_json::Value::Bool),
        Just(serde_json::json!("true")),
        Just(serde_json::json!("checked")),
        any::<i8>().prop_map(|n| serde_json::json!(n)),
        Just(serde_json::json!({"checked": true})),
        Just(serde_json::json!(["email-offers"])),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..KEYS.len(), value()).prop_map(|(at, key, value)| Mutation::Insert { at, key, value }),
        (
            any::<usize>(),
            prop_oneof![
                Just("checked".to_string()),
                Just("<b>x</b>".to_string()),
                "[a-z -]{0,12}"
            ]
        )
            .prop_map(|(at, text)| Mutation::Rewrite { at, text }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(config: &mut serde_json::Value, m: &Mutation) {
    fn nth_object<'a>(
        v: &'a mut serde_json::Value,
        n: &mut usize,
    ) -> Option<&'a mut serde_json::Map<String, serde_json::Value>> {
        match v {
            serde_json::Value::Object(_) if *n == 0 => v.as_object_mut(),
            serde_json::Value::Object(m) => {
                *n -= 1;
                m.values_mut().find_map(|c| nth_object(c, n))
            }
            serde_json::Value::Array(a) => a.iter_mut().find_map(|c| nth_object(c, n)),
            _ => None,
        }
    }
    fn nth_string<'a>(v: &'a mut serde_json::Value, n: &mut usize) -> Option<&'a mut String> {
        match v {
            serde_json::Value::String(s) if *n == 0 => Some(s),
            serde_json::Value::String(_) => {
                *n -= 1;
                None
            }
            serde_json::Value::Object(m) => m.values_mut().find_map(|c| nth_string(c, n)),
            serde_json::Value::Array(a) => a.iter_mut().find_map(|c| nth_string(c, n)),
            _ => None,
        }
    }
    fn count_objects(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
            serde_json::Value::Array(a) => a.iter().map(count_objects).sum(),
            _ => 0,
        }
    }
    let count = count_objects(config);
    match m {
        Mutation::Insert { at, key, value } => {
            if let Some(obj) = nth_object(config, &mut (at % count)) {
                obj.insert(KEYS[*key].to_string(), value.clone());
            }
        }
        Mutation::Remove { at } => {
            if let Some(obj) = nth_object(config, &mut (at % count)) {
                if let Some(k) = obj.keys().nth(at % obj.len().max(1)).cloned() {
                    obj.remove(&k);
                }
            }
        }
        Mutation::Rewrite { at, text } => {
            if let Some(s) = nth_string(config, &mut (at % 200)) {
                *s = text.clone();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_configs_never_render_a_ticked_or_required_box(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let configs = valid_configs();
        let mut json = configs[pick % configs.len()].clone();
        for m in &mutations {
            apply(&mut json, m);
        }
        let Ok(config) = Config::from_json(&json.to_string()) else { return Ok(()) };
        for form in &config.forms {
            for (locale, page_lang) in config.locales.iter().flat_map(|l| [(l, None), (l, Some(l.as_str())), (l, Some("fi"))]) {
                let fieldset = view::choices(&config, form, locale, page_lang, "u1");
                let inputs: Vec<_> = fieldset.descendants().into_iter().filter(|e| e.tag == "input").collect();
                prop_assert_eq!(inputs.len(), form.purposes.len());
                for input in inputs {
                    prop_assert_eq!(input.get("type"), Some("checkbox"));
                    for attr in ["checked", "required", "aria-required", "disabled", "readonly", "hidden", "style"] {
                        prop_assert!(input.get(attr).is_none(), "{} on {:?} after {:?}", attr, input, mutations);
                    }
                    prop_assert!(input.get("name").is_some_and(|n| n.starts_with("consent.")));
                }
            }
        }
    }
}

#[test]
fn the_unmutated_corpus_renders_every_purpose() {
    for json in valid_configs() {
        let config = Config::from_json(&json.to_string()).unwrap();
        for form in &config.forms {
            let fieldset = view::choices(&config, form, &config.default_locale, None, "u1");
            let labels = fieldset.descendants().into_iter().filter(|e| e.tag == "label").count();
            assert_eq!(labels, form.purposes.len());
        }
    }
}

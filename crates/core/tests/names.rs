//! The widget's attribute and class names are spelled once, in Rust (`view::attr`,
//! `view::class`, `vocabulary::SUPPORTED`), and `src/names.ts` is generated from them:
//! the JS (`src/widget.js`, `src/guards.js`) imports them instead of retyping them, and
//! the stylesheet styles no class the Rust does not name. A name changed on one side only
//! would otherwise render boxes the guards do not watch, or choices the CSS does not style.
//!
//! After changing a name: `UPDATE_NAMES=1 cargo test -p unticked-core --test names`.

use std::path::{Path, PathBuf};

use unticked_core::{compiled, view, vocabulary};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn js_string(text: &str) -> String {
    serde_json::to_string(text).expect("a &str serialises")
}

/// What `src/names.ts` must say: a `const enum` per Rust module, which esbuild replaces by
/// the literal strings when it bundles (and folds into the selectors built from them), so
/// the shared names cost the widget's download nothing. `export const` strings would each
/// stay a variable of the bundle (esbuild 0.28 inlines no constant across modules but a
/// TypeScript enum's), which cost 48–65 bytes gzip.
fn names_ts() -> String {
    let mut out = String::from(
        "// The widget's attribute and class names and the languages it has words for, generated\n\
         // from crates/core/src/view.rs (`attr`, `class`), crates/core/src/config (`PREFERENCES`),\n\
         // crates/core/src/vocabulary.rs (`SUPPORTED`) and crates/core/src/compiled (what a\n\
         // sheet's tree may hold) by crates/core/tests/names.rs, which fails when this file\n\
         // differs.\n\
         // Do not edit: `UPDATE_NAMES=1 cargo test -p unticked-core --test names` rewrites it.\n",
    );
    for (name, names) in [("Attr", view::attr::ALL), ("Class", view::class::ALL)] {
        out.push_str(&format!("export const enum {name} {{\n"));
        for (id, text) in names {
            out.push_str(&format!("  {id} = {},\n", js_string(text)));
        }
        out.push_str("}\n");
    }
    // The form kinds the widget itself knows: the account form goes to its own module.
    out.push_str(&format!(
        "export const enum Kind {{\n  PREFERENCES = {},\n}}\n",
        js_string(unticked_core::config::PREFERENCES)
    ));
    let list = |names: &[&str]| names.iter().map(|l| js_string(l)).collect::<Vec<_>>().join(", ");
    out.push_str(&format!(
        "export const LANGUAGES = [{}];\n",
        list(vocabulary::SUPPORTED)
    ));
    // What a compiled sheet's tree may contain (compiled::check_tree), which the widget
    // checks as it builds it.
    for (name, names) in [
        ("TAGS", compiled::TAGS),
        ("ATTRIBUTES", compiled::ATTRIBUTES),
        ("ID_ATTRIBUTES", compiled::ID_ATTRIBUTES),
        ("SAFE_LINKS", compiled::SAFE_LINKS),
    ] {
        out.push_str(&format!("export const {name} = [{}];\n", list(names)));
    }
    out
}

#[test]
fn src_names_ts_says_what_the_rust_constants_say() {
    let path = root().join("src/names.ts");
    let expected = names_ts();
    if std::env::var_os("UPDATE_NAMES").is_some() {
        std::fs::write(&path, &expected).expect("src/names.ts is writable");
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "src/names.ts differs from the names in crates/core (view::attr, view::class, vocabulary::SUPPORTED): \
         run `UPDATE_NAMES=1 cargo test -p unticked-core --test names`\n--- expected\n{expected}--- found\n{found}"
    );
}

/// The code of a JS file without its comments: lines that are comments, and what follows
/// ` // ` on the others. Good enough for the widget's own sources, which have no regular
/// expression or string containing ` // `.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") || trimmed.starts_with("/*") || trimmed.starts_with('*') {
            continue;
        }
        code.push_str(line.split(" // ").next().unwrap_or(line));
        code.push('\n');
    }
    code
}

#[test]
fn no_widget_script_spells_a_name_of_its_own() {
    // Each spelling that would be a name typed again: the attributes, the element classes,
    // the root class in a selector, the consent inputs' names.
    let spellings = [
        "data-unticked",
        "unticked__",
        ".unticked\"",
        ".unticked`",
        "\"consent.",
        "`consent.",
    ];
    for file in [
        "src/widget.js",
        "src/guards.js",
        "src/courier.js",
        "src/entry.js",
        "src/bytes.js",
        "src/tree.js",
        "src/config.js",
        "src/account.js",
    ] {
        let code = code_of(&read(file));
        for (number, line) in code.lines().enumerate() {
            for spelling in spellings {
                assert!(
                    !line.contains(spelling),
                    "{file}: `{spelling}` in `{}` (line {} of its code): import the name from ./names.ts",
                    line.trim(),
                    number + 1
                );
            }
        }
    }
    let widget = read("src/widget.js");
    assert!(
        widget.contains("from \"./names.ts\"") && read("src/guards.js").contains("from \"./names.ts\""),
        "widget.js and guards.js take their names from ./names.ts"
    );
    assert!(
        !code_of(&widget).contains("\"fieldset\", \"legend\""),
        "widget.js takes what a sheet may hold (TAGS, ATTRIBUTES) from ./names.ts"
    );
}

#[test]
fn the_stylesheet_styles_only_classes_the_rust_names() {
    let css = read("www/unticked.css");
    let known: Vec<&str> = view::class::ALL.iter().map(|(_, text)| *text).collect();
    let mut styled = 0;
    for (at, _) in css.match_indices(".unticked") {
        let class: String = css[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        assert!(
            known.contains(&class.as_str()),
            "www/unticked.css styles .{class}, which view::class does not name"
        );
        styled += 1;
    }
    assert!(styled > 10, "the stylesheet styles the widget's classes");
    for (at, _) in css.match_indices("[data-unticked") {
        let attr: String = css[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(
            view::attr::ALL.iter().any(|(_, text)| *text == attr),
            "www/unticked.css selects [{attr}], which view::attr does not name"
        );
    }
}

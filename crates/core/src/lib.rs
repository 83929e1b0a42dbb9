//! Unticked's pure core: the config model and its linter, the rules, locales and the view
//! of the consent choices. No DOM, no clock, no network; the widget (`src/`) and the
//! collector (`crates/collector`) are thin edges around it.
//!
//! ```
//! use unticked_core::{config::Config, view};
//!
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../www/consent.json")).unwrap();
//! let config = Config::from_json(&text).unwrap();
//! let form = config.form("newsletter").unwrap();
//! let fieldset = view::choices(&config, form, "lv", Some("lv"), "u1");
//! let boxes: Vec<_> = fieldset.descendants().into_iter().filter(|e| e.tag == "input").collect();
//! assert!(boxes.iter().all(|b| b.get("checked").is_none() && b.get("required").is_none()));
//! ```
#![no_std]
#![forbid(unsafe_code)]

// No std: the widget links this crate into a no_std wasm build, where std's panic and
// formatting machinery would cost more than the widget itself (measured with twiggy).
extern crate alloc;
#[cfg(test)]
extern crate std;

/// Builds the prose of a config problem. The widget's wasm build leaves the `messages`
/// feature off: it still names each problem by JSON Pointer, rule and code, and points the
/// site owner to `unticked lint` for the explanation, while the prose stays out of the
/// shoppers' download.
#[cfg(feature = "messages")]
macro_rules! message {
    ($($arg:tt)*) => { alloc::format!($($arg)*) };
}
#[cfg(not(feature = "messages"))]
macro_rules! message {
    // The closure is never called (so it compiles to nothing) but keeps the arguments used.
    ($($arg:tt)*) => {{
        let _ = || alloc::format!($($arg)*);
        alloc::string::String::new()
    }};
}

pub mod capture;
pub mod compiled;
pub mod config;
pub mod consent;
pub mod jcs;
pub mod json;
pub mod locale;
#[cfg(feature = "verify")]
pub mod merkle;
pub mod read;
pub mod record;
pub mod text;
pub mod view;
pub mod vocabulary;

//! The Unticked widget: a thin wasm edge around `unticked-core`.
//!
//! A page loads it with one tag, and every `form[data-unticked=KIND]` gets the consent
//! choices the site owner configured for that kind:
//!
//! ```html
//! <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//! ```
//!
//! `start` (called by the module itself once the wasm is instantiated) finds the config,
//! validates it with the same code as `unticked lint`, and attaches a [`Widget`]. Whatever
//! fails, the widget renders nothing, logs one console error that names the problem,
//! dispatches `unticked:error` on the document, and the page's forms work exactly as if the
//! widget were absent: it never throws into the page and never touches a submit.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
// Native builds (clippy, docs) and the browser-test binary link std; the shipped widget
// does not: std's panic and formatting machinery cost more than the widget itself.
#[cfg(any(not(target_arch = "wasm32"), feature = "std"))]
extern crate std;

// SAFETY: wasm32-unknown-unknown without the atomics feature runs on one thread only, which
// is what `AssumeSingleThreaded` requires. lol_alloc's free list is ~1 KB of wasm where
// dlmalloc was ~5 KB.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// A panic is a bug; it must not cost the page anything. It traps: the exception ends the
/// widget's own call (its start, one of its listeners) and reaches the page's error
/// reporting (window.onerror) like any script error, but no shop code is on the stack and
/// the forms keep working as they would without the widget.
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

pub mod dom;
mod widget;

use alloc::string::{String, ToString};
use unticked_core::text::{concat, decimal};

pub use widget::Widget;

use alloc::rc::Rc;
use core::cell::Cell;
use unticked_core::config::{Config, ConfigProblem};
use unticked_core::view;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// Id of the inline config alternative: `<script type="application/json" id="unticked-config">`.
pub const INLINE_CONFIG_ID: &str = "unticked-config";
/// Event dispatched on the document when the widget cannot run.
pub const ERROR_EVENT: &str = "unticked:error";
/// Set on `window` by the first copy of the widget, so a second copy does nothing.
const STARTED_FLAG: &str = "__untickedStarted";

/// Where the config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// JSON text from an inline `<script type="application/json">`.
    Inline(String),
    /// A URL from the loading script's `data-config`, fetched relative to the page.
    Url(String),
}

/// Why the widget did not attach. Each has a stable code for the `unticked:error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    NoConfig,
    Unreachable { url: String, reason: String },
    NotJson(String),
    Invalid(String),
    Dom(String),
}

impl StartError {
    pub fn code(&self) -> &'static str {
        match self {
            StartError::NoConfig => "config-missing",
            StartError::Unreachable { .. } => "config-unreachable",
            StartError::NotJson(_) => "config-not-json",
            StartError::Invalid(_) => "config-invalid",
            StartError::Dom(_) => "dom",
        }
    }

    pub fn message(&self) -> String {
        match self {
            StartError::NoConfig => concat(&[
                "no config: add data-config=\"/consent.json\" to the widget's script tag, or an inline <script type=\"application/json\" id=\"",
                INLINE_CONFIG_ID,
                "\">",
            ]),
            StartError::Unreachable { url, reason } => concat(&["could not load the config from ", url, ": ", reason]),
            StartError::NotJson(e) => concat(&["the config is not valid JSON: ", e]),
            StartError::Invalid(e) => concat(&[
                "the config breaks the rules, so no choices are shown: ",
                e,
                ". `unticked lint` explains each problem",
            ]),
            StartError::Dom(e) => concat(&["could not render the choices: ", e]),
        }
    }
}

/// What a thrown value says, e.g. "TypeError: Failed to fetch" (its `String(value)`).
fn js_error_text(value: &JsValue) -> String {
    if value.is_null() || value.is_undefined() {
        return "unknown error".to_string();
    }
    value.unchecked_ref::<js_sys::Object>().to_string().into()
}

/// Finds the config the page declares: the inline script first, then `data-config` on the
/// widget's own script tag.
pub fn find_config_source(document: &web_sys::Document) -> Option<ConfigSource> {
    if let Some(inline) = document.get_element_by_id(INLINE_CONFIG_ID) {
        return Some(ConfigSource::Inline(inline.text_content().unwrap_or_default()));
    }
    // Module scripts have no `document.currentScript`: the tag is the one with data-config,
    // the widget's own first should another library use the same attribute.
    let script = document
        .query_selector(view::selector::CONFIG_SCRIPT)
        .ok()
        .flatten()
        .or_else(|| document.query_selector("script[data-config]").ok().flatten())?;
    script
        .get_attribute("data-config")
        .filter(|url| !url.trim().is_empty())
        .map(ConfigSource::Url)
}

/// Calls `done` once with the promise's outcome. Plain callbacks rather than a futures
/// executor: the widget awaits two promises in its life, and an executor costs kilobytes.
fn settle(promise: &js_sys::Promise, done: impl FnOnce(Result<JsValue, JsValue>) + 'static) {
    let slot = Rc::new(Cell::new(Some(done)));
    let other = slot.clone();
    let on_ok = Closure::once_into_js(move |value: JsValue| {
        if let Some(done) = slot.take() {
            done(Ok(value));
        }
    });
    let on_err = Closure::once_into_js(move |error: JsValue| {
        if let Some(done) = other.take() {
            done(Err(error));
        }
    });
    if let Ok(then) = js_sys::Reflect::get(promise, &"then".into()).and_then(|t| t.dyn_into::<js_sys::Function>()) {
        let _ = then.call2(promise, &on_ok, &on_err);
    }
}

/// Loads the config text from its source and calls `done` with it.
///
/// Fails with [`StartError::Unreachable`] when the fetch fails or answers other than 2xx.
pub fn load_config_text(source: ConfigSource, done: impl FnOnce(Result<String, StartError>) + 'static) {
    let url = match source {
        ConfigSource::Inline(text) => return done(Ok(text)),
        ConfigSource::Url(url) => url,
    };
    let unreachable = move |url: &str, reason: String| StartError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let Some(window) = web_sys::window() else {
        return done(Err(unreachable(&url, "no window".into())));
    };
    settle(&window.fetch_with_str(&url), move |outcome| {
        let response = match outcome.map(|r| r.dyn_into::<web_sys::Response>()) {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => return done(Err(unreachable(&url, "not a response".into()))),
            Err(e) => return done(Err(unreachable(&url, js_error_text(&e)))),
        };
        if !response.ok() {
            return done(Err(unreachable(
                &url,
                concat(&["HTTP ", &decimal(response.status().into())]),
            )));
        }
        match response.text() {
            Ok(text) => settle(&text, move |outcome| match outcome {
                Ok(text) => done(Ok(text.as_string().unwrap_or_default())),
                Err(e) => done(Err(unreachable(&url, js_error_text(&e)))),
            }),
            Err(e) => done(Err(unreachable(&url, js_error_text(&e)))),
        }
    });
}

/// Validates config text with the linter's rules.
///
/// # Errors
/// [`StartError::NotJson`] or [`StartError::Invalid`] naming every problem.
pub fn parse_config(text: &str) -> Result<Config, StartError> {
    Config::from_json(text).map_err(|problem| match problem {
        ConfigProblem::NotJson(e) => StartError::NotJson(e.describe()),
        ConfigProblem::Invalid(errors) => {
            let mut list = String::new();
            for e in &errors {
                if !list.is_empty() {
                    list.push_str("; ");
                }
                list.push_str(&e.describe());
            }
            StartError::Invalid(list)
        }
    })
}

/// Loads, validates and attaches: everything `start` does except the once-per-page guard.
/// `done` gets the attached widget, or the [`StartError`] for the caller to report.
pub fn run(source: Option<ConfigSource>, done: impl FnOnce(Result<Widget, StartError>) + 'static) {
    let Some(source) = source else {
        return done(Err(StartError::NoConfig));
    };
    load_config_text(source, move |text| {
        let widget = text
            .and_then(|text| parse_config(&text))
            .and_then(|config| Widget::attach(config).map_err(|e| StartError::Dom(js_error_text(&e))));
        done(widget);
    });
}

/// Logs one console error and dispatches `unticked:error` (detail: `{code, message}`) on
/// the document. Never throws.
pub fn report(error: &StartError) {
    let message = error.message();
    web_sys::console::error_1(&JsValue::from_str(&concat(&["unticked: ", &message])));
    if let Some(document) = web_sys::window().and_then(|w| w.document()) {
        let detail = dom::object(&[("code", &error.code().into()), ("message", &message.into())]);
        dom::dispatch(&document, ERROR_EVENT, &detail);
    }
}

/// Entry point, called by `unticked.js` once the wasm is instantiated.
///
/// Runs once per page: a second copy of the script (another URL, a theme that adds it
/// again) finds the flag and does nothing, so nothing renders twice.
#[wasm_bindgen]
pub fn start() {
    // `window` rather than js_sys::global(): the widget runs in pages only, and the global
    // lookup's four fallbacks cost half a kilobyte of glue.
    let Some(window) = web_sys::window() else {
        return;
    };
    let flag = JsValue::from_str(STARTED_FLAG);
    if js_sys::Reflect::get(&window, &flag).is_ok_and(|v| v.is_truthy()) {
        return;
    }
    let _ = js_sys::Reflect::set(&window, &flag, &JsValue::TRUE);
    let Some(document) = window.document() else {
        return;
    };
    let source = find_config_source(&document);
    run(source, |outcome| match outcome {
        // The widget lives as long as the page.
        Ok(widget) => core::mem::forget(widget),
        Err(error) => report(&error),
    });
}

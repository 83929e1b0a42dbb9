//! The Unticked widget's wasm: it reads the compiled config and captures, with no DOM and no
//! network.
//!
//! A page loads the widget with one tag, and every `form[data-unticked=KIND]` gets the
//! consent choices the site owner configured for that kind:
//!
//! ```html
//! <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//! ```
//!
//! `unticked build` (and `unticked serve` at start) validates the config once, at the site
//! owner's side, and compiles it into `pkg/c/<sha256 of the config>/`
//! ([`unticked_core::compiled`]). This module reads what was compiled, exactly or not at all
//! ([`Site::open`], [`Form::mount`]), and captures a submit ([`Form::capture`]). `src/widget.js`
//! is the DOM edge: it builds the tree a [`Form`] gives, tracks which ticks came from the
//! shopper, and hands what the form holds to [`Form::capture`]; `src/courier.js` seals and
//! delivers what it returns.
//!
//! The boundary is wasm-bindgen's: classes with typed methods, arguments as JSON objects
//! whose members are named, all required and none unknown (read by the core's strict reader,
//! `unticked_core::compiled::reader`), and a [`Failure`] (code and message) thrown for
//! anything that cannot be done exactly. Answers are JSON written here.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

// SAFETY: wasm32-unknown-unknown without the atomics feature runs on one thread only, which
// is what `AssumeSingleThreaded` requires. lol_alloc's free list is ~1 KB of wasm where
// dlmalloc was ~5 KB.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
#[allow(unsafe_code)]
static ALLOCATOR: lol_alloc::AssumeSingleThreaded<lol_alloc::FreeListAllocator> =
    unsafe { lol_alloc::AssumeSingleThreaded::new(lol_alloc::FreeListAllocator::new()) };

/// A panic is a bug; it must not cost the page anything. It traps: the exception ends the
/// widget's own call and reaches `widget.js`, which leaves the form as it is and keeps the
/// submit's raw capture in the outbox.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use unticked_core::capture::{self, Submission, SALT_LEN};
use unticked_core::compiled::{self, Problem, Sheet};
use unticked_core::jcs::write_string;
use unticked_core::json::Json;
use unticked_core::read::{self, Reader, ROOT};
use unticked_core::record;
use unticked_core::text::concat;
use wasm_bindgen::prelude::wasm_bindgen;

/// The widget's version, recorded with each record.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Salts one capture can use: one per channel that can disclose a contact (e-mail, SMS,
/// phone and post), and one for the birthday's commitment (R8).
pub const SALTS: usize = 5;

/// What a call could not do: `code` names it (the widget reports it with `unticked:error`),
/// `message` explains it. Thrown to JavaScript as an instance of this class.
#[wasm_bindgen(getter_with_clone)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Failure {
        Failure {
            code: problem.code.to_string(),
            message: problem.message,
        }
    }
}

fn failure(code: &str, message: impl Into<String>) -> Failure {
    Failure {
        code: code.to_string(),
        message: message.into(),
    }
}

/// A call's argument `what`, a JSON object, read by `read` (members named, all given, none
/// unknown: [`Reader::object`]); `bad-argument` naming the first problem.
fn argument<T>(what: &str, json: &str, read: impl FnOnce(&mut Reader, &Json) -> T) -> Result<T, Failure> {
    let bad = |e: read::Error| failure("bad-argument", concat(&[what, ": ", &e.describe()]));
    let value = read::parse(json).map_err(bad)?;
    let mut reader = Reader::new();
    let read = read(&mut reader, &value);
    reader.finish(read).map_err(bad)
}

/// The compiled config's site file: where records go and which forms exist.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Site(compiled::Site);

#[wasm_bindgen]
impl Site {
    /// Reads `site.json` of the config whose text hashes to `config_sha256` (hex).
    ///
    /// # Errors
    /// `compiled-invalid`, `compiled-format` or `compiled-mismatch`.
    pub fn open(text: &str, config_sha256: &str) -> Result<Site, Failure> {
        Ok(Site(compiled::Site::from_json(text, config_sha256)?))
    }

    /// Where records are posted, as the config says it (a URL or a same-origin path).
    #[wasm_bindgen(getter)]
    pub fn endpoint(&self) -> String {
        self.0.endpoint.clone()
    }

    /// The sheet for a form of `kind`: `{"locale", "sheet"}` (the sheet's file name beside
    /// `site.json`), the locale chosen from `requested`: language tags separated by spaces,
    /// the form's `lang` first, then the browser's (`navigator.languages`).
    ///
    /// # Errors
    /// `form-unknown` when the config has no such form.
    pub fn choose(&self, kind: &str, requested: &str) -> Result<String, Failure> {
        let Some(locale) = self.0.locale_for(kind, requested.split_ascii_whitespace()) else {
            let mut message = concat(&[
                "form kind \"",
                kind,
                "\" is not in the config; that form gets no choices. Known:",
            ]);
            for form in &self.0.forms {
                message.push(' ');
                message.push_str(form);
            }
            return Err(failure("form-unknown", message));
        };
        let mut out = String::from("{\"locale\":");
        write_string(&mut out, locale);
        out.push_str(",\"sheet\":");
        write_string(&mut out, &compiled::sheet_name(kind, locale));
        out.push('}');
        Ok(out)
    }
}

/// One form's choices, mounted from its sheet: what a capture needs of what was shown.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Form {
    sheet: Sheet,
    view: String,
}

#[wasm_bindgen]
impl Form {
    /// Reads a sheet (its text) for the form `placement` says: JSON `{"configSha256",
    /// "kind", "locale" (as `Site::choose` chose it), "pageLang" (the form's `lang`, "" when
    /// the page declares none)}`, every member given and no other. The sheet's `tree` is not
    /// read here: `src/widget.js` builds it, checking it as it goes.
    ///
    /// # Errors
    /// `bad-argument`, or the sheet's `compiled-invalid`, `compiled-format`,
    /// `compiled-mismatch`: nothing is rendered, nothing is defaulted.
    pub fn mount(sheet: &str, placement: &str) -> Result<Form, Failure> {
        let keys = ["configSha256", "kind", "locale", "pageLang"];
        let [config_sha256, kind, locale, page_lang] = argument("placement", placement, |r, value| {
            let m = r.object(&ROOT, value, &keys);
            [0, 1, 2, 3].map(|i| r.string(&ROOT.key(keys[i]), m[i]))
        })?;
        let sheet = Sheet::from_json(sheet, &config_sha256, &kind, &locale)?;
        let page_lang = Some(page_lang.trim()).filter(|l| !l.is_empty());
        let view = view_json(&sheet, sheet.needs_lang(page_lang));
        Ok(Form { sheet, view })
    }

    /// The form's view: JSON, see [`view_json`].
    #[wasm_bindgen(getter)]
    pub fn view(&self) -> String {
        self.view.clone()
    }

    /// Captures the submit, synchronously (R3). `held` is what the form held, JSON with every
    /// member given and no other: `{"id"` (the record id the form carries), `"ticked"`,
    /// `"byShopper"` (arrays of purpose ids: the boxes ticked, and those the shopper's own
    /// last input left ticked), `"email", "phone", "post"` (the contact fields' raw values, ""
    /// when empty or absent; `post` joined with ", "), `"birthdayDay", "birthdayMonth"` (as
    /// typed, "" when not shown), `"origin", "path"` (`location`'s), `"now"` (`Date.now()`)`}`.
    /// `random` gives the salts' bytes ([`SALTS`] × 16: e-mail, SMS, phone, post, birthday).
    ///
    /// Returns `{"untrusted": [purpose…], "sealable": …}` (see
    /// `unticked_core::capture::Capture::sealable`).
    ///
    /// # Errors
    /// `bad-argument` for a missing or mistyped field, `capture-randomness` for too few
    /// random bytes (a salt must never be guessable), `capture-unknown-purpose` for a tick of
    /// a purpose the sheet does not show.
    pub fn capture(&self, held: &str, random: &[u8]) -> Result<String, Failure> {
        let keys = [
            "id",
            "ticked",
            "byShopper",
            "email",
            "phone",
            "post",
            "birthdayDay",
            "birthdayMonth",
            "origin",
            "path",
            "now",
        ];
        let (ticked, by_shopper, [id, email, phone, post, birthday_day, birthday_month, origin, path], now) =
            argument("held", held, |r, value| {
                let m = r.object(&ROOT, value, &keys);
                let at = |i: usize| ROOT.key(keys[i]);
                (
                    r.strings(&at(1), m[1]),
                    r.strings(&at(2), m[2]),
                    [0, 3, 4, 5, 6, 7, 8, 9].map(|i| r.string(&at(i), m[i])),
                    r.whole(&at(10), m[10]),
                )
            })?;
        if !(1..=record::MAX_SAFE_INTEGER).contains(&now) {
            return Err(failure(
                "bad-argument",
                "held: at /now: not a time in Unix milliseconds (Date.now())",
            ));
        }
        let ticked: Vec<&str> = ticked.iter().map(String::as_str).collect();
        let by_shopper: Vec<&str> = by_shopper.iter().map(String::as_str).collect();
        if random.len() < SALTS * SALT_LEN {
            return Err(failure(
                "capture-randomness",
                "a capture needs 80 random bytes for its salts (crypto.getRandomValues)",
            ));
        }
        for purpose in ticked.iter().chain(&by_shopper) {
            if self.sheet.purpose(purpose).is_none() {
                return Err(failure(
                    "capture-unknown-purpose",
                    concat(&["\"", purpose, "\" is no purpose of this form"]),
                ));
            }
        }
        let submission = Submission {
            id: &id,
            captured_at: now,
            page_origin: &origin,
            page_path: &path,
            widget: VERSION,
            ticked: &ticked,
            ticked_by_shopper: &by_shopper,
            email: &email,
            phone: &phone,
            post: &post,
            birthday_day: &birthday_day,
            birthday_month: &birthday_month,
        };
        let mut salts = random.chunks_exact(SALT_LEN);
        let salt = || {
            let mut salt = [0; SALT_LEN];
            // `random` holds SALTS salts and a capture takes at most one per channel that
            // discloses a contact and one for the birthday. Were that ever wrong, the trap
            // ends the call and the widget keeps the submit raw: a salt is never reused.
            salt.copy_from_slice(salts.next().expect("one salt per channel and the birthday"));
            salt
        };
        let assembled = capture::assemble(&self.sheet, &submission, salt);
        let mut out = String::from("{\"untrusted\":[");
        for (i, purpose) in assembled.untrusted.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(&mut out, purpose);
        }
        out.push_str("],\"sealable\":");
        out.push_str(&assembled.capture.sealable());
        out.push('}');
        Ok(out)
    }
}

/// What `src/widget.js` builds and checks: `{"locale", "lang" (whether the choices carry
/// their own `lang`), "contact": {"email", "phone", "post"}, "birthday": {"title", "day",
/// "month"} | null, "purposes": [{"id", "text"}]}` (each row's text as it must read).
fn view_json(sheet: &Sheet, lang: bool) -> String {
    let mut out = String::from("{\"locale\":");
    write_string(&mut out, &sheet.locale);
    out.push_str(if lang { ",\"lang\":true" } else { ",\"lang\":false" });
    let contact = &sheet.contact;
    for (i, (name, selector)) in [
        ("email", &contact.email),
        ("phone", &contact.phone),
        ("post", &contact.post),
    ]
    .into_iter()
    .enumerate()
    {
        out.push_str(if i == 0 { ",\"contact\":{\"" } else { ",\"" });
        out.push_str(name);
        out.push_str("\":");
        match selector {
            Some(selector) => write_string(&mut out, selector),
            None => out.push_str("null"),
        }
    }
    out.push_str("},\"birthday\":");
    match &sheet.birthday {
        Some(words) => {
            for (i, (name, text)) in [("title", &words.title), ("day", &words.day), ("month", &words.month)]
                .into_iter()
                .enumerate()
            {
                out.push_str(if i == 0 { "{\"" } else { ",\"" });
                out.push_str(name);
                out.push_str("\":");
                write_string(&mut out, text);
            }
            out.push('}');
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"purposes\":[");
    for (i, purpose) in sheet.purposes.iter().enumerate() {
        out.push_str(if i == 0 { "{\"id\":" } else { ",{\"id\":" });
        write_string(&mut out, &purpose.id);
        out.push_str(",\"text\":");
        write_string(&mut out, &purpose.text);
        out.push('}');
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests;

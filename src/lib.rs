//! The Unticked widget's wasm: the decisions, with no DOM and no network.
//!
//! A page loads the widget with one tag, and every `form[data-unticked=KIND]` gets the
//! consent choices the site owner configured for that kind:
//!
//! ```html
//! <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//! ```
//!
//! `src/widget.js` is the DOM edge: it finds and loads the config, watches for forms, builds
//! the tree this module renders, tracks which ticks came from the shopper, and at submit
//! reads the boxes and contact fields and seals what [`capture`] returns with WebCrypto.
//! Everything that decides something lives here and in `unticked-core`, shared with the
//! linter and the collector: whether the config is valid, what a form shows in which
//! language, what counts as consent, and the record's exact bytes.
//!
//! Strings in, strings out, through [`abi`]: each binding to a browser API costs JS glue that
//! every shopper downloads, and the DOM layer is smaller written as JavaScript (DESIGN.md's
//! size target).
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
/// widget's own call and reaches `widget.js`, which leaves the form as it is.
#[cfg(target_arch = "wasm32")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use unticked_core::capture::{self, Submission, SALT_LEN};
use unticked_core::config::{Config, ConfigProblem};
use unticked_core::jcs::write_string;
use unticked_core::locale::{self, Words};
use unticked_core::text::{concat, decimal};
use unticked_core::view;

/// The widget's version, recorded with each record.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Salts one capture can use: one per channel that can disclose a contact (e-mail, SMS,
/// phone and post), and one for the birthday's commitment (R8).
const SALTS: usize = 5;

/// The widget's state for the page: the validated config and the forms it rendered.
struct Widget {
    config: Option<Config>,
    /// SHA-256 of the config text, recorded with each capture.
    config_sha256: String,
    /// Indexed by mount handle; `None` once the form left the page.
    mounts: Vec<Option<Mount>>,
    /// The widget's own words in each language the page fetched (`pkg/locales/`).
    words: Vec<Words>,
}

/// One form's rendering: what a capture of it needs to know about what was shown.
struct Mount {
    kind: String,
    locale: String,
    /// Each purpose's id and the text displayed for it, in display order.
    texts: Vec<(String, String)>,
}

/// The page's one widget, reached from the exported functions.
struct Page(RefCell<Widget>);

// SAFETY: the widget is built for wasm32-unknown-unknown without the atomics feature, where
// there is one thread and `Sync` promises nothing that could be broken; natively (clippy,
// docs) nothing calls these functions from two threads either.
#[allow(unsafe_code)]
unsafe impl Sync for Page {}

static PAGE: Page = Page(RefCell::new(Widget {
    config: None,
    config_sha256: String::new(),
    mounts: Vec::new(),
    words: Vec::new(),
}));

fn with<T>(f: impl FnOnce(&mut Widget) -> T) -> T {
    f(&mut PAGE.0.borrow_mut())
}

/// `{"code": code, "message": message}`.
fn problem(code: &str, message: &str) -> String {
    let mut out = String::from("{\"code\":");
    write_string(&mut out, code);
    out.push_str(",\"message\":");
    write_string(&mut out, message);
    out.push('}');
    out
}

/// Validates the config text with the linter's own rules and keeps it for the page.
/// `sha256` is the SHA-256 of `text` (WebCrypto's), recorded with each capture.
///
/// Returns `{"endpoint"}` (where records go) when the config is good, else
/// `{"code", "message"}` with code
/// `config-not-json` or `config-invalid`, the message naming every problem.
pub fn configure(text: &str, sha256: &str) -> String {
    match Config::from_json(text) {
        Ok(config) => with(|w| {
            let mut out = String::from("{\"endpoint\":");
            write_string(&mut out, &config.endpoint);
            out.push('}');
            w.config = Some(config);
            w.config_sha256 = sha256.to_string();
            out
        }),
        Err(ConfigProblem::NotJson(e)) => problem(
            "config-not-json",
            &concat(&["the config is not valid JSON: ", &e.describe()]),
        ),
        Err(ConfigProblem::Invalid(errors)) => {
            let mut message = String::from("the config breaks the rules, so no choices are shown: ");
            for (i, e) in errors.iter().enumerate() {
                if i > 0 {
                    message.push_str("; ");
                }
                message.push_str(&e.describe());
            }
            message.push_str(". `unticked lint` explains each problem");
            problem("config-invalid", &message)
        }
    }
}

/// Keeps the widget's words in `language` (the text of `pkg/locales/<language>.json`).
/// Returns `""`, or `{"code", "message"}` naming what is wrong with them.
pub fn words(language: &str, text: &str) -> String {
    match Words::from_json(language, text) {
        Ok(words) => with(|w| {
            w.words.retain(|known| known.language != language);
            w.words.push(words);
            String::new()
        }),
        Err(message) => problem("words-invalid", &message),
    }
}

/// Renders the choices of a form of `kind`.
///
/// The locale is the first of `requested` (space-separated: the form's `lang`, then the
/// browser's languages) that the config declares, else its default; `page_lang` (the
/// form's `lang`, may be empty) decides whether the fieldset needs a `lang` of its own.
/// `id_prefix` keeps element ids unique on the page.
///
/// Returns `{"handle", "locale", "contact": {"email", "phone", "post"}, "tree",
/// "birthday"}`: the contact fields' selectors (`null` when the form names none), the
/// choices as [`view::Element::to_json`], and the birthday field's title, "day" and "month"
/// (`null` when no purpose asks for it). Or `{"words": language}` when the words of the locale's
/// language are still to be given ([`words`]), `{"warning"}` when the config has no such
/// form kind, `""` before a config was accepted.
pub fn mount(kind: &str, page_lang: &str, requested: &str, id_prefix: &str) -> String {
    with(|w| {
        let Some(config) = &w.config else {
            return String::new();
        };
        let Some(form) = config.form(kind) else {
            let mut message = concat(&[
                "form kind \"",
                kind,
                "\" is not in the config; that form gets no choices. Known:",
            ]);
            for form in &config.forms {
                message.push(' ');
                message.push_str(&form.kind);
            }
            let mut out = String::from("{\"warning\":");
            write_string(&mut out, &message);
            out.push('}');
            return out;
        };
        let locale = locale::negotiate(
            requested.split_ascii_whitespace(),
            &config.locales,
            &config.default_locale,
        );
        let language = locale::primary(locale);
        let Some(words) = w.words.iter().find(|words| words.language == language) else {
            let mut out = String::from("{\"words\":");
            write_string(&mut out, language);
            out.push('}');
            return out;
        };
        let page_lang = Some(page_lang.trim()).filter(|l| !l.is_empty());
        let tree = view::render(config, form, locale, words, page_lang, id_prefix);
        let mut out = String::from("{\"handle\":");
        out.push_str(&decimal(w.mounts.len() as u64));
        out.push_str(",\"locale\":");
        write_string(&mut out, locale);
        let contact = &form.contact;
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
        out.push_str("},\"tree\":");
        out.push_str(&tree.to_json());
        // The birthday field's words, when a purpose asks for it (R8); `src/widget.js` builds
        // the field, which is no part of what the record's hashes cover.
        out.push_str(",\"birthday\":");
        let asks_birthday = config
            .purposes_of(form)
            .any(|p| p.fields.contains(&unticked_core::config::ExtraField::Birthday));
        if asks_birthday {
            for (i, key) in ["birthday", "day", "month"].into_iter().enumerate() {
                out.push(if i == 0 { '[' } else { ',' });
                write_string(&mut out, words.get(key));
            }
            out.push(']');
        } else {
            out.push_str("null");
        }
        out.push('}');
        let mount = Mount {
            kind: kind.to_string(),
            locale: locale.to_string(),
            texts: view::purpose_texts(&tree),
        };
        w.mounts.push(Some(mount));
        out
    })
}

/// Forgets a mounted form (it left the page).
pub fn unmount(handle: usize) {
    with(|w| {
        if let Some(slot) = w.mounts.get_mut(handle) {
            *slot = None;
        }
    });
}

/// Captures the submit of a mounted form, synchronously (R3).
///
/// `ticked` and `by_shopper` are space-separated purpose ids: the boxes ticked now, and
/// those the shopper's own last input left ticked. `contacts` are the contact fields' raw
/// values (e-mail, phone, postal address) and `birthday` the birthday field's day and
/// month. `random` supplies the salts: 16 bytes for each of the four channels that can
/// disclose a contact (e-mail, SMS, phone, post), and 16 for the birthday.
///
/// Returns `{"untrusted": [purpose…], "sealable": …}` (see
/// `unticked_core::capture::Capture::sealable`), or `""` for an unknown handle or too
/// little randomness (a salt must never be guessable).
#[allow(clippy::too_many_arguments)] // one flat call from JS, no objects to marshal
pub fn capture(
    handle: usize,
    id: &str,
    ticked: &str,
    by_shopper: &str,
    [email, phone, post]: [&str; 3],
    [birthday_day, birthday_month]: [&str; 2],
    origin: &str,
    path: &str,
    now: u64,
    random: &[u8],
) -> String {
    with(|w| {
        let (Some(config), Some(Some(mount))) = (&w.config, w.mounts.get(handle)) else {
            return String::new();
        };
        if random.len() < SALTS * SALT_LEN {
            return String::new();
        }
        let ticked: Vec<&str> = ticked.split_ascii_whitespace().collect();
        let by_shopper: Vec<&str> = by_shopper.split_ascii_whitespace().collect();
        let submission = Submission {
            id,
            captured_at: now,
            page_origin: origin,
            page_path: path,
            config_sha256: &w.config_sha256,
            widget: VERSION,
            ticked: &ticked,
            ticked_by_shopper: &by_shopper,
            email,
            phone,
            post,
            birthday_day,
            birthday_month,
        };
        let mut salts = random.chunks_exact(SALT_LEN);
        let salt = || {
            let mut salt = [0; SALT_LEN];
            salt.copy_from_slice(salts.next().unwrap_or_default());
            salt
        };
        let Some(assembled) = capture::assemble(config, &mount.kind, &mount.locale, &mount.texts, &submission, salt)
        else {
            return String::new();
        };
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
        out
    })
}

/// The boundary with `src/wasm.js`, without generated glue (its JS cost more than the whole
/// DOM edge). Each function takes one UTF-8 text the caller wrote into memory from
/// [`abi::unticked_alloc`]: its arguments joined by U+001F, which no valid config and no
/// value the caller passes contains (it strips them). It returns the answer's address and
/// length packed in a `u64` (address in the high half), which the caller reads and hands
/// back to [`abi::unticked_free`]. Numbers travel as decimal text, bytes as hex.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
pub mod abi {
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::vec::Vec;

    const SEPARATOR: char = '\u{1f}';

    /// `len` bytes for the caller to write an input into; [`read`] takes them back.
    #[no_mangle]
    pub extern "C" fn unticked_alloc(len: usize) -> *mut u8 {
        let mut buffer = Vec::<u8>::with_capacity(len);
        let ptr = buffer.as_mut_ptr();
        core::mem::forget(buffer);
        ptr
    }

    /// Frees an answer once the caller has read it.
    ///
    /// # Safety
    /// `ptr` and `len` are an answer this module returned, freed once.
    #[no_mangle]
    pub unsafe extern "C" fn unticked_free(ptr: *mut u8, len: usize) {
        // SAFETY: the caller's contract: an answer from `answer` below, a boxed slice.
        drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }

    /// The input at `ptr` (from `unticked_alloc(len)`, filled by the caller), as text.
    fn read(ptr: *mut u8, len: usize) -> String {
        // SAFETY: `ptr` came from `unticked_alloc(len)` with capacity `len`, and the caller
        // wrote `len` bytes to it; the buffer is taken back and freed here, once.
        let bytes = unsafe { Vec::from_raw_parts(ptr, len, len) };
        // SAFETY: `src/wasm.js` writes only `TextEncoder.encode` output, which is UTF-8
        // by definition (a lone surrogate becomes U+FFFD). Checking again cost 0.7 KB.
        unsafe { String::from_utf8_unchecked(bytes) }
    }

    fn answer(text: String) -> u64 {
        let bytes = text.into_bytes().into_boxed_slice();
        let len = bytes.len() as u64;
        (Box::into_raw(bytes) as *mut u8 as u64) << 32 | len
    }

    fn args<const N: usize>(text: &str) -> [&str; N] {
        let mut out = [""; N];
        for (slot, arg) in out.iter_mut().zip(text.split(SEPARATOR)) {
            *slot = arg;
        }
        out
    }

    fn number(text: &str) -> u64 {
        text.parse().unwrap_or(0)
    }

    #[no_mangle]
    pub extern "C" fn configure(ptr: *mut u8, len: usize) -> u64 {
        let input = read(ptr, len);
        let [text, sha256] = args(&input);
        answer(super::configure(text, sha256))
    }

    #[no_mangle]
    pub extern "C" fn mount(ptr: *mut u8, len: usize) -> u64 {
        let input = read(ptr, len);
        let [kind, page_lang, requested, id_prefix] = args(&input);
        answer(super::mount(kind, page_lang, requested, id_prefix))
    }

    #[no_mangle]
    pub extern "C" fn words(ptr: *mut u8, len: usize) -> u64 {
        let input = read(ptr, len);
        let [language, text] = args(&input);
        answer(super::words(language, text))
    }

    #[no_mangle]
    pub extern "C" fn unmount(handle: usize) {
        super::unmount(handle);
    }

    #[no_mangle]
    pub extern "C" fn capture(ptr: *mut u8, len: usize) -> u64 {
        let input = read(ptr, len);
        let [handle, id, ticked, by_shopper, email, phone, post, day, month, origin, path, now, random] = args(&input);
        let random = unticked_core::record::unhex(random).unwrap_or_default();
        let handle = number(handle) as usize;
        let now = number(now);
        answer(super::capture(
            handle,
            id,
            ticked,
            by_shopper,
            [email, phone, post],
            [day, month],
            origin,
            path,
            now,
            &random,
        ))
    }
}

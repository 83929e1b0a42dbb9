//! `/admin`: the site owner's console, served by the collector. Plain HTML forms that work
//! with JavaScript off, under the same strict CSP as the shop (no inline script or style),
//! in the browser's language where the console has words for it, else the config's default.
//!
//! - **Sign-in** with the admin token (`UNTICKED_ADMIN_TOKEN`), posted once in a form body,
//!   never put in a URL. A wrong token counts against the address exactly as a wrong bearer
//!   token does (one budget, crate::admin::token_matches). The session is a random cookie
//!   value, HttpOnly, SameSite=Strict, Secure when the collector's public origin is https,
//!   scoped to `/admin`; the store keeps only its SHA-256 (crate::store::ConsoleSession),
//!   so every instance behind a load balancer knows it and a sign-out ends it everywhere.
//!   It ends after [`SESSION_IDLE`] without use and [`SESSION_LIFETIME`] after sign-in.
//! - **CSRF**: every form that changes something carries a token derived from the session
//!   (HMAC under the collector's secret), checked in constant time, beside SameSite=Strict
//!   (OWASP's synchronizer token pattern). A GET never changes anything.
//! - **Subjects** are found by their contact through the keyed index (R10), the contact
//!   travelling in the form body, never in a URL (URLs end up in access logs); their
//!   records, the texts they were shown (from the stored texts, by the hash the record
//!   names), and each receipt, checked live against the latest checkpoint. Erasure (Art.
//!   17), rectification (Art. 16) and restriction (Art. 18) go through the same functions as
//!   the admin API, each behind a confirmation step.
//!
//! Every text and attribute is escaped (crate::pages::escape): purpose ids, pages and
//! contacts come from the config, from browsers and from shoppers, never as markup.

use crate::error::{Code, Refusal};
use crate::limit::Client;
use crate::pages::escape;
use crate::state::Collector;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use unticked_core::consent::Now;
use unticked_core::record::{self, ConsentRecord};

/// The session cookie's name.
pub const COOKIE: &str = "unticked-console";
/// A session unused this long has ended (OWASP ASVS 3.3.2 asks for an idle timeout).
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(8 * 3600);
/// How often a session's last use is written back: once a minute is enough for a timeout
/// counted in half hours, and spares the store a write per page.
const TOUCH_EVERY_MS: u64 = 60_000;

/// The console's stylesheet, `GET /admin/console.css`.
pub const STYLESHEET: &str = include_str!("console.css");

/// The console's routes, merged into the collector's app (crate::serve).
pub fn routes() -> Router<Arc<Collector>> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(|| async { see_other("/admin") }))
        .route("/admin/console.css", get(stylesheet))
        .route("/admin/sign-in", post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/subject", post(subject))
        .route("/admin/subject/erase", post(erase))
        .route("/admin/subject/rectify", post(rectify))
        .route("/admin/subject/restrict", post(restrict))
        .route("/admin/subject/bundle", post(subject_bundle))
        .route("/admin/records/{id}/bundle", get(record_bundle))
        .route("/admin/dashboard", get(dashboard))
        .route("/admin/configs", get(configs))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

// ---------------------------------------------------------------------------------------
// Words

/// The console's words in one language (`crates/collector/console/<language>.json`).
/// Every language has every word: a missing one fails to load, and a test loads them all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Words {
    pub title: String,
    pub skip: String,
    pub nav_subjects: String,
    pub nav_dashboard: String,
    pub nav_configs: String,
    pub sign_out: String,
    pub sign_in_heading: String,
    pub token_label: String,
    pub token_hint: String,
    pub sign_in: String,
    pub wrong_token: String,
    pub too_many: String,
    pub disabled: String,
    pub signed_out: String,
    pub expired: String,
    pub bad_csrf: String,
    pub unavailable: String,
    pub search_heading: String,
    pub identifier_label: String,
    pub identifier_hint: String,
    pub postal_label: String,
    pub find: String,
    pub bad_identifier: String,
    pub not_found: String,
    pub subject_heading: String,
    pub standing_heading: String,
    pub col_purpose: String,
    pub col_state: String,
    pub col_since: String,
    pub col_record: String,
    pub state_given: String,
    pub state_refused: String,
    pub state_withdrawn: String,
    pub state_outdated: String,
    pub state_expired: String,
    pub state_unconfirmed: String,
    pub state_restricted: String,
    pub state_renewed: String,
    pub state_unasked: String,
    pub restricted_under: String,
    pub timeline_heading: String,
    pub captured: String,
    pub form: String,
    pub source: String,
    pub signer: String,
    pub language: String,
    pub page: String,
    pub notice: String,
    pub step: String,
    pub contacts: String,
    pub no_purposes: String,
    pub text_shown: String,
    pub text_missing: String,
    pub receipt: String,
    pub receipt_ok: String,
    /// The inclusion proof does not lead to the latest root.
    pub receipt_bad: String,
    /// The store did not answer, so nothing was checked.
    pub receipt_unchecked: String,
    /// The receipt's checkpoint or the latest one is not signed by this collector.
    pub receipt_unsigned: String,
    /// The latest checkpoint does not extend the receipt's (RFC 9162 §2.1.4).
    pub receipt_not_extended: String,
    pub receipt_pending: String,
    pub download_record: String,
    pub bundle_heading: String,
    pub download_subject: String,
    pub with_contacts: String,
    pub rights_heading: String,
    pub erase_legend: String,
    pub erase: String,
    pub erase_confirm: String,
    pub erased: String,
    pub rectify_legend: String,
    pub replacement_label: String,
    pub merge_label: String,
    pub rectify: String,
    pub rectify_confirm: String,
    pub rectified: String,
    pub restrict_legend: String,
    pub restrict: String,
    pub lift: String,
    pub restrict_confirm: String,
    pub lift_confirm: String,
    pub restricted_done: String,
    pub no_purpose_ticked: String,
    pub confirm: String,
    pub cancel: String,
    pub configs_heading: String,
    pub col_config: String,
    pub col_first: String,
    pub col_last: String,
    pub current: String,
    pub compare_heading: String,
    pub compare_from: String,
    pub compare_to: String,
    pub compare: String,
    pub diff_heading: String,
    pub no_changes: String,
    pub unknown_config: String,
    pub no_configs: String,
    pub dashboard_heading: String,
    /// The dashboard's own words (crate::dashboard).
    pub dashboard: crate::dashboard::DashboardWords,
}

/// The languages the console speaks, English first (the fallback).
pub const LANGUAGES: &[&str] = &["en", "lv", "pl", "cs", "de", "lt", "et"];

/// The console's words in `language` (one of [`LANGUAGES`]).
///
/// # Errors
/// A language the console does not speak, or words that do not load (a test loads all).
pub fn words(language: &str) -> Result<Words, String> {
    let text = match language {
        "en" => include_str!("../console/en.json"),
        "lv" => include_str!("../console/lv.json"),
        "pl" => include_str!("../console/pl.json"),
        "cs" => include_str!("../console/cs.json"),
        "de" => include_str!("../console/de.json"),
        "lt" => include_str!("../console/lt.json"),
        "et" => include_str!("../console/et.json"),
        other => return Err(format!("the console has no words in \"{other}\"")),
    };
    serde_json::from_str(text).map_err(|e| format!("console/{language}.json: {e}"))
}

/// The language of the console for this request: the first of the browser's languages
/// (`Accept-Language`, RFC 9110 §12.5.4, in its order, a `q=0` one left out) that the
/// console speaks, else the config's default locale, else English.
pub fn language(headers: &HeaderMap, default_locale: &str) -> &'static str {
    let speaks = |tag: &str| {
        let primary = unticked_core::locale::primary(tag.trim()).to_ascii_lowercase();
        LANGUAGES.iter().copied().find(|l| *l == primary)
    };
    let accepted = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut ranked: Vec<(f32, usize, &str)> = accepted
        .split(',')
        .enumerate()
        .filter_map(|(at, item)| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            (q > 0.0 && !tag.is_empty()).then_some((q, at, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked
        .iter()
        .find_map(|(_, _, tag)| speaks(tag))
        .or_else(|| speaks(default_locale))
        .unwrap_or("en")
}

/// `template` with each `{name}` replaced by its (already escaped) value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    // One pass over the template, so a value that itself reads `{name}` (an address may)
    // is never filled in again.
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&escape(&rest[..open]));
        let after = &rest[open + 1..];
        match after.find('}').map(|close| (&after[..close], close)) {
            Some((name, close)) if values.iter().any(|(n, _)| *n == name) => {
                out.push_str(values.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(&escape(rest));
    out
}

/// The words of this request, with its language.
fn words_for(collector: &Collector, headers: &HeaderMap) -> (&'static str, Words) {
    let language = language(headers, &collector.config.default_locale);
    match words(language) {
        Ok(w) => (language, w),
        // Every language loads (a test says so); English is the fallback regardless.
        Err(e) => {
            tracing::error!(error = %e, "console words");
            ("en", words("en").expect("the English words load"))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sessions

/// A signed-in session: the hash its row is kept under, and its CSRF token.
pub struct Session {
    id: [u8; 32],
    csrf: String,
}

impl Session {
    fn of(collector: &Collector, id: [u8; 32]) -> Session {
        let mut data = b"unticked console csrf v1\0".to_vec();
        data.extend_from_slice(&id);
        Session {
            id,
            csrf: record::hex(&collector.store.link_mac(&data)),
        }
    }

    /// Whether the form's CSRF token is this session's (constant time).
    fn allows(&self, given: Option<&str>) -> bool {
        crate::lifecycle::constant_time_eq(given.unwrap_or("").as_bytes(), self.csrf.as_bytes())
    }

    fn hidden(&self) -> String {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(&self.csrf))
    }
}

fn now_ms() -> u64 {
    crate::store::now_ms()
}

/// The cookie's value in the request, if any.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

fn session_id(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// A keyed hash of the admin token (under the collector's secret), kept with each session:
/// a session opened with another token than today's has ended (the token was changed
/// because it leaked, say). `None` while the console is off.
fn token_mac(collector: &Collector) -> Option<[u8; 32]> {
    let token = collector.admin_token.as_deref()?;
    let mut data = b"unticked console token v1\0".to_vec();
    data.extend_from_slice(token.as_bytes());
    Some(collector.store.link_mac(&data))
}

/// The request's live session, if it has one; an ended one is deleted on the way. With the
/// admin token unset no session is live, and one opened under another token has ended.
fn session(collector: &Collector, headers: &HeaderMap) -> Result<Option<Session>, Refusal> {
    let (Some(value), Some(mac)) = (cookie_value(headers), token_mac(collector)) else {
        return Ok(None);
    };
    let id = session_id(&value);
    let Some(row) = collector
        .store
        .console_session(&id)
        .map_err(crate::error::unavailable)?
    else {
        return Ok(None);
    };
    let now = now_ms();
    let idle = SESSION_IDLE.as_millis() as u64;
    let same_token = crate::lifecycle::constant_time_eq(&row.token_mac, &mac);
    if !same_token || now >= row.expires_at || now.saturating_sub(row.seen_at) >= idle {
        collector
            .store
            .close_console_session(&id)
            .map_err(crate::error::unavailable)?;
        return Ok(None);
    }
    if now.saturating_sub(row.seen_at) >= TOUCH_EVERY_MS {
        collector
            .store
            .touch_console_session(&id, now)
            .map_err(crate::error::unavailable)?;
    }
    Ok(Some(Session::of(collector, id)))
}

/// Whether the collector's pages are reached over https (its first public origin): the
/// cookie is then marked Secure, and a browser never sends it in clear.
fn over_https(collector: &Collector) -> bool {
    collector.lifecycle.public_origin.starts_with("https://")
}

fn session_cookie(collector: &Collector, value: &str, max_age: std::time::Duration) -> HeaderValue {
    let cookie = cookie::Cookie::build((COOKIE, value.to_string()))
        .path("/admin")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(over_https(collector))
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a cookie of base64url and fixed attributes is a header value")
}

// ---------------------------------------------------------------------------------------
// Pages

/// A whole console page. `session` adds the navigation and the sign-out button.
fn document(lang: &str, w: &Words, title: &str, session: Option<&Session>, current: &str, body: &str) -> String {
    headed(lang, w, title, &escape(title), session, current, body)
}

/// [`document`] with a heading (escaped markup) other than its title: the subject view's
/// names the contact, its title does not, since titles go to the browser's history.
fn headed(
    lang: &str,
    w: &Words,
    title: &str,
    heading: &str,
    session: Option<&Session>,
    current: &str,
    body: &str,
) -> String {
    let nav = session.map_or_else(String::new, |s| {
        let link = |href: &str, label: &str| {
            let here = if href == current { " aria-current=\"page\"" } else { "" };
            format!("<li><a href=\"{href}\"{here}>{}</a></li>", escape(label))
        };
        format!(
            "<nav aria-label=\"{title}\"><ul>{}{}{}</ul></nav>\
             <form class=\"sign-out\" method=\"post\" action=\"/admin/sign-out\">{}<button type=\"submit\">{}</button></form>",
            link("/admin", &w.nav_subjects),
            link("/admin/dashboard", &w.nav_dashboard),
            link("/admin/configs", &w.nav_configs),
            s.hidden(),
            escape(&w.sign_out),
            title = escape(&w.title),
        )
    });
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\">\
         <title>{title} · {console}</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/admin/console.css\"></head>\
         <body><a class=\"skip\" href=\"#main\">{skip}</a>\
         <header class=\"bar\"><span class=\"brand\">{console}</span>{nav}</header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{heading}</h1>{body}</main></body></html>",
        lang = escape(lang),
        title = escape(title),
        console = escape(&w.title),
        skip = escape(&w.skip),
    )
}

/// A page answered with `status`, never cached (it shows a subject's data) and never
/// sent with a referrer (crate::serve sets `Referrer-Policy: same-origin` too).
fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

fn see_other(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

fn notice(text: &str) -> String {
    format!("<p class=\"notice\" role=\"status\">{text}</p>")
}

fn alert(text: &str) -> String {
    format!("<p class=\"alert\" role=\"alert\">{text}</p>")
}

/// The sign-in page, with `message` (escaped markup) above the form.
fn sign_in_page(collector: &Collector, lang: &str, w: &Words, status: StatusCode, message: &str) -> Response {
    let body = if collector.admin_token.is_none() {
        alert(&escape(&w.disabled))
    } else {
        format!(
            "{message}<form class=\"card\" method=\"post\" action=\"/admin/sign-in\">\
             <label for=\"token\">{label}</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required aria-describedby=\"token-hint\">\
             <p id=\"token-hint\" class=\"hint\">{hint}</p>\
             <button type=\"submit\">{sign_in}</button></form>",
            label = escape(&w.token_label),
            hint = escape(&w.token_hint),
            sign_in = escape(&w.sign_in),
        )
    };
    page(status, document(lang, w, &w.sign_in_heading, None, "", &body))
}

/// A page for a refusal of the store (503) or of the request.
fn refusal_page(lang: &str, w: &Words, session: Option<&Session>, refusal: &Refusal) -> Response {
    let text = match refusal.code {
        Code::Unavailable => escape(&w.unavailable),
        Code::BadIdentifier => escape(&w.bad_identifier),
        Code::UnknownSubject => escape(&w.not_found),
        // The API's own words name the problem exactly (for example a rectification that
        // would merge two subjects); they are English, as the API's are.
        _ => escape(&refusal.message),
    };
    page(
        refusal.status(),
        document(lang, w, &w.title, session, "", &alert(&text)),
    )
}

/// What a handler needs first: the words, and a session with (for a POST) a valid CSRF
/// token; otherwise the page that says why not.
struct Signed {
    lang: &'static str,
    w: Words,
    session: Session,
}

fn signed_in(collector: &Collector, headers: &HeaderMap, csrf: Option<Option<&str>>) -> Result<Signed, Box<Response>> {
    let (lang, w) = words_for(collector, headers);
    let session = match session(collector, headers) {
        Ok(Some(session)) => session,
        Ok(None) => {
            let message = if cookie_value(headers).is_some() {
                notice(&escape(&w.expired))
            } else {
                String::new()
            };
            return Err(Box::new(sign_in_page(
                collector,
                lang,
                &w,
                StatusCode::UNAUTHORIZED,
                &message,
            )));
        }
        Err(refusal) => return Err(Box::new(refusal_page(lang, &w, None, &refusal))),
    };
    if let Some(given) = csrf {
        if !session.allows(given) {
            tracing::warn!("console: a form without this session's CSRF token was refused");
            let body = alert(&escape(&w.bad_csrf));
            return Err(Box::new(page(
                StatusCode::FORBIDDEN,
                document(lang, &w, &w.title, Some(&session), "", &body),
            )));
        }
    }
    Ok(Signed { lang, w, session })
}

/// A form's fields; a name may repeat (the purposes to restrict).
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn ticked(fields: &Fields, name: &str) -> bool {
    field(fields, name).is_some_and(|v| !v.is_empty())
}

/// `ms` as a UTC date and time, `2026-12-03 11:37 UTC`.
pub fn when(ms: u64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn search_form(w: &Words, s: &Session, value: &str) -> String {
    format!(
        "<form class=\"card search\" method=\"post\" action=\"/admin/subject\">{csrf}\
         <h2>{heading}</h2>\
         <label for=\"identifier\">{label}</label>\
         <input id=\"identifier\" name=\"identifier\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" required aria-describedby=\"identifier-hint\" value=\"{value}\">\
         <p id=\"identifier-hint\" class=\"hint\">{hint}</p>\
         <p class=\"check\"><input id=\"postal\" name=\"channel\" type=\"checkbox\" value=\"post\"><label for=\"postal\">{postal}</label></p>\
         <button type=\"submit\">{find}</button></form>",
        csrf = s.hidden(),
        heading = escape(&w.search_heading),
        label = escape(&w.identifier_label),
        hint = escape(&w.identifier_hint),
        postal = escape(&w.postal_label),
        find = escape(&w.find),
        value = escape(value),
    )
}

// ---------------------------------------------------------------------------------------
// Sign-in and out

/// `GET /admin`: the subject search when signed in, else the sign-in form.
async fn home(State(collector): State<Arc<Collector>>, headers: HeaderMap) -> Response {
    let s = match signed_in(&collector, &headers, None) {
        Ok(s) => s,
        Err(page) => return page_ok_if_signed_out(*page),
    };
    let body = search_form(&s.w, &s.session, "");
    page(
        StatusCode::OK,
        document(s.lang, &s.w, &s.w.nav_subjects, Some(&s.session), "/admin", &body),
    )
}

/// The sign-in page asked for by name is no error: 200, not the 401 of a page that needs a
/// session.
fn page_ok_if_signed_out(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
}

/// `POST /admin/sign-in` `token=…`: a new session, or the form again saying why not.
async fn sign_in(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (lang, w) = words_for(&collector, &headers);
    let Some(expected) = collector.admin_token.clone() else {
        return sign_in_page(&collector, lang, &w, StatusCode::NOT_FOUND, "");
    };
    let given = form.map(|Form(f)| f.token).unwrap_or_default();
    // While the address is held back, no token is even compared (unlike the API, where the
    // right token always passes): a guesser behind it learns nothing, whatever they send.
    // The site owner held back with it waits too, or signs in from another address, and
    // the API still answers their token.
    let now = std::time::Instant::now();
    let held_back = collector.limits.admin.check(client, now).map_err(|_| {
        let wait = collector.limits.admin.charge(client, now);
        tracing::warn!(client = %client.address(), wait_s = wait.as_secs(), "console: sign-in while held back");
        crate::error::too_many(Code::RateLimited, "too many wrong admin tokens from this address", wait)
    });
    let checked = held_back.and_then(|()| crate::admin::token_matches(&collector, client, &given, &expected, "admin"));
    if let Err(refusal) = checked {
        let message = match refusal.retry_after {
            Some(seconds) => fill(&w.too_many, &[("minutes", &seconds.div_ceil(60).max(1).to_string())]),
            None => escape(&w.wrong_token),
        };
        let mut response = sign_in_page(&collector, lang, &w, refusal.status(), &alert(&message));
        if let Some(seconds) = refusal.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return response;
    }
    let value = match crate::lifecycle::random::<32>() {
        Ok(bytes) => record::base64url(&bytes),
        Err(refusal) => return refusal_page(lang, &w, None, &refusal),
    };
    let now = now_ms();
    let expires_at = now + SESSION_LIFETIME.as_millis() as u64;
    let Some(mac) = token_mac(&collector) else {
        return sign_in_page(&collector, lang, &w, StatusCode::NOT_FOUND, "");
    };
    if let Err(e) = collector
        .store
        .open_console_session(&session_id(&value), &mac, now, expires_at)
    {
        return refusal_page(lang, &w, None, &crate::error::unavailable(e));
    }
    tracing::info!(client = %client.address(), "console: signed in");
    let mut response = see_other("/admin");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&collector, &value, SESSION_LIFETIME));
    response
}

/// `POST /admin/sign-out`: ends the session in the store (on every instance) and clears
/// the cookie.
async fn sign_out(State(collector): State<Arc<Collector>>, headers: HeaderMap, Form(fields): Form<Fields>) -> Response {
    let s = match signed_in(&collector, &headers, Some(field(&fields, "csrf"))) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    if let Err(e) = collector.store.close_console_session(&s.session.id) {
        return refusal_page(s.lang, &s.w, Some(&s.session), &crate::error::unavailable(e));
    }
    let mut response = sign_in_page(
        &collector,
        s.lang,
        &s.w,
        StatusCode::OK,
        &notice(&escape(&s.w.signed_out)),
    );
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&collector, "", std::time::Duration::ZERO),
    );
    response
}

// ---------------------------------------------------------------------------------------
// Subjects

/// The subject a form names: its normalised identifier, and whether it is a postal address.
fn subject_in(fields: &Fields) -> Result<(String, bool), Refusal> {
    let post = field(fields, "channel") == Some("post");
    let identifier = crate::admin::identifier_from(field(fields, "identifier").unwrap_or(""), post)?;
    Ok((identifier, post))
}

/// Hidden fields that name the subject again in the next form.
fn subject_hidden(s: &Session, identifier: &str, post: bool) -> String {
    let mut out = s.hidden();
    out.push_str(&format!(
        "<input type=\"hidden\" name=\"identifier\" value=\"{}\">",
        escape(identifier)
    ));
    if post {
        out.push_str("<input type=\"hidden\" name=\"channel\" value=\"post\">");
    }
    out
}

/// `POST /admin/subject` `identifier=…`: the subject's view.
async fn subject(State(collector): State<Arc<Collector>>, headers: HeaderMap, Form(fields): Form<Fields>) -> Response {
    let s = match signed_in(&collector, &headers, Some(field(&fields, "csrf"))) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    match subject_in(&fields) {
        Ok((identifier, post)) => subject_page(&collector, &s, &identifier, post, StatusCode::OK, ""),
        Err(_) => {
            let body = format!(
                "{}{}",
                alert(&escape(&s.w.bad_identifier)),
                search_form(&s.w, &s.session, field(&fields, "identifier").unwrap_or(""))
            );
            page(
                StatusCode::UNPROCESSABLE_ENTITY,
                document(s.lang, &s.w, &s.w.nav_subjects, Some(&s.session), "/admin", &body),
            )
        }
    }
}

/// A state's name in the console's words.
fn state_word<'a>(w: &'a Words, name: &str) -> &'a str {
    match name {
        "given" => &w.state_given,
        "refused" => &w.state_refused,
        "withdrawn" => &w.state_withdrawn,
        "outdated" => &w.state_outdated,
        "expired" => &w.state_expired,
        "unconfirmed" => &w.state_unconfirmed,
        "restricted" => &w.state_restricted,
        "renewed" => &w.state_renewed,
        _ => &w.state_unasked,
    }
}

/// The record a standing rests on, and since when.
fn rests_on(now: &Now) -> Option<(&str, u64)> {
    match now {
        Now::Unasked => None,
        Now::Given { record, at, .. }
        | Now::Refused { record, at }
        | Now::Withdrawn { record, at, .. }
        | Now::Outdated { record, at, .. }
        | Now::Expired { record, at, .. }
        | Now::Unconfirmed { record, at, .. } => Some((record, *at)),
        Now::Restricted { under, .. } => rests_on(under),
    }
}

/// A purpose's label in `lang` where the config has it, else in its first locale.
fn purpose_label(collector: &Collector, id: &str, lang: &str) -> String {
    collector
        .config
        .purpose(id)
        .and_then(|p| {
            p.text
                .iter()
                .find(|(l, _)| unticked_core::locale::same_language(l, lang))
                .or_else(|| p.text.first())
                .map(|(_, t)| t.label.clone())
        })
        .unwrap_or_default()
}

/// The subject's view: where each purpose stands, every record with the texts shown and
/// its receipt checked now, the evidence download, and the rights, each behind a
/// confirmation. `message` (escaped markup) goes above.
fn subject_page(
    collector: &Collector,
    s: &Signed,
    identifier: &str,
    post: bool,
    status: StatusCode,
    message: &str,
) -> Response {
    let w = &s.w;
    let history = match crate::lifecycle::history(collector, identifier) {
        Ok(history) => history,
        Err(refusal) => return refusal_page(s.lang, w, Some(&s.session), &refusal),
    };
    if history.records.is_empty() {
        let body = format!(
            "{message}{}{}",
            notice(&escape(&w.not_found)),
            search_form(w, &s.session, identifier)
        );
        let status = if status == StatusCode::OK {
            StatusCode::NOT_FOUND
        } else {
            status
        };
        return page(
            status,
            document(s.lang, w, &w.nav_subjects, Some(&s.session), "/admin", &body),
        );
    }
    let restrictions = match collector.store.restrictions(identifier) {
        Ok(r) => r,
        Err(e) => return refusal_page(s.lang, w, Some(&s.session), &crate::error::unavailable(e)),
    };
    let standing = unticked_core::consent::restricted(crate::lifecycle::standing(collector, &history), &restrictions);
    let mut body = String::from(message);

    // Where each purpose stands now.
    body.push_str(&format!(
        "<section aria-labelledby=\"standing\"><h2 id=\"standing\">{}</h2><table class=\"standing\"><thead><tr>\
         <th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        escape(&w.standing_heading),
        escape(&w.col_purpose),
        escape(&w.col_state),
        escape(&w.col_since),
        escape(&w.col_record),
    ));
    for st in standing.iter().filter(|st| !matches!(st.now, Now::Unasked)) {
        let state = match &st.now {
            Now::Restricted { since, under } => fill(
                &w.restricted_under,
                &[
                    ("date", &escape(&when(*since))),
                    ("state", &escape(state_word(w, under.name()))),
                ],
            ),
            now => escape(state_word(w, now.name())),
        };
        let (record_id, at) = rests_on(&st.now).map_or((String::new(), String::new()), |(r, at)| {
            (
                format!("<a href=\"#r-{0}\"><code>{0}</code></a>", escape(r)),
                escape(&when(at)),
            )
        });
        body.push_str(&format!(
            "<tr data-purpose=\"{id}\" data-state=\"{name}\"><th scope=\"row\"><code>{id}</code> {label}</th><td>{state}</td><td>{at}</td><td>{record_id}</td></tr>",
            id = escape(&st.purpose),
            name = st.now.name(),
            label = escape(&purpose_label(collector, &st.purpose, s.lang)),
        ));
    }
    body.push_str("</tbody></table></section>");

    // The evidence for an auditor.
    body.push_str(&format!(
        "<section aria-labelledby=\"evidence\"><h2 id=\"evidence\">{heading}</h2>\
         <form class=\"card\" method=\"post\" action=\"/admin/subject/bundle\">{hidden}\
         <p class=\"check\"><input id=\"bundle-contacts\" name=\"contacts\" type=\"checkbox\" value=\"yes\"><label for=\"bundle-contacts\">{contacts}</label></p>\
         <button type=\"submit\">{download}</button></form></section>",
        heading = escape(&w.bundle_heading),
        hidden = subject_hidden(&s.session, identifier, post),
        contacts = escape(&w.with_contacts),
        download = escape(&w.download_subject),
    ));

    // The records, oldest first.
    let latest = collector.store.latest();
    let key = collector.store.public_key();
    let latest_signed = latest.as_ref().is_some_and(|c| checkpoint_signed(collector, c, &key));
    body.push_str(&format!(
        "<section aria-labelledby=\"timeline\"><h2 id=\"timeline\">{}</h2><ol class=\"timeline\">",
        escape(&w.timeline_heading)
    ));
    for (index, r, rows) in &history.records {
        body.push_str(&record_item(
            collector,
            w,
            *index,
            r,
            rows,
            latest.as_ref(),
            latest_signed,
        ));
    }
    body.push_str("</ol></section>");

    // The rights, each behind a confirmation.
    body.push_str(&rights_forms(collector, s, identifier, post));
    let heading = fill(&w.subject_heading, &[("identifier", &escape(identifier))]);
    page(
        status,
        headed(s.lang, w, &w.nav_subjects, &heading, Some(&s.session), "/admin", &body),
    )
}

/// Whether `checkpoint` carries the collector's signature over its note (C2SP
/// tlog-checkpoint), under the collector's own key.
fn checkpoint_signed(
    collector: &Collector,
    checkpoint: &crate::store::Checkpoint,
    key: &ed25519_dalek::VerifyingKey,
) -> bool {
    let body = crate::store::checkpoint_body(
        collector.store.origin(),
        checkpoint.size,
        &checkpoint.root,
        checkpoint.timestamp,
    );
    ed25519_dalek::Signature::from_slice(&checkpoint.signature)
        .is_ok_and(|signature| key.verify_strict(body.as_bytes(), &signature).is_ok())
}

/// One record of the timeline: what it says, the texts shown, its receipt checked now.
fn record_item(
    collector: &Collector,
    w: &Words,
    index: u64,
    r: &ConsentRecord,
    rows: &[crate::store::SubjectRow],
    latest: Option<&crate::store::Checkpoint>,
    latest_signed: bool,
) -> String {
    let id = escape(&r.id);
    let mut out = format!("<li id=\"r-{id}\" class=\"record\"><h3><code>{id}</code></h3><dl class=\"facts\">");
    let mut fact = |name: &str, value: String| {
        out.push_str(&format!("<dt>{}</dt><dd>{value}</dd>", escape(name)));
    };
    fact(&w.captured, escape(&when(r.captured_at)));
    fact(&w.form, format!("<code>{}</code>", escape(&r.form)));
    fact(&w.source, escape(r.source.as_str()));
    fact(&w.signer, escape(r.signer.as_str()));
    fact(&w.language, escape(&r.locale));
    fact(&w.page, escape(&format!("{}{}", r.page_origin, r.page_path)));
    fact(&w.notice, escape(&format!("{} ({})", r.notice_url, r.notice_version)));
    if let Some(act) = &r.act {
        fact(&w.step, escape(&act_text(act)));
    }
    if !rows.is_empty() {
        let channels: Vec<&str> = rows.iter().map(|row| row.channel.as_str()).collect();
        fact(&w.contacts, escape(&channels.join(", ")));
    }
    out.push_str("</dl>");
    if r.purposes.is_empty() {
        out.push_str(&format!("<p>{}</p>", escape(&w.no_purposes)));
    } else {
        out.push_str("<ul class=\"purposes\">");
        for p in &r.purposes {
            let text = match collector.store.text(&p.text_sha256) {
                Ok(Some((_, _, _, text))) if crate::texts::sha256_hex(text.as_bytes()) == p.text_sha256 => format!(
                    "<blockquote lang=\"{}\" class=\"shown\">{}</blockquote>",
                    escape(&r.locale),
                    escape(&text)
                ),
                _ => alert(&escape(&w.text_missing)),
            };
            out.push_str(&format!(
                "<li data-purpose=\"{pid}\" data-state=\"{state}\"><p><code>{pid}</code> v{version}: <strong>{state_word}</strong></p>\
                 <p class=\"label\">{shown}</p>{text}<p class=\"hash\">SHA-256 <code>{sha}</code></p></li>",
                pid = escape(&p.id),
                version = p.version,
                state = p.state.as_str(),
                state_word = escape(state_word(w, p.state.as_str())),
                shown = escape(&w.text_shown),
                sha = escape(&p.text_sha256),
            ));
        }
        out.push_str("</ul>");
    }
    out.push_str(&format!(
        "<div class=\"receipt\"><h4>{}</h4>{}<p><a href=\"/admin/records/{id}/bundle\" download>{}</a></p></div></li>",
        escape(&w.receipt),
        receipt_check(collector, w, index, latest, latest_signed),
        escape(&w.download_record),
    ));
    out
}

/// A collector-signed step in words (record.rs `Act`).
fn act_text(act: &record::Act) -> String {
    match act {
        record::Act::Confirms(signup) => format!("confirms {signup}"),
        record::Act::Imported { provenance, .. } => format!("imported ({})", provenance.as_str()),
        record::Act::Assisted { staff, recording } => format!("assisted by {staff}, recording {recording}"),
        record::Act::Rectifies(ids) => format!("rectifies {} records", ids.len()),
    }
}

/// The receipt of the record at `index`, checked now: its leaf (the hash of the exact
/// stored bytes, RFC 9162 §2.1.1) with its inclusion proof leads to the latest
/// checkpoint's root (§2.1.3.2), and that checkpoint is signed by this collector.
fn receipt_check(
    collector: &Collector,
    w: &Words,
    index: u64,
    latest: Option<&crate::store::Checkpoint>,
    latest_signed: bool,
) -> String {
    // Each failed check is named: an owner told "the proof fails" when the store merely did
    // not answer, or when the signature is what fails, is told a wrong fact.
    let failed = |words: &str| alert(&escape(words)).replace("<p ", "<p data-verified=\"no\" ");
    // A store that cannot answer is no proof either way.
    let Ok(logged) = collector.store.checkpoint_covering(index) else {
        return failed(&w.receipt_unchecked);
    };
    let (Some(latest), Some(logged)) = (latest, logged) else {
        return format!("<p>{}</p>", escape(&w.receipt_pending));
    };
    let Ok(Some(bytes)) = collector.store.record_at(index) else {
        return failed(&w.receipt_unchecked);
    };
    // Both checkpoints, the receipt's own and the latest, are this collector's.
    let key = collector.store.public_key();
    if !latest_signed || !checkpoint_signed(collector, &logged, &key) {
        return failed(&w.receipt_unsigned);
    }
    let Some((_, proof)) = collector.store.inclusion(index, latest.size) else {
        return failed(&w.receipt_unchecked);
    };
    let leaf = unticked_core::merkle::leaf_hash(bytes.as_bytes());
    if !unticked_core::merkle::verify_inclusion(&leaf, index, latest.size, &proof, &latest.root) {
        return failed(&w.receipt_bad);
    }
    // The latest tree extends the receipt's (RFC 9162 §2.1.4): the log was not rewritten
    // since the record was acknowledged.
    let extended = if logged.size == latest.size {
        logged.root == latest.root
    } else if logged.size > latest.size {
        false
    } else {
        let Some(proof) = collector.store.consistency(logged.size, latest.size) else {
            return failed(&w.receipt_unchecked);
        };
        unticked_core::merkle::verify_consistency(logged.size, latest.size, &logged.root, &latest.root, &proof)
    };
    if !extended {
        return failed(&w.receipt_not_extended);
    }
    format!(
        "<p class=\"verified\" data-verified=\"yes\">{}</p><p class=\"hash\">root <code>{}</code></p>",
        fill(
            &w.receipt_ok,
            &[
                ("index", &index.to_string()),
                ("logged", &logged.size.to_string()),
                ("size", &latest.size.to_string()),
            ],
        ),
        record::hex(&latest.root)
    )
}

/// The forms of erasure, rectification and restriction for the subject.
fn rights_forms(collector: &Collector, s: &Signed, identifier: &str, post: bool) -> String {
    let w = &s.w;
    let hidden = subject_hidden(&s.session, identifier, post);
    let mut purposes = String::new();
    for p in &collector.config.purposes {
        purposes.push_str(&format!(
            "<p class=\"check\"><input id=\"restrict-{id}\" name=\"purpose\" type=\"checkbox\" value=\"{id}\"><label for=\"restrict-{id}\"><code>{id}</code> {label}</label></p>",
            id = escape(&p.id),
            label = escape(&purpose_label(collector, &p.id, s.lang)),
        ));
    }
    // A postal address has no normal form a replacement could be checked against
    // (crate::lifecycle::normalise_identifier): it is rectified by erasing it and asking again.
    let rectify_form = format!(
        "<form class=\"card\" method=\"post\" action=\"/admin/subject/rectify\">{hidden}<fieldset><legend>{rectify_legend}</legend>\
         <label for=\"replacement\">{replacement}</label><input id=\"replacement\" name=\"replacement\" type=\"text\" autocomplete=\"off\" spellcheck=\"false\" required>\
         <p class=\"check\"><input id=\"merge\" name=\"merge\" type=\"checkbox\" value=\"yes\"><label for=\"merge\">{merge}</label></p>\
         <button type=\"submit\">{rectify}</button></fieldset></form>",
        rectify_legend = escape(&w.rectify_legend),
        replacement = escape(&w.replacement_label),
        merge = escape(&w.merge_label),
        rectify = escape(&w.rectify),
    );
    format!(
        "<section aria-labelledby=\"rights\"><h2 id=\"rights\">{heading}</h2>\
         <form class=\"card\" method=\"post\" action=\"/admin/subject/erase\">{hidden}<fieldset><legend>{erase_legend}</legend>\
         <button type=\"submit\" class=\"danger\">{erase}</button></fieldset></form>\
         {rectify_form}\
         <form class=\"card\" method=\"post\" action=\"/admin/subject/restrict\">{hidden}<fieldset><legend>{restrict_legend}</legend>{purposes}\
         <button type=\"submit\" name=\"lift\" value=\"\">{restrict}</button> <button type=\"submit\" name=\"lift\" value=\"yes\">{lift}</button></fieldset></form>\
         </section>",
        heading = escape(&w.rights_heading),
        erase_legend = escape(&w.erase_legend),
        erase = escape(&w.erase),
        rectify_form = if post { String::new() } else { rectify_form },
        restrict_legend = escape(&w.restrict_legend),
        restrict = escape(&w.restrict),
        lift = escape(&w.lift),
    )
}

/// The confirmation step of a right: the question, and the same form again with
/// `confirmed=yes`, or back to the subject.
fn confirmation(s: &Signed, action: &str, question: &str, fields: &Fields, identifier: &str, post: bool) -> Response {
    let w = &s.w;
    let mut hidden = subject_hidden(&s.session, identifier, post);
    for (name, value) in fields {
        if !matches!(name.as_str(), "csrf" | "identifier" | "channel" | "confirmed") {
            hidden.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(name),
                escape(value)
            ));
        }
    }
    let body = format!(
        "<form class=\"card confirm\" method=\"post\" action=\"{action}\">{hidden}\
         <p id=\"question\">{question}</p>\
         <button type=\"submit\" name=\"confirmed\" value=\"yes\" class=\"danger\" aria-describedby=\"question\">{yes}</button></form>\
         <form class=\"card\" method=\"post\" action=\"/admin/subject\">{back}<button type=\"submit\">{cancel}</button></form>",
        action = escape(action),
        back = subject_hidden(&s.session, identifier, post),
        yes = escape(&w.confirm),
        cancel = escape(&w.cancel),
    );
    page(
        StatusCode::OK,
        document(s.lang, w, &w.rights_heading, Some(&s.session), "/admin", &body),
    )
}

/// Signed in, with the CSRF token and a subject: what each right's handler starts with.
fn right_request(
    collector: &Collector,
    headers: &HeaderMap,
    fields: &Fields,
) -> Result<(Signed, String, bool), Box<Response>> {
    let s = signed_in(collector, headers, Some(field(fields, "csrf")))?;
    match subject_in(fields) {
        Ok((identifier, post)) => Ok((s, identifier, post)),
        Err(refusal) => Err(Box::new(refusal_page(s.lang, &s.w, Some(&s.session), &refusal))),
    }
}

/// `POST /admin/subject/erase`: asks, then erases (Art. 17) as the admin API does.
async fn erase(State(collector): State<Arc<Collector>>, headers: HeaderMap, Form(fields): Form<Fields>) -> Response {
    let (s, identifier, post) = match right_request(&collector, &headers, &fields) {
        Ok(request) => request,
        Err(page) => return *page,
    };
    if field(&fields, "confirmed") != Some("yes") {
        let question = fill(&s.w.erase_confirm, &[("identifier", &escape(&identifier))]);
        return confirmation(&s, "/admin/subject/erase", &question, &fields, &identifier, post);
    }
    match crate::admin::erase_subject(&collector, identifier).await {
        Ok(rows) => {
            tracing::info!(rows, "console: subject erased");
            let body = format!(
                "{}{}",
                notice(&fill(&s.w.erased, &[("rows", &rows.to_string())])),
                search_form(&s.w, &s.session, "")
            );
            page(
                StatusCode::OK,
                document(s.lang, &s.w, &s.w.nav_subjects, Some(&s.session), "/admin", &body),
            )
        }
        Err(refusal) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
    }
}

/// `POST /admin/subject/rectify` `replacement=…`: asks, then rectifies (Art. 16).
async fn rectify(State(collector): State<Arc<Collector>>, headers: HeaderMap, Form(fields): Form<Fields>) -> Response {
    let (s, identifier, post) = match right_request(&collector, &headers, &fields) {
        Ok(request) => request,
        Err(page) => return *page,
    };
    let replacement = field(&fields, "replacement").unwrap_or("").to_string();
    let Some(normalised) = crate::lifecycle::normalise_identifier(&replacement) else {
        let refusal = crate::error::refuse(Code::BadIdentifier, "replacement");
        return refusal_page(s.lang, &s.w, Some(&s.session), &refusal);
    };
    if field(&fields, "confirmed") != Some("yes") {
        let question = fill(
            &s.w.rectify_confirm,
            &[
                ("identifier", &escape(&identifier)),
                ("replacement", &escape(&normalised)),
            ],
        );
        return confirmation(&s, "/admin/subject/rectify", &question, &fields, &identifier, post);
    }
    match crate::rights::rectify_contact(&collector, identifier, &replacement, ticked(&fields, "merge")).await {
        Ok(_) => {
            let message = notice(&fill(&s.w.rectified, &[("replacement", &escape(&normalised))]));
            subject_page(&collector, &s, &normalised, false, StatusCode::OK, &message)
        }
        Err(refusal) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
    }
}

/// `POST /admin/subject/restrict` `purpose=…&lift=`: asks, then restricts or lifts (Art. 18).
async fn restrict(State(collector): State<Arc<Collector>>, headers: HeaderMap, Form(fields): Form<Fields>) -> Response {
    let (s, identifier, post) = match right_request(&collector, &headers, &fields) {
        Ok(request) => request,
        Err(page) => return *page,
    };
    let purposes: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "purpose")
        .map(|(_, v)| v.clone())
        .collect();
    if purposes.is_empty() {
        let message = alert(&escape(&s.w.no_purpose_ticked));
        return subject_page(
            &collector,
            &s,
            &identifier,
            post,
            StatusCode::UNPROCESSABLE_ENTITY,
            &message,
        );
    }
    if let Some(unknown) = purposes.iter().find(|p| collector.config.purpose(p).is_none()) {
        let refusal = crate::error::refuse(Code::UnknownPurpose, format!("the config has no purpose \"{unknown}\""));
        return refusal_page(s.lang, &s.w, Some(&s.session), &refusal);
    }
    let lift = ticked(&fields, "lift");
    if field(&fields, "confirmed") != Some("yes") {
        let names = escape(&purposes.join(", "));
        let template = if lift { &s.w.lift_confirm } else { &s.w.restrict_confirm };
        let question = fill(template, &[("purposes", &names), ("identifier", &escape(&identifier))]);
        return confirmation(&s, "/admin/subject/restrict", &question, &fields, &identifier, post);
    }
    match crate::rights::restrict_purposes(&collector, &identifier, &purposes, lift) {
        Ok(answer) => {
            let changed = answer["changed"].as_u64().unwrap_or(0).to_string();
            let message = notice(&fill(&s.w.restricted_done, &[("changed", &changed)]));
            subject_page(&collector, &s, &identifier, post, StatusCode::OK, &message)
        }
        Err(refusal) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
    }
}

/// A bundle as a download.
fn download(name: &str, bundle: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bundle,
    )
        .into_response()
}

/// `POST /admin/subject/bundle`: the subject's evidence bundle (crate::bundle), contacts
/// only when ticked.
async fn subject_bundle(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let (s, identifier, post) = match right_request(&collector, &headers, &fields) {
        Ok(request) => request,
        Err(page) => return *page,
    };
    match crate::bundle::subject_bundle(&collector, &identifier, ticked(&fields, "contacts")) {
        Ok(Some(bundle)) => download(&crate::bundle::bundle_file_name(&bundle), bundle),
        Ok(None) => subject_page(&collector, &s, &identifier, post, StatusCode::NOT_FOUND, ""),
        Err(refusal) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
    }
}

/// `GET /admin/records/{id}/bundle`: one record's evidence bundle, without contacts.
async fn record_bundle(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    id: Result<UrlPath<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let s = match signed_in(&collector, &headers, None) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let not_found = || crate::error::refuse(Code::NotFound, "no record with this id");
    let Ok(UrlPath(id)) = id else {
        return refusal_page(s.lang, &s.w, Some(&s.session), &not_found());
    };
    match crate::bundle::record_bundle(&collector, &id, false) {
        Ok(Some(bundle)) => download(&crate::bundle::bundle_file_name(&bundle), bundle),
        Ok(None) => refusal_page(s.lang, &s.w, Some(&s.session), &not_found()),
        Err(refusal) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
    }
}

// ---------------------------------------------------------------------------------------
// The dashboard and the config history

/// `GET /admin/dashboard?days=N`: the charts (crate::dashboard), the last `days` days (30).
async fn dashboard(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let s = match signed_in(&collector, &headers, None) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let days = query
        .get("days")
        .and_then(|d| d.parse::<u32>().ok())
        .filter(|d| (1..=crate::dashboard::MAX_DAYS).contains(d))
        .unwrap_or(30);
    let words = s.w.dashboard.clone();
    let reader = collector.clone();
    // It reads the whole log in pages: off the async threads.
    let fragment = tokio::task::spawn_blocking(move || crate::dashboard::dashboard_html(&reader, &words, days)).await;
    match fragment {
        Ok(Ok(html)) => page(
            StatusCode::OK,
            document(
                s.lang,
                &s.w,
                &s.w.dashboard_heading,
                Some(&s.session),
                "/admin/dashboard",
                &html,
            ),
        ),
        Ok(Err(refusal)) => refusal_page(s.lang, &s.w, Some(&s.session), &refusal),
        Err(e) => refusal_page(s.lang, &s.w, Some(&s.session), &crate::error::unavailable(e)),
    }
}

/// The first 16 characters of a hash, as the tables show it (by characters: a hash from a
/// query string may be anything).
fn short_hash(hash: &str) -> String {
    hash.chars().take(16).collect()
}

/// A config's text with its members one per line (keys sorted), so a line diff shows
/// what changed rather than one changed line; a text that is not JSON is diffed as it is.
fn diffable(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// The line diff of two configs' texts, as escaped markup: removed lines in `<del>`,
/// added in `<ins>`, each with its `-`/`+` so it reads without colour.
pub fn diff_html(old: &str, new: &str) -> Option<String> {
    let (old, new) = (diffable(old), diffable(new));
    let diff = similar::TextDiff::from_lines(&old, &new);
    if old == new {
        return None;
    }
    let mut out = String::from("<pre class=\"diff\">");
    for group in diff.grouped_ops(3) {
        out.push_str("<span class=\"hunk\">…</span>\n");
        for op in group {
            for change in diff.iter_changes(&op) {
                let line = escape(change.value().trim_end_matches('\n'));
                match change.tag() {
                    similar::ChangeTag::Delete => out.push_str(&format!("<del>- {line}</del>\n")),
                    similar::ChangeTag::Insert => out.push_str(&format!("<ins>+ {line}</ins>\n")),
                    similar::ChangeTag::Equal => out.push_str(&format!("  {line}\n")),
                }
            }
        }
    }
    out.push_str("</pre>");
    Some(out)
}

/// `GET /admin/configs?from=…&to=…`: every config served, when, and the diff of two.
async fn configs(
    State(collector): State<Arc<Collector>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let s = match signed_in(&collector, &headers, None) {
        Ok(s) => s,
        Err(page) => return *page,
    };
    let w = &s.w;
    let rows = match collector.store.configs() {
        Ok(rows) => rows,
        Err(e) => return refusal_page(s.lang, w, Some(&s.session), &crate::error::unavailable(e)),
    };
    if rows.is_empty() {
        let body = notice(&escape(&w.no_configs));
        return page(
            StatusCode::OK,
            document(s.lang, w, &w.configs_heading, Some(&s.session), "/admin/configs", &body),
        );
    }
    let mut body = format!(
        "<table class=\"configs\"><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        escape(&w.col_config),
        escape(&w.col_first),
        escape(&w.col_last)
    );
    for row in &rows {
        let current = if row.sha256 == collector.history.current() {
            format!(" <strong class=\"current\">{}</strong>", escape(&w.current))
        } else {
            String::new()
        };
        body.push_str(&format!(
            "<tr data-sha256=\"{sha}\"><th scope=\"row\"><a href=\"/v1/configs/{sha}\"><code>{short}</code></a>{current}</th><td>{first}</td><td>{last}</td></tr>",
            sha = escape(&row.sha256),
            short = escape(&short_hash(&row.sha256)),
            first = escape(&when(row.first_served)),
            last = escape(&when(row.last_served)),
        ));
    }
    body.push_str("</tbody></table>");
    let default_from = rows.len().checked_sub(2).map_or(&rows[0], |i| &rows[i]).sha256.as_str();
    let default_to = rows[rows.len() - 1].sha256.as_str();
    let from = query.get("from").map_or(default_from, String::as_str);
    let to = query.get("to").map_or(default_to, String::as_str);
    let options = |selected: &str| {
        rows.iter()
            .map(|row| {
                let mark = if row.sha256 == selected { " selected" } else { "" };
                format!(
                    "<option value=\"{sha}\"{mark}>{short} · {first}</option>",
                    sha = escape(&row.sha256),
                    short = escape(&short_hash(&row.sha256)),
                    first = escape(&when(row.first_served)),
                )
            })
            .collect::<String>()
    };
    body.push_str(&format!(
        "<form class=\"card compare\" method=\"get\" action=\"/admin/configs\"><h2>{heading}</h2>\
         <label for=\"from\">{from_label}</label><select id=\"from\" name=\"from\">{from_options}</select>\
         <label for=\"to\">{to_label}</label><select id=\"to\" name=\"to\">{to_options}</select>\
         <button type=\"submit\">{compare}</button></form>",
        heading = escape(&w.compare_heading),
        from_label = escape(&w.compare_from),
        to_label = escape(&w.compare_to),
        from_options = options(from),
        to_options = options(to),
        compare = escape(&w.compare),
    ));
    let texts = (collector.store.config_text(from), collector.store.config_text(to));
    let mut status = StatusCode::OK;
    match texts {
        (Ok(Some(old)), Ok(Some(new))) => {
            let heading = fill(
                &w.diff_heading,
                &[
                    ("from", &format!("<code>{}</code>", escape(&short_hash(from)))),
                    ("to", &format!("<code>{}</code>", escape(&short_hash(to)))),
                ],
            );
            body.push_str(&format!(
                "<section aria-labelledby=\"diff\"><h2 id=\"diff\">{heading}</h2>"
            ));
            match diff_html(&old, &new) {
                Some(diff) => body.push_str(&diff),
                None => body.push_str(&notice(&escape(&w.no_changes))),
            }
            body.push_str("</section>");
        }
        (Ok(_), Ok(_)) => {
            status = StatusCode::NOT_FOUND;
            body.push_str(&alert(&escape(&w.unknown_config)));
        }
        (Err(e), _) | (_, Err(e)) => {
            return refusal_page(s.lang, w, Some(&s.session), &crate::error::unavailable(e));
        }
    }
    page(
        status,
        document(s.lang, w, &w.configs_heading, Some(&s.session), "/admin/configs", &body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn every_language_has_every_word() {
        for language in LANGUAGES {
            let w = words(language).unwrap_or_else(|e| panic!("{e}"));
            assert!(!w.sign_in.is_empty(), "{language}");
            // The placeholders of each template survive translation.
            let en = words("en").unwrap();
            for (name, ours, english) in [
                ("too_many", &w.too_many, &en.too_many),
                ("erase_confirm", &w.erase_confirm, &en.erase_confirm),
                ("rectify_confirm", &w.rectify_confirm, &en.rectify_confirm),
                ("receipt_ok", &w.receipt_ok, &en.receipt_ok),
                ("subject_heading", &w.subject_heading, &en.subject_heading),
                ("diff_heading", &w.diff_heading, &en.diff_heading),
                ("restricted_under", &w.restricted_under, &en.restricted_under),
                ("restrict_confirm", &w.restrict_confirm, &en.restrict_confirm),
                ("erased", &w.erased, &en.erased),
                (
                    "dashboard.rate_value",
                    &w.dashboard.rate_value,
                    &en.dashboard.rate_value,
                ),
                (
                    "dashboard.unreadable",
                    &w.dashboard.unreadable,
                    &en.dashboard.unreadable,
                ),
            ] {
                for placeholder in english.split('{').skip(1).filter_map(|p| p.split('}').next()) {
                    assert!(
                        ours.contains(&format!("{{{placeholder}}}")),
                        "{language}: {name} lacks {{{placeholder}}}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_english_dashboard_words_are_the_dashboards_own() {
        assert_eq!(
            words("en").unwrap().dashboard,
            crate::dashboard::DashboardWords::english()
        );
    }

    #[test]
    fn the_browsers_language_wins_then_the_configs_default_then_english() {
        assert_eq!(language(&accepting("lv-LV,lv;q=0.9,en;q=0.8"), "en"), "lv");
        assert_eq!(language(&accepting("fr-FR, pl;q=0.5"), "en"), "pl");
        assert_eq!(language(&accepting("en;q=0.2, cs;q=0.9"), "en"), "cs");
        assert_eq!(language(&accepting("de;q=0, fr"), "lt"), "lt");
        assert_eq!(language(&HeaderMap::new(), "et-EE"), "et");
        assert_eq!(language(&accepting("fr"), "fr"), "en");
    }

    #[test]
    fn a_diff_shows_removed_and_added_lines_escaped() {
        let old = r#"{"a":1,"label":"<b>old</b>"}"#;
        let new = r#"{"a":1,"label":"new"}"#;
        let diff = diff_html(old, new).unwrap();
        assert!(
            diff.contains("<del>-   &quot;label&quot;: &quot;&lt;b&gt;old&lt;/b&gt;&quot;</del>"),
            "{diff}"
        );
        assert!(
            diff.contains("<ins>+   &quot;label&quot;: &quot;new&quot;</ins>"),
            "{diff}"
        );
        assert!(
            diff.contains("\n    &quot;a&quot;: 1,\n"),
            "unchanged lines are context: {diff}"
        );
        assert!(!diff.contains("<b>"));
        assert_eq!(diff_html(old, old), None);
        // The same content in another layout is no change.
        assert_eq!(diff_html(r#"{"a":1}"#, "{\n  \"a\": 1\n}"), None);
    }

    async fn send(app: &Router, request: axum::http::Request<axum::body::Body>) -> (StatusCode, HeaderMap, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = app.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn get(uri: &str, cookie: Option<&str>) -> axum::http::Request<axum::body::Body> {
        let mut request = axum::http::Request::get(uri);
        if let Some(value) = cookie {
            request = request.header(header::COOKIE, format!("{COOKIE}={value}"));
        }
        request.body(axum::body::Body::empty()).unwrap()
    }

    fn post(uri: &str, cookie: Option<&str>, form: &str) -> axum::http::Request<axum::body::Body> {
        let mut request =
            axum::http::Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(value) = cookie {
            request = request.header(header::COOKIE, format!("{COOKIE}={value}"));
        }
        request.body(axum::body::Body::from(form.to_string())).unwrap()
    }

    const TOKEN: &str = "console-test-token-0123456789abcdef";

    fn app() -> (Router, crate::store::Store, tempfile::TempDir) {
        let config = crate::testing::demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let settings = crate::serve::Settings {
            admin_token: Some(TOKEN.into()),
            ..crate::testing::settings()
        };
        (crate::serve::app(www, config, store.clone(), settings), store, dir)
    }

    #[tokio::test]
    async fn sign_in_sets_a_strict_cookie_and_a_form_needs_the_sessions_csrf_token() {
        let (app, _store, _dir) = app();
        let (status, _, body) = send(
            &app,
            post("/admin/sign-in", None, "token=wrong-token-0123456789abcdefghijk"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("That is not the admin token."), "{body}");
        let (status, headers, _) = send(&app, post("/admin/sign-in", None, &format!("token={TOKEN}"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let set = headers[header::SET_COOKIE].to_str().unwrap().to_string();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=28800"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!set.contains("Secure"), "plain http: {set}");
        assert!(!set.contains(TOKEN), "{set}");
        let value = set
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches(&format!("{COOKIE}="))
            .to_string();
        let (status, headers, page) = send(&app, get("/admin", Some(&value))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(csrf.len(), 64);
        // Without the token, with another, and with it.
        let (status, _, _) = send(&app, post("/admin/subject", Some(&value), "identifier=a%40b.example")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = send(
            &app,
            post(
                "/admin/subject",
                Some(&value),
                &format!("identifier=a%40b.example&csrf={}", "0".repeat(64)),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, body) = send(
            &app,
            post(
                "/admin/subject",
                Some(&value),
                &format!("identifier=a%40b.example&csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body.contains("No record names this subject."));
        // A session of another cookie has another CSRF token.
        let (_, headers, _) = send(&app, post("/admin/sign-in", None, &format!("token={TOKEN}"))).await;
        let other = headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches(&format!("{COOKIE}="))
            .to_string();
        let (status, _, _) = send(
            &app,
            post(
                "/admin/subject",
                Some(&other),
                &format!("identifier=a%40b.example&csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Signed out, the cookie is dead.
        let (status, headers, _) = send(&app, post("/admin/sign-out", Some(&value), &format!("csrf={csrf}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
        let (status, _, _) = send(&app, get("/admin/dashboard", Some(&value))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    /// Signs in; the session cookie and its CSRF token.
    async fn signed_session(app: &Router) -> (String, String) {
        let (_, headers, _) = send(app, post("/admin/sign-in", None, &format!("token={TOKEN}"))).await;
        let cookie = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap();
        let cookie = cookie.trim_start_matches(&format!("{COOKIE}=")).to_string();
        let (_, _, page) = send(app, get("/admin", Some(&cookie))).await;
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        (cookie, csrf.to_string())
    }

    /// Stores a demo checkout for jan@example.pl, in a checkpoint of its own.
    async fn store_checkout(app: &Router) {
        let config = crate::testing::demo_config();
        let request = axum::http::Request::post("/v1/records")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::HOST, "127.0.0.1:8080")
            .body(axum::body::Body::from(crate::testing::seal(
                &crate::testing::capture(&config, &["email-offers"]),
                1,
            )))
            .unwrap();
        let (status, _, body) = send(app, request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn jans_page(app: &Router) -> (StatusCode, String) {
        let (cookie, csrf) = signed_session(app).await;
        let form = format!("identifier=jan%40example.pl&csrf={csrf}");
        let (status, _, page) = send(app, post("/admin/subject", Some(&cookie), &form)).await;
        (status, page)
    }

    /// A receipt that fails says which check failed: here the signature of the checkpoint
    /// the first record was logged under, while the second record's receipt still holds.
    #[tokio::test]
    async fn a_failed_receipt_check_names_the_check_that_failed() {
        let (app, _store, dir) = app();
        store_checkout(&app).await;
        store_checkout(&app).await;
        let (status, page) = jans_page(&app).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page.matches("data-verified=\"yes\"").count(), 2, "{page}");
        rusqlite::Connection::open(dir.path().join("log.db"))
            .unwrap()
            .execute_batch("UPDATE checkpoints SET signature = zeroblob(64) WHERE size = 1")
            .unwrap();
        let (_, page) = jans_page(&app).await;
        let w = words("en").unwrap();
        assert_eq!(page.matches("data-verified=\"yes\"").count(), 1, "{page}");
        assert!(page.contains(&escape(&w.receipt_unsigned)), "{page}");
        assert!(!page.contains(&escape(&w.receipt_bad)), "{page}");
    }

    /// A stored record that no longer opens is not left out of the subject's page (the
    /// timeline could then say the opposite of what they chose): the page names the damage.
    #[tokio::test]
    async fn a_damaged_record_is_named_not_left_out_of_the_subject_page() {
        let (app, _store, dir) = app();
        store_checkout(&app).await;
        rusqlite::Connection::open(dir.path().join("log.db"))
            .unwrap()
            .execute_batch(r#"UPDATE log SET bytes = CAST(replace(CAST(bytes AS TEXT), '"given"', '"giveN"') AS BLOB)"#)
            .unwrap();
        let (status, page) = jans_page(&app).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{page}");
        assert!(page.contains("index 0 no longer opens"), "{page}");
        assert!(page.contains("unticked verify"), "{page}");
    }

    #[tokio::test]
    async fn an_idle_or_old_session_has_ended_and_its_row_goes() {
        let (app, store, _dir) = app();
        let now = now_ms();
        let idle = SESSION_IDLE.as_millis() as u64;
        let mac = |token: &str| {
            let mut data = b"unticked console token v1\0".to_vec();
            data.extend_from_slice(token.as_bytes());
            store.link_mac(&data)
        };
        // Unused for longer than the idle timeout, past its end, and opened under a token
        // that is no longer the admin token.
        let open = |value: &str, token: &str, at: u64, until: u64| {
            store
                .open_console_session(&session_id(value), &mac(token), at, until)
                .unwrap()
        };
        open("idle", TOKEN, now - idle - 1_000, now + 3_600_000);
        open("old", TOKEN, now - 1_000, now - 1);
        open(
            "rotated",
            "the-token-before-it-was-changed-0123456789",
            now - 1_000,
            now + 3_600_000,
        );
        open("live", TOKEN, now - 1_000, now + 3_600_000);
        for value in ["idle", "old", "rotated"] {
            let (status, _, body) = send(&app, get("/admin/dashboard", Some(value))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
            assert!(body.contains("Your session has ended."), "{body}");
            assert_eq!(store.console_session(&session_id(value)).unwrap(), None, "{value}");
        }
        let (status, _, _) = send(&app, get("/admin/configs", Some("live"))).await;
        assert_eq!(status, StatusCode::OK);
        // The sign-in page asked for without a session is no error.
        let (status, _, body) = send(&app, get("/admin", None)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("type=\"password\""));
        assert!(!body.contains("Your session has ended."));
    }

    #[test]
    fn a_template_is_filled_once_and_its_words_escaped() {
        // An address may read `{replacement}`: it is not filled in again.
        let filled = fill(
            "Replace {identifier} with {replacement} <now>? {unknown}",
            &[("identifier", "{replacement}@x.lv"), ("replacement", "new@x.lv")],
        );
        assert_eq!(
            filled,
            "Replace {replacement}@x.lv with new@x.lv &lt;now&gt;? {unknown}"
        );
        assert_eq!(fill("{", &[]), "{");
        assert_eq!(fill("ā{n}ē", &[("n", "1")]), "ā1ē");
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_796_299_062_000), "2026-12-03 11:57:42 UTC");
    }
}

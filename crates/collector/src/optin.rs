//! Double opt-in (docs/double-opt-in.md): a signup on a form whose config asks for it
//! leaves its e-mail consents `unconfirmed` until the subject follows a mailed link and
//! presses the button on its page; past the form's `within_days` they lapse (`expired`).
//!
//! - The signup's record is kept as it came; in the same transaction
//!   ([`crate::store::Effect`]) a `confirm` link (expiring at the deadline) and a row of the
//!   durable mail outbox (`confirm_mail`) are written, so a crash never loses the mail.
//! - `GET /confirm/{token}` shows a page with one button and changes nothing: mail scanners
//!   prefetch links. Only `POST /confirm/{token}` confirms, with a record the collector
//!   signs (`act: {"confirms": <signup id>}`), giving the signup's e-mail purposes again. Both
//!   records stay: the signup's time and the confirmation's (EDPB 05/2020 ¶108: the
//!   controller can show when and how the subject agreed).
//!
//! Neither the address nor the link is ever logged.

use std::sync::Arc;

use crate::db::params;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64ct::{Base64UrlUnpadded, Encoding};
use unticked_core::capture::{Capture, Disclosure, SALT_LEN};
use unticked_core::config::{Channel, DoubleOptIn};
use unticked_core::record::{self, Act, ConsentRecord, PurposeEntry, Signer, State as ConsentState};

use crate::error::{refuse, unavailable, Code, Refusal};
use crate::history::History as Versions;
use crate::limit::Client;
use crate::records::Accepted;
use crate::state::Collector;
use crate::store::Effect;

/// The link kind of a confirmation link in the `links` table.
pub const LINK_KIND: &str = "confirm";

/// The double opt-in of the form `record` was made on, under the config it names.
pub fn double_opt_in_of(versions: &Versions, record: &ConsentRecord) -> Option<DoubleOptIn> {
    if record.signer != Signer::Browser {
        return None;
    }
    versions
        .version(&record.config_sha256)?
        .config
        .form(&record.form)?
        .double_opt_in
}

/// The confirmation deadline of a signup, if it awaits one (lifecycle's events).
pub fn awaits(versions: &Versions, record: &ConsentRecord) -> Option<u64> {
    double_opt_in_of(versions, record).map(|d| d.deadline(record.captured_at))
}

/// Whether the served config asks for double opt-in on any form (serve needs SMTP then).
pub fn asked_for(config: &unticked_core::config::Config) -> bool {
    config.forms.iter().any(|f| f.double_opt_in.is_some())
}

/// The effect of a new signup that awaits confirmation: its link and its mail, in the
/// record's transaction. None for every other record.
pub fn effect(collector: &Collector, accepted: &Accepted) -> Option<Effect> {
    let record = &accepted.opened.record;
    let deadline = awaits(&collector.history, record)?;
    let version = collector.history.version(&record.config_sha256)?;
    let form = version.config.form(&record.form)?;
    let asks_email = record.purposes.iter().any(|p| {
        matches!(p.state, ConsentState::Given | ConsentState::Renewed)
            && version
                .config
                .purpose(&p.id)
                .is_some_and(|c| c.channel == Channel::Email)
    });
    let _ = form;
    let address = accepted
        .disclosures
        .iter()
        .find(|d| d.channel == Channel::Email)?
        .identifier
        .clone();
    if !asks_email {
        return None;
    }
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        tracing::error!("no randomness for a confirmation link; the signup stays unconfirmed");
        return None;
    }
    let lookup = collector.store.lookup(&address);
    let signup = record.id.clone();
    let locale = record.locale.clone();
    Some(Box::new(move |tx: &mut dyn crate::db::Sql, _index: u64| {
        let now = crate::store::now_ms();
        tx.execute(
            "INSERT INTO links (id, kind, lookup, identifier, channel, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, 'email', ?5, ?6)",
            params![&id[..], LINK_KIND, &lookup[..], &address, now, deadline],
        )?;
        tx.execute(
            "INSERT INTO confirm_mail (link_id, signup, lookup, address, locale, deadline, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![&id[..], &signup, &lookup[..], &address, &locale, deadline, now],
        )?;
        Ok(())
    }))
}

/// The token of the confirmation link whose id is `id` (the MAC is the links' own).
pub fn token(collector: &Collector, id: &[u8]) -> String {
    let mac = collector.store.link_mac(&[LINK_KIND.as_bytes(), b"\0", id].concat());
    format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(id),
        Base64UrlUnpadded::encode_string(&mac[..16])
    )
}

/// A confirmation link, opened: the signup it confirms.
struct Pending {
    link_id: Vec<u8>,
    signup: String,
    address: String,
    deadline: u64,
}

enum Opened {
    Live(Pending),
    /// Confirmed already.
    Used,
    /// Past its deadline.
    Expired,
    Bad,
}

fn open(collector: &Collector, token: &str) -> Result<Opened, Refusal> {
    let Some((id, mac)) = token.split_once('.') else {
        return Ok(Opened::Bad);
    };
    let (Ok(id), Ok(mac)) = (Base64UrlUnpadded::decode_vec(id), Base64UrlUnpadded::decode_vec(mac)) else {
        return Ok(Opened::Bad);
    };
    if id.len() != 16 || token != self::token(collector, &id) || mac.len() != 16 {
        return Ok(Opened::Bad);
    }
    let Some(link) = collector.store.link(&id).map_err(unavailable)? else {
        return Ok(Opened::Bad);
    };
    if link.kind != LINK_KIND {
        return Ok(Opened::Bad);
    }
    let row = collector.store.confirm_mail(&id).map_err(unavailable)?;
    let Some((signup, confirmed)) = row else {
        return Ok(Opened::Bad);
    };
    if confirmed || link.revoked {
        return Ok(Opened::Used);
    }
    if link.expires_at <= crate::store::now_ms() {
        return Ok(Opened::Expired);
    }
    Ok(Opened::Live(Pending {
        link_id: id,
        signup,
        address: link.identifier,
        deadline: link.expires_at,
    }))
}

/// The page texts and the mail, per language (the config's locales negotiate to one).
pub struct Words {
    pub title: &'static str,
    pub ask: &'static str,
    pub button: &'static str,
    pub done: &'static str,
    pub used: &'static str,
    pub expired: &'static str,
    pub invalid: &'static str,
    pub subject: &'static str,
    /// `{shop}`, `{link}` and `{deadline}` are filled in.
    pub body: &'static str,
}

pub fn words(locale: &str) -> &'static Words {
    let lang = locale.split('-').next().unwrap_or("en");
    match lang {
        "lv" => &LV,
        "pl" => &PL,
        "cs" => &CS,
        "de" => &DE,
        "lt" => &LT,
        "et" => &ET,
        _ => &EN,
    }
}

static EN: Words = Words {
    title: "Confirm your subscription",
    ask: "Press the button to confirm that you want to receive e-mails from us.",
    button: "Confirm",
    done: "Thank you: your subscription is confirmed.",
    used: "This subscription is confirmed already.",
    expired: "This confirmation link has expired. You can sign up again on our website.",
    invalid: "This link does not work.",
    subject: "Please confirm your subscription",
    body: "Hello,\n\nyou signed up for e-mails from {shop}. Please confirm by opening this link and pressing the button:\n\n{link}\n\nThe link is valid until {deadline}. If you did not sign up, ignore this message: nothing will be sent to you.\n\n{shop}\n",
};
static LV: Words = Words {
    title: "Apstipriniet abonementu",
    ask: "Nospiediet pogu, lai apstiprinātu, ka vēlaties saņemt mūsu e-pastus.",
    button: "Apstiprināt",
    done: "Paldies: jūsu abonements ir apstiprināts.",
    used: "Šis abonements jau ir apstiprināts.",
    expired: "Šīs apstiprināšanas saites derīgums ir beidzies. Varat pieteikties vēlreiz mūsu vietnē.",
    invalid: "Šī saite nedarbojas.",
    subject: "Lūdzu, apstipriniet abonementu",
    body: "Labdien!\n\nJūs pieteicāties {shop} e-pastiem. Lūdzu, apstipriniet, atverot šo saiti un nospiežot pogu:\n\n{link}\n\nSaite ir derīga līdz {deadline}. Ja nepieteicāties, neņemiet šo vēstuli vērā: jums nekas netiks sūtīts.\n\n{shop}\n",
};
static PL: Words = Words {
    title: "Potwierdź subskrypcję",
    ask: "Naciśnij przycisk, aby potwierdzić, że chcesz otrzymywać od nas e-maile.",
    button: "Potwierdzam",
    done: "Dziękujemy: subskrypcja została potwierdzona.",
    used: "Ta subskrypcja jest już potwierdzona.",
    expired: "Ten link potwierdzający wygasł. Możesz zapisać się ponownie na naszej stronie.",
    invalid: "Ten link nie działa.",
    subject: "Prosimy o potwierdzenie subskrypcji",
    body: "Dzień dobry,\n\nzapisano ten adres na e-maile od {shop}. Prosimy o potwierdzenie: otwórz ten link i naciśnij przycisk:\n\n{link}\n\nLink jest ważny do {deadline}. Jeśli to nie Ty, zignoruj tę wiadomość: nic nie zostanie wysłane.\n\n{shop}\n",
};
static CS: Words = Words {
    title: "Potvrďte odběr",
    ask: "Stisknutím tlačítka potvrďte, že od nás chcete dostávat e-maily.",
    button: "Potvrdit",
    done: "Děkujeme: odběr je potvrzen.",
    used: "Tento odběr je již potvrzen.",
    expired: "Platnost tohoto potvrzovacího odkazu vypršela. Můžete se znovu přihlásit na našem webu.",
    invalid: "Tento odkaz nefunguje.",
    subject: "Potvrďte prosím odběr",
    body: "Dobrý den,\n\npřihlásili jste se k odběru e-mailů od {shop}. Potvrďte to prosím otevřením tohoto odkazu a stisknutím tlačítka:\n\n{link}\n\nOdkaz platí do {deadline}. Pokud jste se nepřihlásili, tuto zprávu ignorujte: nic vám nebude zasíláno.\n\n{shop}\n",
};
static DE: Words = Words {
    title: "Anmeldung bestätigen",
    ask: "Bitte bestätigen Sie mit der Schaltfläche, dass Sie E-Mails von uns erhalten möchten.",
    button: "Bestätigen",
    done: "Vielen Dank: Ihre Anmeldung ist bestätigt.",
    used: "Diese Anmeldung ist bereits bestätigt.",
    expired: "Dieser Bestätigungslink ist abgelaufen. Sie können sich auf unserer Website erneut anmelden.",
    invalid: "Dieser Link funktioniert nicht.",
    subject: "Bitte bestätigen Sie Ihre Anmeldung",
    body: "Guten Tag,\n\nSie haben sich für E-Mails von {shop} angemeldet. Bitte bestätigen Sie, indem Sie diesen Link öffnen und die Schaltfläche drücken:\n\n{link}\n\nDer Link ist gültig bis {deadline}. Falls Sie sich nicht angemeldet haben, ignorieren Sie diese Nachricht: Sie erhalten nichts.\n\n{shop}\n",
};
static LT: Words = Words {
    title: "Patvirtinkite prenumeratą",
    ask: "Paspauskite mygtuką, kad patvirtintumėte, jog norite gauti mūsų el. laiškus.",
    button: "Patvirtinti",
    done: "Ačiū: jūsų prenumerata patvirtinta.",
    used: "Ši prenumerata jau patvirtinta.",
    expired: "Šios patvirtinimo nuorodos galiojimas baigėsi. Galite užsiprenumeruoti dar kartą mūsų svetainėje.",
    invalid: "Ši nuoroda neveikia.",
    subject: "Patvirtinkite prenumeratą",
    body: "Sveiki,\n\nužsiprenumeravote {shop} el. laiškus. Patvirtinkite atidarę šią nuorodą ir paspaudę mygtuką:\n\n{link}\n\nNuoroda galioja iki {deadline}. Jei neprenumeravote, nekreipkite dėmesio į šį laišką: jums nieko nebus siunčiama.\n\n{shop}\n",
};
static ET: Words = Words {
    title: "Kinnitage tellimus",
    ask: "Vajutage nuppu, et kinnitada, et soovite meilt e-kirju saada.",
    button: "Kinnita",
    done: "Aitäh: teie tellimus on kinnitatud.",
    used: "See tellimus on juba kinnitatud.",
    expired: "Selle kinnituslingi kehtivus on lõppenud. Saate meie veebilehel uuesti liituda.",
    invalid: "See link ei tööta.",
    subject: "Palun kinnitage tellimus",
    body: "Tere!\n\nTe liitusite {shop} e-kirjadega. Palun kinnitage, avades selle lingi ja vajutades nuppu:\n\n{link}\n\nLink kehtib kuni {deadline}. Kui te ei liitunud, jätke see kiri tähelepanuta: teile ei saadeta midagi.\n\n{shop}\n",
};

/// The mail of one outbox row: subject line and plain-text body.
pub fn mail(shop: &str, locale: &str, link: &str, deadline_ms: u64) -> (String, String) {
    let w = words(locale);
    let deadline = utc_date(deadline_ms);
    let body = w
        .body
        .replace("{shop}", shop)
        .replace("{link}", link)
        .replace("{deadline}", &deadline);
    (w.subject.to_string(), body)
}

/// `YYYY-MM-DD HH:MM UTC` (ISO 8601 without the T, read by people).
fn utc_date(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let (y, mo, d) = unticked_core::consent::civil_from_days(days);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// A page in the style of crate::pages: no script, no style of its own; the app's strict
/// Content-Security-Policy applies (crate::serve::CONTENT_SECURITY_POLICY).
fn page(locale: &str, status: StatusCode, title: &str, body: &str) -> Response {
    let e = crate::pages::escape;
    let html = format!(
        "<!doctype html><html lang=\"{l}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{t}</title></head><body><main>{body}</main></body></html>",
        l = e(locale),
        t = e(title),
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

fn locale_of(collector: &Collector, headers: &HeaderMap, signup: Option<&str>) -> String {
    let config = &collector.config;
    let asked: Vec<String> = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(|p| p.split(';').next().unwrap_or("").trim().to_string())
        .collect();
    let requested = signup.into_iter().chain(asked.iter().map(String::as_str));
    unticked_core::locale::negotiate(requested, &config.locales, &config.default_locale).to_string()
}

fn refused_page(collector: &Collector, headers: &HeaderMap, opened: &Opened) -> Response {
    let locale = locale_of(collector, headers, None);
    let w = words(&locale);
    let e = crate::pages::escape;
    let (status, id, text) = match opened {
        Opened::Used => (StatusCode::OK, "confirmed-already", w.used),
        Opened::Expired => (StatusCode::GONE, "link-expired", w.expired),
        _ => (StatusCode::NOT_FOUND, "link-invalid", w.invalid),
    };
    page(
        &locale,
        status,
        w.title,
        &format!("<h1>{}</h1><p id=\"{id}\">{}</p>", e(w.title), e(text)),
    )
}

/// The signup record, opened.
fn signup_record(collector: &Collector, id: &str) -> Result<Option<ConsentRecord>, Refusal> {
    let Some((index, bytes)) = collector.store.record(id).map_err(unavailable)? else {
        return Ok(None);
    };
    let opened = record::open(bytes.as_bytes()).map_err(|e| crate::error::damaged(index, e))?;
    Ok(Some(opened.record))
}

/// `GET /confirm/{token}`: the page with the button. Changes nothing.
pub async fn confirm_page(
    State(collector): State<Arc<Collector>>,
    Client(_client): Client,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let pending = match open(&collector, &token) {
        Ok(Opened::Live(p)) => p,
        Ok(other) => return refused_page(&collector, &headers, &other),
        Err(refusal) => return refusal.into_response(),
    };
    let signup = signup_record(&collector, &pending.signup).ok().flatten();
    let locale = locale_of(&collector, &headers, signup.as_ref().map(|r| r.locale.as_str()));
    let w = words(&locale);
    let e = crate::pages::escape;
    let _ = pending.deadline;
    page(
        &locale,
        StatusCode::OK,
        w.title,
        &format!(
            "<h1>{t}</h1><p>{a}</p><form method=\"post\" id=\"confirm-form\"><p><button type=\"submit\" id=\"confirm\">{b}</button></p></form>",
            t = e(w.title),
            a = e(w.ask),
            b = e(w.button),
        ),
    )
}

/// `POST /confirm/{token}`: records the confirmation, signed by the collector, and marks the
/// link used.
pub async fn confirm(
    State(collector): State<Arc<Collector>>,
    Client(_client): Client,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let pending = match open(&collector, &token) {
        Ok(Opened::Live(p)) => p,
        Ok(other) => return refused_page(&collector, &headers, &other),
        Err(refusal) => return refusal.into_response(),
    };
    let signup = match signup_record(&collector, &pending.signup) {
        Ok(Some(r)) => r,
        // Erased or damaged: the link leads nowhere.
        Ok(None) => return refused_page(&collector, &headers, &Opened::Bad),
        Err(refusal) => return refusal.into_response(),
    };
    let capture = match confirmation(&collector, &signup, &pending) {
        Ok(c) => c,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = crate::lifecycle::store_signed_by_collector(&collector, &capture).await {
        return refusal.into_response();
    }
    if let Err(e) = collector.store.confirmed(&pending.link_id, crate::store::now_ms()) {
        // The record stands; only a second press would record it again.
        tracing::error!(error = %e, "a confirmation was recorded but its link not marked used");
    }
    tracing::info!("double opt-in: a signup was confirmed");
    let locale = locale_of(&collector, &headers, Some(&signup.locale));
    let w = words(&locale);
    let e = crate::pages::escape;
    page(
        &locale,
        StatusCode::OK,
        w.title,
        &format!(
            "<h1>{}</h1><p role=\"status\" id=\"confirmed\">{}</p>",
            e(w.title),
            e(w.done)
        ),
    )
}

/// The record of a confirmation: the signup's given e-mail purposes, given again under the
/// same version and text, on the signup's form, signed by the collector, naming the signup.
fn confirmation(collector: &Collector, signup: &ConsentRecord, pending: &Pending) -> Result<Capture, Refusal> {
    let version = collector
        .history
        .version(&signup.config_sha256)
        .ok_or_else(|| refuse(Code::UnknownConfig, "the signup's config is not known any more"))?;
    let shown = version.shown.get(&signup.form, &signup.locale).ok_or_else(|| {
        refuse(
            Code::UnknownLocale,
            "the signup's form and locale are not known any more",
        )
    })?;
    let mut purposes = Vec::new();
    let mut texts = Vec::new();
    for p in &signup.purposes {
        let email = version
            .config
            .purpose(&p.id)
            .is_some_and(|c| c.channel == Channel::Email);
        if !email || !matches!(p.state, ConsentState::Given | ConsentState::Renewed) {
            continue;
        }
        let text = shown
            .iter()
            .find(|t| t.purpose == p.id && t.version == p.version)
            .ok_or_else(|| refuse(Code::UnknownPurpose, "the signup's text is not known any more"))?;
        purposes.push(PurposeEntry {
            id: p.id.clone(),
            version: p.version,
            state: p.state,
            text_sha256: String::new(),
        });
        texts.push(text.text.clone());
    }
    let now = crate::store::now_ms();
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(|e| unavailable(format!("no randomness: {e}")))?;
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| unavailable(format!("no randomness: {e}")))?;
    let record = ConsentRecord {
        beside: Vec::new(),
        id: record::record_id(now, random),
        captured_at: now,
        form: signup.form.clone(),
        source: signup.source,
        locale: signup.locale.clone(),
        page_origin: collector.lifecycle.public_origin.clone(),
        page_path: "/confirm".to_string(),
        notice_url: signup.notice_url.clone(),
        notice_version: signup.notice_version.clone(),
        config_sha256: signup.config_sha256.clone(),
        widget: crate::lifecycle::COLLECTOR_WIDGET.to_string(),
        purposes,
        subjects: Vec::new(),
        signer: Signer::Collector,
        act: Some(Act::Confirms(signup.id.clone())),
    };
    let disclosure = Disclosure {
        channel: Channel::Email,
        identifier: pending.address.clone(),
        salt,
    };
    Ok(Capture::new(record, texts, vec![disclosure], None))
}

// ---------------------------------------------------------------------------------------
// The sender

/// How often the outbox is looked at.
pub const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The wait before the next try after `attempts` failed ones: 30 s doubling, at most an hour.
pub fn backoff(attempts: u32) -> u64 {
    (30_000u64 << attempts.min(7)).min(3_600_000)
}

/// The SMTP transport of `smtp`: STARTTLS required (RFC 3207) or TLS from the first byte
/// (RFC 8314); never the clear.
///
/// # Errors
/// An unreadable CA file, or settings lettre refuses.
pub fn transport(smtp: &crate::settings::Smtp) -> Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let mut tls = TlsParameters::builder(smtp.relay.clone());
    if let Some(path) = &smtp.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        tls = tls.add_root_certificate(cert);
    }
    let tls = tls.build_rustls().map_err(|e| e.to_string())?;
    let mut builder = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.relay)
        .port(smtp.port)
        .timeout(Some(std::time::Duration::from_secs(30)))
        .tls(match smtp.security {
            crate::settings::SmtpSecurity::Starttls => Tls::Required(tls),
            crate::settings::SmtpSecurity::Tls => Tls::Wrapper(tls),
        });
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Starts the task that sends the outbox's mails, when SMTP is set. It runs until the
/// returned handle is aborted (serve's shutdown) or the runtime ends.
pub fn start_sender(collector: Arc<Collector>) -> Option<tokio::task::JoinHandle<()>> {
    let smtp = collector.server.smtp.clone()?;
    let transport = match transport(&smtp) {
        Ok(t) => t,
        Err(why) => {
            tracing::error!("confirmation mails cannot be sent: {why}");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        loop {
            send_due(&collector, &smtp, &transport).await;
            tokio::time::sleep(POLL).await;
        }
    }))
}

/// `Auto-Submitted: auto-generated` (RFC 3834 §5.1): the mail is generated by the collector,
/// not a reply and not written by a person.
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

async fn send_due(
    collector: &Collector,
    smtp: &crate::settings::Smtp,
    transport: &lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
) {
    use lettre::AsyncTransport;
    let now = crate::store::now_ms();
    let due = match collector.store.due_mails(now, 20) {
        Ok(due) => due,
        Err(e) => return tracing::error!(error = %e, "the confirmation outbox cannot be read"),
    };
    for mail in due {
        let link = format!(
            "{}/confirm/{}",
            collector.lifecycle.public_origin,
            token(collector, &mail.link_id)
        );
        let (subject, body) = self::mail(&collector.config.controller.name, &mail.locale, &link, mail.deadline);
        let message = (|| {
            lettre::Message::builder()
                .from(smtp.from.parse().map_err(|_| "the from address")?)
                .to(mail.address.parse().map_err(|_| "the recipient's address")?)
                .subject(subject)
                // RFC 3834 §5: a mail sent by a program, so that vacation responders and
                // other automatic replies do not answer it.
                .header(AutoSubmitted)
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(body)
                .map_err(|_| "the message")
        })();
        let sent = match message {
            Ok(message) => transport.send(message).await.map(|_| ()).map_err(|e| {
                // The relay's answer can quote the address: only its kind is logged.
                if e.is_permanent() {
                    "permanent"
                } else {
                    "transient"
                }
            }),
            Err(what) => Err(what),
        };
        let now = crate::store::now_ms();
        let next = match sent {
            Ok(()) => {
                tracing::info!("double opt-in: a confirmation mail was sent");
                None
            }
            Err(why) => {
                let wait = backoff(mail.attempts);
                tracing::warn!(
                    attempts = mail.attempts + 1,
                    retry_in_ms = wait,
                    "a confirmation mail was not sent ({why}); it is tried again"
                );
                Some(now + wait)
            }
        };
        if let Err(e) = collector.store.mail_tried(&mail.link_id, now, next) {
            tracing::error!(error = %e, "the confirmation outbox cannot be written");
        }
    }
}

#[cfg(test)]
mod tests {
    /// The confirmation mail's deadline is a UTC date and time, leap days included.
    #[test]
    fn deadlines_read_as_utc_dates() {
        assert_eq!(super::utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::utc_date(951_782_400_000 + 3_723_000), "2000-02-29 01:02 UTC");
        assert_eq!(super::utc_date(1_796_342_400_000), "2026-12-04 00:00 UTC");
    }
}

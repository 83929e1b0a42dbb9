//! `POST /v1/records`: what the collector accepts as a consent record.
//!
//! A delivery is `{"disclosures":[{"channel","identifier","salt"}…],"record":"<bytes>"}`
//! (see `unticked_core::capture`). The record must open (`record::open`: canonical bytes,
//! every field, the browser's signature), must match the config version it names in
//! `config_sha256`, one the collector has served (crate::history; the form, each purpose's
//! version and the hash of the exact text it shows in that locale, the privacy notice),
//! and every subject commitment must be backed by a disclosure that hashes to it, for a
//! channel the shopper granted in this very record (R8, R10). An optional `"birthday":
//! {"value":"--MM-DD","salt"}` comes only with a given purpose that asks for it and a
//! contact (R8), and must hash to the record's commitment to it (`beside`). A bare
//! `"--MM-DD"` beside a record that commits to no birthday comes from a widget cached before
//! birthdays were bound: the record is stored, the birthday is not kept, and the answer
//! says so (`"not_kept":["birthday"]`).
//!
//! The same id with other bytes, or the same bytes with other values beside them (contacts
//! or birthday), is refused 409 `id-conflict`: never silently ignored. The same bytes are
//! not checked again: their retry is answered with their receipt whatever changed since
//! (the config served, the clock), or the outbox would keep them for ever.
//!
//! An accepted record is appended to the log ([`crate::store`]) and answered with a
//! receipt: its log index, leaf hash, inclusion proof and the signed checkpoint it was
//! committed with.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use unticked_core::capture::{normalise_birthday, normalise_contact, Disclosure, Salted, SALT_LEN};
use unticked_core::config::{Channel, Config, ExtraField, Named, PREFERENCES};
use unticked_core::json::{self, Json};
use unticked_core::record::{self, OpenedRecord, RecordError, State as ConsentState};

use crate::error::{refuse, too_many, unavailable, Code, Refusal};
use crate::history::{History, Version};
use crate::limit::Client;
use crate::state::Collector;
use crate::store::{Appended, Birthday};
use crate::texts::{sha256_hex, Shown};

/// Largest delivery accepted (issue 4): a record of dozens of purposes is under 8 KiB.
pub const MAX_BODY: usize = 16 * 1024;

/// Where and when a delivery arrived: what its record's time and page are held to.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// The collector's clock, ms since the epoch.
    pub now_ms: u64,
    /// The origins whose pages may write (crate::http::Writers): the collector's own
    /// public origins and the config's.
    pub writers: &'a crate::http::Writers,
    /// The request's `Origin` (RFC 6454 §7), which a browser sends with every POST.
    pub origin: Option<&'a str>,
}

/// How far ahead of the collector's clock a capture time may be: a shopper's clock a few
/// minutes fast. A record refused for it stays in the outbox, which retries (at every page
/// load, and on the page 2 s after a failure, doubling up to 5 min, src/courier.js), and is
/// taken once the collector's clock has caught up with the shopper's; a time further ahead
/// is no capture at all.
pub const MAX_AHEAD_MS: u64 = 10 * 60 * 1000;

/// How old a capture may be when it arrives: 400 days. The outbox (src/courier.js) keeps an
/// undelivered record with no age limit, up to 50 of them, and retries only while the
/// shopper visits the shop again: a record of a shopper who comes back next season must
/// still be taken, so the window spans a year and a month. Older than that, a clock far
/// behind is likelier than a delivery so late.
pub const MAX_AGE_MS: u64 = 400 * 24 * 3600 * 1000;

/// A delivery to append: it passed every check, or its record's bytes are stored already
/// (a retry, [`Delivery::into_retry`]), where the store compares what travels beside them.
#[derive(Debug)]
pub struct Accepted {
    pub bytes: String,
    pub opened: OpenedRecord,
    pub disclosures: Vec<Disclosure>,
    /// `--MM-DD`, for a given purpose that asks for the birthday (R8): bound to the record's
    /// commitment (kept), or bare from a widget cached before that (not kept).
    pub birthday: Option<Birthday>,
    /// The account token a record of the preferences form comes with (crate::lifecycle).
    pub token: Option<String>,
}

impl Accepted {
    /// What came beside the record and is not kept: the answer names it (`not_kept`).
    pub fn not_kept(&self) -> Vec<&'static str> {
        match self.birthday {
            Some(Birthday::Unbound(_)) => vec!["birthday"],
            _ => Vec::new(),
        }
    }
}

/// A delivery whose record opened (canonical bytes, every field, the signature), not yet
/// checked against the config, the clock, the request or what travels beside it.
#[derive(Debug)]
pub struct Delivery {
    pub bytes: String,
    pub opened: OpenedRecord,
    disclosures: Vec<Disclosure>,
    birthday: Option<Birthday>,
    token: Option<String>,
}

/// Checks a delivery body against `config`, served under the demo config's hash (which
/// the test captures name), as it arrives now at 127.0.0.1:8080 (the test captures' page).
/// Pure: no storage, and the clock passed in.
///
/// # Errors
/// A [`Refusal`] with a 4xx status and a stable code.
#[cfg(test)]
pub fn check(body: &[u8], config: &Config) -> Result<Accepted, Refusal> {
    check_against(
        body,
        &History::only(&crate::testing::demo_sha256(), config.clone()),
        config,
    )
}

/// [`check`] against every version of `history`, with the origins of `served`.
#[cfg(test)]
pub fn check_against(body: &[u8], history: &History, served: &Config) -> Result<Accepted, Refusal> {
    let arrival = Arrival {
        now_ms: crate::testing::now_ms(),
        writers: &crate::http::Writers::new(
            &[served.origins.as_slice(), &["http://127.0.0.1:8080".to_string()]].concat(),
        ),
        origin: None,
    };
    open_delivery(body)?.check(history, &arrival)
}

/// Reads a delivery body and opens its record (`record::open`).
///
/// # Errors
/// A [`Refusal`] with a 4xx status and a stable code.
pub fn open_delivery(body: &[u8]) -> Result<Delivery, Refusal> {
    let bad = |message: &str| refuse(Code::BadBody, message.to_string());
    if body.len() > MAX_BODY {
        return Err(refuse(
            Code::TooLarge,
            format!("a delivery is at most {MAX_BODY} bytes"),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let Ok(Json::Object(members)) = json::parse(text) else {
        return Err(bad("the body is not a JSON object"));
    };
    let mut record_bytes = None;
    let mut disclosures_json = None;
    let mut birthday = None;
    let mut token = None;
    for (key, value) in &members {
        match (key.as_str(), value) {
            ("token", Json::String(text)) if text.len() <= 1024 => token = Some(text.clone()),
            ("record", Json::String(bytes)) => record_bytes = Some(bytes.clone()),
            ("disclosures", Json::Array(items)) => disclosures_json = Some(items.clone()),
            ("birthday", Json::String(text)) => {
                let value = read_birthday(text).ok_or_else(|| bad("birthday is --MM-DD, a day of that month"))?;
                birthday = Some(Birthday::Unbound(value));
            }
            ("birthday", value @ Json::Object(_)) => {
                let salted = read_salted_birthday(value)
                    .ok_or_else(|| bad("birthday is {value: --MM-DD, a day of that month; salt: 32 hex digits}"))?;
                birthday = Some(Birthday::Bound(salted));
            }
            _ => {
                return Err(bad(&format!(
                    "unexpected member \"{key}\" (expected record, disclosures, birthday and token)"
                )))
            }
        }
    }
    let (Some(bytes), Some(disclosure_items)) = (record_bytes, disclosures_json) else {
        return Err(bad("a delivery has a record (string) and disclosures (array)"));
    };
    let disclosures = disclosure_items
        .iter()
        .map(read_disclosure)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| bad("each disclosure is {channel, identifier, salt (32 hex digits)}"))?;

    let opened = record::open(bytes.as_bytes()).map_err(|e| {
        let code = match e {
            RecordError::NotJson(_) => Code::NotJson,
            RecordError::NotCanonical => Code::NotCanonical,
            RecordError::Shape { .. } => Code::Shape,
            RecordError::UnknownAlgorithm(_) => Code::UnknownAlgorithm,
            RecordError::BadSignature => Code::BadSignature,
        };
        refuse(code, e.to_string())
    })?;
    Ok(Delivery {
        bytes,
        opened,
        disclosures,
        birthday,
        token,
    })
}

impl Delivery {
    /// Checks the opened record against the config version it was made under (of
    /// `history`), the clock and the request, and what travels beside it against the
    /// record's commitments.
    ///
    /// # Errors
    /// A [`Refusal`] with a 4xx status and a stable code: `unknown-config` for a version
    /// `history` lacks; a value beside the record that its commitments do not bind is
    /// `disclosure-mismatch` or `birthday-mismatch`.
    pub fn check(self, history: &History, arrival: &Arrival) -> Result<Accepted, Refusal> {
        let Delivery {
            bytes,
            opened,
            disclosures,
            birthday,
            token,
        } = self;
        let Version { config, shown } = made_under(&opened, history)?;
        matches_config(&opened, config, shown)?;
        captured_in_window(&opened, arrival.now_ms)?;
        matches_page(&opened, config, arrival)?;
        identifiers_normal(&disclosures)?;
        matches_disclosures(&opened, &disclosures, config)?;
        birthday_bound(&opened, birthday.as_ref())?;
        // A bare birthday is not kept, so there is nothing of it to hold to R8 here.
        if matches!(birthday, Some(Birthday::Bound(_))) {
            birthday_granted(&opened, &disclosures, config)?;
        }
        Ok(Accepted {
            bytes,
            opened,
            disclosures,
            birthday,
            token,
        })
    }

    /// [`Delivery::check`] against what `collector` serves.
    ///
    /// # Errors
    /// As [`Delivery::check`].
    pub fn check_as_served(self, collector: &Collector, arrival: &Arrival) -> Result<Accepted, Refusal> {
        self.check(&collector.history, arrival)
    }

    /// The delivery of a record whose exact bytes the store holds: appended unchecked, since
    /// they were checked when first stored, and the store answers `Existing` only when what
    /// travels beside them is what it holds (`Conflict` otherwise).
    pub fn into_retry(self) -> Accepted {
        Accepted {
            bytes: self.bytes,
            opened: self.opened,
            disclosures: self.disclosures,
            birthday: self.birthday,
            token: self.token,
        }
    }
}

/// The config version a record was made under: the one its `config_sha256` names, among
/// those the collector has served (crate::history). A version it never served is no
/// config of this shop's; one it can no longer read is refused too, rather than checked
/// against another wording.
fn made_under<'h>(opened: &OpenedRecord, history: &'h History) -> Result<&'h Version, Refusal> {
    let sha256 = &opened.record.config_sha256;
    history.version(sha256).ok_or_else(|| {
        refuse(
            Code::UnknownConfig,
            format!("the collector knows no config {sha256}: it has not served it, or can no longer read it"),
        )
    })
}

/// `{"value":"--MM-DD","salt":"<32 hex digits>"}`, and nothing else.
fn read_salted_birthday(item: &Json) -> Option<Salted> {
    let Json::Object(members) = item else { return None };
    if members.len() != 2 {
        return None;
    }
    let text = |key: &str| match &members.iter().find(|(k, _)| k == key)?.1 {
        Json::String(s) => Some(s.as_str()),
        _ => None,
    };
    Some(Salted {
        value: read_birthday(text("value")?)?,
        salt: <[u8; SALT_LEN]>::try_from(record::unhex(text("salt")?)?).ok()?,
    })
}

/// The birthday beside the record is the one it commits to: SHA-256(salt ‖ `--MM-DD`), as a
/// contact's commitment (`Salted::committed_bytes`). A record that commits to a birthday
/// needs it beside; a salted birthday needs a commitment. A bare birthday beside a record
/// without one comes from a widget cached before birthdays were bound: let through here,
/// and not kept.
fn birthday_bound(opened: &OpenedRecord, birthday: Option<&Birthday>) -> Result<(), Refusal> {
    let commitment = opened
        .record
        .beside
        .iter()
        .find(|b| b.field == ExtraField::Birthday)
        .map(|b| b.commitment.as_str());
    let problem = match (commitment, birthday) {
        (Some(commitment), Some(Birthday::Bound(salted))) => {
            if sha256_hex(&salted.committed_bytes()) == commitment {
                return Ok(());
            }
            "the birthday does not hash to the record's commitment to it"
        }
        (Some(_), _) => "the record commits to a birthday, but none travels beside it with its salt",
        (None, Some(Birthday::Bound(_))) => "a birthday travels beside a record that commits to none",
        (None, _) => return Ok(()),
    };
    Err(refuse(Code::BirthdayMismatch, problem))
}

/// `--MM-DD` as the widget writes it (`capture::normalise_birthday`), and nothing else: the
/// text must be its own normal form, so `--1-7` or `-- 01-07` are refused.
fn read_birthday(text: &str) -> Option<String> {
    let (month, day) = text.strip_prefix("--")?.split_once('-')?;
    normalise_birthday(day, month).filter(|normal| normal == text)
}

/// A birthday comes only with a given purpose that asks for it, and with a contact to reach
/// and erase it by (R8: Art. 5(1)(c); Art. 17).
fn birthday_granted(opened: &OpenedRecord, disclosures: &[Disclosure], config: &Config) -> Result<(), Refusal> {
    let asked = opened.record.purposes.iter().any(|p| {
        p.state == ConsentState::Given
            && config
                .purpose(&p.id)
                .is_some_and(|c| c.fields.contains(&ExtraField::Birthday))
    });
    if !asked || disclosures.is_empty() {
        return Err(refuse(
            Code::BirthdayNotGranted,
            "a birthday comes only with a given purpose that asks for it, and a contact",
        ));
    }
    Ok(())
}

fn read_disclosure(item: &Json) -> Option<Disclosure> {
    let Json::Object(members) = item else { return None };
    if members.len() != 3 {
        return None;
    }
    let text = |key: &str| match members.iter().find(|(k, _)| k == key)?.1 {
        Json::String(ref s) => Some(s.clone()),
        _ => None,
    };
    let salt = record::unhex(&text("salt")?)?;
    Some(Disclosure {
        channel: Channel::from_name(&text("channel")?)?,
        identifier: text("identifier")?,
        salt: <[u8; SALT_LEN]>::try_from(salt).ok()?,
    })
}

/// The record was captured from a form this config describes, showing exactly its texts.
fn matches_config(opened: &OpenedRecord, config: &Config, shown: &Shown) -> Result<(), Refusal> {
    let record = &opened.record;
    let form = config
        .form(&record.form)
        .ok_or_else(|| refuse(Code::UnknownForm, format!("the config has no form \"{}\"", record.form)))?;
    source_fits(form, record)?;
    if !config.locales.iter().any(|l| l == &record.locale) {
        return Err(refuse(
            Code::UnknownLocale,
            format!("\"{}\" is not a declared locale", record.locale),
        ));
    }
    // What the widget showed for this form in this locale, rendered by the same code.
    let shown = shown.get(&form.kind, &record.locale).unwrap_or_default();
    for entry in &record.purposes {
        let Some(text) = shown.iter().find(|t| t.purpose == entry.id) else {
            return Err(refuse(
                Code::UnknownPurpose,
                format!("form \"{}\" offers no purpose \"{}\"", form.kind, entry.id),
            ));
        };
        let version = config.purpose(&entry.id).map(|p| p.version);
        if version != Some(entry.version) {
            return Err(refuse(
                Code::PurposeVersion,
                format!("purpose \"{}\" is at version {}", entry.id, version.unwrap_or(0)),
            ));
        }
        // R7: a checkout or sign-up gives or refuses; withdrawing, and giving again what
        // changed, go through the preferences form (the account page with its token, or the
        // collector's own pages), so that no other form can take back anyone's consent.
        if form.kind != PREFERENCES && matches!(entry.state, ConsentState::Withdrawn | ConsentState::Renewed) {
            return Err(refuse(
                Code::StateNotOffered,
                format!(
                    "form \"{}\" gives or refuses; a {} goes through the preferences form",
                    form.kind,
                    entry.state.as_str()
                ),
            ));
        }
        if entry.text_sha256 != text.sha256 {
            return Err(refuse(
                Code::TextMismatch,
                format!(
                    "the text recorded for \"{}\" is not the text this config shows in \"{}\"",
                    entry.id, record.locale
                ),
            ));
        }
    }
    Ok(())
}

/// The record's source is its form's, and its signer the one that form has: the browser for
/// every config form and the shop's account page (`account`); the collector for its own
/// preference page and one-click unsubscribe (`preferences`, `unsubscribe`), and for an
/// import and its answer (`import`).
fn source_fits(form: &unticked_core::config::Form, record: &record::ConsentRecord) -> Result<(), Refusal> {
    use unticked_core::record::Signer;
    use unticked_core::vocabulary::Source;
    let fits = match (record.source, record.signer) {
        (source, Signer::Browser) => source == form.source,
        (Source::Preferences | Source::Unsubscribe, Signer::Collector) => form.kind == PREFERENCES,
        // Consent taken on the phone (crate::assisted) reads out the preferences form's texts.
        (Source::Phone, Signer::Collector)
            if matches!(record.act, Some(unticked_core::record::Act::Assisted { .. })) =>
        {
            form.kind == PREFERENCES
        }
        // An imported contact (`unticked import`), and its answer to the re-permission link
        // on the preference page (crate::import): both stand on the preferences form, the
        // one every config has, since neither was taken on a form of the shop's.
        (Source::Import, Signer::Collector) => form.kind == PREFERENCES,
        // A double opt-in confirmation (crate::optin) stands on the signup's own form.
        (source, Signer::Collector) if matches!(record.act, Some(unticked_core::record::Act::Confirms(_))) => {
            source == form.source && form.double_opt_in.is_some()
        }
        (_, Signer::Collector) => false,
    };
    if fits {
        return Ok(());
    }
    Err(refuse(
        Code::SourceMismatch,
        format!(
            "form \"{}\" records source \"{}\", signed by the browser{}",
            form.kind,
            form.source.as_str(),
            if form.kind == PREFERENCES {
                " (or preferences, unsubscribe and import, signed by the collector)"
            } else {
                ""
            }
        ),
    ))
}

/// The capture time is within [`MAX_AGE_MS`] before and [`MAX_AHEAD_MS`] after `now_ms`.
fn captured_in_window(opened: &OpenedRecord, now_ms: u64) -> Result<(), Refusal> {
    let captured_at = opened.record.captured_at;
    let earliest = now_ms.saturating_sub(MAX_AGE_MS);
    if captured_at < earliest || captured_at > now_ms.saturating_add(MAX_AHEAD_MS) {
        return Err(refuse(
            Code::CapturedAtWindow,
            format!(
                "captured_at {captured_at} is not within 400 days before and 10 minutes after the collector's clock ({now_ms})"
            ),
        ));
    }
    Ok(())
}

/// The record names the privacy notice this config links to, and a page of the shop: one
/// of the config's `origins` or the collector's own public origins, never whatever the
/// request's `Host` says (crate::http::Writers); and a browser's request comes from that
/// very page (its `Origin`).
fn matches_page(opened: &OpenedRecord, config: &Config, arrival: &Arrival) -> Result<(), Refusal> {
    let record = &opened.record;
    let notice = &config.privacy_notice;
    if record.notice_url != notice.url || record.notice_version != notice.version {
        return Err(refuse(
            Code::NoticeMismatch,
            format!(
                "the record names another privacy notice than the config's ({} version {})",
                notice.url, notice.version
            ),
        ));
    }
    if arrival.origin.is_some_and(|origin| origin != record.page_origin) {
        return Err(refuse(
            Code::OriginMismatch,
            "the record's page.origin is not the Origin the request came from",
        ));
    }
    if !arrival.writers.allows(&record.page_origin) {
        return Err(refuse(
            Code::ForeignOrigin,
            "page.origin is neither one of the config's origins nor the collector's own",
        ));
    }
    Ok(())
}

/// Each identifier is already in the form the widget writes (`capture::normalise_contact`),
/// so that looking a subject up, exporting and erasing them (Art. 15, 17) find every record
/// that names them: `Victim@Example.LV` would be a subject no request could reach.
fn identifiers_normal(disclosures: &[Disclosure]) -> Result<(), Refusal> {
    for disclosure in disclosures {
        // No locale: a number the widget normalised is in E.164 already, `+` and digits.
        let normal = normalise_contact(disclosure.channel, &disclosure.identifier, "");
        if normal.as_deref() != Some(disclosure.identifier.as_str()) {
            return Err(refuse(
                Code::IdentifierNotNormal,
                format!(
                    "a {} identifier is not a valid one in the widget's normal form",
                    disclosure.channel.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Each subject commitment has its disclosure, for a channel granted in this record (R8).
fn matches_disclosures(opened: &OpenedRecord, disclosures: &[Disclosure], config: &Config) -> Result<(), Refusal> {
    let record = &opened.record;
    if disclosures.len() != record.subjects.len() {
        return Err(refuse(
            Code::DisclosureMismatch,
            "each subject commitment needs exactly one disclosure",
        ));
    }
    for (subject, disclosure) in record.subjects.iter().zip(disclosures) {
        if subject.channel != disclosure.channel || subject.commitment != sha256_hex(&disclosure.committed_bytes()) {
            return Err(refuse(
                Code::DisclosureMismatch,
                "a disclosure does not hash to its subject commitment",
            ));
        }
        // A change of preferences names the subject whose consent it changes, whatever the
        // channel of the purposes it changes (R7); a checkout names a contact only for a
        // channel granted in it (R8).
        let granted = record.form == PREFERENCES
            || record.purposes.iter().any(|p| {
                p.state == ConsentState::Given && config.purpose(&p.id).map(|c| c.channel) == Some(subject.channel)
            });
        if !granted {
            return Err(refuse(
                Code::SubjectNotGranted,
                format!("no purpose on the {} channel was given", subject.channel.as_str()),
            ));
        }
    }
    Ok(())
}

/// `POST /v1/records`: 201 when stored, 200 when the same bytes were stored before, 409
/// when other bytes hold the id, 4xx JSON `{code, message}` for anything refused.
pub async fn post_record(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(_) => return refuse(Code::TooLarge, format!("a delivery is at most {MAX_BODY} bytes")).into_response(),
    };
    // The daily quota counts records stored. A place is taken first, so that a client past
    // it costs no signature check and posts in parallel cannot all pass one check, and given
    // back below unless the record is stored now.
    let daily = collector.limits.daily.as_ref();
    if let Some(Err(wait)) = daily.map(|quota| quota.take(client, std::time::Instant::now())) {
        tracing::warn!(client = %client.address(), "record refused: daily quota reached");
        return too_many(
            Code::QuotaExceeded,
            "this address has stored its records for the day",
            wait,
        )
        .into_response();
    }
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let arrival = Arrival {
        now_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        writers: &collector.writers,
        origin: text(header::ORIGIN),
    };
    let refund = || {
        if let Some(quota) = daily {
            quota.refund(client, std::time::Instant::now());
        }
    };
    let checked = open_delivery(&body).and_then(|delivery| {
        // The collector signs only what it makes itself (crate::lifecycle); a record that
        // claims its signature comes from nowhere it trusts.
        if delivery.opened.record.signer == record::Signer::Collector {
            return Err(refuse(
                Code::CollectorSigned,
                "only the collector makes the records it signs",
            ));
        }
        // The outbox's retry (src/courier.js) of bytes already stored gets their receipt
        // before any check: the config may have changed since (a label corrected), or the
        // clock moved past the window, and a 422 would keep the entry in the outbox for ever.
        if stored_before(&collector, &delivery)? {
            return Ok(delivery.into_retry());
        }
        let id = delivery.opened.record.id.clone();
        let accepted = delivery
            .check(&collector.history, &arrival)
            .map_err(|refusal| id_taken(&collector, &id, refusal))?;
        if accepted.opened.record.form == PREFERENCES {
            crate::lifecycle::authorise_account_record(&collector, &accepted, accepted.token.as_deref(), client)?;
        }
        Ok(accepted)
    });
    let accepted = match checked {
        Ok(accepted) => accepted,
        Err(refusal) => {
            refund();
            tracing::warn!(code = refusal.code.as_str(), "record refused");
            return refusal.into_response();
        }
    };
    let not_kept = accepted.not_kept();
    let id = accepted.opened.record.id.clone();
    let purposes = accepted.opened.record.purposes.len();
    let subjects = accepted.disclosures.len();
    let appended = collector.append(accepted).await;
    // Erasure (Art. 17) deletes the rows beside a record, so a retry of an erased subject's
    // delivery differs from what is held and is a conflict: their contact is not brought
    // back, and the outbox, which takes a 409 as done, lets the entry go.
    let (status, index) = match appended {
        Ok(Appended::New(index)) => (StatusCode::CREATED, index),
        Ok(Appended::Existing(index)) => {
            refund();
            (StatusCode::OK, index)
        }
        Ok(Appended::Conflict) => {
            refund();
            return refuse(
                Code::IdConflict,
                "another record, or other values beside it, are stored under this id",
            )
            .into_response();
        }
        Err(e) => {
            refund();
            return unavailable(e).into_response();
        }
    };
    // No contact data in logs: the id and the counts only.
    tracing::info!(%id, index, purposes, subjects, status = status.as_u16(), "record stored");
    match collector.receipt(&id, index) {
        Ok(mut receipt) => {
            if !not_kept.is_empty() {
                receipt["not_kept"] = not_kept.into();
            }
            (status, axum::Json(receipt)).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// Whether the store holds the delivery's record, byte for byte, under its id.
fn stored_before(collector: &Collector, delivery: &Delivery) -> Result<bool, Refusal> {
    let stored = collector
        .store
        .record(&delivery.opened.record.id)
        .map_err(unavailable)?;
    Ok(stored.is_some_and(|(_, bytes)| bytes == delivery.bytes))
}

/// A value beside the record that its commitments do not bind, under an id already stored:
/// other values under a stored id, refused like other bytes under it (409 `id-conflict`),
/// never silently ignored. Under an id not stored it stays the 422 it is.
fn id_taken(collector: &Collector, id: &str, refusal: Refusal) -> Refusal {
    if !matches!(refusal.code, Code::DisclosureMismatch | Code::BirthdayMismatch) {
        return refusal;
    }
    match collector.store.record(id) {
        Ok(Some(_)) => refuse(
            Code::IdConflict,
            "other values beside the record are stored under this id",
        ),
        _ => refusal,
    }
}

/// `GET /v1/records/{id}`: the exact bytes stored (as a JSON string), the record's receipt,
/// and its inclusion proof against the latest checkpoint.
pub async fn get_record(
    State(collector): State<Arc<Collector>>,
    id: Result<UrlPath<String>, PathRejection>,
) -> Response {
    // A path that does not decode (`%ff`) names no record: the API's JSON 404.
    let Ok(UrlPath(id)) = id else {
        return refuse(Code::NotFound, "no record with this id").into_response();
    };
    let found = match collector.store.record(&id) {
        Ok(found) => found,
        Err(e) => return unavailable(e).into_response(),
    };
    let Some((index, bytes)) = found else {
        return refuse(Code::NotFound, "no record with this id").into_response();
    };
    let receipt = match collector.receipt(&id, index) {
        Ok(receipt) => receipt,
        Err(refusal) => return refusal.into_response(),
    };
    let latest = collector.store.latest().and_then(|checkpoint| {
        let (_, proof) = collector.store.inclusion(index, checkpoint.size)?;
        Some(serde_json::json!({
            "inclusion": proof.iter().map(|h| record::hex(h)).collect::<Vec<_>>(),
            "checkpoint": checkpoint.to_json(collector.store.origin(), &collector.store.public_key()),
        }))
    });
    axum::Json(serde_json::json!({ "record": bytes, "receipt": receipt, "latest": latest })).into_response()
}

/// `GET /v1/checkpoint`: the latest signed checkpoint (404 `empty` before the first record).
pub async fn get_checkpoint(State(collector): State<Arc<Collector>>) -> Response {
    match collector.store.latest() {
        Some(c) => axum::Json(c.to_json(collector.store.origin(), &collector.store.public_key())).into_response(),
        None => refuse(Code::Empty, "the log holds no record yet").into_response(),
    }
}

/// `GET /v1/proofs/consistency?from=N&to=M`: RFC 9162 §2.1.4 proof that the log at size M
/// extends the log at size N.
pub async fn get_consistency(
    State(collector): State<Arc<Collector>>,
    Query(range): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let size = |name: &str| range.get(name).and_then(|v| v.parse::<u64>().ok());
    let (Some(from), Some(to)) = (size("from"), size("to")) else {
        return refuse(Code::BadRange, "from and to are tree sizes (integers)").into_response();
    };
    match collector.store.consistency(from, to) {
        Some(proof) if from <= to => axum::Json(serde_json::json!({
            "from": from,
            "to": to,
            "proof": proof.iter().map(|h| record::hex(h)).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => refuse(
            Code::BadRange,
            format!(
                "need from <= to <= {} (the latest checkpoint's size)",
                collector.store.latest().map_or(0, |c| c.size)
            ),
        )
        .into_response(),
    }
}

/// `GET /v1/texts/{sha256}`: the purpose text a record's `text_sha256` names, as shown.
pub async fn get_text(
    State(collector): State<Arc<Collector>>,
    sha256: Result<UrlPath<String>, PathRejection>,
) -> Response {
    let Ok(UrlPath(sha256)) = sha256 else {
        return refuse(Code::NotFound, "no text with this hash").into_response();
    };
    match collector.store.text(&sha256) {
        // Never serve wording other than what the hash names: that is storage corruption.
        Ok(Some((_, _, _, text))) if sha256_hex(text.as_bytes()) != sha256 => {
            tracing::error!(sha256 = %sha256, "a stored text does not hash to its name; run `unticked verify`");
            refuse(Code::Unavailable, "the stored text does not match its hash").into_response()
        }
        Ok(Some((purpose, version, locale, text))) => axum::Json(serde_json::json!({
            "sha256": sha256, "purpose": purpose, "version": version, "locale": locale, "text": text,
        }))
        .into_response(),
        Ok(None) => refuse(Code::NotFound, "no text with this hash").into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::testing::{capture, demo_config, seal};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use unticked_core::config::Channel;

    fn code(body: &str, config: &Config) -> &'static str {
        match check(body.as_bytes(), config) {
            Ok(_) => "ok",
            Err(refusal) => refusal.code.as_str(),
        }
    }

    #[test]
    fn a_record_sealed_as_the_browser_does_is_accepted() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers", "phone-calls"]), 1);
        let accepted = check(body.as_bytes(), &config).unwrap();
        let identifiers: Vec<_> = accepted.disclosures.iter().map(|d| d.identifier.as_str()).collect();
        assert_eq!(identifiers, ["jan@example.pl", "+48601234567"]);
        assert_eq!(accepted.opened.record.subjects.len(), 2);
        assert_eq!(accepted.birthday, None, "no birthday without birthday greetings (R8)");
    }

    #[test]
    fn a_text_the_config_does_not_show_is_refused() {
        let config = demo_config();
        let mut shown_other = capture(&config, &["email-offers"]);
        shown_other.texts[0].push_str(" (and partners)");
        assert_eq!(code(&seal(&shown_other, 1), &config), "text-mismatch");
        let mut old_version = capture(&config, &["email-offers"]);
        old_version.record.purposes[0].version = 2;
        assert_eq!(code(&seal(&old_version, 1), &config), "purpose-version");
    }

    #[test]
    fn disclosures_must_back_the_commitments_of_granted_channels() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers"]), 1);
        let swapped = body.replace("jan@example.pl", "eve@example.pl");
        assert_eq!(code(&swapped, &config), "disclosure-mismatch");
        let none = body.replacen(&body[body.find('[').unwrap()..=body.find(']').unwrap()], "[]", 1);
        assert_eq!(code(&none, &config), "disclosure-mismatch");
        // An e-mail committed to although no e-mail purpose was given (R8).
        let mut calls_only = capture(&config, &["email-offers"]);
        for purpose in &mut calls_only.record.purposes {
            purpose.state = if purpose.id == "phone-calls" {
                ConsentState::Given
            } else {
                ConsentState::Refused
            };
        }
        assert_eq!(code(&seal(&calls_only, 1), &config), "subject-not-granted");
    }

    #[test]
    fn a_birthday_comes_only_with_a_given_purpose_that_asks_for_it() {
        let config = demo_config();
        // The widget's own capture carries it (7 November, from the test helper), salted.
        let asked = seal(&capture(&config, &["email-offers", "birthday-greetings"]), 1);
        let accepted = check(asked.as_bytes(), &config).expect("accepted");
        let Some(Birthday::Bound(birthday)) = &accepted.birthday else {
            panic!("a bound birthday: {:?}", accepted.birthday)
        };
        assert_eq!(birthday.value, "--11-07");
        assert!(accepted.not_kept().is_empty());
        for bad in [
            "--11-31",
            "11-07",
            "--1-7",
            "-- 11-07",
            "--11-07 ",
            "--00-10",
            "1990-11-07",
        ] {
            assert_eq!(code(&asked.replace("--11-07", bad), &config), "bad-body", "{bad}");
        }
        let salt = format!(r#""salt":"{}""#, "05".repeat(SALT_LEN));
        for bad_salt in [r#""salt":"05""#, r#""salt":"xx""#, r#""salt":5"#] {
            assert_eq!(code(&asked.replace(&salt, bad_salt), &config), "bad-body", "{bad_salt}");
        }
        // Committed to although birthday greetings were refused (R8): signed, and refused.
        let mut refused = capture(&config, &["email-offers", "birthday-greetings"]);
        for purpose in &mut refused.record.purposes {
            if purpose.id == "birthday-greetings" {
                purpose.state = ConsentState::Refused;
            }
        }
        assert_eq!(code(&seal(&refused, 1), &config), "birthday-not-granted");
    }

    /// A birthday travels beside the record, bound to it by the record's commitment: a
    /// one-byte change in transit, a birthday without its commitment or a commitment
    /// without its birthday are refused (issue 13, defect 4).
    #[test]
    fn a_birthday_changed_in_transit_or_unbound_is_refused() {
        let config = demo_config();
        let mut january = capture(&config, &["email-offers", "birthday-greetings"]);
        january.birthday.as_mut().unwrap().value = "--01-23".into();
        let body = seal(&january, 1);
        assert_eq!(code(&body, &config), "ok");
        assert_eq!(
            code(&body.replace("--01-23", "--11-23"), &config),
            "birthday-mismatch",
            "one byte changed in transit"
        );
        // The birthday is the body's first member, its salt the first salt.
        let other_salt = body.replacen(&"05".repeat(SALT_LEN), &"06".repeat(SALT_LEN), 1);
        assert_eq!(code(&other_salt, &config), "birthday-mismatch");
        // The record commits to a birthday; the delivery drops it, or sends it bare.
        let value: serde_json::Value = json(&body);
        let mut dropped = value.clone();
        dropped.as_object_mut().unwrap().remove("birthday");
        assert_eq!(code(&dropped.to_string(), &config), "birthday-mismatch");
        let mut bare = value.clone();
        bare["birthday"] = "--01-23".into();
        assert_eq!(code(&bare.to_string(), &config), "birthday-mismatch");
        // A salted birthday beside a record that commits to none.
        let none = json(&seal(&capture(&config, &["email-offers"]), 1));
        let mut added = none.clone();
        added["birthday"] = value["birthday"].clone();
        assert_eq!(code(&added.to_string(), &config), "birthday-mismatch");
    }

    /// A widget cached before birthdays were bound sends a bare birthday beside a record
    /// without a commitment: the consent record is stored, the birthday is not kept, and the
    /// answer says so.
    #[tokio::test]
    async fn a_bare_birthday_from_an_older_widget_is_not_kept_and_the_record_is() {
        let config = demo_config();
        let (app, store, _dir) = app_and_store(&config);
        let mut old = capture(&config, &["email-offers", "birthday-greetings"]);
        let birthday = old.birthday.take().unwrap();
        old.record.beside.clear();
        let mut body = json(&seal(&old, 1));
        body["birthday"] = birthday.value.clone().into();
        let (status, answer) = send(&app, "POST", "/v1/records", body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        assert_eq!(json(&answer)["not_kept"], serde_json::json!(["birthday"]));
        assert_eq!(birthday_held(&store, "jan@example.pl"), None);
        // Its retry is the same delivery: 200, the same answer.
        let (status, again) = send(&app, "POST", "/v1/records", body.to_string()).await;
        assert_eq!((status, json(&again)), (StatusCode::OK, json(&answer)));
    }

    /// The same record id with other values beside it is refused like other bytes under it
    /// (409), never answered 200 while keeping the first (issue 13, defect 4); a true repeat
    /// is the outbox's retry (200).
    #[tokio::test]
    async fn a_repeat_with_another_birthday_is_a_conflict_and_a_true_repeat_is_not() {
        let config = demo_config();
        let (app, store, _dir) = app_and_store(&config);
        let mut first = capture(&config, &["email-offers", "birthday-greetings"]);
        first.birthday.as_mut().unwrap().value = "--01-23".into();
        let body = seal(&first, 1);
        let (status, receipt) = send(&app, "POST", "/v1/records", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        let (status, again) = send(&app, "POST", "/v1/records", body.clone()).await;
        assert_eq!((status, json(&again)), (StatusCode::OK, json(&receipt)));
        let (status, conflict) = send(&app, "POST", "/v1/records", body.replace("--01-23", "--11-23")).await;
        assert_eq!(
            (status, json(&conflict)["code"].as_str()),
            (StatusCode::CONFLICT, Some("id-conflict")),
            "{conflict}"
        );
        let mut without = json(&body);
        without.as_object_mut().unwrap().remove("birthday");
        let (status, _) = send(&app, "POST", "/v1/records", without.to_string()).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            birthday_held(&store, "jan@example.pl").as_deref(),
            Some("--01-23"),
            "the first is kept"
        );
    }

    /// Erasure (Art. 17) deletes what is held beside a record; a retry of the erased
    /// subject's delivery (an outbox that was offline meanwhile) must not bring the contact
    /// or the birthday back. It is answered 409, which the outbox takes as done.
    #[tokio::test]
    async fn a_retry_after_erasure_brings_nothing_back() {
        let config = demo_config();
        let (app, store, dir) = app_and_store(&config);
        let body = seal(&capture(&config, &["email-offers", "birthday-greetings"]), 1);
        let (status, _) = send(&app, "POST", "/v1/records", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(store.subject("jan@example.pl").unwrap().len(), 1);
        assert_eq!(store.erase("jan@example.pl").unwrap(), 1);
        let (status, answer) = send(&app, "POST", "/v1/records", body).await;
        assert_eq!(
            (status, json(&answer)["code"].as_str()),
            (StatusCode::CONFLICT, Some("id-conflict"))
        );
        assert!(store.subject("jan@example.pl").unwrap().is_empty(), "still erased");
        let birthdays: i64 = rusqlite::Connection::open(dir.path().join("log.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM subjects WHERE birthday IS NOT NULL", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(birthdays, 0);
    }

    /// The app over a fresh log, with a handle on its store.
    fn app_and_store(config: &Config) -> (axum::Router, Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(config)).unwrap();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let app = crate::serve::app(www, config.clone(), store.clone(), crate::testing::settings());
        (app, store, dir)
    }

    /// The birthday held with the subject's first disclosure.
    fn birthday_held(store: &Store, identifier: &str) -> Option<String> {
        store.subject(identifier).unwrap()[0].birthday.clone()
    }

    #[test]
    fn damaged_or_foreign_bodies_are_refused_with_their_code() {
        let config = demo_config();
        let body = seal(&capture(&config, &["email-offers"]), 1);
        assert_eq!(
            code(&body.replacen("\\\"pl\\\"", "\\\"cs\\\"", 1), &config),
            "bad-signature"
        );
        assert_eq!(code("[]", &config), "bad-body");
        assert_eq!(code(r#"{"record":"{}","disclosures":[],"x":1}"#, &config), "bad-body");
        assert_eq!(code(r#"{"record":"{}","disclosures":[]}"#, &config), "shape");
        assert_eq!(code(&" ".repeat(MAX_BODY + 1), &config), "too-large");
    }

    /// A subject the attack named in a form the widget never writes is refused, or it could
    /// never be found and erased again (Art. 17); so is an "address" that is no address.
    #[test]
    fn identifiers_must_be_valid_and_in_the_widgets_normal_form() {
        let config = demo_config();
        let junk = format!("{}@example.lv", "x".repeat(8 * 1024));
        for identifier in [
            "Victim@Example.LV",
            " victim@example.lv",
            junk.as_str(),
            "victim@@example.lv",
        ] {
            let mut shown = capture(&config, &["email-offers"]);
            shown.disclosures[0].identifier = identifier.to_string();
            let body = seal(&shown, 1);
            assert!(body.len() <= MAX_BODY, "{identifier:.20}: under the body limit");
            assert_eq!(code(&body, &config), "identifier-not-normal", "{identifier:.20}");
        }
        let mut phone = capture(&config, &["phone-calls"]);
        phone.disclosures[0].identifier = "+48 601 234 567".into();
        assert_eq!(code(&seal(&phone, 1), &config), "identifier-not-normal");
        let mut post = capture(&config, &["catalogue-post"]);
        post.disclosures = vec![Disclosure {
            channel: Channel::Post,
            identifier: "Jan  Kowalski,\nul. Długa 1".into(),
            salt: [5; SALT_LEN],
        }];
        post.record.subjects = vec![record::SubjectCommitment {
            channel: Channel::Post,
            commitment: String::new(),
        }];
        assert_eq!(code(&seal(&post, 1), &config), "identifier-not-normal");
        post.disclosures[0].identifier = "Jan Kowalski, ul. Długa 1".into();
        assert_eq!(code(&seal(&post, 1), &config), "ok", "the widget's own form is taken");
    }

    #[test]
    fn a_capture_time_far_from_the_collectors_clock_is_refused() {
        let config = demo_config();
        let at = |captured_at: u64| {
            let mut shown = capture(&config, &["email-offers"]);
            shown.record.captured_at = captured_at;
            code(&seal(&shown, 1), &config)
        };
        let now = crate::testing::now_ms();
        assert_eq!(at(0), "shape");
        let year_2200 = 7_258_118_400_000;
        assert_eq!(at(year_2200), "captured-at-window");
        assert_eq!(at(now + MAX_AHEAD_MS + 60_000), "captured-at-window");
        assert_eq!(at(now - MAX_AGE_MS - 60_000), "captured-at-window");
        assert_eq!(at(now + 60_000), "ok", "a clock a minute fast");
        assert_eq!(at(now - 30 * 24 * 3600 * 1000), "ok", "a month in the outbox");
    }

    #[test]
    fn a_record_names_this_shops_page_and_privacy_notice() {
        let mut config = demo_config();
        let with = |edit: &dyn Fn(&mut unticked_core::record::ConsentRecord)| {
            let mut shown = capture(&config, &["email-offers"]);
            edit(&mut shown.record);
            seal(&shown, 1)
        };
        let foreign = with(&|r| r.page_origin = "https://evil.example".into());
        assert_eq!(code(&foreign, &config), "foreign-origin");
        let javascript = with(&|r| r.notice_url = "javascript:alert(document.cookie)".into());
        assert_eq!(code(&javascript, &config), "shape");
        let other_notice = with(&|r| r.notice_url = "https://evil.example/privacy".into());
        assert_eq!(code(&other_notice, &config), "notice-mismatch");
        let other_version = with(&|r| r.notice_version = "1999-01".into());
        assert_eq!(code(&other_version, &config), "notice-mismatch");
        // Padded to 8 KiB: under the body limit, over the field's.
        let padded = with(&|r| r.widget = format!("0.1.0{}", "x".repeat(8 * 1024)));
        assert!(padded.len() <= MAX_BODY);
        assert_eq!(code(&padded, &config), "shape");
        // A shop on another origin, listed in the config, may send records.
        config.origins = vec!["https://evil.example".into()];
        assert_eq!(code(&foreign, &config), "ok");
    }

    async fn send(app: &axum::Router, method: &str, uri: &str, body: String) -> (StatusCode, String) {
        // From the demo page the test captures name (http://127.0.0.1:8080).
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header(header::HOST, "127.0.0.1:8080")
            .body(Body::from(body))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// The app over a fresh log, the collector's public key, and the temporary directory.
    fn test_app(config: &Config) -> (axum::Router, ed25519_dalek::VerifyingKey, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(config)).unwrap();
        let key = store.public_key();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        (
            crate::serve::app(www, config.clone(), store, crate::testing::settings()),
            key,
            dir,
        )
    }

    fn json(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn unhex(text: &serde_json::Value) -> [u8; 32] {
        let text = text.as_str().unwrap();
        record::unhex(text).unwrap().try_into().unwrap()
    }

    fn unbase64url(text: &serde_json::Value) -> Vec<u8> {
        use base64ct::Encoding;
        base64ct::Base64UrlUnpadded::decode_vec(text.as_str().unwrap()).unwrap()
    }

    /// What a client holding only the receipt and the record can check: the record's leaf is
    /// in the tree the checkpoint names, and the checkpoint is the collector's.
    fn assert_receipt_proves(receipt: &serde_json::Value, bytes: &str, collector: &ed25519_dalek::VerifyingKey) {
        use ed25519_dalek::Verifier;
        let leaf = unticked_core::merkle::leaf_hash(bytes.as_bytes());
        assert_eq!(unhex(&receipt["leaf_hash"]), leaf);
        let checkpoint = &receipt["checkpoint"];
        let proof: Vec<[u8; 32]> = receipt["inclusion"].as_array().unwrap().iter().map(unhex).collect();
        let (index, size) = (receipt["index"].as_u64().unwrap(), checkpoint["size"].as_u64().unwrap());
        let root = unhex(&checkpoint["root"]);
        assert!(unticked_core::merkle::verify_inclusion(
            &leaf, index, size, &proof, &root
        ));
        // The collector's own key, not the one the receipt claims.
        assert_eq!(unbase64url(&checkpoint["public_key"]), collector.as_bytes());
        let signature = ed25519_dalek::Signature::from_slice(&unbase64url(&checkpoint["signature"])).unwrap();
        let note = checkpoint["note"].as_str().unwrap();
        assert_eq!(
            note,
            crate::store::checkpoint_body(
                checkpoint["origin"].as_str().unwrap(),
                size,
                &root,
                checkpoint["timestamp"].as_u64().unwrap()
            )
        );
        assert!(collector.verify(note.as_bytes(), &signature).is_ok());
    }

    #[tokio::test]
    async fn a_stored_record_gets_a_receipt_that_proves_it_and_the_same_one_again() {
        let config = demo_config();
        let (app, key, _dir) = test_app(&config);
        let first = capture(&config, &["email-offers"]);
        let body = seal(&first, 1);
        let (status, receipt) = send(&app, "POST", "/v1/records", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{receipt}");
        let receipt = json(&receipt);
        assert_eq!(receipt["index"], 0);
        let bytes = json(&body)["record"].as_str().unwrap().to_string();
        assert_receipt_proves(&receipt, &bytes, &key);

        // The same delivery again: 200 and the very same receipt (the outbox's retry).
        let (status, again) = send(&app, "POST", "/v1/records", body.clone()).await;
        assert_eq!((status, json(&again)), (StatusCode::OK, receipt.clone()));
        // Other bytes under the id: 409, nothing stored.
        let (status, conflict) = send(&app, "POST", "/v1/records", seal(&first, 2)).await;
        assert_eq!(
            (status, json(&conflict)["code"].as_str()),
            (StatusCode::CONFLICT, Some("id-conflict"))
        );

        // A second record: index 1; the first one's proof against the latest checkpoint holds.
        let second = capture(&config, &[]);
        let (status, receipt2) = send(&app, "POST", "/v1/records", seal(&second, 3)).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(json(&receipt2)["index"], 1);
        let (status, got) = send(&app, "GET", &format!("/v1/records/{}", first.record.id), String::new()).await;
        assert_eq!(status, StatusCode::OK);
        let got = json(&got);
        assert_eq!(got["record"].as_str(), Some(bytes.as_str()), "the exact bytes are kept");
        assert!(record::open(bytes.as_bytes()).is_ok());
        assert_eq!(got["receipt"], receipt);
        let latest = serde_json::json!({
            "index": 0, "leaf_hash": receipt["leaf_hash"], "inclusion": got["latest"]["inclusion"],
            "checkpoint": got["latest"]["checkpoint"],
        });
        assert_eq!(latest["checkpoint"]["size"], 2);
        assert_receipt_proves(&latest, &bytes, &key);

        // The log only grew: the consistency proof from 1 to 2 checks out.
        let (status, checkpoint) = send(&app, "GET", "/v1/checkpoint", String::new()).await;
        assert_eq!(
            (status, json(&checkpoint)),
            (StatusCode::OK, got["latest"]["checkpoint"].clone())
        );
        let (status, proof) = send(&app, "GET", "/v1/proofs/consistency?from=1&to=2", String::new()).await;
        assert_eq!(status, StatusCode::OK);
        let proof: Vec<[u8; 32]> = json(&proof)["proof"].as_array().unwrap().iter().map(unhex).collect();
        let (old, new) = (
            unhex(&receipt["checkpoint"]["root"]),
            unhex(&got["latest"]["checkpoint"]["root"]),
        );
        assert!(unticked_core::merkle::verify_consistency(1, 2, &old, &new, &proof));
        for bad in ["from=2&to=1", "from=1&to=3", "from=x&to=2", "to=2"] {
            let (status, body) = send(&app, "GET", &format!("/v1/proofs/consistency?{bad}"), String::new()).await;
            assert_eq!(
                (status, json(&body)["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("bad-range")),
                "{bad}"
            );
        }

        // What was the shopper shown? Each text hash names a text the collector can print.
        let record = record::open(bytes.as_bytes()).unwrap().record;
        let sha = &record.purposes[0].text_sha256;
        let (status, text) = send(&app, "GET", &format!("/v1/texts/{sha}"), String::new()).await;
        assert_eq!(status, StatusCode::OK);
        let text = json(&text);
        assert_eq!(text["purpose"], "email-offers");
        assert_eq!(sha256_hex(text["text"].as_str().unwrap().as_bytes()), *sha);

        let (status, too_large) = send(&app, "POST", "/v1/records", "x".repeat(MAX_BODY + 10)).await;
        assert_eq!(
            (status, json(&too_large)["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("too-large"))
        );
        let (status, _) = send(&app, "GET", "/v1/records/nope", String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn post_from(
        app: &axum::Router,
        ip: [u8; 4],
        origin: Option<&str>,
        body: String,
    ) -> axum::response::Response {
        let mut request = Request::post("/v1/records")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((ip, 50000))));
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn a_browsers_origin_must_be_the_records_page() {
        let mut config = demo_config();
        config.origins = vec!["https://shop.example".into()];
        let (app, _key, _dir) = test_app(&config);
        let body = || seal(&capture(&config, &["email-offers"]), 1);
        // A page of the shop's other origin may write, but it is not the page this record
        // names: a record is taken only from the page it was captured on.
        let response = post_from(&app, [10, 0, 0, 1], Some("https://shop.example"), body()).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&text).contains("origin-mismatch"));
        let response = post_from(&app, [10, 0, 0, 1], Some("http://127.0.0.1:8080"), body()).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    /// Past its daily quota an address stores nothing more, 429 with Retry-After; another
    /// address is not held up.
    /// Posts in parallel cannot overrun the quota (each takes its place before it is
    /// checked), and refused deliveries and retries give their place back.
    #[tokio::test]
    async fn the_daily_quota_holds_under_parallel_posts_and_counts_only_what_is_stored() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let settings = crate::serve::Settings {
            daily_quota: 5,
            ..crate::testing::settings()
        };
        let app = crate::serve::app(www, config.clone(), store, settings);
        // Refused deliveries and a retry of stored bytes do not use the quota up.
        let first = seal(&capture(&config, &[]), 1);
        assert_eq!(
            post_from(&app, [10, 0, 0, 1], None, first.clone()).await.status(),
            StatusCode::CREATED
        );
        for _ in 0..10 {
            let refused = post_from(&app, [10, 0, 0, 1], None, "{}".into()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
            assert_eq!(
                post_from(&app, [10, 0, 0, 1], None, first.clone()).await.status(),
                StatusCode::OK
            );
        }
        let bodies: Vec<String> = (0..24).map(|_| seal(&capture(&config, &[]), 1)).collect();
        let posts = bodies.into_iter().map(|body| {
            let app = app.clone();
            tokio::spawn(async move { post_from(&app, [10, 0, 0, 1], None, body).await.status() })
        });
        let mut statuses = Vec::new();
        for post in posts.collect::<Vec<_>>() {
            statuses.push(post.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
            4,
            "five in all: {statuses:?}"
        );
        assert!(statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::TOO_MANY_REQUESTS));
    }

    #[tokio::test]
    async fn the_daily_quota_holds_an_address_to_n_stored_records() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("log.db"), &crate::texts::Shown::of(&config)).unwrap();
        let www = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let settings = crate::serve::Settings {
            daily_quota: 3,
            ..crate::testing::settings()
        };
        let app = crate::serve::app(www, config.clone(), store, settings);
        for _ in 0..3 {
            let response = post_from(&app, [10, 0, 0, 1], None, seal(&capture(&config, &[]), 1)).await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        let fourth = capture(&config, &[]);
        let response = post_from(&app, [10, 0, 0, 1], None, seal(&fourth, 1)).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = response.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=8 * 3600).contains(&wait), "a third of a day at most: {wait}");
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&text).contains(r#""code":"quota-exceeded""#));
        let (status, _) = send(&app, "GET", &format!("/v1/records/{}", fourth.record.id), String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored past the quota");
        let response = post_from(&app, [10, 0, 0, 2], None, seal(&fourth, 1)).await;
        assert_eq!(response.status(), StatusCode::CREATED, "another address");
    }

    #[tokio::test]
    async fn an_empty_log_has_no_checkpoint_and_a_refused_record_leaves_no_trace() {
        let config = demo_config();
        let (app, _key, _dir) = test_app(&config);
        let (status, body) = send(&app, "GET", "/v1/checkpoint", String::new()).await;
        assert_eq!(
            (status, json(&body)["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("empty"))
        );
        let mut tampered = json(&seal(&capture(&config, &["email-offers"]), 1));
        let bytes = tampered["record"].as_str().unwrap().replace("\"given\"", "\"refused\"");
        tampered["record"] = bytes.into();
        let (status, _) = send(&app, "POST", "/v1/records", tampered.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = send(&app, "GET", "/v1/checkpoint", String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing partial is stored");
    }

    #[tokio::test]
    async fn the_log_survives_a_restart() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.db");
        let www: std::path::PathBuf = concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into();
        let first = capture(&config, &["email-offers"]);
        let receipt = {
            let app = crate::serve::app(
                www.clone(),
                config.clone(),
                Store::open(&path, &crate::texts::Shown::of(&config)).unwrap(),
                crate::testing::settings(),
            );
            send(&app, "POST", "/v1/records", seal(&first, 1)).await.1
        };
        let app = crate::serve::app(
            www,
            config.clone(),
            Store::open(&path, &crate::texts::Shown::of(&config)).unwrap(),
            crate::testing::settings(),
        );
        let (status, got) = send(&app, "GET", &format!("/v1/records/{}", first.record.id), String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json(&got)["receipt"],
            json(&receipt),
            "same key, same log, same receipt"
        );
        let (status, _) = send(&app, "POST", "/v1/records", seal(&capture(&config, &[]), 2)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

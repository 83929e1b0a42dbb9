//! Consent over its whole life (issue 14): where a subject's consent stands
//! ([`unticked_core::consent::standing`], the one function that decides it), and the ways to
//! change it, each a consent record in the same log with the same receipt and proofs as a
//! checkout's (R7, GDPR Art. 7(3): "as easy to withdraw as to give"):
//!
//! - the collector's **preference page**, `/preferences/{token}`: plain HTML, one native
//!   checkbox per purpose ticked where consent stands, works with JavaScript off
//!   (crate::pages); what it records the collector signs (`"signer":"collector"`);
//! - **one-click unsubscribe**, `/unsubscribe/{token}` (RFC 8058): a `POST` with the body
//!   `List-Unsubscribe=One-Click` withdraws every purpose on the link's channel; a `GET`
//!   never changes anything, since mail scanners fetch links;
//! - the shop's **account form**, `form[data-unticked="preferences"]`, which carries a token
//!   the shop's backend mints ([`AccountToken`]); the collector drafts the change, the
//!   browser signs it with its own key and delivers it through its outbox like a checkout.
//!
//! Links are minted by `POST /v1/admin/links` (admin token): a random id, kept with the
//! subject in the erasable part of the store, and a MAC under the collector's secret, so a
//! guess costs nothing to refuse. They expire ([`LINK_LIFETIME`]), can be revoked, and go
//! with the subject's erasure. Tokens never appear in logs; wrong, expired or revoked ones
//! are answered 4xx and each counts against the address ([`crate::limit::Limits::tokens`]).

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;
use unticked_core::capture::{normalise_email, normalise_phone, Capture, Disclosure, SALT_LEN};
use unticked_core::config::{Channel, Named, PREFERENCES};
use unticked_core::consent::{self, Awaiting, Event, Now, Standing, Terms};
use unticked_core::record::{self, ConsentRecord, PurposeEntry, Signer, State as ConsentState};
use unticked_core::vocabulary::Source;

use crate::error::{refuse, too_many, unavailable, Code, Refusal};
use crate::limit::{Client, ClientKey};
use crate::records::{open_delivery, Accepted, Arrival};
use crate::state::Collector;
use crate::store::{Appended, SubjectRow};

/// The environment variable holding the secret the shop's backend signs account tokens
/// with; without it the account form is off.
pub const ACCOUNT_SECRET_VARIABLE: &str = "UNTICKED_ACCOUNT_SECRET";

/// How long a preference or unsubscribe link works: a year. A marketing e-mail stays in an
/// inbox for months, and its unsubscribe link must still work when the subscriber finally
/// wants out; each new mail brings a new link.
pub const LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// The longest an account token may live: an hour. The shop mints one per page view of its
/// logged-in customer; within it, the token is that customer's session with the collector.
pub const ACCOUNT_TOKEN_LIFETIME_S: u64 = 3600;

/// How far a shop's clock may run ahead of the collector's when it mints an account token.
const CLOCK_SKEW_S: u64 = 300;

/// What the lifecycle needs beyond the config and the store.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The collector's public origin (`https://consent.shop.example`): where links point,
    /// and the page of the records it signs.
    pub public_origin: String,
    /// The account tokens' secret; `None` turns the account form off.
    pub account_secret: Option<String>,
}

/// Whether `secret` may sign account tokens (empty: the account form stays off).
///
/// # Errors
/// What to do, for a secret too short to resist guessing.
pub fn check_account_secret(secret: &str) -> Result<(), String> {
    crate::admin::check_token(secret).map_err(|_| {
        format!(
            "{ACCOUNT_SECRET_VARIABLE} is {} characters long; it needs at least {} (for example `openssl rand -base64 32`)",
            secret.chars().count(),
            crate::admin::MIN_TOKEN_LEN
        )
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The channel an identifier reaches: an e-mail address, or a phone number.
pub fn identifier_channel(identifier: &str) -> Channel {
    if identifier.contains('@') {
        Channel::Email
    } else {
        Channel::Phone
    }
}

/// A normalised identifier: an e-mail address, or a phone number in international form.
pub fn normalise_identifier(raw: &str) -> Option<String> {
    if raw.contains('@') {
        normalise_email(raw)
    } else {
        normalise_phone(raw, "")
    }
}

// ---------------------------------------------------------------------------------------
// Where consent stands

/// A subject's records, opened, in log order, with the locale of the latest.
pub struct History {
    pub records: Vec<(u64, ConsentRecord, Vec<SubjectRow>)>,
}

impl History {
    /// The records as events; a double opt-in signup awaits its confirmation until the
    /// deadline its config version gives (crate::optin), looked up by the record's config.
    pub fn events(&self, versions: &crate::history::History) -> Vec<Event> {
        self.records
            .iter()
            .map(|(_, r, _)| Event {
                awaits: crate::optin::awaits(versions, r),
                ..Event::of(r)
            })
            .collect()
    }

    /// The language of the subject's latest record, if any.
    pub fn latest_locale(&self) -> Option<&str> {
        self.records.last().map(|(_, r, _)| r.locale.as_str())
    }
}

/// Every record the subject known by `identifier` appears in, opened, in log order.
///
/// # Errors
/// 503 when the store cannot be read.
pub fn history(collector: &Collector, identifier: &str) -> Result<History, Refusal> {
    let rows = collector.store.subject(identifier).map_err(unavailable)?;
    let mut by_index: std::collections::BTreeMap<u64, Vec<SubjectRow>> = std::collections::BTreeMap::new();
    for row in rows {
        by_index.entry(row.index).or_default().push(row);
    }
    let mut records = Vec::new();
    for (index, rows) in by_index {
        let Some(bytes) = collector.store.record_at(index).map_err(unavailable)? else {
            continue;
        };
        // Stored records opened when they were stored; one that no longer does is damage,
        // and the history is refused rather than told without it (crate::error::damaged).
        let opened = record::open(bytes.as_bytes()).map_err(|e| crate::error::damaged(index, e))?;
        records.push((index, opened.record, rows));
    }
    // A rectification (Art. 16, crate::rights) carries the records of the contact it
    // replaced over to this one: their decisions are this subject's, their disclosures gone.
    let carried: Vec<String> = records
        .iter()
        .filter_map(|(_, r, _)| match &r.act {
            Some(record::Act::Rectifies(ids)) => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    for id in carried {
        if records.iter().any(|(_, r, _)| r.id == id) {
            continue;
        }
        let Some((index, bytes)) = collector.store.record(&id).map_err(unavailable)? else {
            continue;
        };
        let opened = record::open(bytes.as_bytes()).map_err(|e| crate::error::damaged(index, e))?;
        records.push((index, opened.record, Vec::new()));
    }
    records.sort_by_key(|(index, _, _)| *index);
    Ok(History { records })
}

/// Where the subject's consent to each purpose of the config stands now.
pub fn standing(collector: &Collector, history: &History) -> Vec<Standing> {
    consent::standing(
        &Terms::of(&collector.config),
        &history.events(&collector.history),
        now_ms(),
    )
}

/// One standing as the API answers it.
pub fn standing_json(s: &Standing) -> serde_json::Value {
    let mut out = now_json(&s.now);
    out["channel"] = s.channel.as_str().into();
    out
}

/// A state as the API answers it: its name and what it rests on.
pub fn now_json(now: &Now) -> serde_json::Value {
    let mut out = serde_json::json!({ "state": now.name() });
    match now {
        Now::Unasked => {}
        Now::Given { record, version, at } => {
            out["record"] = record.clone().into();
            out["version"] = (*version).into();
            out["captured_at"] = (*at).into();
        }
        Now::Refused { record, at } => {
            out["record"] = record.clone().into();
            out["captured_at"] = (*at).into();
        }
        Now::Withdrawn {
            record,
            at,
            path,
            signer,
        } => {
            out["record"] = record.clone().into();
            out["captured_at"] = (*at).into();
            out["path"] = path.as_str().into();
            out["signer"] = signer.as_str().into();
        }
        Now::Outdated {
            record,
            version,
            current,
            at,
        } => {
            out["record"] = record.clone().into();
            out["version"] = (*version).into();
            out["current_version"] = (*current).into();
            out["captured_at"] = (*at).into();
        }
        Now::Expired {
            record,
            version,
            at,
            ended,
        } => {
            out["record"] = record.clone().into();
            out["version"] = (*version).into();
            out["captured_at"] = (*at).into();
            out["ended_at"] = (*ended).into();
        }
        Now::Unconfirmed {
            record,
            at,
            until,
            awaiting,
        } => {
            out["record"] = record.clone().into();
            out["captured_at"] = (*at).into();
            out["until"] = (*until).into();
            match awaiting {
                Awaiting::Confirmation { version } => {
                    out["awaiting"] = "confirmation".into();
                    out["version"] = (*version).into();
                }
                Awaiting::Answer { provenance } => {
                    out["awaiting"] = "answer".into();
                    out["provenance"] = provenance.as_str().into();
                }
            }
        }
        Now::Restricted { since, under } => {
            out["restricted_since"] = (*since).into();
            out["under"] = now_json(under);
        }
    }
    out
}

/// The changes a subject's choice makes: a box ticked where consent does not stand gives it
/// (or renews it, R11), a box unticked where it stands withdraws it (Art. 7(3)). A box left
/// as it stood changes nothing, and a purpose asked again and left unticked stays as it is;
/// but an imported contact's box left unticked is their answer, a refusal (crate::import).
pub fn changes(standing: &[Standing], ticked: &dyn Fn(&str) -> Option<bool>) -> Vec<(String, ConsentState)> {
    standing
        .iter()
        .filter_map(|s| match (ticked(&s.purpose)?, s.now.may_contact()) {
            (true, false) => Some((s.purpose.clone(), s.now.tick_records())),
            (false, true) => Some((s.purpose.clone(), ConsentState::Withdrawn)),
            (false, false) if awaits_answer(&s.now) => Some((s.purpose.clone(), ConsentState::Refused)),
            _ => None,
        })
        .collect()
}

/// Withdrawals of every purpose that `filter` picks and where consent stood once (given,
/// outdated or expired): "withdraw from everything", or every purpose of a channel. Where an
/// imported contact was never asked before, the same "no" is a refusal: nothing was given
/// to withdraw.
pub fn withdraw_all(standing: &[Standing], filter: impl Fn(&Standing) -> bool) -> Vec<(String, ConsentState)> {
    standing
        .iter()
        .filter(|s| filter(s))
        .filter_map(|s| {
            if s.now.may_contact() || s.now.asks_again() {
                Some((s.purpose.clone(), ConsentState::Withdrawn))
            } else if awaits_answer(&s.now) {
                Some((s.purpose.clone(), ConsentState::Refused))
            } else {
                None
            }
        })
        .collect()
}

/// Whether the purpose waits for an imported contact's answer to their re-permission link
/// (`unticked import`): never given, asked until the import's deadline.
pub fn awaits_answer(now: &Now) -> bool {
    matches!(
        now,
        Now::Unconfirmed {
            awaiting: Awaiting::Answer { .. },
            ..
        }
    )
}

// ---------------------------------------------------------------------------------------
// Records of changes

/// A record of `changes` for the subject known by `identifier`, made from the preferences
/// form's texts in `locale`, as a capture: its digests filled, its signature left to make.
pub struct Change<'a> {
    pub identifier: &'a str,
    pub locale: &'a str,
    pub source: Source,
    pub signer: Signer,
    pub page_origin: &'a str,
    pub page_path: &'a str,
    pub widget: &'a str,
    pub changes: &'a [(String, ConsentState)],
    /// The person's other contacts the changes reach ([`co_contacts`]), disclosed beside
    /// the main one so that each subject's own history holds the change.
    pub also: &'a [(Channel, String)],
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], Refusal> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| unavailable(format!("no randomness: {e}")))?;
    Ok(bytes)
}

impl Change<'_> {
    /// The capture of this change. The subject is named by a commitment to their identifier
    /// with a fresh salt, disclosed beside the record as at checkout, so the change is theirs
    /// in the index and goes with their erasure (R10).
    ///
    /// # Errors
    /// 422 for a purpose or locale the preferences form does not show.
    pub fn capture(&self, collector: &Collector) -> Result<Capture, Refusal> {
        let shown = collector.shown_now().get(PREFERENCES, self.locale).ok_or_else(|| {
            refuse(
                Code::UnknownLocale,
                format!("\"{}\" is not a declared locale", self.locale),
            )
        })?;
        let mut purposes = Vec::new();
        let mut texts = Vec::new();
        for (purpose, state) in self.changes {
            let text = shown
                .iter()
                .find(|t| &t.purpose == purpose)
                .ok_or_else(|| refuse(Code::UnknownPurpose, format!("the config has no purpose \"{purpose}\"")))?;
            purposes.push(PurposeEntry {
                id: purpose.clone(),
                version: text.version,
                state: *state,
                text_sha256: String::new(),
            });
            texts.push(text.text.clone());
        }
        let now = now_ms();
        let notice = &collector.config.privacy_notice;
        let record = ConsentRecord {
            beside: Vec::new(),
            id: record::record_id(now, random()?),
            captured_at: now,
            form: PREFERENCES.to_string(),
            source: self.source,
            locale: self.locale.to_string(),
            page_origin: self.page_origin.to_string(),
            page_path: self.page_path.to_string(),
            notice_url: notice.url.clone(),
            notice_version: notice.version.clone(),
            config_sha256: collector.config_sha256().to_string(),
            widget: self.widget.to_string(),
            purposes,
            subjects: Vec::new(),
            signer: self.signer,
            act: None,
        };
        let mut disclosures = vec![Disclosure {
            channel: identifier_channel(self.identifier),
            identifier: self.identifier.to_string(),
            salt: random::<SALT_LEN>()?,
        }];
        for (channel, identifier) in self.also {
            disclosures.push(Disclosure {
                channel: *channel,
                identifier: identifier.clone(),
                salt: random::<SALT_LEN>()?,
            });
        }
        Ok(Capture::new(record, texts, disclosures, None))
    }
}

/// The contacts other than `identifier` that the `changes` reach: for a purpose whose
/// channel takes another kind of contact (an SMS purpose changed through an e-mail link),
/// the contacts of that kind disclosed in the record that last gave the purpose.
///
/// # Errors
/// 503 when the store cannot be read.
pub fn co_contacts(
    collector: &Collector,
    history: &History,
    identifier: &str,
    changes: &[(String, ConsentState)],
) -> Result<Vec<(Channel, String)>, Refusal> {
    let own = identifier_channel(identifier).contact();
    let mut out: Vec<(Channel, String)> = Vec::new();
    for (purpose, _) in changes {
        let Some(channel) = collector.config.purpose(purpose).map(|p| p.channel) else {
            continue;
        };
        if channel.contact() == own {
            continue;
        }
        let gave = history.records.iter().rev().find(|(_, r, _)| {
            r.purposes
                .iter()
                .any(|p| &p.id == purpose && matches!(p.state, ConsentState::Given | ConsentState::Renewed))
        });
        let Some((index, _, _)) = gave else { continue };
        for (disclosed, contact) in collector.store.contacts_at(*index).map_err(unavailable)? {
            let Some(disclosed) = <Channel as Named>::from_name(&disclosed) else {
                continue;
            };
            if disclosed.contact() == channel.contact()
                && contact != identifier
                && !out.iter().any(|(_, c)| *c == contact)
            {
                out.push((disclosed, contact));
            }
        }
    }
    Ok(out)
}

/// The collector's own build, as records it signs name it.
pub const COLLECTOR_WIDGET: &str = concat!("unticked-collector/", env!("CARGO_PKG_VERSION"));

/// Signs `capture` with the collector's key, checks the record as any delivery is checked,
/// and appends it to the log. Returns the record id.
///
/// # Errors
/// The refusal of a record that fails a check (a bug here, reported as such), or 503.
pub async fn store_signed_by_collector(collector: &Collector, capture: &Capture) -> Result<String, Refusal> {
    let body = crate::bench::seal_with(capture, collector.store.public_key().as_bytes(), |message| {
        collector.store.sign(message)
    });
    let arrival = Arrival {
        now_ms: now_ms(),
        writers: &collector.writers,
        origin: None,
    };
    let accepted = open_delivery(body.as_bytes())
        .and_then(|delivery| delivery.check_as_served(collector, &arrival))
        .inspect_err(|refusal| {
            tracing::error!(
                code = refusal.code.as_str(),
                "a record the collector made failed its own checks"
            )
        })?;
    append(collector, accepted).await
}

async fn append(collector: &Collector, accepted: Accepted) -> Result<String, Refusal> {
    let id = accepted.opened.record.id.clone();
    match collector.append(accepted).await {
        Ok(Appended::New(_) | Appended::Existing(_)) => Ok(id),
        Ok(Appended::Conflict) => Err(refuse(Code::IdConflict, "another record holds this id")),
        Err(e) => Err(unavailable(e)),
    }
}

// ---------------------------------------------------------------------------------------
// Link tokens

/// The two kinds of link a shop puts in its mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    Preferences,
    Unsubscribe,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Preferences => "preferences",
            LinkKind::Unsubscribe => "unsubscribe",
        }
    }
}

/// A link token: `<id>.<mac>`, base64url, the MAC (16 bytes of HMAC-SHA-256 under the
/// collector's link secret) over the link's kind and its 16 random id bytes.
fn link_mac(collector: &Collector, kind: LinkKind, id: &[u8]) -> [u8; 16] {
    let mac = collector
        .store
        .link_mac(&[kind.as_str().as_bytes(), b"\0", id].concat());
    mac[..16].try_into().expect("16 of 32 bytes")
}

/// Mints a link of `kind` for the subject and channel.
///
/// # Errors
/// 503 when it cannot be kept.
pub fn mint_link(collector: &Collector, kind: LinkKind, identifier: &str, channel: Channel) -> Result<String, Refusal> {
    let id: [u8; 16] = random()?;
    let expires = now_ms() + LINK_LIFETIME.as_millis() as u64;
    collector
        .store
        .add_link(&id, kind.as_str(), identifier, channel.as_str(), expires)
        .map_err(unavailable)?;
    Ok(link_token(collector, kind, &id))
}

/// Mints a link of `kind` for each `(identifier, channel)`, as [`mint_link`] does, all kept
/// in one transaction (`unticked import --links`: one per imported contact). The tokens, in
/// the same order.
///
/// # Errors
/// 503 when they cannot be kept; then none is.
pub fn mint_links_for(
    collector: &Collector,
    kind: LinkKind,
    subjects: &[(String, Channel)],
) -> Result<Vec<String>, Refusal> {
    let expires = now_ms() + LINK_LIFETIME.as_millis() as u64;
    let ids = subjects.iter().map(|_| random::<16>()).collect::<Result<Vec<_>, _>>()?;
    let rows: Vec<crate::store::NewLink<'_>> = ids
        .iter()
        .zip(subjects)
        .map(|(id, (identifier, channel))| crate::store::NewLink {
            id,
            kind: kind.as_str(),
            identifier,
            channel: channel.as_str(),
            expires_at: expires,
        })
        .collect();
    collector.store.add_links(&rows).map_err(unavailable)?;
    Ok(ids.iter().map(|id| link_token(collector, kind, id)).collect())
}

/// The token of the link kept under `id`: the id and its MAC, base64url.
fn link_token(collector: &Collector, kind: LinkKind, id: &[u8]) -> String {
    format!(
        "{}.{}",
        Base64UrlUnpadded::encode_string(id),
        Base64UrlUnpadded::encode_string(&link_mac(collector, kind, id))
    )
}

/// A live link: who it is for, and the channel.
pub struct Link {
    pub identifier: String,
    pub channel: Channel,
}

/// Why a token was refused. Deliberately one answer outside (`bad-token`): which check
/// failed helps a guesser only.
#[derive(Debug)]
pub struct BadToken;

/// Opens a link token of `kind`: its MAC, then the link kept, live and unexpired.
fn open_link(collector: &Collector, kind: LinkKind, token: &str) -> Result<Result<Link, BadToken>, Refusal> {
    let Some((id, mac)) = token.split_once('.') else {
        return Ok(Err(BadToken));
    };
    let (Ok(id), Ok(mac)) = (Base64UrlUnpadded::decode_vec(id), Base64UrlUnpadded::decode_vec(mac)) else {
        return Ok(Err(BadToken));
    };
    if id.len() != 16 || !constant_time_eq(&mac, &link_mac(collector, kind, &id)) {
        return Ok(Err(BadToken));
    }
    let Some(row) = collector.store.link(&id).map_err(unavailable)? else {
        return Ok(Err(BadToken));
    };
    let channel = <Channel as Named>::from_name(&row.channel);
    match channel {
        Some(channel) if row.kind == kind.as_str() && !row.revoked && row.expires_at > now_ms() => Ok(Ok(Link {
            identifier: row.identifier,
            channel,
        })),
        _ => Ok(Err(BadToken)),
    }
}

/// Whether `a` and `b` are equal, compared in time that depends on their length only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts a refused token against the address; past [`crate::limit::ADMIN_FAILURES`] of
/// them the address waits (429), and every try while it waits makes the wait longer. A
/// valid token always passes, as the admin token does: many subscribers share an address
/// (a mail provider's servers posting one-click unsubscribes, a carrier's NAT), and wrong
/// guesses from one of them must not lock the others out. Guessing is hopeless anyway: a
/// link is 128 random bits under a 128-bit MAC. Answers the wait when the address was held
/// back already.
fn charge_bad_token(collector: &Collector, client: ClientKey) -> Option<std::time::Duration> {
    let now = std::time::Instant::now();
    let held_back = collector.limits.tokens.check(client, now).is_err();
    let wait = collector.limits.tokens.charge(client, now);
    // The address, never the token.
    tracing::warn!(client = %client.address(), "a wrong, expired or revoked token");
    held_back.then_some(wait)
}

// ---------------------------------------------------------------------------------------
// Account tokens

/// A token the shop's backend mints for its logged-in customer:
/// `base64url(payload) "." base64url(HMAC-SHA-256(secret, base64url(payload)))`, where the
/// payload is the JSON `{"sub": e-mail or phone, "exp": unix seconds, "nonce": 16–64
/// characters}`. At most [`ACCOUNT_TOKEN_LIFETIME_S`] long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToken {
    /// The customer's normalised identifier.
    pub subject: String,
    /// Unix seconds.
    pub expires: u64,
}

/// Opens an account token under `secret`, at `now_s` (unix seconds).
///
/// # Errors
/// [`BadToken`] for anything but a token this secret signed, unexpired, of a lifetime
/// within [`ACCOUNT_TOKEN_LIFETIME_S`], naming a valid identifier.
pub fn open_account_token(secret: &str, token: &str, now_s: u64) -> Result<AccountToken, BadToken> {
    let (payload, mac) = token.split_once('.').ok_or(BadToken)?;
    let mac = Base64UrlUnpadded::decode_vec(mac).map_err(|_| BadToken)?;
    let mut expected = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).map_err(|_| BadToken)?;
    expected.update(payload.as_bytes());
    expected.verify_slice(&mac).map_err(|_| BadToken)?;
    let payload = Base64UrlUnpadded::decode_vec(payload).map_err(|_| BadToken)?;
    let payload: serde_json::Value = serde_json::from_slice(&payload).map_err(|_| BadToken)?;
    let subject = payload["sub"].as_str().and_then(normalise_identifier).ok_or(BadToken)?;
    let expires = payload["exp"].as_u64().ok_or(BadToken)?;
    let nonce = payload["nonce"].as_str().ok_or(BadToken)?;
    let fresh = expires > now_s && expires <= now_s + ACCOUNT_TOKEN_LIFETIME_S + CLOCK_SKEW_S;
    if !fresh || !(16..=64).contains(&nonce.len()) {
        return Err(BadToken);
    }
    Ok(AccountToken { subject, expires })
}

/// Mints an account token as a shop's backend does (docs/lifecycle.md has the same in a few
/// lines of Python and Node): for tests and `unticked` itself.
pub fn mint_account_token(secret: &str, subject: &str, expires: u64, nonce: &str) -> String {
    let payload = Base64UrlUnpadded::encode_string(
        serde_json::json!({ "sub": subject, "exp": expires, "nonce": nonce })
            .to_string()
            .as_bytes(),
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    format!(
        "{payload}.{}",
        Base64UrlUnpadded::encode_string(&mac.finalize().into_bytes())
    )
}

/// The account token in a JSON body `{"token": …}`, opened, or the refusal to answer.
fn account_subject(collector: &Collector, client: ClientKey, token: Option<&str>) -> Result<AccountToken, Refusal> {
    let Some(secret) = &collector.lifecycle.account_secret else {
        return Err(refuse(
            Code::AccountDisabled,
            format!("set {ACCOUNT_SECRET_VARIABLE} to enable the account form"),
        ));
    };
    let now_s = now_ms() / 1000;
    open_account_token(secret, token.unwrap_or(""), now_s).map_err(|BadToken| {
        match charge_bad_token(collector, client) {
            Some(wait) => too_many(Code::RateLimited, "too many wrong tokens from this address", wait),
            None => refuse(Code::BadToken, "the token is not valid, or has expired"),
        }
    })
}

/// A browser's record from the preferences form changes the consent of the subject its
/// account token names, and no one else's: the token must be one the shop minted, for the
/// very identifier the record commits to, and still valid when the record was captured (so a
/// withdrawal that waited in the outbox past the token's hour is still taken).
///
/// # Errors
/// 403 `token-required` without a token, `token-subject` for another subject's, 401
/// `bad-token` for a token that is not one.
pub fn authorise_account_record(
    collector: &Collector,
    accepted: &Accepted,
    token: Option<&str>,
    client: ClientKey,
) -> Result<(), Refusal> {
    let Some(token) = token else {
        return Err(refuse(
            Code::TokenRequired,
            "a record of the preferences form comes with the account token of its subject",
        ));
    };
    let Some(secret) = &collector.lifecycle.account_secret else {
        return Err(refuse(
            Code::AccountDisabled,
            format!("set {ACCOUNT_SECRET_VARIABLE} to enable the account form"),
        ));
    };
    let captured_s = accepted.opened.record.captured_at / 1000;
    let opened = open_account_token(secret, token, captured_s).map_err(|BadToken| {
        charge_bad_token(collector, client);
        refuse(
            Code::BadToken,
            "the token is not valid, or had expired when the record was made",
        )
    })?;
    match accepted.disclosures.as_slice() {
        [only] if only.identifier == opened.subject => Ok(()),
        _ => Err(refuse(
            Code::TokenSubject,
            "the record names another subject than its token",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

/// `POST /v1/admin/links` `{"identifier", "channel"}` (admin token):
/// `{"preferences": URL, "unsubscribe": URL, "expires_at": ms}`, both for this subject and
/// channel. Put the unsubscribe URL in the mail's `List-Unsubscribe` header with
/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), and both in its footer.
pub async fn mint_links(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        crate::admin::authorised(&collector, &headers, client)?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let identifier = value["identifier"]
            .as_str()
            .and_then(normalise_identifier)
            .ok_or_else(|| {
                refuse(
                    Code::BadIdentifier,
                    "identifier is an e-mail address or an international phone number (+371…)",
                )
            })?;
        let channel = value["channel"]
            .as_str()
            .and_then(<Channel as Named>::from_name)
            .ok_or_else(|| {
                refuse(
                    Code::BadBody,
                    format!("channel is one of {}", <Channel as Named>::NAMES.join(", ")),
                )
            })?;
        let base = &collector.lifecycle.public_origin;
        let preferences = mint_link(&collector, LinkKind::Preferences, &identifier, channel)?;
        let unsubscribe = mint_link(&collector, LinkKind::Unsubscribe, &identifier, channel)?;
        // Neither the subject nor the tokens go to the logs.
        tracing::info!(channel = channel.as_str(), "admin: links minted");
        Ok::<_, Refusal>(axum::Json(serde_json::json!({
            "preferences": format!("{base}/preferences/{preferences}"),
            "unsubscribe": format!("{base}/unsubscribe/{unsubscribe}"),
            "expires_at": now_ms() + LINK_LIFETIME.as_millis() as u64,
        })))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// `POST /v1/admin/links/revoke` `{"identifier", "channel"?}` (admin token): every link of
/// the subject (on that channel only, when given) stops working. `{"revoked": n}`.
pub async fn revoke_links(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = (|| {
        crate::admin::authorised(&collector, &headers, client)?;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let identifier = value["identifier"]
            .as_str()
            .and_then(normalise_identifier)
            .ok_or_else(|| refuse(Code::BadIdentifier, "identifier is an e-mail address or a phone number"))?;
        let channel = value["channel"].as_str();
        let revoked = collector
            .store
            .revoke_links(&identifier, channel)
            .map_err(unavailable)?;
        tracing::info!(revoked, "admin: links revoked");
        Ok::<_, Refusal>(axum::Json(serde_json::json!({ "revoked": revoked })))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// The languages a request asks for, best first (RFC 9110 §12.5.4; weights are read as
/// the order they are written in, which is what browsers send).
fn accepted_languages(headers: &HeaderMap) -> Vec<String> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim().to_string())
        .filter(|tag| !tag.is_empty())
        .collect()
}

/// The locale a page for this subject is in: the language of their latest record, else the
/// first the browser asks for that the config declares, else the default.
fn page_locale<'c>(collector: &'c Collector, history: Option<&History>, headers: &HeaderMap) -> &'c str {
    let config = &collector.config;
    let latest = history.and_then(History::latest_locale);
    let asked = accepted_languages(headers);
    let requested = latest.into_iter().chain(asked.iter().map(String::as_str));
    unticked_core::locale::negotiate(requested, &config.locales, &config.default_locale)
}

fn page_response(status: StatusCode, html: String) -> Response {
    // Pages of one subject: never kept by a shared cache, and never sent on as a referrer.
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

/// Records `changes` made through a link of `kind`, as a record the collector signs, from
/// the link's page (`/preferences`, `/unsubscribe`: the path without its token). An imported
/// contact's answer on the preference page (`answers_import`) has the source `import`: the
/// way the contact came in, re-permissioned (crate::import).
async fn record_by_collector(
    collector: &Collector,
    link: &Link,
    locale: &str,
    kind: LinkKind,
    changes: &[(String, ConsentState)],
    answers_import: bool,
) -> Result<String, Refusal> {
    let (source, page_path) = match kind {
        LinkKind::Preferences if answers_import => (Source::Import, "/preferences"),
        LinkKind::Preferences => (Source::Preferences, "/preferences"),
        LinkKind::Unsubscribe => (Source::Unsubscribe, "/unsubscribe"),
    };
    // A consent given at a checkout that disclosed an address and a number stands under
    // both: a change made through one link must reach the other, or the other contact
    // stays on the audience (Art. 7(3): withdrawing as easy as giving).
    let history = match history(collector, &link.identifier) {
        Ok(history) => history,
        // An unsubscribe whose channel the link's own contact reaches has no other contact
        // to look up, and a damaged record must not stop that withdrawal (Art. 7(3); see
        // one_click_unsubscribe).
        Err(refusal) if refusal.code == Code::Damaged && damaged_unsubscribe_withdraws(link, kind) => {
            History { records: Vec::new() }
        }
        Err(refusal) => return Err(refusal),
    };
    let also = co_contacts(collector, &history, &link.identifier, changes)?;
    let change = Change {
        identifier: &link.identifier,
        locale,
        source,
        signer: Signer::Collector,
        page_origin: &collector.lifecycle.public_origin,
        page_path,
        widget: COLLECTOR_WIDGET,
        changes,
        also: &also,
    };
    store_signed_by_collector(collector, &change.capture(collector)?).await
}

/// Whether an unsubscribe through `link` still withdraws when the subject's history holds a
/// damaged record: when its channel is reached by the link's own contact (an e-mail
/// address's e-mail channel), the withdrawal needs no other contact from that history.
fn damaged_unsubscribe_withdraws(link: &Link, kind: LinkKind) -> bool {
    matches!(kind, LinkKind::Unsubscribe) && link.channel.contact() == identifier_channel(&link.identifier).contact()
}

/// The page for a link that does not work (any reason), or for an address held back.
fn invalid_link_page(collector: &Collector, headers: &HeaderMap, wait: Option<std::time::Duration>) -> Response {
    let locale = page_locale(collector, None, headers);
    let html = crate::pages::message(&collector.config, locale, crate::pages::Message::LinkInvalid);
    match wait {
        Some(wait) => {
            let mut response = page_response(StatusCode::TOO_MANY_REQUESTS, html);
            if let Ok(value) = crate::limit::retry_after_secs(wait).to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        None => page_response(StatusCode::NOT_FOUND, html),
    }
}

/// A link of `kind`, opened, or the page to answer instead.
fn link_or_page(
    collector: &Collector,
    client: ClientKey,
    headers: &HeaderMap,
    kind: LinkKind,
    token: &str,
) -> Result<Link, Box<Response>> {
    match open_link(collector, kind, token) {
        Ok(Ok(link)) => Ok(link),
        Ok(Err(BadToken)) => {
            let wait = charge_bad_token(collector, client);
            Err(Box::new(invalid_link_page(collector, headers, wait)))
        }
        Err(refusal) => Err(Box::new(refusal.into_response())),
    }
}

/// `GET /preferences/{token}`: the subject's choices, each box ticked where consent stands
/// now, the purposes asked again (R11) unticked with the new wording. Changes nothing.
pub async fn preferences_page(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    UrlPath(token): UrlPath<String>,
    query: axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let link = match link_or_page(&collector, client, &headers, LinkKind::Preferences, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let history = match history(&collector, &link.identifier) {
        Ok(history) => history,
        Err(refusal) => return refusal.into_response(),
    };
    let locale = page_locale(&collector, Some(&history), &headers);
    let standing = standing(&collector, &history);
    let saved = query.get("saved").map(String::as_str);
    page_response(
        StatusCode::OK,
        crate::pages::preferences(&collector, locale, &standing, saved),
    )
}

/// `POST /preferences/{token}` (the page's own form, urlencoded): `action=save` records
/// what the boxes changed, `action=withdraw-all` withdraws every consent that stood; then
/// 303 back to the page (a reload never posts twice). One record for the whole change.
pub async fn save_preferences(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let link = match link_or_page(&collector, client, &headers, LinkKind::Preferences, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let history = match history(&collector, &link.identifier) {
        Ok(history) => history,
        Err(refusal) => return refusal.into_response(),
    };
    let standing = standing(&collector, &history);
    let action = fields.iter().find(|(k, _)| k == "action").map(|(_, v)| v.as_str());
    let changes = match action {
        Some("withdraw-all") => withdraw_all(&standing, |_| true),
        Some("save") => {
            let ticked = |purpose: &str| {
                let name = format!("consent.{purpose}");
                // Only the purposes the page showed are decided: the page lists them all.
                Some(fields.iter().any(|(k, v)| k == &name && v == "yes"))
            };
            changes(&standing, &ticked)
        }
        _ => {
            return refuse(Code::BadBody, "action is save or withdraw-all").into_response();
        }
    };
    let saved = if changes.is_empty() {
        "unchanged"
    } else {
        let locale = page_locale(&collector, Some(&history), &headers);
        let answers_import = standing.iter().any(|s| awaits_answer(&s.now));
        let recorded = record_by_collector(
            &collector,
            &link,
            locale,
            LinkKind::Preferences,
            &changes,
            answers_import,
        )
        .await;
        if let Err(refusal) = recorded {
            return refusal.into_response();
        }
        tracing::info!(changes = changes.len(), "preference page: consent changed");
        "yes"
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, format!("/preferences/{token}?saved={saved}")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// `GET /unsubscribe/{token}`: a page with one button that posts what RFC 8058 one-click
/// unsubscribe posts. Changes nothing: mail scanners fetch every link.
pub async fn unsubscribe_page(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let link = match link_or_page(&collector, client, &headers, LinkKind::Unsubscribe, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    let history = match history(&collector, &link.identifier) {
        Ok(history) => history,
        Err(refusal) => return refusal.into_response(),
    };
    let locale = page_locale(&collector, Some(&history), &headers);
    page_response(
        StatusCode::OK,
        crate::pages::unsubscribe(&collector.config, locale, link.channel, false),
    )
}

/// Whether a body is RFC 8058's `List-Unsubscribe=One-Click`: urlencoded (§3.1), or the
/// same field in `multipart/form-data`, which the RFC allows too.
fn is_one_click(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        let text = String::from_utf8_lossy(body);
        return text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click");
    }
    form_urlencoded::parse(body).any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click")
}

/// `POST /unsubscribe/{token}` with `List-Unsubscribe=One-Click` (RFC 8058 §3.1): withdraws
/// every purpose on the link's channel, in one record the collector signs, and answers 200.
/// Idempotent: where nothing stands any more, nothing is recorded and the answer is the same.
/// No cookie and no header token is needed or read: the link is the authority (§3.1, §4).
pub async fn one_click_unsubscribe(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    UrlPath(token): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let link = match link_or_page(&collector, client, &headers, LinkKind::Unsubscribe, &token) {
        Ok(link) => link,
        Err(page) => return *page,
    };
    if !is_one_click(&headers, &body) {
        return refuse(
            Code::BadBody,
            "a one-click unsubscribe posts List-Unsubscribe=One-Click (RFC 8058)",
        )
        .into_response();
    }
    let (changes, locale) = match history(&collector, &link.identifier) {
        Ok(history) => (
            withdraw_all(&standing(&collector, &history), |s| s.channel == link.channel),
            page_locale(&collector, Some(&history), &headers),
        ),
        // A damaged record must not cost the subject their withdrawal (Art. 7(3): as easy
        // as giving). Where their history cannot be read whole, every purpose on the
        // channel is withdrawn: the click says exactly that, and nothing stands after it.
        Err(refusal)
            if refusal.code == Code::Damaged && damaged_unsubscribe_withdraws(&link, LinkKind::Unsubscribe) =>
        {
            (
                collector
                    .config
                    .purposes
                    .iter()
                    .filter(|p| p.channel == link.channel)
                    .map(|p| (p.id.clone(), ConsentState::Withdrawn))
                    .collect(),
                page_locale(&collector, None, &headers),
            )
        }
        Err(refusal) => return refusal.into_response(),
    };
    if !changes.is_empty() {
        let recorded = record_by_collector(&collector, &link, locale, LinkKind::Unsubscribe, &changes, false).await;
        if let Err(refusal) = recorded {
            return refusal.into_response();
        }
        tracing::info!(
            channel = link.channel.as_str(),
            withdrawn = changes.len(),
            "one-click unsubscribe"
        );
    }
    page_response(
        StatusCode::OK,
        crate::pages::unsubscribe(&collector.config, locale, link.channel, true),
    )
}

/// The JSON body of the account API.
fn account_body(body: &[u8]) -> Result<serde_json::Value, Refusal> {
    serde_json::from_slice(body).map_err(|_| refuse(Code::BadBody, "the body is a JSON object with a token"))
}

/// `POST /v1/account/state` `{"token", "locale"?}`: where the token's subject stands, and
/// the preferences form's sheet in their language (the rows the account form shows, as at
/// checkout): `{"locale", "sheet", "purposes": {id: standing}, "words": {"saved", "outdated",
/// "expired"}}`.
pub async fn account_state(State(collector): State<Arc<Collector>>, Client(client): Client, body: Bytes) -> Response {
    let answer = (|| {
        let value = account_body(&body)?;
        let subject = account_subject(&collector, client, value["token"].as_str())?;
        let history = history(&collector, &subject.subject)?;
        let standing = standing(&collector, &history);
        let asked = value["locale"].as_str().unwrap_or("");
        let config = &collector.config;
        let requested = [asked].into_iter().chain(history.latest_locale());
        let locale = unticked_core::locale::negotiate(requested, &config.locales, &config.default_locale);
        let sheet = collector
            .compiled
            .sheet(PREFERENCES, locale)
            .ok_or_else(|| unavailable("the preferences form was not compiled"))?;
        let purposes: serde_json::Map<String, serde_json::Value> =
            standing.iter().map(|s| (s.purpose.clone(), standing_json(s))).collect();
        let words = unticked_core::locale::builtin(unticked_core::locale::primary(locale))
            .or_else(|| unticked_core::locale::builtin("en"))
            .ok_or_else(|| unavailable("no words"))?;
        Ok::<_, Refusal>(axum::Json(serde_json::json!({
            "locale": locale,
            "sheet": serde_json::to_value(sheet).map_err(|e| unavailable(e.to_string()))?,
            "purposes": purposes,
            // What the form says beside the rows, in their language.
            "words": {
                "saved": words.get("prefs:saved"),
                "outdated": words.get("prefs:outdated"),
                "expired": words.get("prefs:expired"),
            },
        })))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// `POST /v1/account/draft` `{"token", "locale", "ticked": {purpose: bool}, "page": {"origin",
/// "path"}, "widget"}`: the record of what the account form's boxes changed, drafted from
/// the standing now, for the browser to sign with its own key and deliver through its
/// outbox (`capture` as src/courier.js seals it, with the token to travel beside it), or
/// `{"capture": null}` when nothing changes.
pub async fn account_draft(State(collector): State<Arc<Collector>>, Client(client): Client, body: Bytes) -> Response {
    let answer = (|| {
        let value = account_body(&body)?;
        let token = value["token"].as_str();
        let subject = account_subject(&collector, client, token)?;
        let history = history(&collector, &subject.subject)?;
        let standing = standing(&collector, &history);
        let ticked = value["ticked"].as_object().cloned().unwrap_or_default();
        let changes = changes(&standing, &|purpose| {
            ticked.get(purpose).and_then(serde_json::Value::as_bool)
        });
        if changes.is_empty() {
            return Ok(axum::Json(serde_json::json!({ "capture": null })));
        }
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
        let (origin, path, widget, locale) = (
            text(&value["page"]["origin"]),
            text(&value["page"]["path"]),
            text(&value["widget"]),
            text(&value["locale"]),
        );
        let change = Change {
            identifier: &subject.subject,
            locale: &locale,
            source: Source::Account,
            signer: Signer::Browser,
            page_origin: &origin,
            page_path: &path,
            widget: &widget,
            changes: &changes,
            also: &[],
        };
        let capture = change.capture(&collector)?;
        let mut sealable: serde_json::Value =
            serde_json::from_str(&capture.sealable()).map_err(|e| unavailable(e.to_string()))?;
        sealable["token"] = token.unwrap_or("").into();
        sealable["id"] = capture.record.id.clone().into();
        Ok::<_, Refusal>(axum::Json(serde_json::json!({ "capture": sealable })))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
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

    const SECRET: &str = "account-secret-0123456789abcdef-0123";
    const ADMIN: &str = "admin-test-token-0123456789abcdef";
    const JAN: &str = r#"{"identifier":"jan@example.pl"}"#;

    fn app(config: &unticked_core::config::Config, db: &std::path::Path) -> axum::Router {
        crate::serve::app(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../www").into(),
            config.clone(),
            Store::open(db, &crate::texts::Shown::of(config)).unwrap(),
            crate::serve::Settings {
                admin_token: Some(ADMIN.into()),
                account_secret: Some(SECRET.into()),
                ..crate::testing::settings()
            },
        )
    }

    async fn call(
        app: &axum::Router,
        method: &str,
        uri: &str,
        content_type: &str,
        body: String,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .header("host", "127.0.0.1:8080");
        if uri.starts_with("/v1/admin") {
            request = request.header("authorization", format!("Bearer {ADMIN}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn json(app: &axum::Router, uri: &str, body: &str) -> serde_json::Value {
        let (status, _, text) = call(app, "POST", uri, "application/json", body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn log_size(app: &axum::Router) -> u64 {
        let (_, _, text) = call(app, "GET", "/v1/checkpoint", "application/json", String::new()).await;
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["size"]
            .as_u64()
            .unwrap_or(0)
    }

    async fn state(app: &axum::Router) -> serde_json::Value {
        json(app, "/v1/admin/subjects", JAN).await["purposes"].clone()
    }

    /// The path of a link the collector minted (its origin is the collector's public one).
    fn path_of(url: &serde_json::Value) -> String {
        url.as_str()
            .unwrap()
            .strip_prefix("http://127.0.0.1:8080")
            .unwrap()
            .to_string()
    }

    async fn checkout(app: &axum::Router, config: &unticked_core::config::Config, given: &[&str]) {
        let (status, _, body) = call(
            app,
            "POST",
            "/v1/records",
            "application/json",
            seal(&capture(config, given), 1),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    fn ticked_boxes(page: &str) -> Vec<String> {
        page.split("<input ")
            .skip(1)
            .filter(|tag| tag.split('>').next().unwrap().contains("checked"))
            .filter_map(|tag| Some(tag.split("name=\"consent.").nth(1)?.split('"').next()?.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn links_withdraw_and_give_again_as_records_the_collector_signs() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = app(&config, &dir.path().join("log.db"));
        checkout(&app, &config, &["email-offers", "sms-offers", "birthday-greetings"]).await;
        let links = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"Jan@Example.PL","channel":"email"}"#,
        )
        .await;
        let (preferences, unsubscribe) = (path_of(&links["preferences"]), path_of(&links["unsubscribe"]));

        // A GET of either link changes nothing (mail scanners fetch links).
        let (status, _, page) = call(&app, "GET", &unsubscribe, "text/html", String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""), "{page}");
        let (status, headers, page) = call(&app, "GET", &preferences, "text/html", String::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            ticked_boxes(&page),
            ["email-offers", "sms-offers", "birthday-greetings"]
        );
        assert!(
            page.contains("<html lang=\"pl\""),
            "the language of the subject's record"
        );
        assert_eq!(log_size(&app).await, 1);

        // RFC 8058: one POST withdraws every purpose on the link's channel, and only those.
        let one_click = "List-Unsubscribe=One-Click".to_string();
        let form = "application/x-www-form-urlencoded";
        let (status, _, _) = call(&app, "POST", &unsubscribe, form, one_click.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let now = state(&app).await;
        assert_eq!(now["email-offers"]["state"], "withdrawn");
        assert_eq!(now["email-offers"]["path"], "unsubscribe");
        assert_eq!(now["email-offers"]["signer"], "collector");
        assert_eq!(now["birthday-greetings"]["state"], "withdrawn");
        assert_eq!(now["sms-offers"]["state"], "given", "another channel");
        assert_eq!(log_size(&app).await, 2);
        // Idempotent: nothing stands on the channel any more, nothing is recorded.
        assert_eq!(
            call(&app, "POST", &unsubscribe, form, one_click.clone()).await.0,
            StatusCode::OK
        );
        assert_eq!(log_size(&app).await, 2);
        assert_eq!(
            call(&app, "POST", &unsubscribe, form, "List-Unsubscribe=No".into())
                .await
                .0,
            StatusCode::BAD_REQUEST
        );

        // The preference page: ticking a withdrawn purpose gives it again; unticking one
        // that stands withdraws that one alone.
        let save = |fields: &str| format!("action=save&{fields}");
        let (status, headers, _) = call(
            &app,
            "POST",
            &preferences,
            form,
            save("consent.email-offers=yes&consent.sms-offers=yes"),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(headers[header::LOCATION].to_str().unwrap().ends_with("?saved=yes"));
        let now = state(&app).await;
        assert_eq!(now["email-offers"]["state"], "given");
        assert_eq!(now["birthday-greetings"]["state"], "withdrawn");
        call(&app, "POST", &preferences, form, save("consent.email-offers=yes")).await;
        let now = state(&app).await;
        assert_eq!(
            (
                now["email-offers"]["state"].as_str(),
                now["sms-offers"]["state"].as_str()
            ),
            (Some("given"), Some("withdrawn"))
        );
        assert_eq!(now["sms-offers"]["path"], "preferences");
        // The number given for the SMS offers is the same person's: the withdrawal made
        // through the e-mail link reaches it, or it would stay on the SMS audience.
        let phone = json(&app, "/v1/admin/subjects", r#"{"identifier":"+48601234567"}"#).await;
        assert_eq!(phone["purposes"]["sms-offers"]["state"], "withdrawn", "{phone}");
        let (_, _, page) = call(
            &app,
            "GET",
            &format!("{preferences}?saved=yes"),
            "text/html",
            String::new(),
        )
        .await;
        assert_eq!(ticked_boxes(&page), ["email-offers"]);
        assert!(page.contains("id=\"saved\""));
        // Withdraw from everything: one button.
        call(&app, "POST", &preferences, form, "action=withdraw-all".into()).await;
        let now = state(&app).await;
        assert!(
            now.as_object().unwrap().values().all(|p| p["state"] != "given"),
            "{now}"
        );
        assert_eq!(log_size(&app).await, 5);

        // Every record the collector made is signed by its checkpoint key, and says so.
        let key = crate::store::Keys::load(&crate::store::Keys::path_for(&dir.path().join("log.db"))).unwrap();
        let (_, _, export) = call(&app, "GET", "/v1/admin/export", "application/json", String::new()).await;
        for line in export.lines().skip(1) {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let opened = record::open(line["record"].as_str().unwrap().as_bytes()).unwrap();
            assert_eq!(opened.record.signer, Signer::Collector);
            assert_eq!(opened.signature.public_key, key.verifying().as_bytes());
            assert_eq!(opened.record.form, PREFERENCES);
            assert_eq!(line["disclosures"][0]["identifier"], "jan@example.pl");
            // Beside it, only the number, and only where an SMS purpose changed.
            for other in line["disclosures"].as_array().unwrap().iter().skip(1) {
                assert_eq!(other["identifier"], "+48601234567", "{line}");
            }
        }
        // And `unticked verify` finds the log clean, withdrawals and all.
        let db = dir.path().join("log.db");
        let clean = crate::verify::verify(
            &crate::db::Location::from(db.as_path()),
            &key.verifying(),
            Some(&key),
            &[],
        );
        assert!(clean.is_ok(), "{:?}", clean.err());
    }

    #[tokio::test]
    async fn wrong_revoked_and_erased_links_lead_nowhere_and_guessing_is_held_back() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = app(&config, &dir.path().join("log.db"));
        checkout(&app, &config, &["email-offers"]).await;
        let links = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"jan@example.pl","channel":"email"}"#,
        )
        .await;
        let (preferences, unsubscribe) = (path_of(&links["preferences"]), path_of(&links["unsubscribe"]));
        let get = |path: String| {
            let app = app.clone();
            async move { call(&app, "GET", &path, "text/html", String::new()).await.0 }
        };
        assert_eq!(get(preferences.clone()).await, StatusCode::OK);
        // A preferences token is no unsubscribe token, and the reverse.
        let token = preferences.strip_prefix("/preferences/").unwrap();
        assert_eq!(get(format!("/unsubscribe/{token}")).await, StatusCode::NOT_FOUND);
        // A changed MAC.
        let (id, mac) = token.split_once('.').unwrap();
        let flipped = if mac.starts_with('A') {
            mac.replacen('A', "B", 1)
        } else {
            format!("A{}", &mac[1..])
        };
        assert_eq!(get(format!("/preferences/{id}.{flipped}")).await, StatusCode::NOT_FOUND);
        // Revoked.
        let revoked = json(
            &app,
            "/v1/admin/links/revoke",
            r#"{"identifier":"jan@example.pl","channel":"email"}"#,
        )
        .await;
        assert_eq!(revoked["revoked"], 2);
        assert_eq!(get(preferences.clone()).await, StatusCode::NOT_FOUND);
        assert_eq!(get(unsubscribe.clone()).await, StatusCode::NOT_FOUND);
        // Five wrong tokens from one address (four above), then it waits, and every guess
        // makes the wait longer; a valid link still works from there.
        assert_eq!(get("/preferences/guess".into()).await, StatusCode::NOT_FOUND);
        let page = call(&app, "GET", "/preferences/guess", "text/html", String::new()).await;
        assert_eq!(page.0, StatusCode::TOO_MANY_REQUESTS);
        assert!(page.1.contains_key(header::RETRY_AFTER));
        let live = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"jan@example.pl","channel":"sms"}"#,
        )
        .await;
        assert_eq!(get(path_of(&live["preferences"])).await, StatusCode::OK);

        // Erasure takes the links with the subject (Art. 17).
        let dir = tempfile::tempdir().unwrap();
        let app = self::app(&config, &dir.path().join("log.db"));
        checkout(&app, &config, &["email-offers"]).await;
        let links = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"jan@example.pl","channel":"email"}"#,
        )
        .await;
        json(&app, "/v1/admin/subjects/erase", JAN).await;
        let (status, _, page) = call(&app, "GET", &path_of(&links["preferences"]), "text/html", String::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(page.contains("id=\"link-invalid\""));
    }

    /// A stored record changed behind the collector's back no longer opens. Told without it,
    /// the subject's history could say the opposite of what they chose (a withdrawal lost),
    /// so every answer built on it is refused, naming the index and `unticked verify`.
    #[tokio::test]
    async fn a_damaged_record_refuses_the_subjects_answers_instead_of_leaving_it_out() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        let app = app(&config, &db);
        checkout(&app, &config, &["email-offers"]).await;
        let links = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"jan@example.pl","channel":"email"}"#,
        )
        .await;
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(r#"UPDATE log SET bytes = CAST(replace(CAST(bytes AS TEXT), '"given"', '"giveN"') AS BLOB) WHERE idx = 0"#)
            .unwrap();
        for uri in ["/v1/admin/subjects", "/v1/admin/subjects/bundle"] {
            let (status, _, body) = call(&app, "POST", uri, "application/json", JAN.to_string()).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {body}");
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["code"], "damaged", "{uri}");
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains("index 0") && message.contains("unticked verify"),
                "{message}"
            );
            assert!(!message.contains("jan@"), "no contact in the message: {message}");
        }
        let (status, _, _) = call(&app, "GET", &path_of(&links["preferences"]), "text/html", String::new()).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "no preferences page without the record"
        );
        // The withdrawal still works (Art. 7(3)): one click withdraws every purpose on the
        // channel, and the collector signs the record of it.
        let size = log_size(&app).await;
        let (status, _, body) = call(
            &app,
            "POST",
            &path_of(&links["unsubscribe"]),
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click".into(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(log_size(&app).await, size + 1, "the withdrawal is recorded");
        // The subject can still be erased (Art. 17): erasure reads no history.
        assert!(
            json(&app, "/v1/admin/subjects/erase", JAN).await["erased"]
                .as_u64()
                .unwrap()
                > 0
        );
        let answer = json(&app, "/v1/admin/subjects", JAN).await;
        assert_eq!(answer["history"], serde_json::json!([]), "erased: {answer}");
    }

    #[tokio::test]
    async fn a_version_bump_asks_for_that_purpose_alone_again_and_renewing_clears_it() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("log.db");
        {
            let app = app(&config, &db);
            checkout(&app, &config, &["email-offers", "sms-offers"]).await;
        }
        let mut bumped = config.clone();
        bumped
            .purposes
            .iter_mut()
            .find(|p| p.id == "email-offers")
            .unwrap()
            .version = 2;
        let app = app(&bumped, &db);
        let now = state(&app).await;
        assert_eq!(now["email-offers"]["state"], "outdated");
        assert_eq!(
            (
                now["email-offers"]["version"].as_u64(),
                now["email-offers"]["current_version"].as_u64()
            ),
            (Some(1), Some(2))
        );
        assert_eq!(
            now["sms-offers"]["state"], "given",
            "nothing else about the subject changes"
        );
        let outdated = now
            .as_object()
            .unwrap()
            .values()
            .filter(|p| p["state"] == "outdated")
            .count();
        assert_eq!(outdated, 1);

        let links = json(
            &app,
            "/v1/admin/links",
            r#"{"identifier":"jan@example.pl","channel":"email"}"#,
        )
        .await;
        let preferences = path_of(&links["preferences"]);
        let (_, _, page) = call(&app, "GET", &preferences, "text/html", String::new()).await;
        assert_eq!(ticked_boxes(&page), ["sms-offers"], "asked again, unticked");
        assert!(page.contains("data-asked-again=\"email-offers\""));
        let form = "application/x-www-form-urlencoded";
        call(
            &app,
            "POST",
            &preferences,
            form,
            "action=save&consent.email-offers=yes&consent.sms-offers=yes".into(),
        )
        .await;
        let now = state(&app).await;
        assert_eq!(
            (
                now["email-offers"]["state"].as_str(),
                now["email-offers"]["version"].as_u64()
            ),
            (Some("given"), Some(2))
        );
        let (_, _, history) = call(&app, "POST", "/v1/admin/subjects", "application/json", JAN.into()).await;
        assert!(
            history.contains(r#"{"id":"email-offers","state":"renewed","version":2}"#),
            "{history}"
        );
    }

    #[tokio::test]
    async fn only_the_preferences_form_with_its_subjects_token_withdraws() {
        let config = demo_config();
        let dir = tempfile::tempdir().unwrap();
        let app = app(&config, &dir.path().join("log.db"));
        checkout(&app, &config, &["email-offers"]).await;
        let post = |body: String| {
            let app = app.clone();
            async move {
                let (status, _, text) = call(&app, "POST", "/v1/records", "application/json", body).await;
                let code = serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()["code"].clone();
                (status, code.as_str().unwrap_or("").to_string())
            }
        };
        // A checkout that withdraws (R7), and a record claiming the collector's signature.
        let mut withdrawing = capture(&config, &["sms-offers"]);
        withdrawing.record.purposes[0].state = ConsentState::Withdrawn;
        assert_eq!(
            post(seal(&withdrawing, 1)).await,
            (StatusCode::UNPROCESSABLE_ENTITY, "state-not-offered".into())
        );
        let mut claimed = capture(&config, &["email-offers"]);
        claimed.record.signer = Signer::Collector;
        assert_eq!(
            post(seal(&claimed, 1)).await,
            (StatusCode::FORBIDDEN, "collector-signed".into())
        );

        // The account form's record, as the draft endpoint makes it and the browser seals it.
        let collector = crate::state::Collector::new(
            config.clone(),
            &crate::testing::demo_sha256(),
            Store::open(
                &tempfile::tempdir().unwrap().path().join("draft.db"),
                &crate::texts::Shown::of(&config),
            )
            .unwrap(),
            None,
            crate::limit::Limits::default(),
            crate::http::Writers::new(&["http://127.0.0.1:8080".to_string()]),
            Settings {
                public_origin: "http://127.0.0.1:8080".into(),
                account_secret: Some(SECRET.into()),
            },
            crate::settings::ServerSettings::default(),
        );
        let changes = [("email-offers".to_string(), ConsentState::Withdrawn)];
        let change = |identifier| Change {
            identifier,
            locale: "pl",
            source: Source::Account,
            signer: Signer::Browser,
            page_origin: "http://127.0.0.1:8080",
            page_path: "/account",
            widget: "0.1.0",
            changes: &changes,
            also: &[],
        };
        let with_token = |body: String, token: Option<&str>| {
            let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(token) = token {
                value["token"] = token.into();
            }
            value.to_string()
        };
        let exp = now_ms() / 1000 + 600;
        let jans = mint_account_token(SECRET, "jan@example.pl", exp, "nonce-0123456789ab");
        let maras = mint_account_token(SECRET, "mara@example.pl", exp, "nonce-0123456789ab");
        let record = seal(&change("jan@example.pl").capture(&collector).unwrap(), 1);
        assert_eq!(
            post(with_token(record.clone(), None)).await,
            (StatusCode::FORBIDDEN, "token-required".into())
        );
        assert_eq!(
            post(with_token(record.clone(), Some(&maras))).await,
            (StatusCode::FORBIDDEN, "token-subject".into())
        );
        assert_eq!(
            post(with_token(record.clone(), Some("x.y"))).await,
            (StatusCode::UNAUTHORIZED, "bad-token".into())
        );
        assert_eq!(post(with_token(record, Some(&jans))).await.0, StatusCode::CREATED);
        let now = state(&app).await;
        assert_eq!(
            (
                now["email-offers"]["state"].as_str(),
                now["email-offers"]["path"].as_str()
            ),
            (Some("withdrawn"), Some("account"))
        );

        // Mara's token reads Mara's state (nothing), never Jan's.
        let theirs = json(
            &app,
            "/v1/account/state",
            &serde_json::json!({ "token": maras }).to_string(),
        )
        .await;
        assert_eq!(theirs["purposes"]["email-offers"]["state"], "unasked");
        let mine = json(
            &app,
            "/v1/account/state",
            &serde_json::json!({ "token": jans, "locale": "lv" }).to_string(),
        )
        .await;
        assert_eq!(mine["purposes"]["email-offers"]["state"], "withdrawn");
        assert_eq!(
            (mine["locale"].as_str(), mine["sheet"]["form"].as_str()),
            (Some("lv"), Some("preferences"))
        );
    }

    #[test]
    fn an_account_token_opens_only_as_minted_unexpired_and_short_lived() {
        let now = 1_800_000_000;
        let good = mint_account_token(SECRET, "Anna@Example.LV", now + 600, "n0nce-0123456789");
        assert_eq!(
            open_account_token(SECRET, &good, now).unwrap(),
            AccountToken {
                subject: "anna@example.lv".into(),
                expires: now + 600
            }
        );
        // Expired, or at its expiry.
        assert!(open_account_token(SECRET, &good, now + 600).is_err());
        // Another secret.
        assert!(open_account_token("another-secret-0123456789abcdef-0123", &good, now).is_err());
        // Longer-lived than an hour (and the clock skew).
        let long = mint_account_token(SECRET, "anna@example.lv", now + 2 * 3600, "n0nce-0123456789");
        assert!(open_account_token(SECRET, &long, now).is_err());
        // Another subject under the same signature.
        let (_, mac) = good.split_once('.').unwrap();
        let other = Base64UrlUnpadded::encode_string(
            br#"{"exp":1800000600,"nonce":"n0nce-0123456789","sub":"mara@example.lv"}"#,
        );
        assert!(open_account_token(SECRET, &format!("{other}.{mac}"), now).is_err());
        // A nonce too short, and no identifier.
        let short = mint_account_token(SECRET, "anna@example.lv", now + 600, "n");
        assert!(open_account_token(SECRET, &short, now).is_err());
        let nobody = mint_account_token(SECRET, "not an address", now + 600, "n0nce-0123456789");
        assert!(open_account_token(SECRET, &nobody, now).is_err());
        assert!(open_account_token(SECRET, "garbage", now).is_err());
    }

    #[test]
    fn one_click_is_the_rfc_8058_body_urlencoded_or_multipart() {
        let form = HeaderMap::new();
        assert!(is_one_click(&form, b"List-Unsubscribe=One-Click"));
        assert!(!is_one_click(&form, b""));
        assert!(!is_one_click(&form, b"List-Unsubscribe=Maybe"));
        let mut multipart = HeaderMap::new();
        multipart.insert(header::CONTENT_TYPE, "multipart/form-data; boundary=x".parse().unwrap());
        assert!(is_one_click(
            &multipart,
            b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n"
        ));
    }
}

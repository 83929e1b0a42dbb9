//! Consent given on the phone (issue 15, item 5): a call-centre agent reads the config's own
//! texts to the subject, and records what they said, with a reference to the call's recording.
//!
//! Consent need not be written: oral consent is valid when the controller can show it was
//! given (GDPR Art. 7(1); EDPB Guidelines 05/2020 ¶84–85 on recorded oral statements, and
//! recital 32: "a written statement, including by electronic means, or an oral statement").
//! The record proves what was asked and answered the same way as a checkout's: the exact
//! texts read out are the config's, in the subject's language, each named by its SHA-256
//! as any text shown (DESIGN.md, trust model, layer 3), and the record is signed by the
//! collector, marked `assisted` with the staff member and the recording's reference, and
//! appended to the same log, with the same receipt and proofs.
//!
//! - `GET /v1/admin/assisted?locale=lv` (staff token): the script, i.e. the texts to read
//!   out in that locale, each with its purpose, channel, version and hash.
//! - `POST /v1/admin/assisted` (staff token) `{"identifier", "channel", "purposes": [id…],
//!   "refused": [id…], "staff", "recording", "locale"}`: 201 `{"id", "recorded"}`.
//!
//! The staff token (`UNTICKED_STAFF_TOKEN`) is not the admin token: an agent may record what
//! a caller says, and may not read, export or erase anyone (Art. 5(1)(f), 32(4): staff act
//! only on what their task needs). `serve` refuses to start with the two equal; the admin
//! token does not open these endpoints, nor the staff token the admin ones.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use unticked_core::capture::{normalise_contact, Capture, Disclosure};
use unticked_core::config::{Channel, Named, PREFERENCES};
use unticked_core::record::{Act, Signer, State as ConsentState, MAX_REFERENCE};
use unticked_core::vocabulary::Source;

use crate::error::{refuse, Code, Refusal};
use crate::lifecycle::{store_signed_by_collector, Change, COLLECTOR_WIDGET};
use crate::limit::{Client, ClientKey};
use crate::state::Collector;

/// The environment variable holding the staff token; without it the endpoints are off.
pub const STAFF_TOKEN_VARIABLE: &str = "UNTICKED_STAFF_TOKEN";

/// The page path an assisted record names: no shop page showed its texts, the agent read
/// them from the script this endpoint serves.
pub const ASSISTED_PATH: &str = "/v1/admin/assisted";

/// Whether `staff` may guard the assisted endpoints beside the admin token `admin`.
///
/// # Errors
/// What to do, naming the variable, for a token shorter than [`crate::admin::MIN_TOKEN_LEN`]
/// or equal to the admin token (an agent would then hold the admin's powers).
pub fn check_staff_token(staff: &str, admin: Option<&str>) -> Result<(), String> {
    let len = staff.chars().count();
    let min = crate::admin::MIN_TOKEN_LEN;
    if len > 0 && len < min {
        return Err(format!(
            "{STAFF_TOKEN_VARIABLE} is {len} characters long; a staff token needs at least {min} \
             (for example `openssl rand -base64 32`)"
        ));
    }
    if len > 0 && admin == Some(staff) {
        return Err(format!(
            "{STAFF_TOKEN_VARIABLE} equals {}: the staff token must be another one, or staff could \
             read, export and erase subjects",
            crate::admin::TOKEN_VARIABLE
        ));
    }
    Ok(())
}

/// The staff token, unless it is unset or (by a setup `serve` would refuse) the admin one.
fn staff_token(collector: &Collector) -> Option<&str> {
    let staff = collector.server.staff_token.as_deref().filter(|t| !t.is_empty())?;
    (collector.admin_token.as_deref() != Some(staff)).then_some(staff)
}

/// Checks `Authorization: Bearer <staff token>` in constant time (both sides hashed
/// first), with the admin endpoints' limit on wrong tries per address (shared with them:
/// one budget of guesses per address, whichever token is guessed). The right token always
/// passes, as the admin one does, so that nobody sharing the agents' address locks them out.
fn staff_authorised(collector: &Collector, headers: &HeaderMap, client: ClientKey) -> Result<(), Refusal> {
    let Some(expected) = staff_token(collector) else {
        return Err(refuse(
            Code::StaffDisabled,
            format!("set {STAFF_TOKEN_VARIABLE} to enable assisted consent"),
        ));
    };
    crate::admin::bearer_matches(collector, headers, client, expected, "staff")
}

/// The locale asked for: one the config declares.
fn declared_locale<'a>(collector: &Collector, locale: &'a str) -> Result<&'a str, Refusal> {
    if collector.config.locales.iter().any(|l| l == locale) {
        return Ok(locale);
    }
    Err(refuse(
        Code::UnknownLocale,
        format!(
            "\"{locale}\" is not a declared locale (declared: {})",
            collector.config.locales.join(", ")
        ),
    ))
}

/// `GET /v1/admin/assisted?locale=L` (staff token): what the agent reads out, in `L` (the
/// config's default locale without it): each purpose as the preferences form shows it, the
/// very text whose SHA-256 the record will carry.
pub async fn script(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let answer = (|| {
        staff_authorised(&collector, &headers, client)?;
        let config = &collector.config;
        let locale = declared_locale(&collector, query.get("locale").unwrap_or(&config.default_locale))?;
        let shown = collector.shown_now().get(PREFERENCES, locale).unwrap_or_default();
        let purposes: Vec<serde_json::Value> = shown
            .iter()
            .map(|t| {
                let channel = config.purpose(&t.purpose).map(|p| p.channel.as_str());
                serde_json::json!({
                    "id": t.purpose,
                    "channel": channel,
                    "version": t.version,
                    "text": t.text,
                    "text_sha256": t.sha256,
                })
            })
            .collect();
        Ok::<_, Refusal>(axum::Json(serde_json::json!({
            "locale": locale,
            "locales": config.locales,
            "default_locale": config.default_locale,
            "config_sha256": collector.config_sha256(),
            "purposes": purposes,
        })))
    })();
    answer.map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// What an agent asks to record, read and checked.
#[derive(Debug)]
struct Request {
    identifier: String,
    channel: Channel,
    given: Vec<String>,
    refused: Vec<String>,
    staff: String,
    recording: String,
    locale: String,
}

const MEMBERS: [&str; 7] = [
    "identifier",
    "channel",
    "purposes",
    "refused",
    "staff",
    "recording",
    "locale",
];

/// A staff name or a recording reference: what the record format takes (`record::read`):
/// 1 to [`MAX_REFERENCE`] bytes, no control characters; surrounding spaces are dropped.
fn reference(value: &serde_json::Value, name: &str) -> Result<String, Refusal> {
    let text = value[name].as_str().map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Err(refuse(
            Code::BadReference,
            format!("{name} is required: a non-empty string"),
        ));
    }
    if text.len() > MAX_REFERENCE {
        return Err(refuse(
            Code::BadReference,
            format!("{name} is {} bytes long; at most {MAX_REFERENCE}", text.len()),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(refuse(
            Code::BadReference,
            format!("{name} holds a control character (a line break, a tab)"),
        ));
    }
    Ok(text.to_string())
}

/// Purpose ids of `name` (an array of strings; absent is none), each one the config has,
/// on `channel`, named once.
fn purpose_ids(
    collector: &Collector,
    value: &serde_json::Value,
    name: &str,
    channel: Channel,
) -> Result<Vec<String>, Refusal> {
    let items = match &value[name] {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        _ => return Err(refuse(Code::BadBody, format!("{name} is an array of purpose ids"))),
    };
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = item.as_str() else {
            return Err(refuse(Code::BadBody, format!("{name} is an array of purpose ids")));
        };
        let Some(purpose) = collector.config.purpose(id) else {
            return Err(refuse(
                Code::UnknownPurpose,
                format!("the config has no purpose \"{id}\""),
            ));
        };
        // One channel per call: the contact the agent took reaches that channel only (R8).
        if purpose.channel != channel {
            return Err(refuse(
                Code::PurposeChannel,
                format!(
                    "purpose \"{id}\" is on the {} channel, not {}",
                    purpose.channel.as_str(),
                    channel.as_str()
                ),
            ));
        }
        if ids.iter().any(|i| i == id) {
            return Err(refuse(
                Code::BadBody,
                format!("purpose \"{id}\" is named twice in {name}"),
            ));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

fn read_request(collector: &Collector, body: &[u8]) -> Result<Request, Refusal> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| refuse(Code::BadBody, "the body is not JSON"))?;
    let Some(members) = value.as_object() else {
        return Err(refuse(Code::BadBody, "the body is a JSON object"));
    };
    if let Some(unknown) = members.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
        return Err(refuse(
            Code::BadBody,
            format!("unexpected member \"{unknown}\" (expected {})", MEMBERS.join(", ")),
        ));
    }
    let channels = || {
        <Channel as Named>::NAMES
            .iter()
            .filter(|n| **n != "web")
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let channel = value["channel"]
        .as_str()
        .and_then(<Channel as Named>::from_name)
        .filter(|c| *c != Channel::Web)
        .ok_or_else(|| refuse(Code::BadBody, format!("channel is one of {}", channels())))?;
    let locale = declared_locale(collector, value["locale"].as_str().unwrap_or(""))?.to_string();
    // The same normal form as the widget's, so that the subject is found, exported and
    // erased with the records they made at checkout (Art. 15, 17). A national phone number
    // is read in the subject's locale, as the widget reads it.
    let identifier = value["identifier"]
        .as_str()
        .and_then(|raw| normalise_contact(channel, raw, &locale))
        .ok_or_else(|| {
            let what = match channel {
                Channel::Email => "an e-mail address",
                Channel::Post => "a postal address",
                _ => "a phone number (international, +371…, or national in the locale's country)",
            };
            refuse(
                Code::BadIdentifier,
                format!("identifier is {what} for the {} channel", channel.as_str()),
            )
        })?;
    let staff = reference(&value, "staff")?;
    let recording = reference(&value, "recording")?;
    let given = purpose_ids(collector, &value, "purposes", channel)?;
    let refused = purpose_ids(collector, &value, "refused", channel)?;
    if let Some(both) = given.iter().find(|id| refused.contains(id)) {
        return Err(refuse(
            Code::BadBody,
            format!("purpose \"{both}\" is both given and refused"),
        ));
    }
    if given.is_empty() && refused.is_empty() {
        return Err(refuse(
            Code::BadBody,
            "name at least one purpose, in purposes (given) or refused",
        ));
    }
    Ok(Request {
        identifier,
        channel,
        given,
        refused,
        staff,
        recording,
        locale,
    })
}

/// What each answer records, from where the subject's consent stands: a yes where consent
/// stood once and lapsed renews it (R11); a no where it stands withdraws it (Art. 7(3):
/// saying no on the phone is as good as unticking a box on the preference page); a no
/// elsewhere is a refusal.
fn states(collector: &Collector, request: &Request) -> Result<Vec<(String, ConsentState)>, Refusal> {
    let history = crate::lifecycle::history(collector, &request.identifier)?;
    let standing = crate::lifecycle::standing(collector, &history);
    let now = |id: &str| standing.iter().find(|s| s.purpose == id).map(|s| &s.now);
    let mut changes = Vec::new();
    for id in &request.given {
        let state = now(id).map_or(ConsentState::Given, |n| n.tick_records());
        changes.push((id.clone(), state));
    }
    for id in &request.refused {
        let state = if now(id).is_some_and(|n| n.may_contact()) {
            ConsentState::Withdrawn
        } else {
            ConsentState::Refused
        };
        changes.push((id.clone(), state));
    }
    Ok(changes)
}

/// The capture of an assisted consent: the preferences form's texts in the locale (every
/// purpose, as the collector's own preference page shows them), source `phone`, signed by
/// the collector, its step `assisted`, and the contact disclosed for the call's channel.
fn assisted_capture(
    collector: &Collector,
    request: &Request,
    changes: &[(String, ConsentState)],
) -> Result<Capture, Refusal> {
    let change = Change {
        identifier: &request.identifier,
        locale: &request.locale,
        source: Source::Phone,
        signer: Signer::Collector,
        page_origin: &collector.lifecycle.public_origin,
        page_path: ASSISTED_PATH,
        widget: COLLECTOR_WIDGET,
        changes,
        also: &[],
    };
    let Capture {
        mut record,
        texts,
        disclosures,
        birthday,
    } = change.capture(collector)?;
    record.act = Some(Act::Assisted {
        staff: request.staff.clone(),
        recording: request.recording.clone(),
    });
    // The contact reaches the call's channel: an SMS consent names an `sms` subject, as the
    // checkout's does.
    let disclosures = disclosures
        .into_iter()
        .map(|d| Disclosure {
            channel: request.channel,
            ..d
        })
        .collect();
    Ok(Capture::new(record, texts, disclosures, birthday))
}

/// `POST /v1/admin/assisted` (staff token): records what the subject said on the phone.
/// 201 `{"id", "recorded": [{"id", "state"}…]}`; refusals name the field at fault.
pub async fn record(
    State(collector): State<Arc<Collector>>,
    Client(client): Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = (|| {
        staff_authorised(&collector, &headers, client)?;
        let request = read_request(&collector, &body)?;
        let changes = states(&collector, &request)?;
        let capture = assisted_capture(&collector, &request, &changes)?;
        Ok::<_, Refusal>((request, changes, capture))
    })();
    let (request, changes, capture) = match prepared {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal.into_response(),
    };
    match store_signed_by_collector(&collector, &capture).await {
        Ok(id) => {
            // Counts and the channel only: neither the contact nor the staff member.
            tracing::info!(
                channel = request.channel.as_str(),
                given = request.given.len(),
                refused = request.refused.len(),
                "assisted: consent recorded"
            );
            let recorded: Vec<serde_json::Value> = changes
                .iter()
                .map(|(id, state)| serde_json::json!({ "id": id, "state": state.as_str() }))
                .collect();
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({ "id": id, "recorded": recorded })),
            )
                .into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_staff_token, STAFF_TOKEN_VARIABLE};

    const ADMIN: &str = "admin-token-0123456789abcdef-0123456789";
    const STAFF: &str = "staff-token-0123456789abcdef-0123456789";

    #[test]
    fn a_staff_token_is_long_and_not_the_admin_token() {
        assert!(check_staff_token(STAFF, Some(ADMIN)).is_ok());
        assert!(
            check_staff_token("", Some(ADMIN)).is_ok(),
            "unset: the endpoints are off"
        );
        let short = check_staff_token("abcd", None).unwrap_err();
        assert!(
            short.contains("UNTICKED_STAFF_TOKEN") && short.contains("32"),
            "{short}"
        );
        assert!(!short.contains("abcd"), "never the token itself");
        let same = check_staff_token(ADMIN, Some(ADMIN)).unwrap_err();
        assert!(same.contains("UNTICKED_ADMIN_TOKEN"), "{same}");
        assert!(!same.contains(ADMIN), "never the token itself");
    }

    #[test]
    fn the_staff_token_comes_from_the_environment_with_or_without_a_settings_file() {
        let env = |name: &str| (name == STAFF_TOKEN_VARIABLE).then(|| STAFF.to_string());
        let alone = crate::settings::ServerSettings::load(None, &env).unwrap();
        assert_eq!(alone.staff_token.as_deref(), Some(STAFF));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.toml");
        std::fs::write(&file, "").unwrap();
        let beside = crate::settings::ServerSettings::load(Some(&file), &env).unwrap();
        assert_eq!(beside.staff_token.as_deref(), Some(STAFF));
        let unset = crate::settings::ServerSettings::load(Some(&file), &|_: &str| None).unwrap();
        assert_eq!(unset.staff_token, None, "unset: the endpoints are off");
    }
}

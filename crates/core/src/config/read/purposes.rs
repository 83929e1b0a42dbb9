//! A purpose: its shape, the relations of the purposes (unique ids, data an extra field
//! collects, transfers) and the typed [`Purpose`].

use alloc::{string::String, string::ToString, vec::Vec};

use super::{
    child, distinct, get, index, items, list, named, named_list, opt, per_locale, req, str_of, text, Checker, Field,
    Shape,
};
use crate::config::error::ErrorCode;
use crate::config::{in_eea, Purpose, PurposeText, Recipient, Retention, Transfer};
use crate::json::Json;
use crate::vocabulary::{Channel, DataCategory, ExtraField, Named, RecipientRole, Safeguard};

pub(super) static PURPOSE: [Field; 12] = [
    req("id", Shape::Slug),
    req(
        "version",
        Shape::Whole {
            min: 1,
            max: u32::MAX as u64,
        },
    ),
    req("channel", Shape::Channel),
    req("dpv", Shape::Dpv),
    opt("legal_basis", Shape::LegalBasis),
    req(
        "text",
        Shape::PerLocale(&Shape::Object(&[
            req("label", Shape::Text),
            req("description", Shape::Text),
        ])),
    ),
    opt(
        "data",
        distinct(&Shape::OneOf(<DataCategory as Named>::NAMES), ErrorCode::DuplicateItem),
    ),
    opt(
        "recipients",
        list(&Shape::Object(&[
            req("name", Shape::Text),
            req("role", Shape::OneOf(<RecipientRole as Named>::NAMES)),
            req("country", Shape::Country),
        ])),
    ),
    opt(
        "transfers",
        list(&Shape::Object(&[
            req("country", Shape::Country),
            req("safeguard", Shape::OneOf(<Safeguard as Named>::NAMES)),
        ])),
    ),
    req("retention", Shape::Retention),
    opt("profiling", Shape::PerLocale(&Shape::Text)),
    opt(
        "fields",
        distinct(&Shape::OneOf(<ExtraField as Named>::NAMES), ErrorCode::DuplicateItem),
    ),
];

/// The purposes whose shape is right, built, each checked against the others (ids are
/// unique) and against itself ([`purpose_relations`]).
pub(super) fn relations(c: &mut Checker, all_purposes: Option<&Json>, locales: &[String]) -> Vec<Purpose> {
    let mut valid: Vec<Purpose> = Vec::new();
    for (i, p) in items(all_purposes).iter().enumerate() {
        let path = index("/purposes", i);
        if !super::came_through_clean(&c.errors, &path) {
            continue;
        }
        let purpose = build_purpose(p, locales);
        if valid.iter().any(|v| v.id == purpose.id) {
            c.err(
                &child(&path, "id"),
                ErrorCode::DuplicatePurposeId,
                message!("purpose id \"{}\" is used twice; ids must be unique", purpose.id),
            );
            continue;
        }
        purpose_relations(c, &purpose, &path);
        valid.push(purpose);
    }
    valid
}

fn purpose_relations(c: &mut Checker, purpose: &Purpose, path: &str) {
    // R5: the information layer lists the data from `data`; an extra input whose data is
    // not listed would collect something the shopper was not told about.
    if purpose.fields.contains(&ExtraField::Birthday) && !purpose.data.contains(&DataCategory::Birthday) {
        c.err(
            &child(path, "fields"),
            ErrorCode::UndeclaredData,
            message!("the birthday field collects a birthday, so \"data\" must list \"birthday\" to tell the shopper"),
        );
    }
    for (i, transfer) in purpose.transfers.iter().enumerate() {
        if in_eea(&transfer.country) {
            c.err(
                &child(&index(&child(path, "transfers"), i), "country"),
                ErrorCode::TransferInsideEea,
                message!(
                    "{} is in the EU/EEA: a recipient there is not a transfer, list it under \"recipients\" only",
                    transfer.country
                ),
            );
        }
    }
    // R5, Art. 13(1)(f): a recipient outside the EU/EEA is a transfer, and the shopper is
    // told its safeguard.
    for (i, recipient) in purpose.recipients.iter().enumerate() {
        if !in_eea(&recipient.country) && !purpose.transfers.iter().any(|t| t.country == recipient.country) {
            c.err(&child(&index(&child(path, "recipients"), i), "country"), ErrorCode::TransferWithoutSafeguard, message!("recipient \"{}\" is in {}, outside the EU/EEA: add a \"transfers\" entry for it with its safeguard", recipient.name, recipient.country));
        }
    }
}

pub(super) fn build_purpose(p: &Json, locales: &[String]) -> Purpose {
    let retention = match get(p, "retention")
        .and_then(|r| get(r, "months"))
        .and_then(Json::as_whole_number)
    {
        Some(months) => Retention::Months(months as u32),
        None => Retention::UntilWithdrawn,
    };
    Purpose {
        id: text(p, "id"),
        version: get(p, "version").and_then(Json::as_whole_number).unwrap_or(1) as u32,
        channel: named(get(p, "channel")).unwrap_or(Channel::Email),
        dpv: text(p, "dpv"),
        text: per_locale(get(p, "text"), locales, |t| PurposeText {
            label: text(t, "label"),
            description: text(t, "description"),
        }),
        data: named_list(get(p, "data")),
        recipients: items(get(p, "recipients"))
            .iter()
            .map(|r| Recipient {
                name: text(r, "name"),
                role: named(get(r, "role")).unwrap_or(RecipientRole::Processor),
                country: text(r, "country"),
            })
            .collect(),
        transfers: items(get(p, "transfers"))
            .iter()
            .map(|t| Transfer {
                country: text(t, "country"),
                safeguard: named(get(t, "safeguard")).unwrap_or(Safeguard::StandardContractualClauses),
            })
            .collect(),
        retention,
        profiling: get(p, "profiling")
            .map(|m| per_locale(Some(m), locales, |t| str_of(Some(t)).unwrap_or_default().to_string())),
        fields: named_list(get(p, "fields")),
    }
}

//! A form kind: its shape (R9's contact selectors), the relations of the forms (the
//! purposes they name exist, R6's contact fields) and the typed [`Form`].

use alloc::{string::String, string::ToString, vec::Vec};

use super::{child, get, index, items, named, opt, optional_text, req, str_of, Checker, Field, Json, Shape};
use crate::config::error::ErrorCode;
use crate::config::{ContactFields, DoubleOptIn, Form, Purpose};
use crate::vocabulary::{is_slug, Named, Source};

/// The sources a config's form may record: all but the collector's own ways in
/// (`preferences`, `unsubscribe`), which follow them in [`Source`].
const FORM_SOURCES: &[&str] = <Source as Named>::NAMES.split_at(8).0;

pub(super) static FORM: [Field; 4] = [
    req("source", Shape::OneOf(FORM_SOURCES)),
    req(
        "purposes",
        Shape::List {
            item: &Shape::Text,
            empty: Some(ErrorCode::EmptyForm),
            duplicate: Some(ErrorCode::DuplicateFormPurpose),
        },
    ),
    opt(
        "contact",
        Shape::Object(&[
            opt("email", Shape::Selector),
            opt("phone", Shape::Selector),
            opt("post", Shape::Selector),
        ]),
    ),
    // A signup is only given once the subject confirms by a link sent to the address, and
    // lapses if they do not within these days (EDPB 05/2020 ¶108: the controller must be
    // able to show that this person agreed; a typed-in address proves nothing on its own).
    opt(
        "double_opt_in",
        Shape::Object(&[req("within_days", Shape::Whole { min: 1, max: 30 })]),
    ),
];

impl Checker {
    pub(super) fn forms(&mut self, value: &Json, path: &str) {
        let Json::Object(members) = value else {
            return self.wrong_type(path, "an object", value);
        };
        if members.is_empty() {
            self.err(
                path,
                ErrorCode::EmptyValue,
                message!("define at least one form kind, e.g. \"checkout\""),
            );
        }
        for (kind, form) in members {
            let at = child(path, kind);
            if kind == crate::config::PREFERENCES {
                self.err(&at, ErrorCode::ReservedFormKind, message!("form kind \"{kind}\" is the preferences form the widget shows on a shop's account page (data-unticked=\"preferences\"), built from all purposes: name this form otherwise"));
            } else if !is_slug(kind) {
                self.err(&at, ErrorCode::InvalidSlug, message!("form kind \"{kind}\" must be lowercase letters, digits and single hyphens, as in data-unticked=\"checkout\""));
            }
            self.object(form, &FORM, &at);
        }
    }
}

/// The forms whose shape is right, built, after checking that every purpose a form names
/// exists (on all forms) and that each has the contact fields its channels need.
pub(super) fn relations(
    c: &mut Checker,
    forms: Option<&Json>,
    all_purposes: Option<&Json>,
    valid: &[Purpose],
) -> Vec<Form> {
    // Every id the file names, so a form naming a purpose whose body has a problem is not
    // also reported as naming an unknown one.
    let named: Vec<&str> = items(all_purposes)
        .iter()
        .filter_map(|p| str_of(get(p, "id")))
        .collect();
    let mut built_forms = Vec::new();
    let Some(Json::Object(forms)) = forms else {
        return built_forms;
    };
    for (kind, form) in forms {
        let path = child("/forms", kind);
        // Before this form's own relation problems are added under the same path.
        let clean = super::came_through_clean(&c.errors, &path);
        for (i, id) in items(get(form, "purposes")).iter().enumerate() {
            if let Some(id) = str_of(Some(id)) {
                if matches!(all_purposes, Some(Json::Array(_))) && !named.contains(&id) {
                    c.err(
                        &index(&child(&path, "purposes"), i),
                        ErrorCode::UnknownPurpose,
                        message!("no purpose with id \"{id}\" in /purposes"),
                    );
                }
            }
        }
        if clean {
            let form = build_form(kind, form);
            contact_relations(c, &form, valid, &path);
            double_opt_in_relations(c, &form, &path);
            built_forms.push(form);
        }
    }
    built_forms
}

/// R6: a channel that reaches the shopper needs the form's contact field for it, so the
/// record can commit to who agreed (a subject commitment).
fn contact_relations(c: &mut Checker, form: &Form, purposes: &[Purpose], path: &str) {
    for purpose in form
        .purposes
        .iter()
        .filter_map(|id| purposes.iter().find(|p| &p.id == id))
    {
        let Some(needed) = purpose.channel.contact() else {
            continue;
        };
        let present = form.contact.of(purpose.channel).is_some();
        if !present {
            c.err(&child(path, "contact"), ErrorCode::ContactFieldMissing, message!("form \"{}\" offers \"{}\" by {} but names no \"{needed}\" field: add \"contact\": {{ \"{needed}\": \"<CSS selector>\" }}", form.kind, purpose.id, purpose.channel.as_str()));
        }
    }
}

/// R6: a double opt-in is a mail to the address the form collected, so the form must
/// collect one.
fn double_opt_in_relations(c: &mut Checker, form: &Form, path: &str) {
    if form.double_opt_in.is_some() && form.contact.email.is_none() {
        c.err(&child(path, "double_opt_in"), ErrorCode::DoubleOptInWithoutEmail, message!("form \"{}\" asks for double opt-in, which mails a confirmation link, but names no \"email\" field: add \"contact\": {{ \"email\": \"<CSS selector>\" }}", form.kind));
    }
}

pub(super) fn build_form(kind: &str, form: &Json) -> Form {
    let contact = get(form, "contact");
    Form {
        kind: kind.to_string(),
        source: named(get(form, "source")).unwrap_or(Source::Checkout),
        purposes: items(get(form, "purposes"))
            .iter()
            .filter_map(|p| str_of(Some(p)))
            .map(String::from)
            .collect(),
        contact: ContactFields {
            email: contact.and_then(|c| optional_text(c, "email")),
            phone: contact.and_then(|c| optional_text(c, "phone")),
            post: contact.and_then(|c| optional_text(c, "post")),
        },
        double_opt_in: get(form, "double_opt_in")
            .and_then(|d| get(d, "within_days"))
            .and_then(Json::as_whole_number)
            .and_then(|n| u32::try_from(n).ok())
            .map(|within_days| DoubleOptIn { within_days }),
    }
}

//! `POST /v1/violations`: what the widget found wrong with a shop page, so that the site
//! owner learns that their theme or a plugin gates purchases on marketing consent (R3),
//! ticks boxes for the shopper (R1) or hides them. No personal data: a kind from a fixed
//! list, the form kind and the page path. The widget sends each kind once per page load;
//! the collector counts them per kind, form and page. `GET /v1/violations` (admin) lists them.

use crate::error::{refuse, unavailable, Code, Refusal};
use crate::state::Collector;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use unticked_core::json::{self, Json};

/// Largest report accepted.
pub const MAX_REPORT: usize = 2048;

/// The kinds the widget reports, with the rule each breaks (docs/rules.md).
pub const KINDS: &[(&str, &str)] = &[
    ("untrusted-tick", "R1"),
    ("hidden-box", "R1"),
    ("fake-box", "R1"),
    ("box-changed", "R1"),
    ("required-added", "R3"),
    ("disabled-added", "R3"),
    ("submit-gated", "R3"),
    ("submit-blocked", "R3"),
    ("text-changed", "R5"),
    ("loaded-twice", "R6"),
];

fn too_large() -> Refusal {
    refuse(Code::TooLarge, format!("a report is at most {MAX_REPORT} bytes"))
}

fn bad(message: &str) -> Refusal {
    refuse(Code::BadReport, message.to_string())
}

/// A report: `{"kind", "form", "page"}`, each checked against what the widget can send.
fn read(body: &[u8]) -> Result<(&'static str, &'static str, String, String), Refusal> {
    if body.len() > MAX_REPORT {
        return Err(too_large());
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    let Ok(Json::Object(members)) = json::parse(text) else {
        return Err(bad("the body is a JSON object {kind, form, page}"));
    };
    let (mut kind, mut form, mut page) = (None, None, None);
    for (key, value) in &members {
        match (key.as_str(), value) {
            ("kind", Json::String(v)) => kind = Some(v.clone()),
            ("form", Json::String(v)) => form = Some(v.clone()),
            ("page", Json::String(v)) => page = Some(v.clone()),
            _ => {
                return Err(bad(&format!(
                    "unexpected member \"{key}\" (expected kind, form and page)"
                )))
            }
        }
    }
    let (Some(kind), Some(form), Some(page)) = (kind, form, page) else {
        return Err(bad("a report has kind, form and page (strings)"));
    };
    let Some(&(kind, rule)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(bad("unknown kind"));
    };
    let form_ok = !form.is_empty()
        && form.len() <= 64
        && form
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // A path as the widget records it: no query or fragment, which may carry personal data.
    let page_ok =
        page.starts_with('/') && page.len() <= 512 && !page.contains(['?', '#']) && !page.chars().any(char::is_control);
    if !form_ok || !page_ok {
        return Err(bad("form is a form kind and page a path without query or fragment"));
    }
    Ok((kind, rule, form, redact(&page)))
}

/// A path without the segments that may name a person (`/unsubscribe/anna@x.lv`,
/// `/orders/20261122`): an `@`, or six digits or more, become `…`.
fn redact(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let digits = segment.bytes().filter(u8::is_ascii_digit).count();
            if segment.contains('@') || segment.contains("%40") || digits >= 6 {
                "…"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `POST /v1/violations`: 202 once counted.
pub async fn post(State(collector): State<Arc<Collector>>, body: Result<Bytes, BytesRejection>) -> Response {
    // A body over the router's limit is refused by the extractor: answer it as the API does,
    // JSON with a code, not axum's plain-text 413.
    let Ok(body) = body else {
        return too_large().into_response();
    };
    let (kind, rule, form, page) = match read(&body) {
        Ok(report) => report,
        Err(refusal) => return refusal.into_response(),
    };
    let store = collector.store.clone();
    let form_kind = form.clone();
    let noted = tokio::task::spawn_blocking(move || store.note_violation(kind, rule, &form_kind, &page)).await;
    match noted {
        Ok(Ok(())) => {
            // The kind and the form only: a page path may still say more than it should.
            tracing::warn!(kind, rule, form = %form, "violation reported by a shop page");
            let answer = serde_json::json!({ "kind": kind, "rule": rule });
            (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
        }
        Ok(Err(e)) => unavailable(e).into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

/// `GET /v1/violations` (admin): every kind reported, per form and page, with counts and
/// first and last seen (ms since the epoch).
pub async fn list(
    State(collector): State<Arc<Collector>>,
    crate::limit::Client(client): crate::limit::Client,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = crate::admin::authorised(&collector, &headers, client) {
        return refusal.into_response();
    }
    match collector.store.violations() {
        Ok(rows) => axum::Json(serde_json::json!({
            "violations": rows.iter().map(|v| serde_json::json!({
                "kind": v.kind, "rule": v.rule, "form": v.form, "page": v.page,
                "count": v.count, "first_seen": v.first_seen, "last_seen": v.last_seen,
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => unavailable(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_carry_a_known_kind_a_form_and_a_bare_path_only() {
        let ok = read(br#"{"kind":"submit-gated","form":"checkout","page":"/checkout.html"}"#).unwrap();
        assert_eq!(ok, ("submit-gated", "R3", "checkout".into(), "/checkout.html".into()));
        let named =
            read(br#"{"kind":"hidden-box","form":"newsletter","page":"/unsubscribe/anna@x.lv/20261122"}"#).unwrap();
        assert_eq!(
            named.3, "/unsubscribe/…/…",
            "segments that may name a person are dropped"
        );
        for (body, why) in [
            (r#"{"kind":"made-up","form":"checkout","page":"/"}"#, "unknown kind"),
            (
                r#"{"kind":"hidden-box","form":"checkout","page":"/c?email=a@b.lv"}"#,
                "a query may hold personal data",
            ),
            (
                r#"{"kind":"hidden-box","form":"checkout","page":"https://x/"}"#,
                "a path, not a URL",
            ),
            (r#"{"kind":"hidden-box","form":"<script>","page":"/"}"#, "a form kind"),
            (
                r#"{"kind":"hidden-box","form":"checkout","page":"/","email":"a@b.lv"}"#,
                "nothing else",
            ),
            (r#"{"kind":"hidden-box"}"#, "all three"),
            ("[]", "an object"),
        ] {
            assert!(read(body.as_bytes()).is_err(), "{why}: {body}");
        }
        assert_eq!(read(&vec![b' '; MAX_REPORT + 1]).unwrap_err().code, Code::TooLarge);
    }

    /// docs/rules.md documents every kind with its rule, and src/guards.js sends the same
    /// kinds with the same rules.
    #[test]
    fn every_kind_is_documented_and_known_to_the_widget() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let rules = std::fs::read_to_string(root.join("docs/rules.md")).unwrap();
        let guards = std::fs::read_to_string(root.join("src/guards.js")).unwrap();
        for (kind, rule) in KINDS {
            assert!(
                rules.contains(&format!("| `{kind}` | {rule} |")),
                "docs/rules.md lacks {kind}"
            );
            assert!(
                guards.contains(&format!("\"{kind}\": [\"{rule}\"")),
                "src/guards.js lacks {kind}"
            );
        }
        assert_eq!(
            guards.matches("\": [\"R").count(),
            KINDS.len(),
            "the widget sends no other kind"
        );
    }
}

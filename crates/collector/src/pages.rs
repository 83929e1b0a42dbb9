//! The collector's own pages for a subject (crate::lifecycle): plain HTML that works with
//! JavaScript off, under the same strict CSP as the shop (no inline script or style), in the
//! subject's language. The choices are the preferences form's rows, rendered by the same
//! code as the checkout's (`unticked_core::view`), so each purpose shows the same Art. 13
//! details as where it was given (R5, R7). Every text and attribute is escaped here: the
//! words and the config are the site owner's, never markup.

use unticked_core::config::{Channel, Config, PREFERENCES};
use unticked_core::consent::{Now, Standing};
use unticked_core::locale::{self, Words};
use unticked_core::view::{Element, Node};

use crate::state::Collector;

/// The pages' own stylesheet, `GET /v1/pages.css`.
pub const STYLESHEET: &str = include_str!("pages.css");

pub async fn stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

fn words(locale: &str) -> Words {
    locale::builtin(locale::primary(locale))
        .or_else(|| locale::builtin("en"))
        .expect("English words are built in")
}

/// `text` with `&`, `<`, `>` and `"` escaped: safe as element text and as a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Attributes whose value is an element id: prefixed, as the widget prefixes them, so the
/// page's ids are its own.
const ID_ATTRIBUTES: &[&str] = &["id", "for", "aria-describedby", "aria-labelledby", "aria-controls"];

/// A rendered tree as HTML.
fn html(element: &Element, prefix: &str, out: &mut String) {
    out.push('<');
    out.push_str(element.tag);
    for (name, value) in &element.attrs {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        if ID_ATTRIBUTES.contains(name) {
            out.push_str(prefix);
        }
        out.push_str(&escape(value));
        out.push('"');
    }
    out.push('>');
    if element.tag == "input" {
        return;
    }
    for child in &element.children {
        match child {
            Node::Element(e) => html(e, prefix, out),
            Node::Text(t) => out.push_str(&escape(t)),
        }
    }
    out.push_str("</");
    out.push_str(element.tag);
    out.push('>');
}

fn document(locale: &str, title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/pkg/unticked.css\"><link rel=\"stylesheet\" href=\"/v1/pages.css\">\
         <title>{title}</title></head><body><main class=\"unticked-page\">{body}</main></body></html>",
        lang = escape(locale),
        title = escape(title),
    )
}

/// The preference page: one form, one native checkbox per purpose (`consent.<id>`), ticked
/// exactly where consent stands now; a purpose asked again (R11) unticked, with why; a save
/// button and one "withdraw from everything" button.
pub fn preferences(collector: &Collector, locale: &str, standing: &[Standing], saved: Option<&str>) -> String {
    let w = words(locale);
    let Some(sheet) = collector.compiled.sheet(PREFERENCES, locale) else {
        return message(&collector.config, locale, Message::LinkInvalid);
    };
    let mut tree = sheet.tree.clone();
    mark(&mut tree, standing, &w);
    let mut choices = String::new();
    html(&tree, "p", &mut choices);
    let status = match saved {
        Some("yes" | "unchanged") => format!(
            "<p class=\"unticked-page__status\" role=\"status\" id=\"saved\">{}</p>",
            escape(w.get("prefs:saved"))
        ),
        _ => String::new(),
    };
    let nothing = if standing.iter().all(|s| matches!(s.now, Now::Unasked)) {
        format!("<p id=\"nothing\">{}</p>", escape(w.get("prefs:nothing")))
    } else {
        String::new()
    };
    let body = format!(
        "<h1>{title}</h1><p>{intro}</p>{status}{nothing}<form method=\"post\" id=\"preferences\">{choices}\
         <p class=\"unticked-page__actions\"><button type=\"submit\" name=\"action\" value=\"save\" id=\"save\">{save}</button> \
         <button type=\"submit\" name=\"action\" value=\"withdraw-all\" id=\"withdraw-all\">{all}</button></p></form>",
        title = escape(w.get("prefs:title")),
        intro = escape(w.get("prefs:intro")),
        save = escape(w.get("prefs:save")),
        all = escape(w.get("prefs:withdraw_all")),
    );
    document(locale, w.get("prefs:title"), &body)
}

/// Ticks each box where consent stands, and notes under a row asked again why it is.
fn mark(element: &mut Element, standing: &[Standing], w: &Words) {
    let mut notes = Vec::new();
    for (i, child) in element.children.iter_mut().enumerate() {
        let Node::Element(child) = child else { continue };
        if let Some(purpose) = child.get("data-unticked-purpose").map(str::to_string) {
            let now = standing.iter().find(|s| s.purpose == purpose).map(|s| &s.now);
            if let Some(now @ (Now::Outdated { .. } | Now::Expired { .. })) = now {
                let key = if matches!(now, Now::Outdated { .. }) {
                    "prefs:outdated"
                } else {
                    "prefs:expired"
                };
                notes.push((i + 1, purpose.clone(), w.get(key).to_string()));
            }
        }
        if child.tag == "input" {
            let name = child.get("name").unwrap_or("");
            let purpose = name.strip_prefix("consent.").unwrap_or("");
            if standing.iter().any(|s| s.purpose == purpose && s.now.may_contact()) {
                child.attrs.push(("checked", String::new()));
            }
        }
        mark(child, standing, w);
    }
    // After the loop, from the last, so the indexes still hold.
    for (at, purpose, text) in notes.into_iter().rev() {
        let note = Element {
            tag: "p",
            attrs: vec![
                ("class", "unticked-page__asked-again".to_string()),
                ("data-asked-again", purpose),
            ],
            children: vec![Node::Text(text)],
        };
        element.children.insert(at, Node::Element(note));
    }
}

/// The unsubscribe link's page: before, one button that posts RFC 8058's body; after, that
/// it is done.
pub fn unsubscribe(config: &Config, locale: &str, channel: Channel, done: bool) -> String {
    let w = words(locale);
    let channel_name = w.named("channel:", channel.as_str());
    let title = w.fill("prefs:unsubscribe", channel_name);
    let body = if done {
        format!(
            "<h1>{}</h1><p role=\"status\" id=\"unsubscribed\">{}</p>",
            escape(&title),
            escape(w.get("prefs:unsubscribed"))
        )
    } else {
        format!(
            "<h1>{t}</h1><form method=\"post\" id=\"unsubscribe\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <p><button type=\"submit\" id=\"confirm\">{t}</button></p></form>",
            t = escape(&title)
        )
    };
    let _ = config;
    document(locale, &title, &body)
}

/// Pages that only say something.
pub enum Message {
    LinkInvalid,
}

pub fn message(config: &Config, locale: &str, message: Message) -> String {
    let w = words(locale);
    match message {
        Message::LinkInvalid => {
            let (before, after) = w.around("prefs:link_invalid");
            let email = &config.controller.email;
            let body = format!(
                "<h1>{title}</h1><p id=\"link-invalid\">{before}<a href=\"mailto:{e}\">{e}</a>{after}</p>",
                title = escape(w.get("prefs:title")),
                before = escape(before),
                after = escape(after),
                e = escape(email),
            );
            document(locale, w.get("prefs:title"), &body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_texts_and_attributes_is_escaped() {
        let tree = Element {
            tag: "p",
            attrs: vec![("id", "x\"><script>".into())],
            children: vec![Node::Text("<b>&</b>".into())],
        };
        let mut out = String::new();
        html(&tree, "p", &mut out);
        assert_eq!(out, "<p id=\"px&quot;&gt;&lt;script&gt;\">&lt;b&gt;&amp;&lt;/b&gt;</p>");
    }
}

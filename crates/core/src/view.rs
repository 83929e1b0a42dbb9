//! What the widget shows for one form, as a small element tree.
//!
//! The widget turns this tree into DOM with `createElement`, `setAttribute` and text nodes
//! only, never `innerHTML`, so no config or translated text is ever parsed as markup.
//! Keeping the tree here makes the rendering testable natively: a property test checks that
//! no config the validator accepts yields a ticked, required or disabled consent box.

use alloc::{string::String, vec, vec::Vec};

use crate::config::{Config, Form};
use crate::jcs::write_string;
use crate::locale;
use crate::text::concat;

/// Class names, shared with `www/unticked.css`.
pub mod class {
    pub const ROOT: &str = "unticked";
    pub const LEGEND: &str = "unticked__legend";
    pub const INTRO: &str = "unticked__intro";
    pub const PURPOSE: &str = "unticked__purpose";
    pub const BOX: &str = "unticked__box";
    pub const LABEL: &str = "unticked__label";
    pub const OPTIONAL: &str = "unticked__optional";
    pub const DESCRIPTION: &str = "unticked__description";
    pub const NOTICE: &str = "unticked__notice";
}

/// Attribute names of the public contract (DESIGN.md).
pub mod attr {
    /// On a `<form>`: the form kind, e.g. `checkout`.
    pub const FORM_KIND: &str = "data-unticked";
    /// On an element inside the form: where the choices go.
    pub const SLOT: &str = "data-unticked-slot";
    /// On each purpose's row inside the choices: its purpose id.
    pub const PURPOSE: &str = "data-unticked-purpose";
    /// Prefix of each consent input's `name`: `consent.<purpose-id>`.
    pub const INPUT_NAME_PREFIX: &str = "consent.";
}

/// One node of the rendered tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An element: tag, attributes in order, children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub tag: &'static str,
    pub attrs: Vec<(&'static str, String)>,
    pub children: Vec<Node>,
}

impl Element {
    #[inline(never)]
    fn new(tag: &'static str) -> Self {
        Element {
            tag,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    #[inline(never)]
    fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, value.into()));
        self
    }

    #[inline(never)]
    fn class(self, name: &str) -> Self {
        self.attr("class", name)
    }

    #[inline(never)]
    fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    #[inline(never)]
    fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// The value of an attribute, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every element in this subtree (itself included), depth first.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = vec![self];
        for child in &self.children {
            if let Node::Element(e) = child {
                out.extend(e.descendants());
            }
        }
        out
    }

    /// The tree as compact JSON for the widget's DOM layer, which builds it with
    /// `createElement`, `setAttribute` and text nodes: an element is
    /// `["tag", ["name", "value", …], child, …]` and a text node is a string.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        out.push_str("[\"");
        out.push_str(self.tag);
        out.push_str("\",[");
        for (i, (name, value)) in self.attrs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(out, name);
            out.push(',');
            write_string(out, value);
        }
        out.push(']');
        for child in &self.children {
            out.push(',');
            match child {
                Node::Text(text) => write_string(out, text),
                Node::Element(element) => element.write_json(out),
            }
        }
        out.push(']');
    }

    /// The concatenated text of this subtree, as `textContent` would give it.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for child in &self.children {
            match child {
                Node::Text(t) => out.push_str(t),
                Node::Element(e) => out.push_str(&e.text_content()),
            }
        }
        out
    }
}

/// The text displayed for each purpose in a rendered tree, in display order: the text
/// content of its row (label, "optional", description, and whatever details the row
/// holds), exactly as the shopper saw it. Records carry its SHA-256 (R6), and the collector
/// renders the same tree from its config to check it.
pub fn purpose_texts(choices: &Element) -> Vec<(String, String)> {
    choices
        .descendants()
        .into_iter()
        .filter_map(|row| Some((row.get(attr::PURPOSE)?.into(), row.text_content())))
        .collect()
}

/// Renders the consent choices of `form` in `locale` (one of the config's declared locales).
///
/// `id_prefix` keeps element ids unique when several forms share a page; `page_lang` is the
/// page's `<html lang>`, so the fieldset carries its own `lang` when it differs (WCAG 3.1.2).
pub fn choices(config: &Config, form: &Form, locale: &str, page_lang: Option<&str>, id_prefix: &str) -> Element {
    let words = locale::texts_for(locale);
    let intro_id = concat(&[id_prefix, "-intro"]);
    let mut root = Element::new("fieldset")
        .class(class::ROOT)
        .attr("aria-describedby", intro_id.as_str());
    if !page_lang.is_some_and(|page| locale::same_language(page, locale)) {
        root = root.attr("lang", locale);
    }
    root = root
        .child(Element::new("legend").class(class::LEGEND).text(words.legend))
        .child(
            Element::new("p")
                .class(class::INTRO)
                .attr("id", intro_id)
                .text(words.intro),
        );

    for purpose in config.purposes_of(form) {
        // A validated config has every purpose text in every declared locale; the default
        // locale is the safe fallback should a caller pass an undeclared one.
        let Some(text) = purpose
            .text_in(locale)
            .or_else(|| purpose.text_in(&config.default_locale))
        else {
            continue;
        };
        let input_id = concat(&[id_prefix, "-", &purpose.id]);
        let description_id = concat(&[&input_id, "-desc"]);
        let input = Element::new("input")
            .attr("type", "checkbox")
            .class(class::BOX)
            .attr("id", input_id.as_str())
            .attr("name", concat(&[attr::INPUT_NAME_PREFIX, &purpose.id]))
            .attr("value", "yes")
            .attr("aria-describedby", description_id.as_str());
        let label = Element::new("label")
            .class(class::LABEL)
            .attr("for", input_id)
            .text(text.label.as_str())
            .text(" ")
            .child(
                Element::new("span")
                    .class(class::OPTIONAL)
                    .text(concat(&["(", words.optional, ")"])),
            );
        let description = Element::new("p")
            .class(class::DESCRIPTION)
            .attr("id", description_id)
            .text(text.description.as_str());
        root = root.child(
            Element::new("div")
                .class(class::PURPOSE)
                .attr(attr::PURPOSE, purpose.id.as_str())
                .child(input)
                .child(label)
                .child(description),
        );
    }

    let notice = &config.privacy_notice;
    root.child(
        Element::new("p")
            .class(class::NOTICE)
            .text(concat(&[words.controller, ": ", &config.controller.name, ". "]))
            .child(
                Element::new("a")
                    .attr("href", notice.url.as_str())
                    .attr("target", "_blank")
                    .attr("rel", "noopener noreferrer")
                    .text(words.privacy_notice),
            )
            .text(concat(&[
                " (",
                words.version,
                " ",
                &notice.version,
                "). ",
                words.withdraw,
            ])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_as_json_keeps_tags_attributes_and_text_in_order() {
        let tree = Element::new("p")
            .attr("id", "x\"y")
            .text("a <b>")
            .child(Element::new("a").attr("href", "/p").text("link"));
        assert_eq!(
            tree.to_json(),
            r#"["p",["id","x\"y"],"a <b>",["a",["href","/p"],"link"]]"#
        );
    }
}

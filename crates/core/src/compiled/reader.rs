//! The widget's reader of the compiled config ([`crate::read`]): every member required, no
//! unknown one, each value of its kind, a vocabulary name the core knows, a tag or an
//! attribute of the closed lists in [`super`]. `compile`'s writing is serde's `Serialize`,
//! and a test reads back everything it writes.

use alloc::vec::Vec;

use super::{BirthdayWords, Contact, Notice, Sheet, SheetPurpose, Site, ATTRIBUTES, TAGS};
use crate::json::Json;
use crate::read::{At, Error, Reader, ROOT};
use crate::view::{Element, Node};

pub(super) fn site(value: &Json) -> Result<Site, Error> {
    let mut r = Reader::new();
    let keys = [
        "format",
        "config_sha256",
        "endpoint",
        "default_locale",
        "locales",
        "forms",
    ];
    let m = r.object(&ROOT, value, &keys);
    let at = |i: usize| ROOT.key(keys[i]);
    let site = Site {
        format: r.number(&at(0), m[0]),
        config_sha256: r.string(&at(1), m[1]),
        endpoint: r.string(&at(2), m[2]),
        default_locale: r.string(&at(3), m[3]),
        locales: r.strings(&at(4), m[4]),
        forms: r.strings(&at(5), m[5]),
    };
    r.finish(site)
}

/// The sheet, and its tree unread (an array: checked to be one).
pub(super) fn sheet(value: &Json) -> Result<(Sheet, &Json), Error> {
    let mut r = Reader::new();
    let keys = [
        "format",
        "config_sha256",
        "form",
        "source",
        "locale",
        "notice",
        "contact",
        "purposes",
        "birthday",
        "tree",
    ];
    let m = r.object(&ROOT, value, &keys);
    let at = |i: usize| ROOT.key(keys[i]);
    r.items(&at(9), m[9]);
    let (notice, contact, purposes) = (at(5), at(6), at(7));
    let n = r.object(&notice, m[5], &["url", "version"]);
    let c = r.object(&contact, m[6], &["email", "phone", "post"]);
    let mut list = Vec::new();
    for (i, item) in r.items(&purposes, m[7]).iter().enumerate() {
        list.push(purpose(&mut r, &purposes.index(i), item));
    }
    let birthday_at = at(8);
    let birthday = match m[8] {
        Json::Null => None,
        words => {
            let w = r.object(&birthday_at, words, &["title", "day", "month"]);
            Some(BirthdayWords {
                title: r.string(&birthday_at.key("title"), w[0]),
                day: r.string(&birthday_at.key("day"), w[1]),
                month: r.string(&birthday_at.key("month"), w[2]),
            })
        }
    };
    let sheet = Sheet {
        format: r.number(&at(0), m[0]),
        config_sha256: r.string(&at(1), m[1]),
        form: r.string(&at(2), m[2]),
        source: r.named(&at(3), m[3]),
        locale: r.string(&at(4), m[4]),
        notice: Notice {
            url: r.string(&notice.key("url"), n[0]),
            version: r.string(&notice.key("version"), n[1]),
        },
        contact: Contact {
            email: r.nullable_string(&contact.key("email"), c[0]),
            phone: r.nullable_string(&contact.key("phone"), c[1]),
            post: r.nullable_string(&contact.key("post"), c[2]),
        },
        purposes: list,
        birthday,
    };
    r.finish((sheet, m[9]))
}

fn purpose(r: &mut Reader, at: &At, value: &Json) -> SheetPurpose {
    let keys = ["id", "version", "channel", "birthday", "text"];
    let m = r.object(at, value, &keys);
    SheetPurpose {
        id: r.string(&at.key(keys[0]), m[0]),
        version: r.number(&at.key(keys[1]), m[1]),
        channel: r.named(&at.key(keys[2]), m[2]),
        birthday: r.boolean(&at.key(keys[3]), m[3]),
        text: r.string(&at.key(keys[4]), m[4]),
    }
}

/// `["tag", ["name", "value", …], child, …]`, a child a text (string) or an element.
pub(super) fn element(value: &Json) -> Result<Element, Error> {
    let mut r = Reader::new();
    let element = element_at(&mut r, &ROOT.key("tree"), value);
    r.finish(element)
}

fn element_at(r: &mut Reader, at: &At, value: &Json) -> Element {
    let parts = r.items(at, value);
    let tag = match parts.first() {
        Some(tag) => r.one_of(&at.index(0), tag, TAGS),
        None => {
            r.fail(
                at,
                alloc::string::String::from("an element needs its tag and its attributes"),
            );
            TAGS[0]
        }
    };
    let attributes_at = at.index(1);
    let flat = parts.get(1).map_or(&[][..], |a| r.items(&attributes_at, a));
    if !flat.len().is_multiple_of(2) {
        r.fail(&attributes_at, alloc::string::String::from("an attribute has no value"));
    }
    let mut attrs = Vec::new();
    for (i, pair) in flat.chunks_exact(2).enumerate() {
        let name = r.one_of(&attributes_at.index(2 * i), &pair[0], ATTRIBUTES);
        attrs.push((name, r.string(&attributes_at.index(2 * i + 1), &pair[1])));
    }
    let mut children = Vec::new();
    for (i, child) in parts.iter().enumerate().skip(2) {
        children.push(match child {
            Json::String(text) => Node::Text(text.clone()),
            _ => Node::Element(element_at(r, &at.index(i), child)),
        });
    }
    Element { tag, attrs, children }
}

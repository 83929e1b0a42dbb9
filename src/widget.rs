//! A mounted widget: owns its mutation observer and its listeners; dropping it detaches.

use crate::dom::{self, Listener};
use alloc::format;
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};
use unticked_core::config::Config;
use unticked_core::locale;
use unticked_core::view::{self, attr, class};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, HtmlFormElement, HtmlInputElement, MutationObserver, MutationRecord};

/// Event dispatched on a form when the shopper changes a consent box.
pub const CHANGE_EVENT: &str = "unticked:change";

const FORM_SELECTOR: &str = "form[data-unticked]";
const SUBMIT_SELECTOR: &str = "button[type=submit], input[type=submit], button:not([type])";

/// The widget attached to a page: every `form[data-unticked]` present now or added later
/// gets its choices. Dropping it stops observing, removes the listeners and the choices.
pub struct Widget {
    inner: Rc<Inner>,
    observer: MutationObserver,
    _on_mutation: Closure<dyn FnMut(js_sys::Array, MutationObserver)>,
}

struct Inner {
    config: Config,
    document: Document,
    mounted: RefCell<Vec<Mounted>>,
    warned_kinds: RefCell<Vec<String>>,
}

/// One form with its rendered choices.
struct Mounted {
    form: HtmlFormElement,
    kind: String,
    fieldset: web_sys::Element,
    locale: String,
    id_prefix: String,
    _on_change: Listener,
}

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(1);

/// An id prefix no element on the page uses yet, so ids stay unique with several forms.
fn unique_prefix(document: &Document) -> String {
    loop {
        let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("unticked-{n}");
        if document.get_element_by_id(&format!("{prefix}-intro")).is_none() {
            return prefix;
        }
    }
}

impl Widget {
    /// Renders the choices into every configured form on the page and keeps watching for
    /// forms added later (single-page shops) and for changes of `lang`.
    ///
    /// # Errors
    /// When the page has no document or the observer cannot start.
    pub fn attach(config: Config) -> Result<Widget, JsValue> {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or_else(|| JsValue::from_str("no document"))?;
        let inner = Rc::new(Inner {
            config,
            document: document.clone(),
            mounted: RefCell::new(Vec::new()),
            warned_kinds: RefCell::new(Vec::new()),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        let on_mutation = Closure::<dyn FnMut(js_sys::Array, MutationObserver)>::new(
            move |records: js_sys::Array, _: MutationObserver| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_mutations(&records);
                }
            },
        );
        let observer = MutationObserver::new(on_mutation.as_ref().unchecked_ref())?;
        let options = web_sys::MutationObserverInit::new();
        options.set_child_list(true);
        options.set_subtree(true);
        options.set_attributes(true);
        options.set_attribute_filter(&js_sys::Array::of2(&"lang".into(), &attr::FORM_KIND.into()));
        let root = document
            .document_element()
            .ok_or_else(|| JsValue::from_str("no document element"))?;
        observer.observe_with_options(&root, &options)?;
        inner.mount_within(&root);
        Ok(Widget {
            inner,
            observer,
            _on_mutation: on_mutation,
        })
    }

    /// How many forms currently show choices.
    pub fn mounted_count(&self) -> usize {
        self.inner.mounted.borrow().len()
    }
}

impl Drop for Widget {
    fn drop(&mut self) {
        self.observer.disconnect();
        for mounted in self.inner.mounted.borrow_mut().drain(..) {
            mounted.fieldset.remove();
        }
    }
}

impl Inner {
    fn on_mutations(self: &Rc<Self>, records: &js_sys::Array) {
        let mut relocalise = false;
        let mut removed = false;
        for record in records.iter() {
            let Ok(record) = record.dyn_into::<MutationRecord>() else {
                continue;
            };
            match record.type_().as_str() {
                "childList" => {
                    removed |= record.removed_nodes().length() > 0;
                    let added = record.added_nodes();
                    for i in 0..added.length() {
                        if let Some(element) = added.item(i).and_then(|n| n.dyn_into::<web_sys::Element>().ok()) {
                            self.mount_within(&element);
                        }
                    }
                }
                "attributes" if record.attribute_name().as_deref() == Some("lang") => relocalise = true,
                "attributes" => {
                    if let Some(element) = record.target().and_then(|n| n.dyn_into::<web_sys::Element>().ok()) {
                        self.mount_within(&element);
                    }
                }
                _ => {}
            }
        }
        if removed {
            // Forms a single-page shop has thrown away: drop their listeners with them.
            self.mounted.borrow_mut().retain(|m| m.form.is_connected());
        }
        if relocalise {
            self.relocalise();
        }
    }

    /// Mounts `root` if it is a marked form, and every marked form inside it.
    fn mount_within(self: &Rc<Self>, root: &web_sys::Element) {
        if root.matches(FORM_SELECTOR).unwrap_or(false) {
            if let Ok(form) = root.clone().dyn_into::<HtmlFormElement>() {
                self.mount(form);
            }
        }
        let Ok(forms) = root.query_selector_all(FORM_SELECTOR) else {
            return;
        };
        for i in 0..forms.length() {
            if let Some(form) = forms.item(i).and_then(|n| n.dyn_into::<HtmlFormElement>().ok()) {
                self.mount(form);
            }
        }
    }

    /// The locale for a form: its nearest `lang`, then the browser's languages, then the
    /// config default. Returns `(locale, language in effect at the form)`.
    fn locale_for(&self, form: &HtmlFormElement) -> (String, Option<String>) {
        let page_lang = form
            .closest("[lang]")
            .ok()
            .flatten()
            .and_then(|e| e.get_attribute("lang"))
            .filter(|l| !l.trim().is_empty());
        let browser: Vec<String> = web_sys::window()
            .map(|w| w.navigator().languages().iter().filter_map(|l| l.as_string()).collect())
            .unwrap_or_default();
        let requested = page_lang.iter().chain(browser.iter()).map(String::as_str);
        let locale = locale::negotiate(requested, &self.config.locales, &self.config.default_locale);
        (locale.to_string(), page_lang)
    }

    fn render(&self, form: &HtmlFormElement, kind: &str, id_prefix: &str) -> Option<(web_sys::Element, String)> {
        let form_config = self.config.form(kind)?;
        let (locale, page_lang) = self.locale_for(form);
        let tree = view::choices(&self.config, form_config, &locale, page_lang.as_deref(), id_prefix);
        let fieldset = dom::build(&self.document, &tree).ok()?;
        Some((fieldset, locale))
    }

    fn mount(self: &Rc<Self>, form: HtmlFormElement) {
        if self.mounted.borrow().iter().any(|m| m.form == form) {
            return;
        }
        let Some(kind) = form.get_attribute(attr::FORM_KIND) else {
            return;
        };
        if self.config.form(&kind).is_none() {
            self.warn_unknown_kind(&kind);
            return;
        }
        let id_prefix = unique_prefix(&self.document);
        let Some((fieldset, locale)) = self.render(&form, &kind, &id_prefix) else {
            return;
        };
        if insert(&form, &fieldset).is_err() {
            return;
        }
        let on_change = change_listener(&form);
        self.mounted.borrow_mut().push(Mounted {
            form,
            kind,
            fieldset,
            locale,
            id_prefix,
            _on_change: on_change,
        });
    }

    fn warn_unknown_kind(&self, kind: &str) {
        let mut warned = self.warned_kinds.borrow_mut();
        if warned.iter().any(|k| k == kind) {
            return;
        }
        warned.push(kind.to_string());
        let known: Vec<&str> = self.config.forms.iter().map(|f| f.kind.as_str()).collect();
        web_sys::console::warn_1(&JsValue::from_str(&format!(
            "unticked: form kind \"{kind}\" is not in the config (known: {}); that form gets no choices",
            known.join(", ")
        )));
    }

    /// Re-renders forms whose locale changed (a language switcher set `lang`), keeping the
    /// shopper's ticks.
    fn relocalise(&self) {
        for mounted in self.mounted.borrow_mut().iter_mut() {
            let (locale, _) = self.locale_for(&mounted.form);
            if locale == mounted.locale {
                continue;
            }
            let Some((fresh, locale)) = self.render(&mounted.form, &mounted.kind, &mounted.id_prefix) else {
                continue;
            };
            carry_ticks(&mounted.fieldset, &fresh);
            if mounted.fieldset.replace_with_with_node_1(&fresh).is_ok() {
                mounted.fieldset = fresh;
                mounted.locale = locale;
            }
        }
    }
}

/// Where the choices go: the form's `[data-unticked-slot]`, else just before its submit
/// button, else at the end of the form.
fn insert(form: &HtmlFormElement, fieldset: &web_sys::Element) -> Result<(), JsValue> {
    if let Some(slot) = form.query_selector(&format!("[{}]", attr::SLOT))? {
        slot.append_child(fieldset)?;
        return Ok(());
    }
    if let Some(submit) = form.query_selector(SUBMIT_SELECTOR)? {
        if let Some(parent) = submit.parent_node() {
            parent.insert_before(fieldset, Some(&submit))?;
            return Ok(());
        }
    }
    form.append_child(fieldset)?;
    Ok(())
}

fn consent_boxes(fieldset: &web_sys::Element) -> Vec<HtmlInputElement> {
    let Ok(list) = fieldset.query_selector_all(&format!("input.{}", class::BOX)) else {
        return Vec::new();
    };
    (0..list.length())
        .filter_map(|i| list.item(i)?.dyn_into::<HtmlInputElement>().ok())
        .collect()
}

fn purpose_of(input: &HtmlInputElement) -> Option<String> {
    input.name().strip_prefix(attr::INPUT_NAME_PREFIX).map(str::to_string)
}

/// Copies the shopper's ticks from an old rendering to a new one, by purpose.
fn carry_ticks(old: &web_sys::Element, fresh: &web_sys::Element) {
    let ticked: Vec<String> = consent_boxes(old)
        .iter()
        .filter(|b| b.checked())
        .filter_map(purpose_of)
        .collect();
    for input in consent_boxes(fresh) {
        if purpose_of(&input).is_some_and(|p| ticked.contains(&p)) {
            input.set_checked(true);
        }
    }
}

/// Listens on the form (so it survives re-rendering) and reports each change of a consent
/// box as `unticked:change` with `{purpose, checked, trusted}`.
fn change_listener(form: &HtmlFormElement) -> Listener {
    let target = form.clone();
    Listener::new(form, "change", move |event| {
        let Some(input) = event.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) else {
            return;
        };
        if !input.class_list().contains(class::BOX) {
            return;
        }
        let Some(purpose) = purpose_of(&input) else { return };
        let detail = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&detail, &"purpose".into(), &purpose.into());
        let _ = js_sys::Reflect::set(&detail, &"checked".into(), &input.checked().into());
        let _ = js_sys::Reflect::set(&detail, &"trusted".into(), &event.is_trusted().into());
        dom::dispatch(&target, CHANGE_EVENT, &detail);
    })
}

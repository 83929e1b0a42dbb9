//! A mounted widget: owns its mutation observer and its listeners; dropping it detaches.

use crate::dom::{self, Listener};
use alloc::rc::{Rc, Weak};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicU32, Ordering};
use unticked_core::config::Config;
use unticked_core::locale;
use unticked_core::text::{concat, decimal};
use unticked_core::view::{self, attr, selector};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Document, HtmlFormElement, HtmlInputElement, MutationObserver, MutationRecord};

/// Event dispatched on a form when the shopper changes a consent box.
pub const CHANGE_EVENT: &str = "unticked:change";

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
    fieldset: web_sys::Element,
    _on_change: Listener,
}

static NEXT_PREFIX: AtomicU32 = AtomicU32::new(1);

/// An id prefix no element on the page uses yet, so ids stay unique with several forms.
fn unique_prefix(document: &Document) -> String {
    loop {
        let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
        let prefix = concat(&["unticked-", &decimal(n.into())]);
        if document.get_element_by_id(&concat(&[&prefix, "-intro"])).is_none() {
            return prefix;
        }
    }
}

impl Widget {
    /// Renders the choices into every configured form on the page and keeps watching for
    /// forms added later (single-page shops). The locale is chosen when a form is mounted.
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
        let filter = js_sys::Array::of1(&attr::FORM_KIND.into());
        let yes = JsValue::TRUE;
        let options = dom::object(&[
            ("childList", &yes),
            ("subtree", &yes),
            ("attributes", &yes),
            ("attributeFilter", &filter),
        ]);
        let root = document
            .document_element()
            .ok_or_else(|| JsValue::from_str("no document element"))?;
        observer.observe_with_options(&root, options.unchecked_ref())?;
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
                "attributes" => {
                    if let Some(element) = record.target().and_then(|n| n.dyn_into::<web_sys::Element>().ok()) {
                        self.mount_within(&element);
                    }
                }
                _ => {}
            }
        }
        if removed {
            // Forms a single-page shop has taken out of the page: drop their listeners and
            // their choices, so a form put back later gets one fresh rendering.
            self.mounted.borrow_mut().retain(|m| {
                let connected = m.form.is_connected();
                if !connected {
                    m.fieldset.remove();
                }
                connected
            });
        }
    }

    /// Mounts `root` if it is a marked form, and every marked form inside it.
    fn mount_within(self: &Rc<Self>, root: &web_sys::Element) {
        if root.matches(selector::FORM).unwrap_or(false) {
            if let Ok(form) = root.clone().dyn_into::<HtmlFormElement>() {
                self.mount(form);
            }
        }
        let Ok(forms) = root.query_selector_all(selector::FORM) else {
            return;
        };
        for i in 0..forms.length() {
            if let Some(form) = forms.item(i).and_then(|n| n.dyn_into::<HtmlFormElement>().ok()) {
                self.mount(form);
            }
        }
    }

    /// The locale for a form: its nearest `lang` (`lv-LV` matches `lv`), else the config
    /// default. Returns `(locale, language in effect at the form)`.
    fn locale_for(&self, form: &HtmlFormElement) -> (String, Option<String>) {
        let page_lang = form
            .closest("[lang]")
            .ok()
            .flatten()
            .and_then(|e| e.get_attribute("lang"))
            .filter(|l| !l.trim().is_empty());
        // The page's lang is what the shop chose to show. The browser's own languages (asked
        // for by issue 6) cost 650 bytes of glue here and wait for that size work.
        let requested = page_lang.iter().map(String::as_str);
        let locale = locale::negotiate(requested, &self.config.locales, &self.config.default_locale);
        (locale.to_string(), page_lang)
    }

    fn mount(self: &Rc<Self>, form: HtmlFormElement) {
        if self.mounted.borrow().iter().any(|m| m.form == form) {
            return;
        }
        // Choices this widget does not own: a copy made by cloneNode (page snapshots, SPA
        // templates) or left in a form that was taken out and put back. Their ids belong to
        // another form and their boxes to nobody; replace them with a fresh rendering.
        while let Ok(Some(stale)) = form.query_selector(selector::ROOT) {
            stale.remove();
        }
        let Some(kind) = form.get_attribute(attr::FORM_KIND) else {
            return;
        };
        let Some(form_config) = self.config.form(&kind) else {
            return self.warn_unknown_kind(&kind);
        };
        let (locale, page_lang) = self.locale_for(&form);
        let id_prefix = unique_prefix(&self.document);
        let tree = view::choices(&self.config, form_config, &locale, page_lang.as_deref(), &id_prefix);
        let Ok(fieldset) = dom::build(&self.document, &tree) else {
            return;
        };
        if insert(&form, &fieldset).is_err() {
            return;
        }
        let on_change = change_listener(&form);
        self.mounted.borrow_mut().push(Mounted {
            form,
            fieldset,
            _on_change: on_change,
        });
    }

    fn warn_unknown_kind(&self, kind: &str) {
        let mut warned = self.warned_kinds.borrow_mut();
        if warned.iter().any(|k| k == kind) {
            return;
        }
        warned.push(kind.to_string());
        let mut message = concat(&[
            "unticked: form kind \"",
            kind,
            "\" is not in the config; that form gets no choices. Known:",
        ]);
        for form in &self.config.forms {
            message.push(' ');
            message.push_str(&form.kind);
        }
        web_sys::console::warn_1(&JsValue::from_str(&message));
    }
}

/// Where the choices go: the form's `[data-unticked-slot]`, else just before its submit
/// button, else at the end of the form.
fn insert(form: &HtmlFormElement, fieldset: &web_sys::Element) -> Result<(), JsValue> {
    if let Some(slot) = form.query_selector(selector::SLOT)? {
        slot.append_child(fieldset)?;
        return Ok(());
    }
    if let Some(submit) = form.query_selector(selector::SUBMIT)? {
        if let Some(parent) = submit.parent_node() {
            parent.insert_before(fieldset, Some(&submit))?;
            return Ok(());
        }
    }
    form.append_child(fieldset)?;
    Ok(())
}

fn purpose_of(input: &HtmlInputElement) -> Option<String> {
    input.name().strip_prefix(attr::INPUT_NAME_PREFIX).map(str::to_string)
}

/// Listens on the form (so it survives re-rendering) and reports each change of a consent
/// box as `unticked:change` with `{purpose, checked, trusted}`.
fn change_listener(form: &HtmlFormElement) -> Listener {
    let target = form.clone();
    Listener::new(form, "change", move |event| {
        let Some(input) = event.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) else {
            return;
        };
        // Only the widget's own boxes: a page checkbox with the same name is not one.
        if !input.closest(selector::ROOT).is_ok_and(|f| f.is_some()) {
            return;
        }
        let Some(purpose) = purpose_of(&input) else { return };
        let detail = dom::object(&[
            ("purpose", &purpose.into()),
            ("checked", &input.checked().into()),
            ("trusted", &event.is_trusted().into()),
        ]);
        dom::dispatch(&target, CHANGE_EVENT, &detail);
    })
}

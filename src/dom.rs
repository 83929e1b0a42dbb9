//! Turning the core's view tree into DOM, and dispatching the widget's events.
//!
//! Only `createElement`, `setAttribute` and text nodes: config and translated text is
//! never parsed as markup, and nothing needs inline script or style, so the widget runs
//! under `script-src 'self'; style-src 'self'`.

use alloc::boxed::Box;
use unticked_core::view::{Element, Node};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Event, EventTarget};

/// An event listener that is removed when dropped (as in gloo-events, which needs std).
pub struct Listener {
    target: EventTarget,
    name: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl Listener {
    /// Adds `handler` for `name` events on `target`, until the listener is dropped.
    pub fn new(target: &EventTarget, name: &'static str, handler: impl FnMut(Event) + 'static) -> Listener {
        let callback = Closure::<dyn FnMut(Event)>::wrap(Box::new(handler));
        let _ = target.add_event_listener_with_callback(name, callback.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            name,
            callback,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.name, self.callback.as_ref().unchecked_ref());
    }
}

/// Builds a detached DOM element for `element`.
///
/// # Errors
/// Whatever the DOM throws (it does not for the tags and attributes the view uses).
pub fn build(document: &Document, element: &Element) -> Result<web_sys::Element, JsValue> {
    let out = document.create_element(element.tag)?;
    for (name, value) in &element.attrs {
        out.set_attribute(name, value)?;
    }
    for child in &element.children {
        let node: web_sys::Node = match child {
            Node::Text(text) => document.create_text_node(text).into(),
            Node::Element(child) => build(document, child)?.into(),
        };
        out.append_child(&node)?;
    }
    Ok(out)
}

/// A plain object with these properties. Dictionaries are built this way rather than
/// through web-sys's typed setters: each setter is one more import and JS shim to download.
pub fn object(entries: &[(&str, &JsValue)]) -> js_sys::Object {
    let object = js_sys::Object::new();
    for (key, value) in entries {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object
}

/// Dispatches a bubbling `CustomEvent` named `name` with `detail` on `target`.
/// A listener that throws does not reach the widget (DOM dispatch reports it to the page).
pub fn dispatch(target: &web_sys::EventTarget, name: &str, detail: &JsValue) {
    let init = object(&[("bubbles", &JsValue::TRUE), ("detail", detail)]);
    if let Ok(event) = web_sys::CustomEvent::new_with_event_init_dict(name, init.unchecked_ref()) {
        let _ = target.dispatch_event(&event);
    }
}

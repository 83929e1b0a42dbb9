//! Browser tests: the widget in headless Chromium (wasm-bindgen-test-runner + ChromeDriver).
//!
//! Run with `CHROMEDRIVER=/usr/bin/chromedriver cargo test -p unticked --target
//! wasm32-unknown-unknown --features std --tests` (`./build.sh test` does): the test binary
//! links std through wasm-bindgen-test, so the widget's own no_std panic handler is off. They cover what needs a real DOM: rendering per form kind,
//! unticked and optional boxes, label association, several forms, forms added later,
//! locales, and config failures that must leave the form alone.
#![cfg(target_arch = "wasm32")]

use std::collections::HashSet;
use unticked::{ConfigSource, StartError, Widget};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Document, Element, HtmlFormElement, HtmlInputElement};

wasm_bindgen_test_configure!(run_in_browser);

const DEMO_CONFIG: &str = include_str!("../www/consent.json");

fn document() -> Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A fixture container in the page body; removed when dropped.
struct Fixture(Element);

impl Fixture {
    fn new(markup: &str) -> Fixture {
        let div = document().create_element("div").unwrap();
        // Test markup only; the widget itself never uses innerHTML.
        div.set_inner_html(markup);
        document().body().unwrap().append_child(&div).unwrap();
        Fixture(div)
    }
    fn query(&self, selector: &str) -> Option<Element> {
        self.0.query_selector(selector).unwrap()
    }
    fn all(&self, selector: &str) -> Vec<Element> {
        let list = self.0.query_selector_all(selector).unwrap();
        (0..list.length())
            .map(|i| list.item(i).unwrap().dyn_into().unwrap())
            .collect()
    }
    fn boxes(&self, scope: &str) -> Vec<HtmlInputElement> {
        self.all(&format!("{scope} input[name^='consent.']"))
            .into_iter()
            .map(|e| e.dyn_into().unwrap())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.0.remove();
    }
}

const CHECKOUT: &str = r#"<form id="f" action="/shop/order" method="post" data-unticked="checkout">
  <input id="email" name="email" type="email"><input id="phone" name="phone">
  <div class="actions"><button id="buy" type="submit">Buy</button></div>
</form>"#;

fn config() -> unticked_core::config::Config {
    unticked::parse_config(DEMO_CONFIG).expect("demo config is valid")
}

/// `unticked::run` as a future.
async fn run(source: Option<ConfigSource>) -> Result<Widget, StartError> {
    let outcome = std::rc::Rc::new(std::cell::RefCell::new(None));
    let slot = outcome.clone();
    let promise = js_sys::Promise::new(&mut move |resolve, _| {
        let slot = slot.clone();
        unticked::run(source.clone(), move |result| {
            *slot.borrow_mut() = Some(result);
            resolve.call0(&wasm_bindgen::JsValue::NULL).unwrap();
        });
    });
    JsFuture::from(promise).await.unwrap();
    let result = outcome.borrow_mut().take().expect("run calls back once");
    result
}

/// Lets the mutation observer and pending promises run.
async fn tick() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0)
            .unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
fn checkout_gets_every_configured_purpose_unticked_and_optional() {
    let fx = Fixture::new(CHECKOUT);
    let _widget = Widget::attach(config()).unwrap();
    let boxes = fx.boxes("#f");
    let names: Vec<String> = boxes.iter().map(|b| b.name()).collect();
    assert_eq!(
        names,
        [
            "consent.email-offers",
            "consent.sms-offers",
            "consent.phone-calls",
            "consent.birthday-greetings",
            "consent.personalised-offers"
        ]
    );
    for b in &boxes {
        assert_eq!(b.type_(), "checkbox");
        assert!(!b.checked(), "{} must start unticked (R1)", b.name());
        assert!(!b.default_checked(), "{} must have no checked attribute", b.name());
        assert!(!b.required(), "{} must never be required (R3)", b.name());
        assert!(!b.has_attribute("aria-required"));
        assert!(!b.disabled());
        let labels = b.labels().unwrap();
        assert_eq!(labels.length(), 1, "{} has exactly one label", b.name());
        let label = labels.item(0).unwrap().text_content().unwrap();
        assert!(label.contains("I agree") && label.contains("(optional)"), "{label}");
    }
    // In the light DOM, inside a fieldset with a legend, just before the submit button.
    let fieldset = fx.query("#f fieldset.unticked").expect("a fieldset");
    assert_eq!(
        fieldset
            .query_selector("legend")
            .unwrap()
            .unwrap()
            .text_content()
            .unwrap(),
        "Marketing choices"
    );
    assert_eq!(fieldset.next_element_sibling().unwrap().id(), "buy");
    let link = fieldset
        .query_selector("a[href='/privacy.html']")
        .unwrap()
        .expect("privacy notice link");
    assert_eq!(link.text_content().unwrap(), "Privacy notice");
    assert!(fieldset.text_content().unwrap().contains("version 2026-09"));
}

#[wasm_bindgen_test]
fn each_form_kind_gets_its_own_purposes() {
    let fx = Fixture::new(
        r#"<form id="n" data-unticked="newsletter"><input id="newsletter-email"><button>Sign up</button></form>
           <form id="x" data-unticked="no-such-kind"><button>Go</button></form>
           <form id="plain"><button>Go</button></form>"#,
    );
    let _widget = Widget::attach(config()).unwrap();
    let names: Vec<String> = fx.boxes("#n").iter().map(|b| b.name()).collect();
    assert_eq!(names, ["consent.email-offers", "consent.birthday-greetings"]);
    assert!(fx.query("#x fieldset").is_none(), "an unknown kind gets nothing");
    assert!(fx.query("#plain fieldset").is_none(), "an unmarked form gets nothing");
}

#[wasm_bindgen_test]
fn the_slot_says_where_the_choices_go() {
    let fx = Fixture::new(
        r#"<form id="s" data-unticked="newsletter"><div id="slot" data-unticked-slot></div><p>terms</p><button>Sign up</button></form>"#,
    );
    let _widget = Widget::attach(config()).unwrap();
    assert!(fx.query("#slot > fieldset.unticked").is_some());
}

#[wasm_bindgen_test]
fn two_forms_on_a_page_keep_ids_unique_and_labels_bound() {
    let fx = Fixture::new(&format!(
        "{}{}",
        CHECKOUT.replace("id=\"f\"", "id=\"a\""),
        CHECKOUT
            .replace("id=\"f\"", "id=\"b\"")
            .replace("id=\"email\"", "")
            .replace("id=\"phone\"", "")
            .replace("id=\"buy\"", "")
    ));
    let _widget = Widget::attach(config()).unwrap();
    let all = fx.boxes("");
    assert_eq!(all.len(), 10);
    let ids: HashSet<String> = fx.all("[id]").iter().map(|e| e.id()).collect();
    assert_eq!(ids.len(), fx.all("[id]").len(), "no id is used twice");
    for b in fx.boxes("#b") {
        let label = b.labels().unwrap().item(0).unwrap();
        assert!(
            fx.query("#b").unwrap().contains(Some(&label)),
            "a label in form b labels a box in form b"
        );
    }
}

#[wasm_bindgen_test]
async fn a_form_added_after_load_gets_its_choices() {
    let fx = Fixture::new("<div id='app'></div>");
    let widget = Widget::attach(config()).unwrap();
    assert_eq!(widget.mounted_count(), 0);
    // A single-page shop renders its checkout later.
    let app = fx.query("#app").unwrap();
    app.set_inner_html(CHECKOUT);
    tick().await;
    assert_eq!(fx.boxes("#f").len(), 5);
    // A form whose kind is set after insertion counts too.
    let late = document().create_element("form").unwrap();
    late.set_id("late");
    late.append_child(&document().create_element("button").unwrap())
        .unwrap();
    app.append_child(&late).unwrap();
    tick().await;
    assert!(fx.query("#late fieldset").is_none());
    late.set_attribute("data-unticked", "newsletter").unwrap();
    tick().await;
    assert_eq!(fx.boxes("#late").len(), 2);
    assert_eq!(widget.mounted_count(), 2);
}

#[wasm_bindgen_test]
async fn a_cloned_or_reinserted_form_gets_exactly_one_set_of_choices() {
    let fx = Fixture::new(&format!("<div id='a'>{CHECKOUT}</div><div id='b'></div>"));
    let widget = Widget::attach(config()).unwrap();
    let form = fx.query("#f").unwrap();

    // A page snapshot or template clones the whole form, choices included.
    let copy: Element = form.clone_node_with_deep(true).unwrap().dyn_into().unwrap();
    copy.set_id("copy");
    fx.query("#b").unwrap().append_child(&copy).unwrap();
    tick().await;
    assert_eq!(
        fx.all("#copy fieldset.unticked").len(),
        1,
        "the copied choices are replaced, not added to"
    );
    let widget_ids: Vec<String> = fx.all("[id^=unticked-]").iter().map(|e| e.id()).collect();
    let unique: HashSet<&String> = widget_ids.iter().collect();
    assert_eq!(
        unique.len(),
        widget_ids.len(),
        "no widget id is used twice: {widget_ids:?}"
    );
    for b in fx.boxes("#copy") {
        let label = b.labels().unwrap().item(0).unwrap();
        assert!(
            copy.contains(Some(&label)),
            "a label in the copy ticks a box in the copy"
        );
    }

    // A single-page shop takes the form out and puts it back.
    form.remove();
    tick().await;
    fx.query("#a").unwrap().append_child(&form).unwrap();
    tick().await;
    assert_eq!(fx.all("#f fieldset.unticked").len(), 1);
    assert_eq!(fx.boxes("#f").len(), 5);
    assert_eq!(widget.mounted_count(), 2);
}

#[wasm_bindgen_test]
async fn each_form_speaks_the_language_of_its_page() {
    let fx = Fixture::new(&format!(
        "<div lang='lv'>{}</div><div lang='pl-PL'>{}</div><div lang='fi' id='fi'>{}</div><div id='later' lang='cs'></div>",
        CHECKOUT.replace("id=\"f\"", "id=\"lv\"").replace("id=\"buy\"", ""),
        CHECKOUT.replace("id=\"f\"", "id=\"pl\"").replace("id=\"email\"", "").replace("id=\"phone\"", "").replace("id=\"buy\"", ""),
        CHECKOUT.replace("id=\"f\"", "id=\"xx\"").replace("id=\"email\"", "").replace("id=\"phone\"", "").replace("id=\"buy\"", ""),
    ));
    let _widget = Widget::attach(config()).unwrap();
    let legend = |form: &str| fx.query(&format!("#{form} legend")).unwrap().text_content().unwrap();
    let first_label = |form: &str| {
        fx.boxes(&format!("#{form}"))[0]
            .labels()
            .unwrap()
            .item(0)
            .unwrap()
            .text_content()
            .unwrap()
    };

    assert_eq!(legend("lv"), "Mārketinga izvēles");
    assert!(
        first_label("lv").starts_with("Piekrītu saņemt piedāvājumus"),
        "{}",
        first_label("lv")
    );
    assert!(first_label("lv").contains("(neobligāti)"));
    // Same language as the page: no lang attribute of its own.
    assert!(!fx.query("#lv fieldset").unwrap().has_attribute("lang"));

    // pl-PL falls back to the declared "pl".
    assert_eq!(legend("pl"), "Zgody marketingowe");
    assert!(first_label("pl").starts_with("Wyrażam zgodę"));

    // Finnish is not declared: the config default (en) is shown, and the fieldset says
    // which language it is in (WCAG 3.1.2).
    assert_eq!(legend("xx"), "Marketing choices");
    assert_eq!(
        fx.query("#xx fieldset").unwrap().get_attribute("lang").as_deref(),
        Some("en")
    );

    // A form added later inside a Czech part of the page.
    fx.query("#later").unwrap().set_inner_html(
        &CHECKOUT
            .replace("id=\"f\"", "id=\"cs\"")
            .replace("id=\"email\"", "")
            .replace("id=\"phone\"", "")
            .replace("id=\"buy\"", ""),
    );
    tick().await;
    assert_eq!(legend("cs"), "Marketingové souhlasy");
    assert!(first_label("cs").starts_with("Souhlasím"));
}

fn assert_untouched(fx: &Fixture) {
    assert!(fx.query("#f fieldset").is_none(), "nothing rendered");
    assert!(fx.boxes("#f").is_empty());
    assert!(fx.query("#buy").is_some());
}

#[wasm_bindgen_test]
async fn an_invalid_config_renders_nothing_and_names_every_problem() {
    let fx = Fixture::new(CHECKOUT);
    let bad = DEMO_CONFIG
        .replacen("\"version\": 1,", "\"version\": 1, \"checked\": true,", 1)
        .replacen(
            "\"legal_basis\": \"consent\",",
            "\"legal_basis\": \"consent\", \"required\": true,",
            2,
        );
    let Err(error) = run(Some(ConfigSource::Inline(bad))).await else {
        panic!("must fail")
    };
    assert_eq!(error.code(), "config-invalid");
    let message = error.message();
    assert!(message.contains("/purposes/0/checked: R1"), "{message}");
    assert!(message.contains("/purposes/1/required: R3"), "{message}");
    assert_untouched(&fx);
}

#[wasm_bindgen_test]
async fn an_unreachable_or_broken_config_renders_nothing() {
    let fx = Fixture::new(CHECKOUT);
    let missing = run(Some(ConfigSource::Url("/no-such-consent.json".into()))).await;
    assert!(
        matches!(&missing, Err(StartError::Unreachable { reason, .. }) if reason == "HTTP 404"),
        "{:?}",
        missing.err()
    );
    let not_json = run(Some(ConfigSource::Url("data:application/json,{oops".into()))).await;
    assert!(matches!(not_json, Err(StartError::NotJson(_))));
    let refused = run(Some(ConfigSource::Url("http://127.0.0.1:9/consent.json".into()))).await;
    assert!(matches!(refused, Err(StartError::Unreachable { .. })));
    let none = run(None).await;
    assert!(matches!(none, Err(StartError::NoConfig)));
    assert_untouched(&fx);
}

#[wasm_bindgen_test]
fn a_failure_is_reported_as_an_event_and_does_not_throw() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let sink = seen.clone();
    let listener = unticked::dom::Listener::new(&document(), "unticked:error", move |event| {
        let detail = event.dyn_ref::<web_sys::CustomEvent>().unwrap().detail();
        let code = js_sys::Reflect::get(&detail, &"code".into())
            .unwrap()
            .as_string()
            .unwrap();
        sink.borrow_mut().push(code);
    });
    unticked::report(&StartError::NotJson("expected value at line 1 column 2".into()));
    drop(listener);
    assert_eq!(*seen.borrow(), ["config-not-json"]);
}

#[wasm_bindgen_test]
async fn the_widget_never_cancels_a_submit() {
    let fx = Fixture::new(CHECKOUT);
    let _widget = Widget::attach(config()).unwrap();
    let form: HtmlFormElement = fx.query("#f").unwrap().dyn_into().unwrap();
    fx.query("#email")
        .unwrap()
        .dyn_into::<HtmlInputElement>()
        .unwrap()
        .set_value("a@b.example");
    let prevented = std::rc::Rc::new(std::cell::Cell::new(None));
    let seen = prevented.clone();
    // Registered last on window: runs after every listener on the way up.
    let _probe = unticked::dom::Listener::new(&web_sys::window().unwrap(), "submit", move |event| {
        seen.set(Some(event.default_prevented()));
        event.prevent_default(); // keep the test page from navigating
    });
    form.request_submit().unwrap();
    assert_eq!(prevented.get(), Some(false), "the submit went through untouched");
}

#[wasm_bindgen_test]
async fn a_second_copy_of_the_script_does_nothing() {
    let fx = Fixture::new(
        r#"<form id="d" data-unticked="double"><button>Go</button></form>
           <script type="application/json" id="unticked-config"></script>"#,
    );
    // The copy started here lives on for the page; give it form kinds no other test uses.
    let config = DEMO_CONFIG
        .replace("\"newsletter\": {", "\"double\": {")
        .replace("\"checkout\": {", "\"double-2\": {");
    fx.query("#unticked-config").unwrap().set_text_content(Some(&config));
    unticked::start();
    unticked::start();
    for _ in 0..5 {
        tick().await;
    }
    assert_eq!(fx.all("#d fieldset.unticked").len(), 1);
    assert_eq!(fx.boxes("#d").len(), 2);
}

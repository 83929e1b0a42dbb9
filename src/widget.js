// The widget's DOM edge, and the module a page loads (bundled to www/pkg/unticked.js):
//
//   <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//
// It finds and loads the config, watches for `form[data-unticked]`, builds the choices the
// wasm renders, notes which ticks were the shopper's own, and at submit hands the wasm what
// the form holds and the courier what the wasm captured. It decides nothing about consent:
// what a form shows, what counts as given (R1) and the record's bytes are the wasm's
// (crates/core, shared with the linter and the collector).
//
// Whatever fails, the page's forms work exactly as if the widget were absent: it logs one
// console error that names the problem, dispatches `unticked:error` on the document, and
// never throws into the page, never cancels or delays a submit (R3).
import { load, configure, words, mount, unmount, capture, hex } from "./wasm.js";
import { post, drain, prepare, sha256Hex, random } from "./courier.js";
import { violation, reportTo, hidden, watchFieldset, watchGating, watchCancel } from "./guards.js";
import { Attr, Class, LANGUAGES } from "./names.ts";

// The public contract (DESIGN.md), named once in crates/core (view::attr, view::class) and
// generated into ./names.ts.
const FORM = `form[${Attr.FORM_KIND}]`;
const ROOT = `fieldset.${Class.ROOT}`;
const SLOT = `[${Attr.SLOT}]`;
const SUBMIT = "button[type=submit], input[type=submit], button:not([type])";
const INLINE_CONFIG = "unticked-config";
// LANGUAGES (./names.ts): those the widget has words for (crates/core/locales, served from
// pkg/locales/).
// Set on window by the first copy of the widget, so that a second copy (a theme that adds
// the script again, another URL) does nothing and nothing renders twice.
const STARTED = "__untickedStarted";

// form → { handle, locale, kind, prefix (of its ids), fieldset, record (the hidden input),
//          contact (selectors per kind: email, phone, post), birthdayWords, birthday (the
//          field, built when first asked for), byShopper (purposes the shopper's own last
//          input left ticked), texts (purpose → the text shown), tampered (purposes whose
//          text a script changed), discounted (the shopper's own ticks that cannot count:
//          hidden box, changed text), observer, submitted }
const mounted = new Map();
// language → the promise of its words given to the wasm
const wordsLoaded = new Map();
// The wasm, loading or loaded.
let ready;
const warnedKinds = new Set();
// The last click on one of the widget's boxes, and whether it was the shopper's.
let lastClick;
let prefixes = 0;
let endpoint;

class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const dispatch = (target, name, detail) => target.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));

function fail(code, message) {
  console.error("unticked: " + message);
  dispatch(document, "unticked:error", { code, message });
}

// Runs a handler the page's events call, so that a bug in the widget stays the widget's.
const guarded =
  (handler) =>
  (...args) => {
    try {
      handler(...args);
    } catch (e) {
      console.error("unticked: internal error; the form works without the widget:", e);
    }
  };

// The config's text: the inline <script type="application/json" id="unticked-config">, else
// the URL in `data-config` on the widget's own script tag (module scripts have no
// `document.currentScript`; the widget's own first should another library use the attribute).
async function configText() {
  const inline = document.getElementById(INLINE_CONFIG);
  if (inline) return inline.textContent;
  const script = document.querySelector("script[data-config][src*=unticked]") || document.querySelector("script[data-config]");
  const url = script?.getAttribute("data-config").trim();
  if (!url) {
    throw new Failure(
      "config-missing",
      `no config: add data-config="/consent.json" to the widget's script tag, or an inline <script type="application/json" id="${INLINE_CONFIG}">`,
    );
  }
  const unreachable = (reason) => new Failure("config-unreachable", `could not load the config from ${url}: ${reason}`);
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw unreachable(e);
  }
  if (!response.ok) throw unreachable("HTTP " + response.status);
  return response.text();
}

// DOM from the wasm's tree: an element is ["tag", [name, value, …], child, …], a text node a
// string. createElement, setAttribute and text nodes only: no config or translated text is
// ever parsed as markup, and nothing needs inline script or style (a strict CSP holds).
function build([tag, attributes, ...children]) {
  const element = document.createElement(tag);
  for (let i = 0; i < attributes.length; i += 2) element.setAttribute(attributes[i], attributes[i + 1]);
  element.append(...children.map((child) => (typeof child == "string" ? child : build(child))));
  return element;
}

// A record id: a UUIDv7 (RFC 9562 §5.7), 48 bits of Unix milliseconds then random bits, so
// ids sort by time. The collector checks its form (record::open).
function newRecordId() {
  const bytes = random(16);
  for (let i = 5, t = Date.now(); i >= 0; i--, t = Math.floor(t / 256)) bytes[i] = t % 256;
  bytes[6] = 0x70 | (bytes[6] & 15);
  bytes[8] = 0x80 | (bytes[8] & 63);
  return hex(bytes).replace(/(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
}

// The widget's words in one language, fetched once from beside the script and given to the
// wasm (only the language shown is downloaded).
function loadWords(language) {
  if (!wordsLoaded.has(language)) {
    const url = new URL(`locales/${language}.json`, import.meta.url);
    const loading = fetch(url).then(async (response) => {
      if (!response.ok) throw new Failure("words-unreachable", `could not load the widget's words from ${url}: HTTP ${response.status}`);
      const text = await response.text();
      await ready;
      const problem = words(language, text);
      if (problem) throw new Failure("words-invalid", JSON.parse(problem).message);
    });
    wordsLoaded.set(language, loading);
    loading.catch(() => wordsLoaded.delete(language));
  }
  return wordsLoaded.get(language);
}

// An id prefix no element on the page uses yet, so ids stay unique with several forms.
function uniquePrefix() {
  let prefix;
  do prefix = "unticked-" + ++prefixes;
  while (document.getElementById(prefix + "-intro"));
  return prefix;
}

function mountForm(form) {
  if (mounted.has(form)) return;
  // Choices this widget does not own: a copy made by cloneNode (page snapshots, SPA
  // templates) or left in a form that was taken out and put back. Their ids belong to
  // another form and their boxes to nobody; they make way for a fresh rendering.
  for (const stale of form.querySelectorAll(ROOT)) stale.remove();
  const kind = form.getAttribute(Attr.FORM_KIND);
  // The form's language is what the shop chose to show; then the browser's own.
  const lang = form.closest("[lang]")?.getAttribute("lang").trim() || "";
  const prefix = uniquePrefix();
  const answer = mount(kind, lang, [lang, ...navigator.languages].join(" "), prefix);
  if (!answer) return;
  const view = JSON.parse(answer);
  if (view.words) {
    prefixes--; // unused: the form mounts again once the words are in
    loadWords(view.words).then(
      () => form.isConnected && mountForm(form),
      (e) => fail(e.code || "words-unreachable", e.message + "; that form gets no choices"),
    );
    return;
  }
  if (view.warning) {
    if (!warnedKinds.has(kind)) console.warn("unticked: " + view.warning);
    warnedKinds.add(kind);
    return;
  }
  const fieldset = build(view.tree);
  // What each choice says as shown: a script that changes it afterwards makes ticks of that
  // choice worthless as proof (the record hashes the text the widget rendered).
  const texts = new Map();
  for (const row of fieldset.querySelectorAll(`[${Attr.PURPOSE}]`)) texts.set(row.getAttribute(Attr.PURPOSE), row.textContent);
  // The record id is made now, so that the shop's order carries its proof.
  const record = document.createElement("input");
  record.type = "hidden";
  record.name = Attr.RECORD_INPUT;
  record.value = newRecordId();
  fieldset.append(record);
  const slot = form.querySelector(SLOT);
  const submit = form.querySelector(SUBMIT);
  if (slot) slot.append(fieldset);
  else if (submit) submit.before(fieldset);
  else form.append(fieldset);
  // Each box's purpose, fixed now: a script renaming or moving a box cannot move a tick.
  const boxes = new Map();
  for (const box of fieldset.querySelectorAll("input[type=checkbox]")) boxes.set(box, box.name.slice(Attr.INPUT_NAME_PREFIX.length));
  const m = { ...view, kind, fieldset, record, texts, boxes, byShopper: new Set(), discounted: new Set(), tampered: new Set(), submitted: false };
  // The birthday field's words now; the field itself when first asked for.
  Object.assign(m, { prefix, birthdayWords: view.birthday, birthday: undefined });
  m.observer = watchFieldset(m, form, (purpose) => {
    if (m.tampered.has(purpose)) return;
    m.tampered.add(purpose);
    m.byShopper.delete(purpose);
    violation(form, "text-changed", purpose, kind);
  });
  mounted.set(form, m);
  if (fakeBoxes(form, m).length) violation(form, "fake-box", undefined, kind);
}

const boxesOf = (m) => [...m.boxes.keys()];

// The birthday field (R8: Art. 5(1)(c)), in the form only while a purpose that asks for it
// is ticked: day and month, no year, the months named by the browser (Intl) in the shopper's
// language. Its controls have no name: the value never goes to the shop with the form, only
// beside the record to the collector.
function birthdayField(id, [title, day, month], locale) {
  let name = String;
  try {
    const format = new Intl.DateTimeFormat(locale, { month: "long", timeZone: "UTC" });
    name = (n) => format.format(Date.UTC(2001, n - 1));
  } catch {
    // No Intl: the months keep their numbers.
  }
  const months = [["option", ["value", ""]]];
  for (let n = 1; n <= 12; n++) months.push(["option", ["value", n], name(n)]);
  return build([
    "div",
    ["class", Class.FIELD, "role", "group", "aria-labelledby", id, Attr.FIELD, "birthday"],
    ["p", ["id", id], title],
    ["label", ["for", id + "-day"], day],
    ["input", ["id", id + "-day", "inputmode", "numeric", "maxlength", 2, "autocomplete", "bday-day"]],
    ["label", ["for", id + "-month"], month],
    ["select", ["id", id + "-month", "autocomplete", "bday-month"], ...months],
  ]);
}

// After a box changed, or a contact field: the birthday field is in the form only while a
// purpose that asks for it is ticked, and empty when it leaves (R8); a ticked channel whose
// contact field is empty gets its hint, in a role="status" element (R9).
function refresh(form, m) {
  const asking = [...m.boxes].filter(([box]) => box.checked && box.closest(`[${Attr.FIELD}=birthday]`));
  // Built when first asked for: Intl's first use costs tens of ms that the first render
  // should not wait for. "--": no purpose id (a slug) makes that id, so it cannot clash.
  if (asking.length && m.birthdayWords) m.birthday ||= birthdayField(m.prefix + "--birthday", m.birthdayWords, m.locale);
  const field = m.birthday;
  if (field && asking.length && !field.isConnected) {
    // Under the choice, after its hint.
    const row = asking[0][0].closest(`[${Attr.PURPOSE}]`);
    (row.nextElementSibling?.matches(`[${Attr.HINT_FOR}]`) ? row.nextElementSibling : row).after(field);
  }
  if (field && !asking.length && field.isConnected) {
    field.remove();
    for (const control of field.querySelectorAll("input, select")) control.value = "";
  }
  for (const hint of m.fieldset.querySelectorAll(`[${Attr.HINT_FOR}]`)) {
    const box = [...m.boxes].find(([, purpose]) => purpose == hint.getAttribute(Attr.HINT_FOR))?.[0];
    const kind = hint.getAttribute(Attr.CONTACT);
    const text = box?.checked && !fieldValue(form, m.contact[kind], kind == "post") ? hint.getAttribute(Attr.HINT_TEXT) : "";
    if (hint.textContent != text) hint.textContent = text;
  }
}

// Controls of the form (inside it, or bound to it by a `form` attribute) named like the
// widget's that are not the widget's own: they would send consent the shopper never gave.
const fakeBoxes = (form, m) =>
  [...form.elements].filter((el) => el.name?.startsWith(Attr.INPUT_NAME_PREFIX) && !m.boxes.has(el) && el != m.record && !el.disabled);

function mountWithin(node) {
  if (node.nodeType != Node.ELEMENT_NODE) return;
  if (node.matches(FORM)) mountForm(node);
  for (const form of node.querySelectorAll(FORM)) mountForm(form);
}

function onMutations(records) {
  let removed = false;
  for (const record of records) {
    removed ||= record.removedNodes.length > 0;
    if (record.type == "attributes") mountWithin(record.target);
    else record.addedNodes.forEach(mountWithin);
  }
  // Forms a single-page shop took out of the page: forget them and their choices, so a form
  // put back later gets one fresh rendering. A form whose choices a morphing library took
  // out gets them again.
  if (removed) {
    for (const [form, m] of mounted) {
      if (form.isConnected && m.fieldset.isConnected) continue;
      m.observer.disconnect();
      m.fieldset.remove();
      unmount(m.handle);
      mounted.delete(form);
      if (form.isConnected) mountForm(form);
    }
  }
}

// The mounted form and purpose of one of the widget's own boxes (a page checkbox with the
// same name is not one).
function boxOf(target) {
  const m = mounted.get(target.form);
  const purpose = m?.boxes.get(target);
  return purpose ? [m, purpose] : [];
}

// A checkbox changes only through its activation, which starts with a click (a pointer, a
// label, the space bar). A script's `box.click()` sends an untrusted click but the browser's
// own, trusted, change event (HTML, "activation behavior"): so the click tells.
// A click on a box's label is passed on to the box (HTML "label activation behavior").
// Whether the passed-on click is marked trusted when a script clicked the label is up to
// the browser, so the label's own click is what tells, and the click passed on keeps it.
// Only the widget's own label counts: a page's label for the box ("Apply coupon") is not the
// shopper choosing this purpose. A click is forgotten once its task is over, so that a
// cancelled one cannot lend its trust to a later scripted change.
function onClick(event) {
  const box = event.target;
  const label = box.closest?.("label");
  const [m] = boxOf(label?.control || {});
  if (m && label.control != box) {
    lastClick = { box: label.control, trusted: event.isTrusted && m.fieldset.contains(label), viaLabel: true };
  } else if (boxOf(box)[0] && !(lastClick?.box == box && lastClick.viaLabel)) {
    lastClick = { box, trusted: event.isTrusted };
  } else if (lastClick?.box == box) {
    lastClick.viaLabel = false;
  }
  const click = lastClick;
  setTimeout(() => lastClick == click && (lastClick = undefined));
}

// Only the shopper's own input can make a tick count (R1): a change is the shopper's when it
// and the click that caused it are trusted. A script that sets `checked` sends no event at
// all, and a script's `dispatchEvent` is untrusted.
function onChange(event) {
  const box = event.target;
  const [m, purpose] = boxOf(box);
  if (!m) {
    // Maybe a contact field (of a form, or bound to none): a hint may go.
    for (const [f, other] of mounted) refresh(f, other);
    return;
  }
  const { form } = box;
  const trusted = event.isTrusted && lastClick?.box == box && lastClick.trusted;
  lastClick = undefined;
  if (!trusted && box.checked && m.byShopper.has(purpose)) return;
  watchGating(form, m, boxesOf(m).some((b) => (b == box ? !b.checked : b.checked)));
  // A tick counts when it is the shopper's, of a box they can see, next to the text the
  // widget showed (R1).
  const unseen = trusted && box.checked && hidden(box);
  // A box moved out of its row sits next to another purpose's words.
  const moved = box.closest(`[${Attr.PURPOSE}]`)?.getAttribute(Attr.PURPOSE) != purpose;
  const discounted = trusted && box.checked && (unseen || moved || m.tampered.has(purpose));
  if (trusted && box.checked && !discounted) m.byShopper.add(purpose);
  else m.byShopper.delete(purpose);
  // The shopper's own tick that cannot count, reported already under its own kind.
  if (discounted) m.discounted.add(purpose);
  else m.discounted.delete(purpose);
  if (unseen) violation(form, "hidden-box", purpose, m.kind);
  if (moved && discounted) violation(form, "box-changed", purpose, m.kind);
  if (!trusted) {
    // A script's change event (jQuery's trigger("change"), a validation library touching
    // every field) changes nothing by itself: the shopper's own tick stands, and a tick that
    // is not the shopper's is undone.
    if (box.checked) {
      box.checked = false;
      violation(form, "untrusted-tick", purpose, m.kind);
    }
  }
  refresh(form, m);
  dispatch(form, "unticked:change", { purpose, checked: box.checked, trusted });
}

// The value of a contact field of this form, found by its selector (an id alone will do):
// inside the form, or outside it but bound to it by its `form` attribute; never another
// form's field. For a postal address (`all`) every field the selector finds, joined.
function fieldValue(form, selector, all) {
  try {
    let fields = selector ? [...form.querySelectorAll(selector)] : [];
    if (!fields.length && selector) fields = [...document.querySelectorAll(selector)].filter((f) => f.form == form || !f.form);
    return fields
      .slice(0, all ? 9 : 1)
      .map((field) => field.value?.trim())
      .filter(Boolean)
      .join(", ");
  } catch {
    return ""; // a selector the browser rejects: the linter's business, not the shopper's
  }
}

// The submit of a form with choices: capture the record now, synchronously, and hand it to
// the courier. Reads only: never cancels, never delays (R3).
function onSubmit(event) {
  const form = event.target;
  const m = mounted.get(form);
  if (!m) return;
  // A shop that sends the form with fetch may submit it again: a new event, a new record.
  // The first submit keeps the id made at mount, which the form already carries.
  if (m.submitted) m.record.value = newRecordId();
  m.submitted = true;
  // The page's look-alike consent inputs stay out of this submit (the form data is built
  // right after the submit event), and are back as they were afterwards.
  const fakes = fakeBoxes(form, m);
  if (fakes.length) {
    for (const fake of fakes) fake.disabled = true;
    setTimeout(() => fakes.forEach((fake) => (fake.disabled = false)));
    violation(form, "fake-box", undefined, m.kind);
  }
  const ticked = [];
  for (const [box, purpose] of m.boxes) {
    if (box.checked) ticked.push(purpose);
  }
  const id = m.record.value;
  const answer = capture(
    m.handle,
    id,
    ticked.join(" "),
    [...m.byShopper].join(" "),
    fieldValue(form, m.contact.email),
    fieldValue(form, m.contact.phone),
    fieldValue(form, m.contact.post, true),
    ...(m.birthday?.isConnected ? [...m.birthday.querySelectorAll("input, select")].map((c) => c.value) : ["", ""]),
    location.origin,
    location.pathname,
    Date.now(),
    random(80),
  );
  if (!answer) return;
  const captured = JSON.parse(answer);
  // Ticks that were not the shopper's leave the form data too, not only the record.
  for (const purpose of captured.untrusted) {
    for (const [box, p] of m.boxes) if (p == purpose) box.checked = false;
    if (!m.discounted.has(purpose)) violation(form, "untrusted-tick", purpose, m.kind);
  }
  post(form, id, endpoint, captured.sealable);
  watchCancel(event, form, m, !ticked.some((p) => m.byShopper.has(p)));
}

async function start() {
  if (window[STARTED]) return violation(document, "loaded-twice");
  window[STARTED] = true;
  // The config loads while the wasm compiles. Handled now, so that a failure which comes
  // first is not reported to the page as an unhandled rejection; it is awaited below.
  const text = configText();
  text.catch(() => {});
  ready = load();
  // The words of the page's language load with the wasm and the config; another language a
  // form needs is fetched when it mounts.
  const guess = document.documentElement.lang.split("-")[0].toLowerCase();
  if (LANGUAGES.includes(guess)) loadWords(guess).catch(() => {});
  try {
    await ready;
  } catch (e) {
    throw new Failure("start", "could not start; the forms work without it: " + e);
  }
  // An insecure context (plain http) has no WebCrypto: no record could be signed, so no
  // choices are shown rather than consent that could never be proven (Art. 7(1)).
  if (!crypto.subtle) throw new Failure("no-webcrypto", "WebCrypto is unavailable (the page is not served over https), so consent could not be recorded; no choices are shown");
  const config = await text;
  const answer = JSON.parse(configure(config, await sha256Hex(config)));
  if (answer.code) throw new Failure(answer.code, answer.message);
  endpoint = new URL(answer.endpoint, location.href).href;
  reportTo(endpoint);
  // The window's capture phase: these run before the shop's own handlers (except any on the
  // window registered earlier), whatever they stop or cancel, and they only read.
  addEventListener("click", guarded(onClick), true);
  addEventListener("change", guarded(onChange), true);
  addEventListener("submit", guarded(onSubmit), true);
  const root = document.documentElement;
  new MutationObserver(guarded(onMutations)).observe(root, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: [Attr.FORM_KIND],
  });
  mountWithin(root);
  prepare();
  drain();
}

start().catch((e) => (e instanceof Failure ? fail(e.code, e.message) : fail("start", "could not start; the forms work without it: " + e)));

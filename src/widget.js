// The widget's DOM edge (bundled with the wasm's glue to www/pkg/forms.js), which the
// entry (./entry.js, www/pkg/unticked.js) loads once the page has a `form[data-unticked]`
// (other than the shop's account form, `data-unticked="preferences"`: ./account.js's):
//
//   <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//
// It finds the config, loads what `unticked build` compiled from it (pkg/c/<sha256 of the
// config's text>/: site.json and a sheet per form kind and locale), watches for
// `form[data-unticked]`, builds the choices the wasm reads from the sheet, notes which ticks
// were the shopper's own, and at submit hands the wasm what the form holds and the courier
// what the wasm captured. It decides nothing about consent: what a form shows, what counts
// as given (R1) and the record's bytes are the wasm's (crates/core, shared with the linter
// and the collector).
//
// Whatever fails, the page's forms work exactly as if the widget were absent: it logs one
// console error that names the problem, dispatches `unticked:error` on the document, and
// never throws into the page, never cancels or delays a submit (R3).
import init, { Site, Form } from "unticked-wasm";
import { Failure, build, fromSheet } from "./tree.js";
import { configText } from "./config.js";
import { sha256Hex, random, hex } from "./bytes.js";
import { violation, reportTo, hidden, watchFieldset, watchGating, watchCancel } from "./guards.js";
import { Attr, Class, Kind } from "./names.ts";

// The public contract (DESIGN.md), named once in crates/core (view::attr, view::class) and
// generated into ./names.ts.
const FORM = `form[${Attr.FORM_KIND}]`;
const ROOT = `fieldset.${Class.ROOT}`;
const SLOT = `[${Attr.SLOT}]`;
const SUBMIT = "button[type=submit], input[type=submit], button:not([type])";

// form → { form (the wasm's), view (locale, contact selectors, birthday words), kind, prefix
//          (of its ids), fieldset, record (the hidden input), birthday (the field, built
//          when first asked for), boxes (box → purpose), byShopper (purposes the shopper's
//          own last input left ticked), texts (purpose → the text shown), tampered
//          (purposes whose text a script changed), discounted (the shopper's own ticks that
//          cannot count: hidden box, changed text), raw (what a raw capture needs), observer,
//          submitted }
const mounted = new Map();
// Forms whose sheet is loading.
const mounting = new Set();
// sheet URL → the promise of its text
const sheets = new Map();
const warnedKinds = new Set();
// The last click on one of the widget's boxes, and whether it was the shopper's.
let lastClick;
let prefixes = 0;
// Set by start(): the compiled config's site, where it lives, the config's hash, the
// endpoint, and the courier (./courier.js, owned by the entry).
let site;
let compiledAt;
let configSha256;
let endpoint;
let courier;

const dispatch = (target, name, detail) => target.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));

function fail({ code, message }) {
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

// A record id: a UUIDv7 (RFC 9562 §5.7), 48 bits of Unix milliseconds then random bits, so
// ids sort by time. The collector checks its form (record::open).
function newRecordId() {
  const bytes = random(16);
  for (let i = 5, t = Date.now(); i >= 0; i--, t = Math.floor(t / 256)) bytes[i] = t % 256;
  bytes[6] = 0x70 | (bytes[6] & 15);
  bytes[8] = 0x80 | (bytes[8] & 63);
  return hex(bytes).replace(/(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
}

// A compiled file's text (cached per URL for the page): a name in this config's directory,
// or the absolute URL of a raw capture's sheet. Missing means the config was
// never built, or changed since: the site owner runs `unticked build` (or restarts
// `unticked serve`).
function compiled(name) {
  const url = new URL(name, compiledAt).href;
  if (!sheets.has(url)) {
    const loading = fetch(url).then(async (response) => {
      if (response.status == 404) {
        throw new Failure(
          "compiled-missing",
          `${url} does not exist: this config (sha256 ${configSha256}) was not compiled; run \`unticked build consent.json --out <the widget's pkg directory>\` (\`unticked serve\` does it at start)`,
        );
      }
      if (!response.ok) throw new Failure("compiled-unreachable", `could not load ${url}: HTTP ${response.status}`);
      return response.text();
    });
    sheets.set(url, loading);
    loading.catch(() => sheets.delete(url));
  }
  return sheets.get(url).then((text) => [url, text]);
}

// A failure of the wasm (a `Failure` it threw, or a trap) as this module's.
const fromWasm = (e, what) => (e instanceof Error && !e.code ? new Failure("internal", `${what}: ${e}`) : new Failure(e.code, e.message));

// An id prefix no element on the page uses yet, so ids stay unique with several forms.
function uniquePrefix() {
  let prefix;
  do prefix = "unticked-" + ++prefixes;
  while (document.getElementById(prefix + "-intro"));
  return prefix;
}

function mountForm(form) {
  const kind = form.getAttribute(Attr.FORM_KIND);
  // The account form (`data-unticked="preferences"`) is ./account.js's, never this module's.
  if (mounted.has(form) || mounting.has(form) || kind == Kind.PREFERENCES) return;
  // Choices this widget does not own: a copy made by cloneNode (page snapshots, SPA
  // templates) or left in a form that was taken out and put back. Their ids belong to
  // another form and their boxes to nobody; they make way for a fresh rendering.
  for (const stale of form.querySelectorAll(ROOT)) stale.remove();
  // The form's language is what the shop chose to show; then the browser's own.
  const lang = form.closest("[lang]")?.getAttribute("lang").trim() || "";
  let choice;
  try {
    choice = JSON.parse(site.choose(kind, [lang, ...navigator.languages].join(" ")));
  } catch (e) {
    if (e.code != "form-unknown") return fail(fromWasm(e, "choose"));
    if (!warnedKinds.has(kind)) console.warn("unticked: " + e.message);
    warnedKinds.add(kind);
    return;
  }
  mounting.add(form);
  compiled(choice.sheet)
    .then(([url, text]) => {
      mounting.delete(form);
      if (!form.isConnected || mounted.has(form)) return;
      const placement = { configSha256, kind, locale: choice.locale, pageLang: lang };
      let wasmForm;
      try {
        wasmForm = Form.mount(text, JSON.stringify(placement));
      } catch (e) {
        throw fromWasm(e, "mount");
      }
      try {
        render(form, wasmForm, JSON.parse(text).tree, { sheet: url, placement });
      } catch (e) {
        wasmForm.free();
        throw e;
      }
    })
    .catch((e) => {
      mounting.delete(form);
      fail(e instanceof Failure ? e : new Failure("internal", String(e)));
    });
}

function render(form, wasmForm, tree, raw) {
  const { kind } = raw.placement;
  const view = JSON.parse(wasmForm.view);
  const prefix = uniquePrefix();
  const fieldset = fromSheet(tree, prefix, raw.sheet);
  if (!view.lang) fieldset.removeAttribute("lang");
  // Each row says exactly the text the sheet gives its purpose, which the record hashes; a
  // script that changes it afterwards makes ticks of that choice worthless as proof.
  const texts = new Map();
  const rows = fieldset.querySelectorAll(`[${Attr.PURPOSE}]`);
  const invalid = (what) => new Failure("compiled-invalid", `${raw.sheet}: ${what}; run \`unticked build\` again`);
  if (fieldset.tagName != "FIELDSET" || rows.length != view.purposes.length) throw invalid("its rows are not its purposes");
  view.purposes.forEach(({ id, text }, i) => {
    const row = rows[i];
    const boxes = row.querySelectorAll("input");
    if (row.getAttribute(Attr.PURPOSE) != id || row.textContent != text || boxes.length != 1 || boxes[0].name != Attr.INPUT_NAME_PREFIX + id) {
      throw invalid(`the row of "${id}" is not what its purpose says`);
    }
    texts.set(id, text);
  });
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
  const m = {
    form: wasmForm,
    raw,
    locale: view.locale,
    contact: view.contact,
    birthdayWords: view.birthday,
    birthday: undefined,
    prefix,
    kind,
    fieldset,
    record,
    texts,
    boxes,
    byShopper: new Set(),
    discounted: new Set(),
    tampered: new Set(),
    submitted: false,
  };
  m.observer = watchFieldset(m, form, (purpose) => {
    if (m.tampered.has(purpose)) return;
    m.tampered.add(purpose);
    m.byShopper.delete(purpose);
    violation(form, "text-changed", purpose, kind);
  });
  mounted.set(form, m);
  if (fakeBoxes(form, m).length) violation(form, "fake-box", undefined, kind);
  const idle = window.requestIdleCallback || ((f) => setTimeout(f, 200));
  idle(() => mounted.get(form) == m && warm(form, m));
}

const boxesOf = (m) => [...m.boxes.keys()];

// The birthday field (R8: Art. 5(1)(c)), in the form only while a purpose that asks for it
// is ticked: day and month, no year, the months named by the browser (Intl) in the shopper's
// language. Its controls have no name: the value never goes to the shop with the form, only
// beside the record to the collector.
function birthdayField(id, { title, day, month }, locale) {
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
      m.form.free();
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

// What the form holds now, as Form.capture reads it: values only (no layout is read: what is
// visible was decided as the shopper ticked).
function hold(form, m, id) {
  const ticked = [];
  for (const [box, purpose] of m.boxes) {
    if (box.checked) ticked.push(purpose);
  }
  const [birthdayDay, birthdayMonth] = m.birthday?.isConnected ? [...m.birthday.querySelectorAll("input, select")].map((c) => c.value) : ["", ""];
  return {
    id,
    ticked,
    byShopper: [...m.byShopper],
    email: fieldValue(form, m.contact.email),
    phone: fieldValue(form, m.contact.phone),
    post: fieldValue(form, m.contact.post, true),
    birthdayDay,
    birthdayMonth,
    origin: location.origin,
    path: location.pathname,
    now: Date.now(),
  };
}

// Once the choices are shown and the page is idle, the submit path runs once on what the form
// holds and its answer is dropped: the browser compiles JavaScript and wasm functions on
// their first call (about 3 ms on a 2-core machine), which the shopper's submit should not
// wait for. It posts nothing and changes nothing; should it fail, the real submit fails the
// same way and is reported then.
function warm(form, m) {
  try {
    m.form.capture(JSON.stringify(hold(form, m, m.record.value)), random(80));
  } catch {
    // Reported by the submit that meets it.
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
  const id = m.record.value;
  const held = hold(form, m, id);
  const { ticked } = held;
  let captured;
  try {
    captured = JSON.parse(m.form.capture(JSON.stringify(held), random(80)));
  } catch (e) {
    // Never dropped: what the form held waits in the outbox, raw, for a widget that can
    // build its record, and the site owner is told.
    courier.keepRaw(id, endpoint, { ...m.raw, held });
    const failure = fromWasm(e, "capture");
    return fail({ code: failure.code, message: `could not capture record ${id} (${failure.message}); what the form held is kept in the outbox` });
  }
  // Ticks that were not the shopper's leave the form data too, not only the record.
  for (const purpose of captured.untrusted) {
    for (const [box, p] of m.boxes) if (p == purpose) box.checked = false;
    if (!m.discounted.has(purpose)) violation(form, "untrusted-tick", purpose, m.kind);
  }
  courier.post(form, id, endpoint, captured.sealable);
  watchCancel(event, form, m, !ticked.some((p) => m.byShopper.has(p)));
}

// Builds a raw capture kept in the outbox (`keepRaw`), when this widget can.
async function buildRaw({ sheet, placement, held }) {
  const [, text] = await compiled(sheet);
  const form = Form.mount(text, JSON.stringify(placement));
  try {
    return JSON.parse(form.capture(JSON.stringify(held), random(80))).sealable;
  } finally {
    form.free();
  }
}

// Started by the entry (./entry.js) with its courier, once the page has a form.
export async function start(entryCourier) {
  courier = entryCourier;
  try {
    await run();
  } catch (e) {
    fail(e instanceof Failure ? e : new Failure("start", "could not start; the forms work without it: " + e));
  }
}

async function run() {
  // The config loads while the wasm compiles. Handled now, so that a failure which comes
  // first is not reported to the page as an unhandled rejection; it is awaited below.
  const text = configText();
  text.catch(() => {});
  // The wasm compiles while the config, its hash and the compiled site load.
  const ready = init({ module_or_path: new URL("unticked_bg.wasm", import.meta.url) });
  ready.catch(() => {});
  // An insecure context (plain http) has no WebCrypto: no record could be signed, so no
  // choices are shown rather than consent that could never be proven (Art. 7(1)).
  if (!crypto.subtle) throw new Failure("no-webcrypto", "WebCrypto is unavailable (the page is not served over https), so consent could not be recorded; no choices are shown");
  const config = await text;
  configSha256 = await sha256Hex(config);
  compiledAt = new URL(`c/${configSha256}/`, import.meta.url);
  const siteFile = compiled("site.json");
  siteFile.catch(() => {});
  try {
    await ready;
  } catch (e) {
    throw new Failure("start", "could not start; the forms work without it: " + e);
  }
  const [, siteText] = await siteFile;
  try {
    site = Site.open(siteText, configSha256);
  } catch (e) {
    throw fromWasm(e, "open");
  }
  endpoint = new URL(site.endpoint, location.href).href;
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
  courier.prepare();
  courier.rebuild(buildRaw);
}

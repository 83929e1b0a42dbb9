// The shop's account form (bundled to www/pkg/account.js), which the entry (./entry.js)
// loads once the page has a `form[data-unticked="preferences"]`:
//
//   <form data-unticked="preferences" data-unticked-token="TOKEN"></form>
//
// TOKEN is what the shop's backend minted for its logged-in customer (docs/account-form.md).
// The form shows every purpose of the config, each box ticked exactly where the customer's
// consent stands now (`POST /v1/account/state`); a purpose whose consent is outdated or
// expired is asked again, unticked, with its current words (R11). A change of a box is the
// customer's choice (no save button: unticking is the withdrawal, R7); the collector drafts
// the record of what it changes (`POST /v1/account/draft`), and the courier signs it with
// this browser's own key and delivers it through the outbox, like a checkout's record.
//
// It loads no wasm: what a change records is decided by the collector from the standing
// (crates/collector/src/lifecycle.rs), which also renders the rows this module checks and
// builds (./tree.js, shared with ./widget.js). Whatever fails, the page stays as it was:
// one console error, and `unticked:error` on the form.
import { sha256Hex } from "./bytes.js";
import { configText } from "./config.js";
import { violation, reportTo, hidden } from "./guards.js";
import { Attr, Class, Kind } from "./names.ts";
import { Failure, build, fromSheet } from "./tree.js";

const FORM = `form[${Attr.FORM_KIND}="${Kind.PREFERENCES}"]`;
const ROOT = `fieldset.${Class.ROOT}`;
const ROW = `[${Attr.PURPOSE}]`;
const SLOT = `[${Attr.SLOT}]`;
const SUBMIT = "button[type=submit], input[type=submit], button:not([type])";
// The widget's version (Cargo.toml's), which each record names: build.sh defines it when it
// bundles this module (esbuild --define), as the wasm's own build takes it from Cargo.
const VERSION = UNTICKED_VERSION;
// States in which a purpose is asked again (R11), each with its words beside the row.
const ASKED_AGAIN = ["outdated", "expired"];

// form → { locale, prefix (of its ids), fieldset, status (the role="status" line), boxes
//          (box → purpose), texts (purpose → [its row, the row's words]), wanted (box →
//          ticked, as the customer's own input or the standing left it), notes (purpose →
//          its "asked again" line), purposes and words (the last state answer), busy (a
//          change on its way), again (another change waits) }
const mounted = new Map();
const mounting = new Set();
// Set by start(): the records endpoint (the account API is beside it), the config's
// locales, the courier (./courier.js, owned by the entry).
let endpoint;
let locales;
let courier;
// The last click on one of the account form's boxes, and whether it was the customer's.
let lastClick;
let prefixes = 0;

function fail(target, e) {
  const { code, message } = e instanceof Failure ? e : new Failure("internal", String(e));
  console.error("unticked: " + message);
  target.dispatchEvent(new CustomEvent("unticked:error", { bubbles: true, detail: { code, message } }));
}

const guarded =
  (handler) =>
  (...args) => {
    try {
      handler(...args);
    } catch (e) {
      console.error("unticked: internal error; the account form works without the widget:", e);
    }
  };

// A call of the account API (beside the records endpoint: `/v1/records` →
// `/v1/account/state`), without cookies: the token is the only credential. Its answer, or
// a Failure that names the status and the collector's code, never the token.
async function call(path, body) {
  const url = new URL("account/" + path, endpoint).href;
  let response;
  try {
    response = await fetch(url, { method: "POST", body: JSON.stringify(body), credentials: "omit", headers: { "content-type": "application/json" } });
  } catch (e) {
    throw new Failure("account-unreachable", `could not reach ${url}: ${e}`);
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    const why = `${url} answered HTTP ${response.status}` + (answer.code ? ` ${answer.code}: ${answer.message}` : "");
    throw new Failure(response.status < 500 && response.status != 429 ? "account-refused" : "account-unreachable", why);
  }
  return response.json();
}

// The token the shop put on the form now: read at each call, so that a shop whose page
// stays open may put a fresh one there.
function tokenOf(form) {
  const token = form.getAttribute(Attr.TOKEN)?.trim();
  if (!token) throw new Failure("token-missing", `the account form has no ${Attr.TOKEN}: its backend mints one for the logged-in customer (docs/account-form.md)`);
  return token;
}

// Where the form's customer stands, with the preferences sheet in `locale`.
async function stateOf(form, locale) {
  return call("state", { token: tokenOf(form), locale });
}

// The language to ask for: the form's (or the page's) `lang`, else the browser's, the first
// that names a locale of the config; "" lets the collector take the customer's latest.
function language(form) {
  const primary = (tag) => tag.toLowerCase().split("-")[0];
  const asked = [form.closest("[lang]")?.getAttribute("lang").trim() || "", ...navigator.languages];
  return asked.find((tag) => tag && locales.some((l) => primary(l) == primary(tag))) || "";
}

// An id prefix no element on the page uses yet, so ids stay unique beside other forms.
function uniquePrefix() {
  let prefix;
  do prefix = "unticked-account-" + ++prefixes;
  while (document.getElementById(prefix + "-intro"));
  return prefix;
}

async function mount(form) {
  if (mounted.has(form) || mounting.has(form)) return;
  mounting.add(form);
  try {
    const answer = await stateOf(form, language(form));
    if (form.isConnected && !mounted.has(form)) render(form, answer);
  } catch (e) {
    fail(form, e);
  }
  mounting.delete(form);
}

// The state answer's sheet as the form's choices, checked as ./widget.js checks a sheet:
// each row holds exactly its purpose's words and one box named after it.
function render(form, answer) {
  const { sheet, locale, purposes } = answer;
  const where = `the account state's preferences sheet (${locale})`;
  const invalid = (what) => new Failure("compiled-invalid", `${where}: ${what}`);
  if (sheet?.form != Kind.PREFERENCES || !Array.isArray(sheet.purposes)) throw invalid("it is not the preferences form's");
  const prefix = uniquePrefix();
  const fieldset = fromSheet(sheet.tree, prefix, where);
  const rows = fieldset.querySelectorAll(ROW);
  if (fieldset.tagName != "FIELDSET" || rows.length != sheet.purposes.length) throw invalid("its rows are not its purposes");
  const boxes = new Map();
  const texts = new Map();
  sheet.purposes.forEach(({ id, text }, i) => {
    const row = rows[i];
    const inputs = row.querySelectorAll("input");
    if (row.getAttribute(Attr.PURPOSE) != id || row.textContent != text || inputs.length != 1 || inputs[0].name != Attr.INPUT_NAME_PREFIX + id || !purposes?.[id]) {
      throw invalid(`the row of "${id}" is not what its purpose says`);
    }
    boxes.set(inputs[0], id);
    texts.set(id, [row, text]);
  });
  // Where "saved" is said once a change is recorded, after the rows.
  const status = build(["p", ["class", Class.HINT, "role", "status"]]);
  rows[rows.length - 1]?.after(status);
  // Choices this module does not own (a copy made by cloneNode, a form put back) make way.
  for (const stale of form.querySelectorAll(ROOT)) stale.remove();
  const slot = form.querySelector(SLOT);
  const submit = form.querySelector(SUBMIT);
  if (slot) slot.append(fieldset);
  else if (submit) submit.before(fieldset);
  else form.append(fieldset);
  const a = { locale, prefix, fieldset, status, boxes, texts, wanted: new Map(), notes: new Map(), busy: false, again: false };
  mounted.set(form, a);
  show(a, answer);
}

// Each box as the consent stands (ticked where it is given; R11: a purpose asked again is
// unticked, with why under its row), and what the customer's input starts from.
function show(a, { purposes, words }) {
  a.purposes = purposes;
  a.words = words;
  for (const [box, id] of a.boxes) {
    const state = purposes[id]?.state;
    box.checked = state == "given";
    a.wanted.set(box, box.checked);
    const again = ASKED_AGAIN.includes(state);
    let note = a.notes.get(id);
    if (again) {
      note ||= build(["p", ["class", Class.HINT, "id", `${a.prefix}-${id}-again`]]);
      note.textContent = words?.[state] || "";
      a.notes.set(id, note);
      a.texts.get(id)[0].after(note);
    } else note?.remove();
    // The box is described by its words and, while it is asked again, by why.
    const described = (box.getAttribute("aria-describedby") || "").split(" ").filter((d) => d && d != note?.id);
    if (again) described.push(note.id);
    box.setAttribute("aria-describedby", described.join(" "));
  }
}

// The customer's boxes as they left them, for the collector to draft from; a box a script
// changed since is put back first (R1: a page script's tick is not consent).
function ticked(form, a) {
  const out = {};
  for (const [box, id] of a.boxes) {
    if (box.checked != a.wanted.get(box)) {
      if (box.checked) violation(form, "untrusted-tick", id, Kind.PREFERENCES);
      box.checked = a.wanted.get(box);
    }
    out[id] = box.checked;
  }
  return out;
}

// Resolves once the endpoint has acknowledged record `id` (the courier tells the form).
function recorded(form, id) {
  return new Promise((resolve) => {
    const listener = (event) => {
      if (event.detail?.id != id) return;
      form.removeEventListener("unticked:recorded", listener);
      resolve();
    };
    form.addEventListener("unticked:recorded", listener);
  });
}

// Records what the customer's boxes change, one draft at a time: a change made while one is
// on its way is drafted once it is recorded, from the standing that includes it. Then the
// boxes show where consent stands; on a failure, where it stands (or stood). A record the
// endpoint has not acknowledged yet waits in the outbox, and later changes wait for it.
async function settle(form, a) {
  if (a.busy) return void (a.again = true);
  a.busy = true;
  try {
    do {
      a.again = false;
      a.status.textContent = "";
      const page = { origin: location.origin, path: location.pathname };
      const { capture } = await call("draft", { token: tokenOf(form), locale: a.locale, ticked: ticked(form, a), page, widget: VERSION });
      if (capture) {
        const delivered = recorded(form, capture.id);
        courier.post(form, capture.id, endpoint, capture);
        await delivered;
        a.status.textContent = a.words?.saved || "";
      }
      // A change the customer made meanwhile is drafted first; the boxes would show it undone.
      const answer = await stateOf(form, a.locale);
      if (!a.again) show(a, answer);
    } while (a.again);
  } catch (e) {
    fail(form, e);
    // Where consent stands now, if the collector says; else where it stood.
    show(a, await stateOf(form, a.locale).catch(() => a));
  }
  a.busy = false;
}

// A box changes only through its activation, which starts with a click (a pointer, a label,
// the space bar); a script's `box.click()` sends an untrusted click and then a trusted
// change, so the click tells (as in ./widget.js). A click on the form's own label is passed
// on to its box; the label's click is what tells.
function onClick(event) {
  const target = event.target;
  const label = target.closest?.("label");
  const control = label?.control;
  const a = mounted.get(control?.form);
  if (a?.boxes.has(control) && control != target) {
    lastClick = { box: control, trusted: event.isTrusted && a.fieldset.contains(label), viaLabel: true };
  } else if (mounted.get(target.form)?.boxes.has(target) && !(lastClick?.box == target && lastClick.viaLabel)) {
    lastClick = { box: target, trusted: event.isTrusted };
  } else if (lastClick?.box == target) {
    lastClick.viaLabel = false;
  }
  const click = lastClick;
  setTimeout(() => lastClick == click && (lastClick = undefined));
}

// Only the customer's own input changes where their consent stands (R1). Unticking always
// counts; a tick counts when the box is visible, in its row, beside the words it was shown
// with. Anything else is put back.
function onChange(event) {
  const box = event.target;
  const a = mounted.get(box.form);
  const purpose = a?.boxes.get(box);
  if (!purpose) return;
  const form = box.form;
  const trusted = event.isTrusted && lastClick?.box == box && lastClick.trusted;
  lastClick = undefined;
  let kind;
  if (!trusted) kind = box.checked && box.checked != a.wanted.get(box) && "untrusted-tick";
  else if (box.checked && hidden(box)) kind = "hidden-box";
  else if (box.checked && box.closest(ROW)?.getAttribute(Attr.PURPOSE) != purpose) kind = "box-changed";
  else if (box.checked && box.closest(ROW).textContent != a.texts.get(purpose)[1]) kind = "text-changed";
  if (!trusted || kind) {
    box.checked = a.wanted.get(box);
    if (kind) violation(form, kind, purpose, Kind.PREFERENCES);
    return;
  }
  a.wanted.set(box, box.checked);
  form.dispatchEvent(new CustomEvent("unticked:change", { bubbles: true, detail: { purpose, checked: box.checked, trusted } }));
  settle(form, a);
}

function mountWithin(node) {
  if (node.nodeType != Node.ELEMENT_NODE) return;
  if (node.matches(FORM)) mount(node);
  for (const form of node.querySelectorAll(FORM)) mount(form);
}

function onMutations(records) {
  for (const record of records) {
    if (record.type == "attributes") mountWithin(record.target);
    else record.addedNodes.forEach(mountWithin);
  }
  // A form taken out of the page is forgotten; one whose choices were taken out gets them
  // again.
  for (const [form, a] of mounted) {
    if (form.isConnected && a.fieldset.isConnected) continue;
    a.fieldset.remove();
    mounted.delete(form);
    if (form.isConnected) mount(form);
  }
}

// The compiled site (what `unticked build` made of this config): where records go, and the
// config's locales.
async function openSite() {
  const text = await configText();
  const sha256 = await sha256Hex(text);
  const url = new URL(`c/${sha256}/site.json`, import.meta.url).href;
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Failure("compiled-unreachable", `could not load ${url}: ${e}`);
  }
  if (response.status == 404) {
    throw new Failure("compiled-missing", `${url} does not exist: this config (sha256 ${sha256}) was not compiled; run \`unticked build\``);
  }
  if (!response.ok) throw new Failure("compiled-unreachable", `could not load ${url}: HTTP ${response.status}`);
  const site = await response.json().catch(() => ({}));
  if (site.format != 1 || site.config_sha256 != sha256 || typeof site.endpoint != "string" || !Array.isArray(site.locales)) {
    throw new Failure("compiled-invalid", `${url} is not this config's compiled site; run \`unticked build\` again`);
  }
  return site;
}

// Started by the entry (./entry.js) with its courier, once the page has an account form.
export async function start(entryCourier) {
  courier = entryCourier;
  try {
    // No WebCrypto (plain http): nothing could be signed, so no choices are shown.
    if (!crypto.subtle) throw new Failure("no-webcrypto", "WebCrypto is unavailable (the page is not served over https), so a change could not be recorded; no choices are shown");
    const site = await openSite();
    endpoint = new URL(site.endpoint, location.href).href;
    locales = site.locales;
  } catch (e) {
    const forms = [...document.querySelectorAll(FORM)];
    for (const target of forms.length ? forms : [document]) fail(target, e);
    return;
  }
  reportTo(endpoint);
  addEventListener("click", guarded(onClick), true);
  addEventListener("change", guarded(onChange), true);
  const root = document.documentElement;
  new MutationObserver(guarded(onMutations)).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: [Attr.FORM_KIND, Attr.TOKEN] });
  mountWithin(root);
  courier.prepare();
}

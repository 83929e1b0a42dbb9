// Measures, in one headless Chromium run against the release collector, what a consent UI
// costs a checkout: the demo checkout with Unticked (A), the same checkout with
// vanilla-cookieconsent 3.1.0 showing its preferences modal at load (B), and with no widget
// (C), loaded interleaved (A, B, C, S, A, B, C, S, …), each load in a fresh browser context
// (cold cache, first visit). S is A with a reserved slot for the choices. Prints figures;
// asserts nothing (timings are measured, never tested).
//
//   node tools/perf.mjs path/to/unticked [loads]      (./build.sh perf; LOADS, default 30)
//
// Per page kind: DOMContentLoaded and navigation → UI in DOM (median, p90); the submit
// listener's span and trusted click → next navigation start (A vs C), with a traced look at
// what the submit dispatch spends on style and layout; layout shift until 1 s after the UI
// appeared (A vs S, and the min-height a slot needs in en, lv and pl); bytes of every
// response, raw, gzip -9 and brotli.
//
// The collector serves a copy of www/ with the fixture pages written beside the demo's, so
// every page and file comes from the real server under its real headers (its CSP included:
// no inline script or style, which is why the slot's min-height is in a stylesheet).
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import { launchBrowser, fillCheckout, ROOT } from "../tests/e2e/harness.mjs";

const binary = process.argv[2];
const loads = Number(process.argv[3] || process.env.LOADS || 30);
if (!binary || !Number.isInteger(loads) || loads < 1) {
  console.error("usage: node tools/perf.mjs path/to/unticked [loads]");
  process.exit(2);
}
// Submits each of A and C traced with devtools.timeline (where the submit's time goes), and
// loads per language of the slot check.
const TRACES = Number(process.env.TRACES || 10);
const SLOT_CHECKS = Number(process.env.SLOT_CHECKS || 5);
// The height is set by the calibration: tall enough that the submit button stays on screen
// when the choices (or the slot) push it down.
const DESKTOP = { width: 1280, height: 0 };
const MOBILE = { width: 390, height: 844 };
const LANGS = ["en", "lv", "pl"];
const TIMEOUT = 15000;
const CC_VERSION = "3.1.0";

class Failure extends Error {}

// A helper process that died under the run: nothing after it would be worth printing.
function fatal(message) {
  console.error(`\nperf: error: ${message}`);
  process.exit(1);
}

// Neither the collector nor the copy of www/ outlives the run, however it ends.
let collectorProcess;
let tempDir;
process.on("exit", () => {
  if (collectorProcess?.exitCode === null && collectorProcess.signalCode === null) collectorProcess.kill("SIGTERM");
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
});
// Node ends a run that waits on something no handle can bring (a bug here) as if it had
// succeeded: it has not.
let finished = false;
process.on("beforeExit", () => finished || fatal("the run stopped half-way with nothing left to wait for (a bug in tools/perf.mjs)"));

// ---------------------------------------------------------------------------------------
// The pages. All derive from www/checkout.html, so they change with the demo.

const WWW = path.join(ROOT, "www");
const CC_DIST = path.join(ROOT, "node_modules/vanilla-cookieconsent/dist");

// The checkout's lines that are the widget's: its stylesheet, the preloads (with their
// comments) and its script tag.
const WIDGET_LINE = /\/pkg\/|\/consent\.json|<!-- Optional: let the browser|<!-- The widget's words/;

function pages() {
  const checkout = readFileSync(path.join(WWW, "checkout.html"), "utf8");
  const index = readFileSync(path.join(WWW, "index.html"), "utf8");
  const lines = checkout.split("\n");
  const bare = lines.filter((line) => !WIDGET_LINE.test(line)).join("\n");
  const dropped = lines.length - bare.split("\n").length;
  if (dropped < 3 || /\/pkg\//.test(bare)) throw new Failure(`www/checkout.html: could not take the widget's lines out (${dropped} dropped); update WIDGET_LINE in tools/perf.mjs`);
  const replace = (html, from, to, name) => {
    if (!html.includes(from)) throw new Failure(`${name}: no ${JSON.stringify(from)} to replace; update tools/perf.mjs`);
    return html.replace(from, to);
  };
  const cc =
    `  <link rel="stylesheet" href="/vendor/cookieconsent.css">\n` +
    `  <link rel="modulepreload" href="/vendor/cookieconsent.esm.js">\n` +
    `  <script type="module" src="/vendor/cc-init.js"></script>\n</head>`;
  const slot = replace(
    replace(checkout, `href="/shop.css"`, `href="/perf-shop-slot.css"`, "www/checkout.html"),
    `<button class="buy"`,
    `<div data-unticked-slot></div>\n        <button class="buy"`,
    "www/checkout.html",
  );
  const noForm = replace(index, "</head>", `  <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>\n</head>`, "www/index.html");
  if (/<form/.test(noForm)) throw new Failure("www/index.html has a form now; the no-form page needs another source");
  return {
    "checkout-cookieconsent.html": replace(bare, "</head>", cc, "www/checkout.html"),
    "checkout-bare.html": bare,
    "checkout-slot.html": slot,
    "noform-widget.html": noForm,
  };
}

// vanilla-cookieconsent with the same choices as the checkout's config (its English label
// and description per purpose), beside its own mandatory "necessary" category, and its
// preferences modal shown as soon as it runs. hideFromBots: false, or it hides itself from
// an automated browser (navigator.webdriver).
const CC_CATEGORIES = {
  necessary: "necessary",
  email: "email-offers",
  sms: "sms-offers",
  phone: "phone-calls",
  post: "catalogue-post",
  birthday: "birthday-greetings",
  personalised: "personalised-offers",
};

function ccInit(config) {
  const text = (purpose) => {
    const found = config.purposes.find((p) => p.id == purpose);
    if (!found) throw new Failure(`www/consent.json has no purpose ${purpose}; update CC_CATEGORIES in tools/perf.mjs`);
    return { title: found.text.en.label, description: found.text.en.description };
  };
  const categories = {};
  const sections = [{ title: "Your privacy choices", description: "Choose what we may do with your data. You can change this at any time." }];
  for (const [category, purpose] of Object.entries(CC_CATEGORIES)) {
    if (category == "necessary") {
      categories.necessary = { enabled: true, readOnly: true };
      sections.push({ title: "Strictly necessary", description: "Needed for the shop to work.", linkedCategory: "necessary" });
    } else {
      categories[category] = {};
      sections.push({ ...text(purpose), linkedCategory: category });
    }
  }
  const settings = {
    autoShow: false,
    hideFromBots: false,
    categories,
    language: {
      default: "en",
      translations: {
        en: {
          consentModal: {
            title: "We use cookies",
            description: "Choose what we may do.",
            acceptAllBtn: "Accept all",
            acceptNecessaryBtn: "Reject all",
            showPreferencesBtn: "Manage preferences",
          },
          preferencesModal: {
            title: "Preferences",
            acceptAllBtn: "Accept all",
            acceptNecessaryBtn: "Reject all",
            savePreferencesBtn: "Save preferences",
            closeIconLabel: "Close",
            sections,
          },
        },
      },
    },
  };
  return (
    `// The perf fixture's vanilla-cookieconsent ${CC_VERSION} set-up (tools/perf.mjs).\n` +
    `import * as CookieConsent from "/vendor/cookieconsent.esm.js";\n` +
    `CookieConsent.run(${JSON.stringify(settings, null, 1)}).then(() => CookieConsent.showPreferences());\n`
  );
}

function prepareWww(dir) {
  if (!existsSync(path.join(WWW, "pkg/unticked.js"))) throw new Failure("www/pkg/ is missing: build the widget first (./build.sh perf does)");
  for (const file of ["cookieconsent.esm.js", "cookieconsent.css"]) {
    if (!existsSync(path.join(CC_DIST, file))) throw new Failure(`node_modules/vanilla-cookieconsent/dist/${file} is missing: run npm ci`);
  }
  const version = JSON.parse(readFileSync(path.join(CC_DIST, "../package.json"), "utf8")).version;
  if (version != CC_VERSION) throw new Failure(`vanilla-cookieconsent ${version} is installed, not ${CC_VERSION}: run npm ci`);
  const www = path.join(dir, "www");
  cpSync(WWW, www, { recursive: true });
  for (const [name, html] of Object.entries(pages())) writeFileSync(path.join(www, name), html);
  mkdirSync(path.join(www, "vendor"));
  for (const file of ["cookieconsent.esm.js", "cookieconsent.css"]) cpSync(path.join(CC_DIST, file), path.join(www, "vendor", file));
  writeFileSync(path.join(www, "vendor/cc-init.js"), ccInit(JSON.parse(readFileSync(path.join(WWW, "consent.json"), "utf8"))));
  return www;
}

// S's stylesheet: the shop's own, and the slot's rule (a stylesheet, not a style attribute:
// the collector's CSP has no 'unsafe-inline'). flow-root keeps the choices' margins inside
// the slot, so what it reserves is what they take.
function writeSlotCss(www, minHeight) {
  const rule = `[data-unticked-slot] { display: flow-root;${minHeight ? ` min-height: ${minHeight};` : ""} }`;
  writeFileSync(path.join(www, "perf-shop-slot.css"), readFileSync(path.join(www, "shop.css"), "utf8") + "\n" + rule + "\n");
  return rule;
}

// ---------------------------------------------------------------------------------------
// The collector: the release binary on a free port, serving the copy, a fresh log.

function startCollector(www, dir) {
  return new Promise((resolve, reject) => {
    const args = ["serve", "--www", www, "--config", path.join(WWW, "consent.json"), "--db", path.join(dir, "log.db"), "--addr", "127.0.0.1:0"];
    const child = (collectorProcess = spawn(binary, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    let err = "";
    let started = false;
    let stopping = false;
    const timer = setTimeout(() => reject(new Failure(`the collector did not start: ${out}${err}`)), TIMEOUT);
    child.on("error", (e) => reject(new Failure(`could not run ${binary}: ${e.message}`)));
    child.stderr.on("data", (d) => (err = (err + d).slice(-4000)));
    child.once("exit", (code, signal) => {
      if (!started) reject(new Failure(`the collector exited ${code ?? signal}: ${out}${err}`));
      else if (!stopping) fatal(`the collector exited (${code ?? signal}) during the run: ${err}`);
    });
    // Its first line names the address; the rest is read only so that the pipe never fills.
    child.stdout.on("data", (d) => {
      if (started) return;
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (!m) return;
      started = true;
      clearTimeout(timer);
      const stop = () =>
        new Promise((done) => {
          stopping = true;
          if (child.exitCode !== null || child.signalCode !== null) return done();
          child.once("exit", done);
          child.kill("SIGTERM");
        });
      resolve({ url: m[1], stop });
    });
  });
}

// ---------------------------------------------------------------------------------------
// In the page, before any of its scripts.

// `ccBoxes`: how many checkboxes cookieconsent's preferences modal has when it is built.
function probe({ ccBoxes }) {
  const perf = (window.__perf = { shifts: [] });
  // The UI is in the DOM: Unticked's fieldset with its boxes (built off the document, then
  // attached whole), or cookieconsent's preferences modal with all its toggles.
  const ui = () =>
    document.querySelector("fieldset.unticked input[type=checkbox]") || document.querySelectorAll("#cc-main .pm input[type=checkbox]").length >= ccBoxes;
  new MutationObserver((_, observer) => {
    if (ui()) {
      perf.ui = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
  // Layout shifts not caused by input (CLS counts only those).
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.hadRecentInput) continue;
      // How far the furthest-moving element moved, of those in view before and after (the
      // rects are clipped to the viewport: empty once out of it).
      const inView = e.sources.filter((s) => s.currentRect.height > 0 && s.previousRect.height > 0);
      const moved = Math.max(0, ...inView.map((s) => Math.abs(s.currentRect.y - s.previousRect.y)));
      perf.shifts.push([e.startTime, e.value, moved]);
    }
  }).observe({ type: "layout-shift", buffered: true });
  // The submit listeners' span: the first capture listener on window (before the widget's,
  // which it registers when it starts) to a bubble listener on document (after it). The
  // page navigates, so the figures wait in sessionStorage for the next document.
  addEventListener("submit", () => (perf.submitAt = performance.now()), true);
  document.addEventListener("submit", () => sessionStorage.setItem("perf.span", String(performance.now() - perf.submitAt)));
  // The trusted click on the submit button, as an absolute high-resolution time (the
  // event's own time stamp: when the input happened).
  addEventListener(
    "click",
    (e) => e.isTrusted && e.target.closest?.("button[type=submit]") && sessionStorage.setItem("perf.click", String(performance.timeOrigin + e.timeStamp)),
    true,
  );
}

// For the traced submits only: every call into the widget's wasm timed (its lazy compile
// included), summed per export from the submit's first listener to its last.
function instrumentWasm() {
  const wasm = (window.__wasm = { calls: {}, counting: false });
  const wrap = (exports) => {
    const timed = {};
    for (const [name, value] of Object.entries(exports)) {
      timed[name] =
        typeof value != "function"
          ? value
          : function (...args) {
              const start = performance.now();
              try {
                return value.apply(this, args);
              } finally {
                if (wasm.counting) {
                  const call = (wasm.calls[name] ??= { ms: 0, n: 0 });
                  call.ms += performance.now() - start;
                  call.n++;
                }
              }
            };
    }
    return timed;
  };
  for (const name of ["instantiateStreaming", "instantiate"]) {
    const original = WebAssembly[name];
    WebAssembly[name] = function (...args) {
      // An instance that still passes `instanceof WebAssembly.Instance` (glue may check).
      const instance = (real) => Object.create(WebAssembly.Instance.prototype, { exports: { value: wrap(real.exports), enumerable: true } });
      return original.apply(this, args).then((result) => (result instanceof WebAssembly.Instance ? instance(result) : { module: result.module, instance: instance(result.instance) }));
    };
  }
  addEventListener("submit", () => ((wasm.calls = {}), (wasm.counting = true)), true);
  document.addEventListener("submit", () => {
    wasm.counting = false;
    sessionStorage.setItem("perf.wasm", JSON.stringify(wasm.calls));
  });
}

// ---------------------------------------------------------------------------------------

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const p = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const KINDS = {
  A: { path: "/checkout.html", what: "the demo checkout with Unticked", ui: true, submit: true, tick: true },
  B: { path: "/checkout-cookieconsent.html", what: `the same checkout with vanilla-cookieconsent ${CC_VERSION}, its preferences modal shown at load`, ui: true },
  C: { path: "/checkout-bare.html", what: "the same checkout without a widget", submit: true },
  S: { path: "/checkout-slot.html", what: "A with a reserved slot before the submit button", ui: true },
  // Bytes only: a page of the shop without a form, with the widget's script tag.
  D: { path: "/noform-widget.html", what: "the shop's index (no form) with the widget's script tag" },
};

let browser;
let base;
let closing = false;
const consoleMessages = new Map(); // "kind type: text" → count

async function withPage(kind, { viewport = DESKTOP, query = "", onResponse, instrument = false } = {}, body) {
  const context = await browser.newContext({ viewport, locale: "en-US" });
  const page = await context.newPage();
  const said = [];
  page.on("pageerror", (e) => said.push("page error: " + e));
  page.on("console", (m) => {
    if (m.type() != "error" && m.type() != "warning") return;
    said.push(`console ${m.type()}: ${m.text()}`);
    const key = `${kind} ${m.type()}: ${m.text().slice(0, 160)}`;
    consoleMessages.set(key, (consoleMessages.get(key) || 0) + 1);
  });
  if (onResponse) page.on("response", onResponse);
  try {
    await context.addInitScript(probe, { ccBoxes: Object.keys(CC_CATEGORIES).length });
    if (instrument) await context.addInitScript(instrumentWasm);
    const response = await page.goto(base + KINDS[kind].path + query, { waitUntil: "domcontentloaded", timeout: TIMEOUT });
    if (!response || response.status() != 200) throw new Failure(`HTTP ${response?.status()}`);
    return await body(page);
  } catch (e) {
    const where = `${kind} ${KINDS[kind].path}${query} at ${viewport.width}×${viewport.height}`;
    throw new Failure(`${where}: ${e.message}${said.length ? "\n  the page said:\n    " + said.slice(0, 10).join("\n    ") : ""}`);
  } finally {
    await context.close();
  }
}

// Waits until 1 s after the page's UI appeared (after DOMContentLoaded without a UI): the
// times, the layout shifts until then, where the choices and the button are.
async function measureLoad(page, kind) {
  if (KINDS[kind].ui) await page.waitForFunction(() => window.__perf.ui !== undefined, null, { timeout: TIMEOUT });
  else await page.waitForFunction(() => performance.getEntriesByType("navigation")[0]?.domContentLoadedEventEnd > 0, null, { timeout: TIMEOUT });
  await page.waitForFunction(
    () => performance.now() > (window.__perf.ui ?? performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd) + 1050,
    null,
    { timeout: TIMEOUT, polling: 50 },
  );
  return page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    const perf = window.__perf;
    const until = (perf.ui ?? nav.domContentLoadedEventEnd) + 1000;
    const shifts = perf.shifts.filter(([t]) => t <= until);
    const height = (selector) => document.querySelector(selector)?.getBoundingClientRect().height;
    const button = document.querySelector("button.buy")?.getBoundingClientRect();
    return {
      dcl: nav.domContentLoadedEventEnd,
      ui: perf.ui,
      cls: shifts.reduce((sum, [, v]) => sum + v, 0),
      moved: Math.max(0, ...shifts.map(([, , moved]) => moved)),
      buttonBottom: button && button.bottom + scrollY,
      buttonOnScreen: !!button && button.top >= 0 && button.bottom <= innerHeight,
      fieldset: height("fieldset.unticked"),
      slot: height("[data-unticked-slot]"),
      rem: parseFloat(getComputedStyle(document.documentElement).fontSize),
      ccShown: !!document.querySelector("#cc-main .pm")?.checkVisibility(),
      lang: document.querySelector("fieldset.unticked")?.closest("[lang]")?.lang,
    };
  });
}

// Fills the checkout and ticks one box (with the widget); the function it resolves to clicks
// the submit button and waits for the shop's order page.
async function fillAndClick(page, kind) {
  await fillCheckout(page);
  if (KINDS[kind].tick) await page.click("label[for$='-email-offers']");
  return () => Promise.all([page.waitForURL("**/shop/order", { timeout: TIMEOUT, waitUntil: "domcontentloaded" }), page.click("button.buy")]);
}

// On the shop's order page: the listeners' span and click → navigation start, as the
// probe left them in sessionStorage.
async function afterSubmit(page, kind) {
  const after = await page.evaluate(() => ({
    origin: performance.timeOrigin,
    click: Number(sessionStorage.getItem("perf.click")),
    span: sessionStorage.getItem("perf.span"),
    wasm: JSON.parse(sessionStorage.getItem("perf.wasm") || "null"),
    consents: document.getElementById("consents")?.textContent || "",
    record: !!document.getElementById("record"),
  }));
  if (!after.click || after.span === null) throw new Failure("the probe saw no trusted click on the submit button, or no submit");
  if (KINDS[kind].tick && !(after.consents.includes("email-offers") && after.record)) throw new Failure("the order page shows no email-offers consent and record from the widget");
  return { span: Number(after.span), clickToNav: after.origin - after.click, wasm: after.wasm };
}

// Intervals merged, so that nested events of one group count once.
function covered(spans) {
  let total = 0;
  let end = -Infinity;
  for (const s of [...spans].sort((a, b) => a.ts - b.ts)) {
    if (s.end <= end) continue;
    total += s.end - Math.max(s.ts, end);
    end = s.end;
  }
  return total / 1000;
}

const TRACE_CATEGORIES = [
  "devtools.timeline",
  "disabled-by-default-devtools.timeline",
  "v8",
  "disabled-by-default-v8.compile",
  "v8.wasm",
  "disabled-by-default-v8.wasm.detailed",
  "disabled-by-default-v8.gc",
  "loading",
  "navigation",
  "toplevel",
];

const GROUPS = {
  "style + layout": (s) => ["UpdateLayoutTree", "RecalculateStyles", "Layout"].includes(s.name),
  "JS compile": (s) => /^V8\.(Compile|Parse|CollectSourcePositions)/.test(s.name),
  "wasm compile": (s) => /^wasm\.Compile/.test(s.name),
  GC: (s) => /^(MinorGC|MajorGC|V8\.GC_|V8\.GCScavenger|V8\.GCFinalize)/.test(s.name),
  "WebCrypto": (s) => /^Do(Digest|Sign)/.test(s.name),
  "fetch start": (s) => s.name == "URLLoader::loadAsynchronously",
};

// One traced submit: the submit event's dispatch (the widget's listener, and the microtasks
// it queued: hashing, signing, the fetch) and what it spends on style, layout and compiling;
// then what the main thread runs before the form submission's own task starts the
// navigation (HTML: the submission is a task of its own, queued at submit).
function traceBreakdown(trace) {
  const events = JSON.parse(trace.toString()).traceEvents || [];
  const spans = [];
  const open = new Map();
  for (const e of events) {
    const span = (ts, end, from) => spans.push({ name: e.name, pid: e.pid, tid: e.tid, ts, end, data: from.args?.data, args: from.args });
    if (e.ph == "X") span(e.ts, e.ts + (e.dur || 0), e);
    else if (e.ph == "B") open.set(`${e.pid} ${e.tid} ${e.name}`, e);
    else if (e.ph == "E") {
      const key = `${e.pid} ${e.tid} ${e.name}`;
      if (open.has(key)) span(open.get(key).ts, e.ts, open.get(key));
      open.delete(key);
    }
  }
  const click = spans.find((s) => s.name == "EventDispatch" && s.data?.type == "click");
  const dispatch = spans.find((s) => s.name == "EventDispatch" && s.data?.type == "submit");
  if (!click || !dispatch) return undefined;
  const thread = spans.filter((s) => s.pid == dispatch.pid && s.tid == dispatch.tid);
  const within = (from, to) => thread.filter((s) => s.ts >= from && s.end <= to);
  const inside = within(dispatch.ts, dispatch.end).filter((s) => s != dispatch);
  const groups = {};
  for (const [group, test] of Object.entries(GROUPS)) groups[group] = covered(inside.filter(test));
  const listener = covered(inside.filter((s) => s.name == "FunctionCall" && /unticked\.js/.test(s.data?.url || "")));
  // The form submission's task, or where the navigation starts.
  const isSubmission = (s) => s.name == "ThreadControllerImpl::RunTask" && s.args?.src_func == "ScheduleFormSubmission";
  const submission = thread.find((s) => s.ts >= dispatch.end && isSubmission(s)) || thread.find((s) => s.ts >= dispatch.end && s.name == "LocalFrame::Navigate");
  const between = {};
  if (submission) {
    for (const task of within(dispatch.end, submission.ts).filter((s) => s.name == "ThreadControllerImpl::RunTask")) {
      const what = task.args?.src_func || "?";
      between[what] = (between[what] || 0) + (task.end - task.ts) / 1000;
    }
  }
  return {
    clickToSubmit: (dispatch.ts - click.ts) / 1000,
    dispatch: (dispatch.end - dispatch.ts) / 1000,
    listener,
    groups,
    toSubmission: submission ? (submission.ts - dispatch.end) / 1000 : undefined,
    clickToSubmission: submission ? (submission.ts - click.ts) / 1000 : undefined,
    between,
  };
}

// ---------------------------------------------------------------------------------------
// Output.

const ms = (x) => (x === undefined || Number.isNaN(x) ? "—" : x.toFixed(1)).padStart(7);
const ms2 = (x) => (x === undefined || Number.isNaN(x) ? "—" : x.toFixed(2)).padStart(6);
const cls = (x) => (x === undefined ? "—" : x.toFixed(4)).padStart(7);
const stat = (xs, f = ms) => (xs.length && xs.every((x) => x !== undefined) ? f(median(xs)) + " " + f(p(xs, 0.9)) : f(undefined) + " " + f(undefined));
const num = (n) => String(n).padStart(9);

function bytesTable(label, files) {
  console.log(`  ${label}`);
  console.log(`    ${"file".padEnd(36)} ${num("raw")} ${num("gzip -9")} ${num("brotli")}`);
  const total = { raw: 0, gzip: 0, br: 0 };
  for (const f of files) {
    console.log(`    ${f.file.padEnd(36)} ${num(f.raw)} ${num(f.gzip)} ${num(f.br)}`);
    for (const k of Object.keys(total)) total[k] += f[k];
  }
  console.log(`    ${"total".padEnd(36)} ${num(total.raw)} ${num(total.gzip)} ${num(total.br)}`);
  return total;
}

// ---------------------------------------------------------------------------------------

async function main() {
  const dir = (tempDir = mkdtempSync(path.join(os.tmpdir(), "unticked-perf-")));
  let collector;
  try {
    const www = prepareWww(dir);
    writeSlotCss(www, "");
    collector = await startCollector(www, dir);
    base = collector.url;
    browser = await launchBrowser();
    browser.on("disconnected", () => closing || fatal("Chromium went away during the run"));
    const progress = (text) => process.stderr.write(`\rperf: ${text}`.padEnd(60));
    const loadBefore = os.loadavg()[0];

    // 1. Calibration. Where the submit button is without a widget; what the choices take in
    //    an unsized slot, per language, at a desktop and a phone width; the slot's min-height
    //    from that; a viewport tall enough for the button to stay on screen when the choices
    //    or the slot push it down.
    progress("calibrating");
    const bare = await withPage("C", { viewport: { ...DESKTOP, height: 800 } }, (page) => measureLoad(page, "C"));
    const heights = {};
    for (const lang of LANGS) {
      for (const [width, viewport] of [["desktop", { ...DESKTOP, height: 800 }], ["mobile", MOBILE]]) {
        const m = await withPage("S", { viewport, query: `?lang=${lang}` }, (page) => measureLoad(page, "S"));
        if (!m.slot || !m.fieldset) throw new Failure(`S ?lang=${lang}: the choices did not land in the slot`);
        if (m.lang != lang) throw new Failure(`S ?lang=${lang}: the choices are in ${m.lang}`);
        (heights[lang] ??= {})[width] = m;
      }
    }
    const rem = heights.en.desktop.rem;
    const slotRem = (px) => Math.ceil(px / rem / 0.25) * 0.25;
    const reserved = slotRem(Math.max(...LANGS.map((l) => heights[l].desktop.slot)));
    const slotRule = writeSlotCss(www, `${reserved}rem`);
    DESKTOP.height = Math.ceil((bare.buttonBottom + reserved * rem + 24) / 100) * 100;

    // 2. The interleaved loads.
    const rows = { A: [], B: [], C: [], S: [] }; // D is measured for its bytes only
    let offScreen = 0;
    for (let i = 0; i < loads; i++) {
      for (const kind of Object.keys(rows)) {
        rows[kind].push(
          await withPage(kind, {}, async (page) => {
            const m = await measureLoad(page, kind);
            if (!m.buttonOnScreen) offScreen++;
            if (kind == "B" && !m.ccShown) throw new Failure("cookieconsent's preferences modal is not visible");
            if (!KINDS[kind].submit) return m;
            await (await fillAndClick(page, kind))();
            return { ...m, ...(await afterSubmit(page, kind)) };
          }),
        );
      }
      progress(`${i + 1}/${loads} rounds of A B C S`);
    }

    // 3. The slot in each language (does the reservation hold, what shift is left), and the
    //    checkout's shift at two common viewport heights.
    progress("slot and viewport checks");
    const slotChecks = {};
    const viewportChecks = { "1280×720": [], "1280×1024": [] };
    for (let i = 0; i < SLOT_CHECKS; i++) {
      for (const lang of LANGS) (slotChecks[lang] ??= []).push(await withPage("S", { query: `?lang=${lang}` }, (page) => measureLoad(page, "S")));
      for (const size of Object.keys(viewportChecks)) {
        const [width, height] = size.split("×").map(Number);
        viewportChecks[size].push(await withPage("A", { viewport: { width, height } }, (page) => measureLoad(page, "A")));
      }
    }

    // 4. Traced submits of A and C, interleaved: where the time between click and navigation
    //    goes. The wasm calls are timed too (only here: the wrapper is not the widget's).
    const traces = { A: [], C: [] };
    for (let i = 0; i < TRACES; i++) {
      for (const kind of ["A", "C"]) {
        progress(`traced submit ${i + 1}/${TRACES} of ${kind}`);
        traces[kind].push(
          await withPage(kind, { instrument: kind == "A" }, async (page) => {
            await measureLoad(page, kind);
            const click = await fillAndClick(page, kind);
            await browser.startTracing(page, { categories: TRACE_CATEGORIES });
            let trace;
            try {
              await click();
            } finally {
              trace = await browser.stopTracing();
            }
            const breakdown = traceBreakdown(trace);
            if (!breakdown) throw new Failure("the trace has no click and submit dispatch");
            return { ...breakdown, ...(await afterSubmit(page, kind)) };
          }),
        );
      }
    }

    // 5. Bytes: every response body of one load of each page, and of a page without a form.
    const bytes = {};
    for (const kind of ["A", "B", "C", "D"]) {
      progress(`bytes of ${kind}`);
      const bodies = [];
      const onResponse = (response) => {
        if (response.request().method() != "GET" || !response.url().startsWith("http")) return;
        bodies.push(response.body().then((body) => ({ url: response.url(), status: response.status(), body }), (e) => ({ url: response.url(), error: e.message })));
      };
      await withPage(kind, { onResponse }, async (page) => {
        if (KINDS[kind].ui) await page.waitForFunction(() => window.__perf.ui !== undefined, null, { timeout: TIMEOUT });
        await page.waitForLoadState("networkidle", { timeout: TIMEOUT });
        await page.waitForTimeout(500);
        await page.waitForLoadState("networkidle", { timeout: TIMEOUT });
      });
      const seen = new Map();
      for (const r of await Promise.all(bodies)) {
        if (r.error) throw new Failure(`${kind}: no body for ${r.url}: ${r.error}`);
        if (r.status != 200) throw new Failure(`${kind}: ${r.url} answered ${r.status}`);
        const file = new URL(r.url).pathname;
        if (seen.has(file)) continue;
        const gzip = gzipSync(r.body, { level: 9 }).length;
        const br = brotliCompressSync(r.body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: r.body.length } }).length;
        seen.set(file, { file, raw: r.body.length, gzip, br });
      }
      bytes[kind] = [...seen.values()];
    }
    process.stderr.write("\n");
    const loadAfter = os.loadavg()[0];

    // ------------------------------------------------------------------------------------
    const label = { A: "A  Unticked", B: "B  cookieconsent", C: "C  no widget", S: "S  Unticked + slot" };
    console.log(`perf: ${loads} loads of each page, interleaved A B C S, in one headless Chromium ${browser.version()};`);
    console.log(`a fresh context per load (cold HTTP cache, no signing key yet: a first visit); release collector ${binary}`);
    for (const [kind, k] of Object.entries(KINDS)) if (kind != "D") console.log(`  ${kind}  ${k.path.padEnd(30)} ${k.what}`);
    console.log(`      S's stylesheet adds ${slotRule}`);
    console.log(`  B's categories: ${Object.keys(CC_CATEGORIES).join(", ")} (necessary read-only; the others with the checkout's six purposes' English texts)`);
    console.log(`  viewport ${DESKTOP.width}×${DESKTOP.height}: the submit button (bottom at ${bare.buttonBottom.toFixed(0)} px without a widget) stays on screen when pushed down`);
    if (offScreen) console.log(`  warning: the submit button was off screen after ${offScreen} of ${loads * 4} loads`);
    console.log(`  load average ${loadBefore.toFixed(2)} at the start, ${loadAfter.toFixed(2)} at the end, on ${os.cpus().length} cores (the run itself adds about 1; other work on the machine widens the p90s)`);

    console.log(`\nLoad, ms from navigation start   DOMContentLoaded     UI in DOM         UI − DCL    CLS to UI + 1 s   button moved`);
    console.log(`                                  median     p90   median     p90   median     p90   median     p90   px (median)`);
    for (const kind of Object.keys(rows)) {
      const r = rows[kind];
      const ui = KINDS[kind].ui ? r.map((x) => x.ui) : [];
      const gap = KINDS[kind].ui ? r.map((x) => x.ui - x.dcl) : [];
      console.log(`${label[kind].padEnd(32)} ${stat(r.map((x) => x.dcl))} ${stat(ui)} ${stat(gap)} ${stat(r.map((x) => x.cls), cls)}   ${median(r.map((x) => x.moved)).toFixed(0).padStart(5)}`);
    }
    const gapOf = (kind) => median(rows[kind].map((x) => x.ui - x.dcl)).toFixed(1);
    console.log(`  boxes − DCL (median): A ${gapOf("A")} ms, S ${gapOf("S")} ms; cookieconsent's toggles − DCL: B ${gapOf("B")} ms`);
    console.log(`  C has no UI: its CLS is summed to DCL + 1 s. CLS: the sum of layout shifts without recent input; "moved": the largest`);
    console.log(`  vertical move of a shifted element. UI in DOM: a MutationObserver of an init script, performance.now() (0.1 ms steps).`);

    console.log(`\nSubmit, ms                        listener span   click → navigation start`);
    console.log(`                                  median     p90   median     p90`);
    for (const kind of ["A", "C"]) console.log(`${label[kind].padEnd(32)} ${stat(rows[kind].map((x) => x.span))} ${stat(rows[kind].map((x) => x.clickToNav))}`);
    const diff = (key) => median(rows.A.map((x) => x[key])) - median(rows.C.map((x) => x[key]));
    console.log(`${"A − C (medians)".padEnd(32)} ${ms(diff("span"))}         ${ms(diff("clickToNav"))}`);
    console.log(`  listener span: the first capture listener on window to a bubble listener on document (the widget's is between, with`);
    console.log(`  the microtasks it queues); one box ticked by a trusted click first. click → navigation start: the click event's time`);
    console.log(`  stamp to the order page's performance.timeOrigin.`);

    const tracedA = traces.A;
    const tracedC = traces.C;
    const med = (xs, key) => median(xs.map(key));
    console.log(`\n  Traced (${TRACES} submits each of A and C, devtools.timeline; tracing slows everything down), medians in ms:`);
    console.log(`    ${"".padEnd(40)}      A        C`);
    const line = (text, key) => console.log(`    ${text.padEnd(40)} ${ms2(med(tracedA, key))}   ${ms2(med(tracedC, key))}`);
    line("click → submit dispatch", (t) => t.clickToSubmit);
    line("submit dispatch", (t) => t.dispatch);
    line("  the widget's listener (sync)", (t) => t.listener);
    for (const group of Object.keys(GROUPS)) line(`  ${group}`, (t) => t.groups[group]);
    line("dispatch end → submission task", (t) => t.toSubmission);
    line("click → submission task", (t) => t.clickToSubmission);
    // The tasks that ran in between, by the function that posted them; the small ones summed.
    const tasks = [...new Set([...tracedA, ...tracedC].flatMap((t) => Object.keys(t.between)))];
    const big = tasks.filter((task) => Math.max(med(tracedA, (t) => t.between[task] || 0), med(tracedC, (t) => t.between[task] || 0)) >= 0.05).sort();
    for (const task of big) line(`  task ${task}`, (t) => t.between[task] || 0);
    line("  other tasks", (t) => Object.entries(t.between).reduce((sum, [task, v]) => sum + (big.includes(task) ? 0 : v), 0));
    const wasmMs = tracedA.map((t) => Object.values(t.wasm || {}).reduce((sum, c) => sum + c.ms, 0));
    const calls = Object.entries(tracedA[0]?.wasm || {}).map(([name, c]) => `${name}×${c.n}`);
    console.log(`    in wasm calls during the submit (A, timed in the page, its lazy compile included): median ${median(wasmMs).toFixed(1)} ms (${calls.join(", ")})`);
    console.log(`    listener span in these traced runs: A ${med(tracedA, (t) => t.span).toFixed(1)} ms, C ${med(tracedC, (t) => t.span).toFixed(1)} ms`);
    const share = median(tracedA.map((t) => t.groups["style + layout"] / t.dispatch)) * 100;
    console.log(`    style + layout: ${share.toFixed(1)}% of A's submit dispatch`);

    console.log(`\nSlot: what the choices take in an unsized [data-unticked-slot] { display: flow-root } (root font ${rem} px)`);
    console.log(`  lang   ${DESKTOP.width} px wide            ${MOBILE.width} px wide`);
    for (const lang of LANGS) {
      const cell = (m) => `${m.slot.toFixed(0).padStart(5)} px = ${(m.slot / rem).toFixed(2).padStart(6)}rem`;
      console.log(`  ${lang.padEnd(6)} ${cell(heights[lang].desktop)}   ${cell(heights[lang].mobile)}`);
    }
    const mobileRem = slotRem(Math.max(...LANGS.map((l) => heights[l].mobile.slot)));
    console.log(`  → ${slotRule}`);
    console.log(`    (the largest of ${LANGS.join(", ")} at ${DESKTOP.width} px, rounded up to 0.25rem; at ${MOBILE.width} px the same choices need ${mobileRem}rem,`);
    console.log(`    so a narrow layout needs its own min-height in a media query)`);
    console.log(`    or per language, with less blank space under the shorter ones:`);
    for (const l of LANGS) console.log(`      [data-unticked-slot]:lang(${l}) { min-height: ${slotRem(heights[l].desktop.slot)}rem; }`);
    console.log(`  S with that slot, ${SLOT_CHECKS} loads per language at ${DESKTOP.width}×${DESKTOP.height}:`);
    for (const lang of LANGS) {
      const r = slotChecks[lang];
      const over = r.filter((x) => x.slot > reserved * x.rem + 0.5).length;
      console.log(
        `    ${lang.padEnd(4)} CLS median ${cls(median(r.map((x) => x.cls)))}  p90 ${cls(p(r.map((x) => x.cls), 0.9))}  button moved ${median(r.map((x) => x.moved)).toFixed(0).padStart(4)} px` +
          `  choices ${median(r.map((x) => x.fieldset)).toFixed(0)} px, outgrew the slot in ${over}/${r.length}`,
      );
    }
    console.log(`  A (no slot) at other viewports, ${SLOT_CHECKS} loads each:`);
    for (const [size, r] of Object.entries(viewportChecks)) {
      const height = Number(size.split("×")[1]);
      const where = bare.buttonBottom <= height ? "on screen before the choices appear" : "below the fold from the start";
      console.log(`    ${size.padEnd(10)} CLS median ${cls(median(r.map((x) => x.cls)))}  p90 ${cls(p(r.map((x) => x.cls), 0.9))}  (the button is ${where})`);
    }

    console.log(`\nBytes of every response (bodies as served; the collector does not compress, gzip -9 and brotli q11 computed here)`);
    const labels = {
      A: "A  checkout + Unticked",
      B: `B  checkout + vanilla-cookieconsent ${CC_VERSION}`,
      C: "C  checkout, no widget",
      D: "D  no form: the shop's index with the widget's script tag",
    };
    const totals = {};
    for (const kind of ["A", "B", "C", "D"]) totals[kind] = bytesTable(labels[kind], bytes[kind]);
    for (const kind of ["A", "B"]) console.log(`  ${kind} over C: +${totals[kind].raw - totals.C.raw} raw, +${totals[kind].gzip - totals.C.gzip} gzip, +${totals[kind].br - totals.C.br} brotli`);

    if (consoleMessages.size) {
      console.log(`\nConsole errors and warnings seen (count):`);
      for (const [text, n] of consoleMessages) console.log(`  ${String(n).padStart(3)}  ${text}`);
    }
  } finally {
    closing = true;
    await browser?.close();
    await collector?.stop();
  }
}

main().then(
  () => (finished = true),
  (e) => {
    console.error(`\nperf: error: ${e instanceof Failure ? e.message : e.stack || e}`);
    process.exit(1);
  },
);

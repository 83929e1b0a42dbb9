// Browser tests of the widget's DOM edge (src/widget.js) in headless Chromium: which forms
// get which choices, where, in which language, and how it behaves as a page changes. Pages
// are served from the collector's origin, so the widget, config and endpoint are the real ones.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, useShop, openPage, fixture, CHOICES, BOXES, CHECKOUT } from "./harness.mjs";

const shop = useShop();
const demoConfig = readFileSync(path.join(ROOT, "www/consent.json"), "utf8");

const names = (page, scope) => page.$$eval(`${scope} ${BOXES}`, (boxes) => boxes.map((b) => b.name));
const legend = (page, form) => page.textContent(`${form} legend`);
const firstLabel = (page, form) => page.$eval(`${form} ${BOXES}`, (b) => b.labels[0].textContent);
/** Lets the widget's mutation observer run. */
const settle = (page) => page.evaluate(() => new Promise((r) => setTimeout(r, 50)));

async function open(body, options) {
  const opened = await openPage(shop.browser);
  await fixture(opened.page, shop.server.url, body, options);
  return opened;
}

test("each form kind gets its own purposes; unknown kinds and unmarked forms get nothing", async () => {
  const { page, context, log } = await open(`
    <form id="n" data-unticked="newsletter"><input id="newsletter-email"><button>Sign up</button></form>
    <form id="x" data-unticked="no-such-kind"><button>Go</button></form>
    <form id="y" data-unticked="no-such-kind"><button>Go</button></form>
    <form id="plain"><button>Go</button></form>`);
  await page.waitForSelector(CHOICES);
  assert.deepEqual(await names(page, "#n"), ["consent.email-offers", "consent.birthday-greetings"]);
  assert.equal(await page.locator("#x fieldset, #y fieldset, #plain fieldset").count(), 0);
  const warnings = log.console.filter((m) => m.type === "warning");
  assert.equal(warnings.length, 1, "one warning per unknown kind");
  assert.match(warnings[0].text, /form kind "no-such-kind" is not in the config.*Known: checkout newsletter/);
  await context.close();
});

test("every box starts unticked, optional, never required or disabled, with one label", async () => {
  const { page, context } = await open(CHECKOUT);
  await page.waitForSelector(CHOICES);
  const boxes = await page.$$eval(BOXES, (all) =>
    all.map((b) => ({
      checked: b.checked || b.defaultChecked,
      required: b.required || b.hasAttribute("aria-required"),
      disabled: b.disabled,
      labels: b.labels.length,
      label: b.labels[0]?.textContent,
    })),
  );
  assert.equal(boxes.length, 6);
  for (const b of boxes) {
    assert.deepEqual([b.checked, b.required, b.disabled, b.labels], [false, false, false, 1], b.label);
    assert.match(b.label, /^I agree.*\(optional\)$/);
  }
  assert.equal(await legend(page, "#f"), "Marketing choices");
  assert.equal(await page.$eval(CHOICES, (f) => f.nextElementSibling.id), "buy", "just before the submit button");
  assert.equal(await page.textContent(`${CHOICES} a[href='/privacy.html']`), "Privacy notice");
  assert.match(await page.textContent(CHOICES), /version 2026-09/);
  await context.close();
});

test("the slot says where the choices go", async () => {
  const { page, context } = await open(
    `<form data-unticked="newsletter"><div id="slot" data-unticked-slot></div><p>terms</p><button>Sign up</button></form>`,
  );
  await page.waitForSelector("#slot > fieldset.unticked");
  await context.close();
});

test("two forms on a page keep ids unique and each label ticks a box of its own form", async () => {
  const { page, context } = await open(CHECKOUT + CHECKOUT.replace('id="f"', 'id="g"').replace(/ id="(email|phone|buy)"/g, ""));
  await page.waitForSelector("#g fieldset.unticked");
  assert.equal(await page.locator(BOXES).count(), 12);
  const ids = await page.$$eval("[id]", (all) => all.map((e) => e.id));
  assert.equal(new Set(ids).size, ids.length, "no id is used twice");
  assert.ok(await page.$$eval("#g " + BOXES, (boxes) => boxes.every((b) => b.form.contains(b.labels[0]))));
  await context.close();
});

test("a form added later, or marked later, gets its choices (single-page shops)", async () => {
  const { page, context } = await open(`<div id="app"></div>`);
  await page.waitForFunction(() => window.__untickedStarted);
  await settle(page);
  await page.$eval("#app", (app, html) => (app.innerHTML = html), CHECKOUT);
  await page.waitForSelector("#f fieldset.unticked");
  assert.equal(await page.locator("#f " + BOXES).count(), 6);
  await page.evaluate(() => {
    const late = document.createElement("form");
    late.id = "late";
    late.append(document.createElement("button"));
    document.getElementById("app").append(late);
  });
  await settle(page);
  assert.equal(await page.locator("#late fieldset").count(), 0);
  await page.$eval("#late", (f) => f.setAttribute("data-unticked", "newsletter"));
  await page.waitForSelector("#late fieldset.unticked");
  assert.equal(await page.locator("#late " + BOXES).count(), 2);
  await context.close();
});

test("a cloned form gets exactly one set of choices, its own", async () => {
  const { page, context } = await open(`<div id="a">${CHECKOUT}</div><div id="b"></div>`);
  await page.waitForSelector(CHOICES);
  // A page snapshot or template clones the whole form, choices included.
  await page.evaluate(() => {
    const copy = document.getElementById("f").cloneNode(true);
    copy.id = "copy";
    document.getElementById("b").append(copy);
  });
  await settle(page);
  assert.equal(await page.locator("#copy fieldset.unticked").count(), 1, "replaced, not added to");
  const ids = await page.$$eval("[id^=unticked-]", (all) => all.map((e) => e.id));
  assert.equal(new Set(ids).size, ids.length, `no widget id is used twice: ${ids}`);
  assert.ok(await page.$$eval("#copy " + BOXES, (boxes) => boxes.every((b) => b.form.id == "copy" && b.form.contains(b.labels[0]))));
  const records = await page.$$eval("input[name='consent.record']", (inputs) => inputs.map((i) => i.value));
  assert.equal(new Set(records).size, 2, "the copy carries a record id of its own");
  await context.close();
});

test("a form taken out and put back gets one fresh rendering", async () => {
  const { page, context } = await open(`<div id="a">${CHECKOUT}</div>`);
  await page.waitForSelector(CHOICES);
  await page.evaluate(() => (window.form = document.getElementById("f")).remove());
  await settle(page);
  await page.evaluate(() => document.getElementById("a").append(window.form));
  await settle(page);
  assert.equal(await page.locator("#f fieldset.unticked").count(), 1);
  assert.equal(await page.locator("#f " + BOXES).count(), 6);
  assert.equal(await page.locator("#f input[name='consent.record']").count(), 1);
  await context.close();
});

test("each form speaks the language of its part of the page", async () => {
  const form = (id) => CHECKOUT.replace('id="f"', `id="${id}"`).replace(/ id="(email|phone|buy)"/g, "");
  const { page, context } = await open(
    `<div lang="lv">${form("lv")}</div><div lang="pl-PL">${form("pl")}</div><div lang="fi">${form("fi")}</div><div id="later" lang="cs"></div>`,
  );
  await page.waitForSelector("#fi fieldset.unticked");
  assert.equal(await legend(page, "#lv"), "Mārketinga izvēles");
  assert.match(await firstLabel(page, "#lv"), /^Piekrītu saņemt piedāvājumus.*\(neobligāti\)$/);
  assert.equal(await page.$eval("#lv fieldset", (f) => f.getAttribute("lang")), null, "same language as its page");
  assert.equal(await legend(page, "#pl"), "Zgody marketingowe", "pl-PL falls back to pl");
  assert.match(await firstLabel(page, "#pl"), /^Wyrażam zgodę/);
  // Finnish is not declared; the browser's English is, and the fieldset says so (WCAG 3.1.2).
  assert.equal(await legend(page, "#fi"), "Marketing choices");
  assert.equal(await page.$eval("#fi fieldset", (f) => f.getAttribute("lang")), "en");
  await page.$eval("#later", (div, html) => (div.innerHTML = html), form("cs"));
  await page.waitForSelector("#cs fieldset.unticked");
  assert.equal(await legend(page, "#cs"), "Marketingové souhlasy");
  await context.close();
});

/** Opens a page whose config is inline, and resolves with the `unticked:error` details. */
async function withInlineConfig(config, body = CHECKOUT) {
  const head = `<script type="application/json" id="unticked-config">${config}</script>
    <script>window.errors = []; document.addEventListener("unticked:error", (e) => errors.push(e.detail));</script>
    <script type="module" src="/pkg/unticked.js"></script>`;
  const opened = await openPage(shop.browser);
  await fixture(opened.page, shop.server.url, body, { head });
  await opened.page.waitForFunction(() => window.errors.length > 0 || document.querySelector("fieldset.unticked"));
  return opened;
}

test("an inline config works like a fetched one", async () => {
  const { page, context } = await withInlineConfig(demoConfig);
  assert.equal(await page.locator("#f " + BOXES).count(), 6);
  await context.close();
});

test("a config that was not compiled renders nothing and says how to compile it", async () => {
  // The widget validates nothing itself: `unticked build` (and `serve` at start) lints and
  // compiles the config, and a config it refused, or one edited since, has no compiled form.
  const bad = demoConfig.replace('"version": 1,', '"version": 1, "checked": true,');
  const { page, context, log } = await withInlineConfig(bad);
  const [error] = await page.evaluate(() => window.errors);
  assert.equal(error.code, "compiled-missing");
  assert.match(error.message, /was not compiled; run `unticked build consent\.json/);
  assert.equal(await page.locator("fieldset").count(), 0);
  // One error of the widget's own (the browser logs the 404 beside it).
  assert.equal(log.console.filter((m) => m.type === "error" && m.text.startsWith("unticked:")).length, 1);
  await context.close();
});

test("no config at all: nothing renders, and the error says how to add one", async () => {
  const opened = await openPage(shop.browser);
  await fixture(opened.page, shop.server.url, CHECKOUT, {
    head: `<script>window.errors = []; document.addEventListener("unticked:error", (e) => errors.push(e.detail));</script>
      <script type="module" src="/pkg/unticked.js"></script>`,
  });
  await opened.page.waitForFunction(() => window.errors.length > 0);
  const [error] = await opened.page.evaluate(() => window.errors);
  assert.equal(error.code, "config-missing");
  assert.match(error.message, /data-config="\/consent\.json"/);
  assert.equal(await opened.page.locator("fieldset").count(), 0);
  await opened.context.close();
});

// End-to-end: hostile checkout pages (tests/hostile/), each with one trick a theme, plugin or
// A/B test might play. For each: the order reaches the shop with no consent the shopper did
// not give with a trusted click (or, where the page itself blocks the order, the widget
// reports it), no such consent is recorded, and the site owner hears of the trick through
// an `unticked:violation` event and the collector's `GET /v1/violations`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, ADMIN_TOKEN, useShop, openPage, deliveredRecord } from "./harness.mjs";

const shop = useShop();

/** Opens tests/hostile/NAME.html on the collector's origin, noting every violation event. */
async function openHostile(name) {
  const opened = await openPage(shop.browser);
  const html = readFileSync(path.join(ROOT, "tests/hostile", name + ".html"), "utf8");
  // Kept on this side: the page navigates away when the order is placed.
  opened.violations = [];
  await opened.page.exposeFunction("noteViolation", (detail) => opened.violations.push(detail));
  await opened.page.addInitScript(() => {
    window.violations = [];
    document.addEventListener("unticked:violation", (e) => {
      window.violations.push(e.detail);
      window.noteViolation(e.detail);
    });
  });
  await opened.page.route(`${shop.server.url}/hostile/${name}.html`, (route) =>
    route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }),
  );
  await opened.page.goto(`${shop.server.url}/hostile/${name}.html`);
  await opened.page.waitForSelector("fieldset.unticked");
  await opened.page.fill("#email", "shopper@example.lv");
  await opened.page.fill("#name", "Anna Bērziņa");
  return opened;
}

const kinds = (violations) => [...new Set(violations.map((v) => v.kind))].sort();

/** Places the order; resolves with its consent fields and the record the collector stored. */
async function order(page) {
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/shop/order") && r.method() === "POST"),
    page.click("#buy"),
  ]);
  const fields = new URLSearchParams(request.postData());
  const consents = [...fields.keys()].filter((k) => k.startsWith("consent.") && k !== "consent.record");
  const record = await deliveredRecord(shop.server.url, fields.get("consent.record"));
  return { consents, given: record.purposes.filter((p) => p.state === "given").map((p) => p.id) };
}

/** The violations the collector has heard of, as "kind form page". */
async function reported() {
  const response = await fetch(`${shop.server.url}/v1/violations`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return (await response.json()).violations.map((v) => `${v.kind} ${v.form} ${v.page}`);
}

async function assertReported(kind, name) {
  for (let i = 0; i < 50 && !(await reported()).includes(`${kind} checkout /hostile/${name}.html`); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok((await reported()).includes(`${kind} checkout /hostile/${name}.html`), `${kind} reached the collector`);
}

// Pages where the order goes through: [page, what the shopper does, violations expected].
const goesThrough = [
  ["preticks-on-insert", async () => {}, ["untrusted-tick"]],
  ["preticks-after-mount", async (page) => page.waitForFunction(() => window.violations.length > 0), ["untrusted-tick"]],
  ["adds-required", async (page) => page.waitForFunction(() => window.violations.length > 0), ["required-added"]],
  ["bootstrap-novalidate", async () => {}, []],
  // A theme swaps two boxes' names: the widget puts them back, and the order carries none.
  ["rename-boxes", async (page) => page.waitForFunction(() => window.violations.length > 0), ["box-changed"]],
  // The shopper ticks a box with the keyboard, but they cannot see it: it does not count.
  ["hidden-by-css", async (page, violations) => {
    await page.focus("input[name='consent.email-offers']");
    await page.keyboard.press("Space");
    assert.ok(await page.isChecked("input[name='consent.email-offers']"), "the key did tick it");
    assert.deepEqual(violations.map((v) => [v.kind, v.purpose]), [["hidden-box", "email-offers"]]);
  }, ["hidden-box"]],
  // The shopper ticks the first choice after a script rewrote its words: not what the record proves.
  ["label-replaced", async (page) => {
    await page.waitForFunction(() => window.violations.some((v) => v.kind === "text-changed"));
    await page.click("input[name='consent.email-offers']");
  }, ["text-changed"]],
  ["fake-checkbox", async () => {}, ["fake-box"]],
  ["script-twice", async (page) => page.waitForFunction(() => window.violations.length > 0), ["loaded-twice"]],
  ["framework-rerender", async (page) => {
    await page.waitForFunction(() => document.body.dataset.rendered === "2");
    await page.waitForSelector("#f fieldset.unticked");
    // The re-render can land while the shopper is typing (between Playwright focusing a
    // field and inserting its text), and those keys are lost with the old form: the
    // browser's own `required` check then stops the order. The shopper fills the form they
    // now see.
    await page.fill("#email", "shopper@example.lv");
    await page.fill("#name", "Anna Bērziņa");
  }, []],
];

for (const [name, act, expected] of goesThrough) {
  test(`${name}: the order goes through with no consent the shopper did not give, and the trick is reported`, async () => {
    const { page, context, log, violations } = await openHostile(name);
    await act(page, violations);
    assert.equal(await page.locator("fieldset.unticked").count(), 1, "one set of choices");
    const { consents, given } = await order(page);
    assert.deepEqual(consents, [], "no consent field reaches the shop");
    assert.deepEqual(given, [], "no consent is recorded");
    assert.deepEqual(kinds(violations), expected);
    for (const kind of expected.filter((k) => k !== "loaded-twice")) await assertReported(kind, name);
    assert.deepEqual(log.pageErrors, []);
    await context.close();
  });
}

test("submit-disabled-until-ticked: the page gates the purchase on consent, and the widget says so", async () => {
  const { page, context } = await openHostile("submit-disabled-until-ticked");
  assert.equal(await page.isDisabled("#buy"), true);
  await page.click("label[for$='-email-offers']");
  await page.waitForFunction(() => window.violations.some((v) => v.kind === "submit-gated"));
  await page.click("label[for$='-email-offers']");
  assert.equal(await page.isDisabled("#buy"), true, "the shopper who ticks nothing cannot buy: the page's doing");
  const [violation] = await page.evaluate(() => window.violations.filter((v) => v.kind === "submit-gated"));
  assert.equal(violation.rule, "R3");
  await assertReported("submit-gated", "submit-disabled-until-ticked");
  await context.close();
});

test("blocks-submit-unless-ticked: refused unticked, let through ticked: reported as gating", async () => {
  const { page, context, violations } = await openHostile("blocks-submit-unless-ticked");
  await page.click("#buy");
  await page.waitForFunction(() => document.getElementById("message").textContent.length > 0);
  assert.deepEqual(kinds(violations), [], "one cancel proves nothing (a fetch shop cancels every submit)");
  await page.click("label[for$='-email-offers']");
  const { consents, given } = await order(page);
  assert.deepEqual([consents, given], [["consent.email-offers"], ["email-offers"]], "the shopper's own tick counts");
  assert.deepEqual(kinds(violations), ["submit-blocked"]);
  await assertReported("submit-blocked", "blocks-submit-unless-ticked");
  await context.close();
});

test("bootstrap-novalidate: a submit its validation stops, then a ticked one, is no gating", async () => {
  const { page, context, violations } = await openHostile("bootstrap-novalidate");
  await page.fill("#name", "");
  await page.click("#buy"); // cancelled by the page's validation: the name is missing
  await page.fill("#name", "Anna Bērziņa");
  await page.click("label[for$='-email-offers']");
  const { consents } = await order(page);
  assert.deepEqual(consents, ["consent.email-offers"]);
  assert.deepEqual(kinds(violations), []);
  await context.close();
});

// Other ways to hide a box, each ticked by the shopper with the keyboard: never consent.
// (A theme's general `input[type=checkbox] { opacity: 0 }` does not hide the widget's boxes:
// its stylesheet keeps them visible. These pages mean it.)
const hiding = [
  ["transparent", "#f fieldset.unticked input.unticked__box { opacity: 0 !important; }"],
  ["covered", "fieldset.unticked { position: relative; } fieldset.unticked::after { content: ''; position: absolute; inset: 0; background: #fff; }"],
  ["shrunk", "#f fieldset.unticked input.unticked__box { width: 1px !important; height: 1px !important; }"],
];
for (const [how, css] of hiding) {
  test(`a ${how} box ticked by the shopper is not consent, and is reported`, async () => {
    const opened = await openPage(shop.browser);
    const { page, context } = opened;
    const violations = [];
    await page.exposeFunction("noteViolation", (detail) => violations.push(detail));
    await page.addInitScript(() => document.addEventListener("unticked:violation", (e) => window.noteViolation(e.detail)));
    const html = readFileSync(path.join(ROOT, "tests/hostile/hidden-by-css.html"), "utf8").replace(
      /<style>.*<\/style>/,
      `<style>${css}</style>`,
    );
    await page.route(`${shop.server.url}/hostile/${how}.html`, (route) => route.fulfill({ status: 200, contentType: "text/html", body: html }));
    await page.goto(`${shop.server.url}/hostile/${how}.html`);
    await page.waitForSelector("fieldset.unticked");
    await page.fill("#email", "shopper@example.lv");
    await page.fill("#name", "Anna Bērziņa");
    await page.focus("input[name='consent.email-offers']");
    await page.keyboard.press("Space");
    const { consents, given } = await order(page);
    assert.deepEqual([consents, given], [[], []]);
    assert.deepEqual(
      violations.map((v) => [v.kind, v.purpose]),
      [["hidden-box", "email-offers"]],
      "the shopper's tick of the hidden box, and only that, is reported",
    );
    await context.close();
  });
}

// The shop's account form, `form[data-unticked="preferences"]` (issue 14), in Chromium against
// the real collector: the demo shop's `/shop/account?email=…` page carries a token its backend
// minted; the form shows where the customer's consent stands, one click on a box withdraws
// (or gives) and the record, signed by this browser's key, goes through the outbox like a
// checkout's. The clicks giving and withdrawing take are counted and printed (R7). Tokens of
// another subject, or forged ones, change nothing and read nothing of anyone else's.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, BINARY, ACCOUNT_SECRET, admin, stateOf, logSize, startServer, launchBrowser, openPage, fillCheckout, fixture, storedRecord, BOXES, axeViolations } from "./harness.mjs";

const run = promisify(execFile);
const browser = await launchBrowser();
const servers = [];
after(async () => {
  await browser.close();
  await Promise.all(servers.map((s) => s.stop()));
});

async function server(options) {
  const started = await startServer(options);
  servers.push(started);
  return started;
}

const ACCOUNT_FORM = "form[data-unticked='preferences']";
const box = (purpose) => `${ACCOUNT_FORM} input[name='consent.${purpose}']`;

/** A token as a shop's backend mints it (docs/account-form.md), here with node:crypto. */
function mint(sub, { secret = ACCOUNT_SECRET, exp = Math.floor(Date.now() / 1000) + 600 } = {}) {
  const payload = Buffer.from(JSON.stringify({ sub, exp, nonce: randomBytes(16).toString("hex") })).toString("base64url");
  return `${payload}.${createHmac("sha256", secret).update(payload).digest("base64url")}`;
}

/** The account API as the browser calls it (same origin, JSON, no cookies). */
const account = (url, route, body) =>
  fetch(`${url}/v1/account/${route}`, { method: "POST", headers: { "content-type": "application/json", origin: url }, body: JSON.stringify(body) });

/**
 * Gives `purposes` at the demo checkout with the address `email`, as a shopper does, and
 * counts the clicks giving them took: one per box. The address and the submit are the
 * order's own (the checkout asks for them whatever is ticked).
 */
async function giveAtCheckout(url, email, purposes) {
  const { page, context } = await openPage(browser);
  await page.goto(`${url}/checkout.html?lang=en`);
  await page.waitForSelector(BOXES);
  await fillCheckout(page);
  await page.fill("#email", email);
  let clicks = 0;
  for (const purpose of purposes) {
    await page.check(`input[name='consent.${purpose}']`);
    clicks += 1;
  }
  const id = await page.inputValue("input[name='consent.record']");
  await Promise.all([page.waitForURL(/\/shop\/order/), page.click("button.buy")]);
  for (const start = Date.now(); Date.now() - start < 5000 && !(await storedRecord(url, id)); ) await new Promise((r) => setTimeout(r, 50));
  await context.close();
  return { id, clicks };
}

/** A page that notes the widget's events on `window.__unticked` from the start. */
async function accountPage(options) {
  const opened = await openPage(browser, options);
  await opened.page.addInitScript(() => {
    window.__unticked = [];
    for (const name of ["recorded", "error", "violation", "change"]) {
      document.addEventListener("unticked:" + name, (e) => window.__unticked.push({ name, target: e.target.id, ...e.detail }));
    }
  });
  opened.requests = [];
  opened.page.on("request", (r) => opened.requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
  return opened;
}

const events = (page, name) => page.evaluate((name) => window.__unticked.filter((e) => e.name == name), name);
const ticked = (page) => page.$$eval(`${ACCOUNT_FORM} ${BOXES}`, (boxes) => boxes.filter((b) => b.checked).map((b) => b.name));

/**
 * Clicks `purpose`'s box (one click: no save button) and waits until the record is delivered
 * and the form has asked again where consent stands. Resolves with the record's id.
 */
async function toggle(page, purpose, { key } = {}) {
  const delivered = (await events(page, "recorded")).length;
  const refreshed = page.waitForResponse((r) => r.url().endsWith("/v1/account/state"));
  if (key) {
    await page.focus(box(purpose));
    await page.keyboard.press(key);
  } else await page.click(box(purpose));
  await page.waitForFunction((n) => window.__unticked.filter((e) => e.name == "recorded").length > n, delivered);
  await refreshed;
  return (await events(page, "recorded")).at(-1).id;
}

test("given at checkout, withdrawn on the shop's account page with one click, given again: records the browser signed", async () => {
  const shop = await server();
  const email = "anna@example.lv";
  const given = await giveAtCheckout(shop.url, email, ["email-offers"]);
  assert.equal((await stateOf(shop.url, email))["email-offers"].state, "given");

  const { page, context, log, requests } = await accountPage();
  await page.goto(`${shop.url}/shop/account?email=${encodeURIComponent(email)}`);
  await page.waitForSelector(box("email-offers"));
  assert.deepEqual(await ticked(page), ["consent.email-offers"], "ticked where consent stands, and nowhere else");
  assert.equal(await page.$$eval(`${ACCOUNT_FORM} fieldset.unticked`, (f) => f.length), 1, "light DOM, the checkout's classes");

  // R5: each row says what the checkout said, word for word.
  const { page: checkout, context: checkoutContext } = await openPage(browser);
  await checkout.goto(`${shop.url}/checkout.html?lang=en`);
  await checkout.waitForSelector(BOXES);
  for (const purpose of ["email-offers", "sms-offers", "personalised-offers"]) {
    const row = `[data-unticked-purpose='${purpose}']`;
    assert.equal(await page.textContent(`${ACCOUNT_FORM} ${row}`), await checkout.textContent(row), purpose);
  }
  await checkoutContext.close();

  // Withdraw: untick. One click, no save button.
  const withdrawal = await toggle(page, "email-offers");
  const withdrawClicks = 1;
  let now = await stateOf(shop.url, email);
  assert.equal(now["email-offers"].state, "withdrawn");
  assert.equal(now["email-offers"].path, "account");
  assert.equal(now["email-offers"].signer, "browser");
  assert.equal(now["email-offers"].record, withdrawal);
  const record = await storedRecord(shop.url, withdrawal);
  assert.equal(record.form, "preferences");
  assert.equal(record.source, "account");
  assert.equal(record.signer, undefined, "no \"signer\": the browser's own signature");
  assert.equal(record.signature.alg, "Ed25519");
  assert.deepEqual(record.page, { origin: shop.url, path: "/shop/account" });
  assert.deepEqual(record.purposes.map((p) => [p.id, p.state]), [["email-offers", "withdrawn"]]);
  assert.deepEqual(await ticked(page), [], "the box shows where consent stands now");
  // The collector's words for "saved", in a role="status" line.
  const words = (await (await account(shop.url, "state", { token: mint(email) })).json()).words;
  assert.equal(await page.textContent(`${ACCOUNT_FORM} [role=status]`), words.saved);
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA after a change");

  // Give again: tick, here from the keyboard (one key); the focus stays on the box.
  const regiven = await toggle(page, "email-offers", { key: "Space" });
  assert.equal(await page.evaluate(() => document.activeElement.name), "consent.email-offers");
  now = await stateOf(shop.url, email);
  assert.equal(now["email-offers"].state, "given");
  assert.equal(now["email-offers"].record, regiven);
  assert.deepEqual((await storedRecord(shop.url, regiven)).purposes.map((p) => [p.id, p.state]), [["email-offers", "given"]]);
  assert.deepEqual(await ticked(page), ["consent.email-offers"]);
  assert.equal(now["sms-offers"].state, "refused", "nothing else changed");

  // The token travelled with each record, and nowhere it is kept: the outbox is empty.
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("unticked:outbox:")).length), 0);
  assert.ok(requests.includes("POST /v1/records"));
  assert.deepEqual(log.pageErrors, []);
  assert.deepEqual(log.console.filter((m) => m.type == "error" || m.type == "warning"), []);
  await context.close();

  const { stdout } = await run(BINARY, ["verify", "--db", shop.db]);
  assert.match(stdout, /: clean$/m);
  console.log(`R7 account form: give ${given.clicks} click (tick at checkout; the address and the submit are the order's), withdraw ${withdrawClicks} click (untick), give again 1 key (Space on the box)`);
  assert.ok(withdrawClicks <= given.clicks);
});

test("a box a page script ticks records nothing, and is put back", async () => {
  const shop = await server();
  const email = "jan@example.pl";
  await giveAtCheckout(shop.url, email, ["email-offers"]);
  const { page, context, requests } = await accountPage();
  await page.goto(`${shop.url}/shop/account?email=${encodeURIComponent(email)}`);
  await page.waitForSelector(box("sms-offers"));
  const size = await logSize(shop.url);

  // `checked` set, a change event dispatched, a scripted click: none is the customer's.
  await page.evaluate((selector) => {
    const sms = document.querySelector(selector);
    sms.checked = true;
    sms.dispatchEvent(new Event("change", { bubbles: true }));
  }, box("sms-offers"));
  assert.equal(await page.isChecked(box("sms-offers")), false, "an untrusted change is undone");
  await page.evaluate((selector) => document.querySelector(selector).click(), box("phone-calls"));
  assert.equal(await page.isChecked(box("phone-calls")), false, "a scripted click is undone");
  await page.evaluate((selector) => (document.querySelector(selector).checked = true), box("catalogue-post"));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!requests.some((r) => r.endsWith("/v1/account/draft") || r.endsWith("/v1/records")), "nothing drafted, nothing posted");
  assert.equal(await logSize(shop.url), size);
  assert.ok((await events(page, "violation")).some((v) => v.kind == "untrusted-tick" && v.rule == "R1"));

  // The customer's own next click records their change only; the box the script ticked
  // without an event is put back, not given.
  const id = await toggle(page, "email-offers");
  assert.deepEqual((await storedRecord(shop.url, id)).purposes.map((p) => [p.id, p.state]), [["email-offers", "withdrawn"]]);
  assert.deepEqual(await ticked(page), []);
  const now = await stateOf(shop.url, email);
  for (const purpose of ["sms-offers", "phone-calls", "catalogue-post"]) assert.equal(now[purpose].state, "refused", purpose);
  await context.close();
});

test("another subject's token reads only its own subject, a forged one nothing, and a record under it is refused", async () => {
  const shop = await server();
  const anna = "anna@example.lv";
  const mara = "mara@example.lv";
  await giveAtCheckout(shop.url, anna, ["email-offers"]);

  // Mara's token reads Mara's standing (nothing asked yet), never Anna's.
  const maras = mint(mara);
  const theirs = await account(shop.url, "state", { token: maras });
  assert.equal(theirs.status, 200);
  const purposes = (await theirs.json()).purposes;
  assert.equal(purposes["email-offers"].state, "unasked");
  assert.equal((await (await account(shop.url, "state", { token: mint(anna) })).json()).purposes["email-offers"].state, "given");

  // Anna's payload under Mara's MAC, or a token of another secret: 401, nothing read.
  const swapped = `${mint(anna).split(".")[0]}.${maras.split(".")[1]}`;
  // (Four wrong tokens: the fifth from one address would be held back, 429.)
  for (const token of [swapped, mint(anna, { secret: "another-secret-0123456789abcdefghij" }), mint(anna, { exp: Math.floor(Date.now() / 1000) - 1 })]) {
    const refused = await account(shop.url, "state", { token });
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "bad-token");
  }
  const draft = await account(shop.url, "draft", { token: swapped, locale: "en", ticked: { "email-offers": false }, page: { origin: shop.url, path: "/" }, widget: "0.1.0" });
  assert.equal(draft.status, 401);

  // Mara's token on a page shows Mara's boxes: none ticked.
  const { page: hers, context: herContext } = await accountPage();
  await fixture(hers, shop.url, `<form id="account" data-unticked="preferences" data-unticked-token="${maras}"></form>`);
  await hers.waitForSelector(box("email-offers"));
  assert.deepEqual(await ticked(hers), []);
  await herContext.close();

  // Anna's withdrawal delivered with Mara's token: 403 token-subject, and nothing changes.
  const { page, context } = await accountPage();
  const answers = [];
  await page.route(`${shop.url}/v1/records`, async (route) => {
    const body = JSON.parse(route.request().postData());
    assert.ok(body.token, "the delivery carries the form's token");
    const response = await route.fetch({ postData: JSON.stringify({ ...body, token: maras }) });
    answers.push([response.status(), (await response.json()).code]);
    await route.fulfill({ response });
  });
  await page.goto(`${shop.url}/shop/account?email=${encodeURIComponent(anna)}`);
  await page.waitForSelector(box("email-offers"));
  await page.click(box("email-offers"));
  for (const start = Date.now(); !answers.length && Date.now() - start < 5000; ) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(answers[0], [403, "token-subject"]);
  assert.equal((await stateOf(shop.url, anna))["email-offers"].state, "given");
  assert.deepEqual(await stateOf(shop.url, mara), {}, "and Mara has no record at all");
  await context.close();
});

test("a checkout page never loads account.js, and the account page loads neither forms.js nor the wasm", async () => {
  const shop = await server();
  const { page, context, requests } = await accountPage();
  await page.goto(`${shop.url}/checkout.html`);
  await page.waitForSelector(BOXES);
  await page.waitForLoadState("networkidle");
  assert.ok(requests.includes("GET /pkg/forms.js"));
  assert.ok(!requests.some((r) => r.endsWith("/pkg/account.js")), requests.join("\n"));

  requests.length = 0;
  await page.goto(`${shop.url}/shop/account?email=anna@example.lv`);
  await page.waitForSelector(box("email-offers"));
  await page.waitForLoadState("networkidle");
  assert.ok(requests.includes("GET /pkg/account.js"));
  assert.ok(!requests.some((r) => r.endsWith("/pkg/forms.js") || r.endsWith(".wasm")), requests.join("\n"));
  await context.close();
});

test("no token, or one the collector refuses: the page stays as it was and the form says why", async () => {
  const shop = await server();
  for (const [attributes, code] of [
    ["", "token-missing"],
    [` data-unticked-token="${mint("anna@example.lv", { secret: "another-secret-0123456789abcdefghij" })}"`, "account-refused"],
  ]) {
    const { page, context, log } = await accountPage();
    await fixture(page, shop.url, `<form id="account" data-unticked="preferences"${attributes}><p id="mine">The shop's own text</p></form>`);
    await page.waitForFunction(() => window.__unticked.some((e) => e.name == "error"));
    const [error] = await events(page, "error");
    assert.equal(error.code, code);
    assert.equal(error.target, "account", "on the form");
    assert.doesNotMatch(error.message, /\.[A-Za-z0-9_-]{20,}/, "the message never carries the token");
    assert.equal(await page.innerHTML("#account"), `<p id="mine">The shop's own text</p>`);
    assert.ok(log.console.some((m) => m.type == "error" && m.text.includes("unticked:")));
    await context.close();
  }
});

test("a version bump: the account form asks for that purpose again, unticked, and a tick renews it", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-account-bump-"));
  const db = path.join(dir, "log.db");
  const email = "eva@example.cz";
  const first = await server({ db });
  await giveAtCheckout(first.url, email, ["email-offers", "sms-offers"]);
  await first.stop();
  servers.splice(servers.indexOf(first), 1);

  const config = JSON.parse(readFileSync(path.join(ROOT, "www/consent.json"), "utf8"));
  config.purposes.find((p) => p.id === "email-offers").version += 1;
  const bumped = path.join(dir, "consent.json");
  writeFileSync(bumped, JSON.stringify(config, null, 2));
  const shop = await server({ db, config: bumped });
  assert.equal((await stateOf(shop.url, email))["email-offers"].state, "outdated");

  const { page, context } = await accountPage();
  await page.goto(`${shop.url}/shop/account?email=${encodeURIComponent(email)}`);
  await page.waitForSelector(box("email-offers"));
  assert.deepEqual(await ticked(page), ["consent.sms-offers"], "asked again, unticked");
  const words = (await (await account(shop.url, "state", { token: mint(email) })).json()).words;
  const note = await page.$eval(box("email-offers"), (b) => {
    const ids = b.getAttribute("aria-describedby").split(" ");
    return document.getElementById(ids.at(-1))?.textContent;
  });
  assert.equal(note, words.outdated, "the row says why, and the box is described by it");
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA with a purpose asked again");
  const id = await toggle(page, "email-offers");
  const record = await storedRecord(shop.url, id);
  assert.deepEqual(record.purposes.map((p) => [p.id, p.state, p.version]), [["email-offers", "renewed", config.purposes.find((p) => p.id === "email-offers").version]]);
  assert.equal((await stateOf(shop.url, email))["email-offers"].state, "given");
  assert.deepEqual(await ticked(page), ["consent.email-offers", "consent.sms-offers"]);
  assert.equal(await page.$$eval(`${ACCOUNT_FORM} [id$='-email-offers-again']`, (n) => n.length), 0, "no longer asked again");
  await context.close();
});

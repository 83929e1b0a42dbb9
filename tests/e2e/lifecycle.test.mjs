// Consent over its life, in Chromium against the real collector (issue 14): given at checkout,
// withdrawn by RFC 8058 one-click unsubscribe and on the collector's preference page (with
// JavaScript off), given again, and asked again after a version bump. Each step is a record
// in the log; `unticked verify` finds the log clean. The clicks each path takes to give and to
// withdraw are counted, and printed: they are R7's evidence in docs/rules.md.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, BINARY, admin, stateOf, logSize, startServer, launchBrowser, openPage, fillCheckout, BOXES } from "./harness.mjs";

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

/** The link's path on this collector (links carry the collector's public origin). */
const on = (url, link) => url + new URL(link).pathname;

/**
 * Gives `purposes` at the demo checkout as a shopper does, and counts the clicks that
 * giving them took (the purchase's own fields and button are not consent's).
 */
async function giveAtCheckout(url, purposes, lang = "en") {
  const { page, context } = await openPage(browser);
  await page.goto(`${url}/checkout.html?lang=${lang}`);
  await page.waitForSelector(BOXES);
  await fillCheckout(page);
  let clicks = 0;
  for (const purpose of purposes) {
    await page.check(`input[name='consent.${purpose}']`);
    clicks += 1;
  }
  const id = await page.inputValue("input[name='consent.record']");
  await Promise.all([page.waitForURL(/\/shop\/order/), page.click("button.buy")]);
  for (const start = Date.now(); Date.now() - start < 5000; await new Promise((r) => setTimeout(r, 50))) {
    if ((await fetch(`${url}/v1/records/${id}`)).status === 200) break;
  }
  await context.close();
  return { id, clicks };
}

const rowText = (page, purpose) => page.textContent(`[data-unticked-purpose='${purpose}']`);

async function verifyClean(db) {
  const { stdout } = await run(BINARY, ["verify", "--db", db]);
  return stdout;
}

const SHOPPER = "shopper@example.lv";

test("checkout give, then one-click unsubscribe: withdrawn by a record in the log, a GET changes nothing, verify is clean", async () => {
  const shop = await server();
  const given = await giveAtCheckout(shop.url, ["email-offers", "sms-offers"]);
  assert.equal((await stateOf(shop.url, SHOPPER))["email-offers"].state, "given");
  const links = await admin(shop.url, "/v1/admin/links", { identifier: SHOPPER, channel: "email" });
  const unsubscribe = on(shop.url, links.unsubscribe);

  // Mail scanners fetch every link: neither a plain GET nor a browser visit changes a thing.
  const size = await logSize(shop.url);
  assert.equal((await fetch(unsubscribe)).status, 200);
  assert.equal((await fetch(on(shop.url, links.preferences))).status, 200);
  const { page, context, log } = await openPage(browser);
  const response = await page.goto(unsubscribe);
  assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
  assert.equal(await logSize(shop.url), size);
  assert.equal((await stateOf(shop.url, SHOPPER))["email-offers"].state, "given");

  // The page's one button posts what RFC 8058 one-click posts: one click withdraws.
  await Promise.all([page.waitForSelector("#unsubscribed"), page.click("#confirm")]);
  const withdrawClicks = 1;
  const now = await stateOf(shop.url, SHOPPER);
  assert.equal(now["email-offers"].state, "withdrawn");
  assert.equal(now["email-offers"].path, "unsubscribe");
  assert.equal(now["sms-offers"].state, "given", "another channel stands");
  const record = JSON.parse((await (await fetch(`${shop.url}/v1/records/${now["email-offers"].record}`)).json()).record);
  assert.equal(record.signer, "collector");
  assert.deepEqual(record.purposes.map((p) => [p.id, p.state]), [["email-offers", "withdrawn"]]);
  assert.deepEqual(log.pageErrors, []);
  await context.close();

  // A mail client's one-click POST (RFC 8058 §3.1): no cookie, no header token; idempotent.
  const oneClick = () =>
    fetch(unsubscribe, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" });
  const sizeAfter = await logSize(shop.url);
  assert.equal((await oneClick()).status, 200);
  assert.equal((await oneClick()).status, 200);
  assert.equal(await logSize(shop.url), sizeAfter, "nothing stands on the channel: nothing more to record");

  assert.match(await verifyClean(shop.db), /clean|ok/i);
  console.log(`R7 one-click unsubscribe: giving took ${given.clicks} clicks at checkout (one tick per purpose), withdrawing the channel took ${withdrawClicks}`);
  assert.ok(withdrawClicks <= given.clicks / 2, "withdrawing a purpose never takes more than giving it");
});

test("the preference page with JavaScript off: the same details as at checkout, withdraw one purpose, give it again, withdraw everything", async () => {
  const shop = await server();
  await giveAtCheckout(shop.url, ["email-offers", "sms-offers"]);
  const links = await admin(shop.url, "/v1/admin/links", { identifier: SHOPPER, channel: "email" });
  const { page, context, log } = await openPage(browser, { javaScriptEnabled: false });
  await page.goto(on(shop.url, links.preferences));
  const ticked = () => page.$$eval(`${BOXES}:checked`, (boxes) => boxes.map((b) => b.name));
  assert.deepEqual(await ticked(), ["consent.email-offers", "consent.sms-offers"]);

  // Each purpose shows what the checkout showed (R5): the same row, word for word.
  const { page: checkout, context: checkoutContext } = await openPage(browser);
  await checkout.goto(`${shop.url}/checkout.html?lang=en`);
  await checkout.waitForSelector(BOXES);
  for (const purpose of ["email-offers", "sms-offers", "phone-calls", "personalised-offers"]) {
    assert.equal(await rowText(page, purpose), await rowText(checkout, purpose), purpose);
  }
  await checkoutContext.close();

  // Withdraw one: untick, save (2 clicks).
  await page.uncheck("input[name='consent.sms-offers']");
  await Promise.all([page.waitForURL(/saved=yes/), page.click("#save")]);
  let now = await stateOf(shop.url, SHOPPER);
  assert.equal(now["sms-offers"].state, "withdrawn");
  assert.equal(now["sms-offers"].path, "preferences");
  assert.equal(now["email-offers"].state, "given", "that purpose alone");
  assert.deepEqual(await ticked(), ["consent.email-offers"]);
  assert.ok(await page.isVisible("#saved"));

  // Give it again: tick, save (2 clicks) — the subject's own new consent.
  await page.check("input[name='consent.sms-offers']");
  await Promise.all([page.waitForURL(/saved=yes/), page.click("#save")]);
  now = await stateOf(shop.url, SHOPPER);
  assert.equal(now["sms-offers"].state, "given");
  assert.deepEqual(await ticked(), ["consent.email-offers", "consent.sms-offers"]);

  // Withdraw from everything: one click.
  await Promise.all([page.waitForURL(/saved=yes/), page.click("#withdraw-all")]);
  now = await stateOf(shop.url, SHOPPER);
  assert.deepEqual(
    Object.entries(now).filter(([, p]) => p.state === "given"),
    [],
  );
  assert.deepEqual(await ticked(), []);
  assert.deepEqual(log.pageErrors, []);
  await context.close();
  assert.match(await verifyClean(shop.db), /clean|ok/i);
  console.log("R7 preference page: give 2 clicks (tick, save), withdraw 2 clicks (untick, save) or 1 (withdraw from everything)");
});

test("a version bump makes exactly one purpose outdated; re-giving it on the preference page clears that", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-bump-"));
  const db = path.join(dir, "log.db");
  const first = await server({ db });
  await giveAtCheckout(first.url, ["email-offers", "sms-offers"]);
  await first.stop();
  servers.splice(servers.indexOf(first), 1);

  const config = JSON.parse(readFileSync(path.join(ROOT, "www/consent.json"), "utf8"));
  config.purposes.find((p) => p.id === "email-offers").version = 2;
  const bumped = path.join(dir, "consent.json");
  writeFileSync(bumped, JSON.stringify(config, null, 2));
  const shop = await server({ db, config: bumped });

  let now = await stateOf(shop.url, SHOPPER);
  const outdated = Object.entries(now).filter(([, p]) => p.state === "outdated").map(([id]) => id);
  assert.deepEqual(outdated, ["email-offers"]);
  assert.equal(now["email-offers"].version, 1);
  assert.equal(now["email-offers"].current_version, 2);
  assert.equal(now["sms-offers"].state, "given", "nothing else about the subject changes");

  const links = await admin(shop.url, "/v1/admin/links", { identifier: SHOPPER, channel: "email" });
  const { page, context } = await openPage(browser, { javaScriptEnabled: false });
  await page.goto(on(shop.url, links.preferences));
  assert.equal(await page.isChecked("input[name='consent.email-offers']"), false, "asked again, unticked");
  assert.ok(await page.isVisible("[data-asked-again='email-offers']"));
  await page.check("input[name='consent.email-offers']");
  await Promise.all([page.waitForURL(/saved=yes/), page.click("#save")]);
  await context.close();
  now = await stateOf(shop.url, SHOPPER);
  assert.equal(now["email-offers"].state, "given");
  assert.equal(now["email-offers"].version, 2);
  const record = JSON.parse((await (await fetch(`${shop.url}/v1/records/${now["email-offers"].record}`)).json()).record);
  assert.deepEqual(record.purposes.map((p) => [p.id, p.state, p.version]), [["email-offers", "renewed", 2]]);
});

test("a link that is not one, or was revoked, leads to a page that says so", async () => {
  const shop = await server();
  await giveAtCheckout(shop.url, ["email-offers"]);
  const links = await admin(shop.url, "/v1/admin/links", { identifier: SHOPPER, channel: "email" });
  await admin(shop.url, "/v1/admin/links/revoke", { identifier: SHOPPER });
  const { page, context } = await openPage(browser);
  const response = await page.goto(on(shop.url, links.preferences));
  assert.equal(response.status(), 404);
  assert.ok(await page.isVisible("#link-invalid"));
  const oneClick = await fetch(on(shop.url, links.unsubscribe), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "List-Unsubscribe=One-Click",
  });
  assert.equal(oneClick.status, 404);
  assert.equal((await stateOf(shop.url, SHOPPER))["email-offers"].state, "given");
  await context.close();
});

// The site owner's console, `/admin` (issue 17), in Chromium against the real collector: a
// real checkout makes a subject; the owner signs in with the keyboard, finds them through the
// keyed index, reads the exact text they were shown and their receipt checked live, downloads
// the evidence and the CLI verifies it offline (and a tampered copy fails), erases them
// behind a confirmation while `unticked verify` stays clean. The dashboard's charts reflect a
// known set of records, the config history shows a real diff, forms without the session's
// CSRF token or from another site change nothing, wrong tokens are held back, and axe-core
// finds nothing on any page.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, BINARY, ADMIN_TOKEN, startServer, launchBrowser, openPage, fillCheckout, deliveredRecord, CHOICES, axeViolations } from "./harness.mjs";

const run = promisify(execFile);
const EMAIL = "shopper@example.lv";

const browser = await launchBrowser();
const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
  await browser.close();
});

async function server(options) {
  const started = await startServer(options);
  cleanup.push(() => started.stop());
  return started;
}

/** A shopper's checkout in its own browser context, ticking `ticks`; resolves with the record id once stored. */
async function checkout(url, ticks) {
  const { page, context } = await openPage(browser);
  await page.goto(url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await fillCheckout(page);
  for (const purpose of ticks) await page.click(`label[for$='-${purpose}']`);
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("button.buy")]);
  await page.waitForSelector("#done");
  const id = new URLSearchParams(order.postData()).get("consent.record");
  await deliveredRecord(url, id);
  await context.close();
  return id;
}

/** Signs in as the site owner does, with the keyboard only: Tab to the token, type, Enter. */
async function signIn(page, url) {
  await page.goto(url + "/admin");
  await page.keyboard.press("Tab"); // the skip link
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "token", "Tab reaches the token field");
  await page.keyboard.type(ADMIN_TOKEN);
  await Promise.all([page.waitForURL(url + "/admin"), page.keyboard.press("Enter")]);
  await page.waitForSelector("#identifier");
}

/** Finds a subject from the console's search, with the keyboard. */
async function find(page, identifier) {
  await page.fill("#identifier", identifier);
  await Promise.all([page.waitForNavigation(), page.press("#identifier", "Enter")]);
}

const publicKey = async (url) => (await (await fetch(url + "/v1/checkpoint")).json()).public_key;

async function verifyBundle(file, key) {
  try {
    const { stdout } = await run(BINARY, ["verify", "--bundle", file, "--public-key", key]);
    return { code: 0, out: stdout };
  } catch (e) {
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
}

test("sign in with the keyboard, find a checkout's subject, read the text they saw and the receipt checked live; the evidence verifies offline and a tampered copy does not; erase keeps verify clean", async () => {
  const shop = await server();
  const id = await checkout(shop.url, ["email-offers"]);
  const { page, context, log } = await openPage(browser);
  const urls = [];
  page.on("request", (r) => urls.push(r.url()));

  await page.goto(shop.url + "/admin");
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA on the sign-in page");
  await signIn(page, shop.url);
  const [cookie] = (await context.cookies()).filter((c) => c.name === "unticked-console");
  assert.ok(cookie, "a session cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/admin");
  assert.equal(cookie.secure, false, "plain http here: Secure only when the public origin is https");
  assert.ok(!cookie.value.includes(ADMIN_TOKEN.slice(0, 8)), "the cookie is not the token");

  // Found by the address typed in capitals, through the keyed index.
  await find(page, "Shopper@Example.LV");
  assert.ok((await page.textContent("h1")).includes(EMAIL), await page.textContent("main"));
  assert.equal(await page.getAttribute("tr[data-purpose='email-offers']", "data-state"), "given");
  assert.equal(await page.getAttribute("tr[data-purpose='sms-offers']", "data-state"), "refused");

  // The text they were shown, exactly as stored under the hash their record names.
  const stored = JSON.parse((await (await fetch(`${shop.url}/v1/records/${id}`)).json()).record);
  const emailOffers = stored.purposes.find((p) => p.id === "email-offers");
  const text = (await (await fetch(`${shop.url}/v1/texts/${emailOffers.text_sha256}`)).json()).text;
  const item = page.locator(`#r-${id} li[data-purpose='email-offers']`);
  assert.equal(await item.locator("blockquote").textContent(), text);
  assert.ok(text.includes("I agree to receive offers and news by e-mail"), text);
  assert.equal(await page.locator(`#r-${id} [data-verified]`).getAttribute("data-verified"), "yes");
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA on the subject view");

  // The record's evidence, downloaded from the console, verifies with the CLI offline.
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-console-"));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  const key = await publicKey(shop.url);
  const [recordDownload] = await Promise.all([page.waitForEvent("download"), page.click(`#r-${id} a[download]`)]);
  const recordFile = path.join(dir, "record.json");
  await recordDownload.saveAs(recordFile);
  const recordCheck = await verifyBundle(recordFile, key);
  assert.equal(recordCheck.code, 0, recordCheck.out);

  // The subject's, without contacts unless asked: the address is not in it.
  const [subjectDownload] = await Promise.all([page.waitForEvent("download"), page.click("form[action='/admin/subject/bundle'] button")]);
  const subjectFile = path.join(dir, "subject.json");
  await subjectDownload.saveAs(subjectFile);
  assert.ok(!subjectDownload.suggestedFilename().includes("@"), subjectDownload.suggestedFilename());
  const subjectText = readFileSync(subjectFile, "utf8");
  assert.ok(!subjectText.includes(EMAIL), "no contact data unless asked for");
  assert.ok(subjectText.includes(id));
  assert.equal((await verifyBundle(subjectFile, key)).code, 0);

  // One byte changed anywhere (here: one character of the record id, where it first
  // appears) and verification fails, naming what.
  const at = subjectText.indexOf(id) + id.length - 1;
  const flipped = subjectText.slice(0, at) + (subjectText[at] === "0" ? "1" : "0") + subjectText.slice(at + 1);
  const tamperedFile = path.join(dir, "tampered.json");
  writeFileSync(tamperedFile, flipped);
  const tampered = await verifyBundle(tamperedFile, key);
  assert.equal(tampered.code, 1, tampered.out);
  // Pinned to another key, the genuine bundle fails too.
  const otherKey = key.slice(0, -2) + (key.endsWith("A") ? "BB" : "AA");
  assert.notEqual((await verifyBundle(recordFile, otherKey)).code, 0);

  // Erasure, behind a confirmation.
  await Promise.all([page.waitForNavigation(), page.click("form[action='/admin/subject/erase'] button")]);
  assert.ok((await page.textContent("#question")).includes(EMAIL));
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA on the confirmation");
  await Promise.all([page.waitForNavigation(), page.click("button[name='confirmed']")]);
  assert.ok((await page.textContent(".notice")).length > 0);
  await find(page, EMAIL);
  assert.ok(await page.isVisible("text=No record names this subject."));
  // The record and its proofs stay, naming nobody; the log verifies.
  assert.equal((await fetch(`${shop.url}/v1/records/${id}`)).status, 200);
  const { stdout } = await run(BINARY, ["verify", "--db", shop.db]);
  assert.match(stdout, /clean/);

  // The token never travelled in an address, and nothing failed in the page.
  assert.ok(urls.every((u) => !u.includes(ADMIN_TOKEN)), urls.join("\n"));
  assert.deepEqual(log.pageErrors, []);
  await context.close();
});

test("forms without the session's CSRF token, or posted from another site, change nothing; sign-out ends the session on the server", async () => {
  const shop = await server();
  await checkout(shop.url, ["email-offers"]);
  const { page, context } = await openPage(browser);
  await signIn(page, shop.url);
  const still = async () => {
    const answer = await fetch(`${shop.url}/v1/admin/subjects`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ identifier: EMAIL }),
    });
    return (await answer.json()).history.length;
  };

  // The session's cookie goes with these, but no CSRF token (or a wrong one): 403.
  const without = await page.request.post(`${shop.url}/admin/subject/erase`, { form: { identifier: EMAIL, confirmed: "yes" } });
  assert.equal(without.status(), 403);
  const wrong = await page.request.post(`${shop.url}/admin/subject/erase`, { form: { identifier: EMAIL, confirmed: "yes", csrf: "0".repeat(64) } });
  assert.equal(wrong.status(), 403);
  assert.equal(await still(), 1);

  // A page of another site posting the console's own form: SameSite=Strict keeps the
  // cookie home, so the collector sees no session.
  const csrf = await page.getAttribute("input[name='csrf']", "value");
  await page.route("http://attacker.example/", (route) =>
    route.fulfill({
      status: 200,
      contentType: "text/html",
      body: `<!doctype html><html lang="en"><title>x</title><form method="post" action="${shop.url}/admin/subject/erase">
        <input name="identifier" value="${EMAIL}"><input name="confirmed" value="yes"><input name="csrf" value="${csrf}">
        <button id="go">go</button></form>`,
    }),
  );
  await page.goto("http://attacker.example/");
  const [answer] = await Promise.all([page.waitForResponse(`${shop.url}/admin/subject/erase`), page.click("#go")]);
  assert.equal(answer.status(), 401);
  assert.equal(await still(), 1, "nothing was erased");

  // Sign-out clears the cookie and ends the session in the store: the old cookie is dead.
  await page.goto(shop.url + "/admin");
  const [old] = (await context.cookies()).filter((c) => c.name === "unticked-console");
  await Promise.all([page.waitForNavigation(), page.click(".sign-out button")]);
  assert.ok(await page.isVisible("text=You are signed out."));
  assert.equal((await context.cookies()).filter((c) => c.name === "unticked-console").length, 0);
  await context.addCookies([old]);
  const replayed = await page.goto(shop.url + "/admin/dashboard");
  assert.equal(replayed.status(), 401);
  await context.close();
});

test("wrong tokens are refused and then held back; the console speaks the browser's language", async () => {
  const shop = await server();
  const { page, context } = await openPage(browser);
  for (let i = 0; i < 5; i++) {
    await page.goto(shop.url + "/admin");
    await page.fill("#token", `wrong-token-${i}-${"x".repeat(32)}`);
    const [answer] = await Promise.all([page.waitForResponse(`${shop.url}/admin/sign-in`), page.click("button[type=submit]")]);
    assert.equal(answer.status(), 401, `try ${i}`);
    assert.ok(await page.isVisible("text=That is not the admin token."));
  }
  await page.fill("#token", "one-more-wrong-token-xxxxxxxxxxxxxxxxxxxxx");
  const [held] = await Promise.all([page.waitForResponse(`${shop.url}/admin/sign-in`), page.click("button[type=submit]")]);
  assert.equal(held.status(), 429);
  assert.ok(Number(held.headers()["retry-after"]) > 0);
  assert.equal((await context.cookies()).length, 0, "no session from a wrong token");
  await context.close();

  const latvian = await openPage(browser, { locale: "lv-LV" });
  await latvian.page.goto(shop.url + "/admin");
  assert.equal(await latvian.page.getAttribute("html", "lang"), "lv");
  const lv = JSON.parse(readFileSync(path.join(ROOT, "crates/collector/console/lv.json"), "utf8"));
  assert.equal((await latvian.page.textContent("h1")).trim(), lv.sign_in_heading);
  assert.deepEqual(await axeViolations(latvian.page), []);
  await latvian.context.close();
});

test("the config history lists each version served and shows the diff of a corrected label", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-console-history-"));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  const www = path.join(dir, "www");
  cpSync(path.join(ROOT, "www"), www, { recursive: true });
  const config = path.join(www, "consent.json");
  const db = path.join(dir, "log.db");
  const OLD = "I agree to receive offers and news by e-mail";
  const NEW = "I agree to receive offers and news by email";
  const first = await startServer({ www, db });
  await first.stop();
  writeFileSync(config, readFileSync(config, "utf8").replace(OLD, NEW));
  const shop = await server({ www, db });

  const { page, context } = await openPage(browser);
  await signIn(page, shop.url);
  await page.goto(shop.url + "/admin/configs");
  assert.equal(await page.locator("table.configs tbody tr").count(), 2);
  assert.equal(await page.locator("table.configs .current").count(), 1);
  const removed = await page.locator(".diff del").allTextContents();
  const added = await page.locator(".diff ins").allTextContents();
  assert.ok(removed.some((l) => l.includes(OLD)), removed.join("\n"));
  assert.ok(added.some((l) => l.includes(NEW)), added.join("\n"));
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA on the config history");
  await context.close();
});

test("the dashboard's charts reflect a known set of checkouts, with a table of the same numbers", async () => {
  const shop = await server();
  const ids = [];
  for (const ticks of [["email-offers", "sms-offers"], ["email-offers"], []]) ids.push(await checkout(shop.url, ticks));
  // What the charts must say, counted from the stored records themselves.
  const records = await Promise.all(ids.map(async (id) => JSON.parse((await (await fetch(`${shop.url}/v1/records/${id}`)).json()).record)));
  const perPurpose = {};
  let given = 0;
  let shown = 0;
  for (const record of records) {
    for (const p of record.purposes) {
      perPurpose[p.id] ??= { given: 0, shown: 0 };
      perPurpose[p.id].shown += 1;
      shown += 1;
      if (p.state === "given") {
        perPurpose[p.id].given += 1;
        given += 1;
      }
    }
  }
  assert.deepEqual(perPurpose["email-offers"], { given: 2, shown: 3 });
  assert.deepEqual(perPurpose["sms-offers"], { given: 1, shown: 3 });

  const { page, context } = await openPage(browser);
  await signIn(page, shop.url);
  await page.goto(shop.url + "/admin/dashboard");
  const today = new Date().toISOString().slice(0, 10);
  const marks = (chart) =>
    page.$$eval(`[data-chart='${chart}'] .unticked-chart__mark`, (els) =>
      els.map((e) => ({ day: e.dataset.day, series: e.dataset.series, value: e.dataset.value, given: e.dataset.given, shown: e.dataset.shown })),
    );
  const purposes = (await marks("rate-purpose")).filter((m) => m.day === today);
  for (const [id, counts] of Object.entries(perPurpose)) {
    const mark = purposes.find((m) => m.series === id);
    assert.ok(mark, `a mark for ${id} today: ${JSON.stringify(purposes)}`);
    assert.equal(Number(mark.given), counts.given, id);
    assert.equal(Number(mark.shown), counts.shown, id);
    assert.ok(Math.abs(Number(mark.value) - counts.given / counts.shown) < 1e-4, `${id}: ${mark.value}`);
  }
  const form = (await marks("rate-form")).find((m) => m.day === today && m.series === "checkout");
  assert.equal(Number(form.given), given);
  assert.equal(Number(form.shown), shown);
  const log = (await marks("log-size")).find((m) => m.day === today);
  assert.equal(Number(log.value), 3);
  assert.equal(await page.textContent("[data-checkpoint='size']"), "3");
  // The same numbers in a table for screen readers; axe finds nothing.
  assert.ok((await page.locator("[data-chart='rate-purpose'] table").count()) === 1);
  assert.deepEqual(await axeViolations(page), [], "WCAG 2.2 A/AA on the dashboard");
  await context.close();
});

// Consent given on the phone (issue 15, item 5), in Chromium against the real collector: the
// staff page (www/staff.html) takes the agent's token once (sessionStorage only), shows the
// config's own texts in the caller's language, and records what the caller said through
// `POST /v1/admin/assisted`. The record is the collector's, source `phone`, marked assisted,
// carries the SHA-256 of the text shown on the page, and the log verifies. A wrong token,
// or the admin token, records nothing and the page says why.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, BINARY, ADMIN_TOKEN, STAFF_TOKEN, admin, logSize, startServer, launchBrowser, openPage, storedRecord, axeViolations } from "./harness.mjs";

const browser = await launchBrowser();
const server = await startServer();
after(async () => {
  await browser.close();
  await server.stop();
});

const sha256 = (text) => createHash("sha256").update(text, "utf8").digest("hex");

async function staffPage() {
  const opened = await openPage(browser);
  const response = await opened.page.goto(server.url + "/staff.html");
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval'; style-src 'self'/);
  return opened;
}

async function useToken(page, token) {
  await page.fill("#token", token);
  await page.click("#use-token");
}

test("an agent records a phone consent from the staff page, with the texts read out", async () => {
  const { page, context, log } = await staffPage();
  await useToken(page, STAFF_TOKEN);
  await page.waitForSelector("#call:not([hidden])");
  // Kept for this tab only, never in localStorage or a cookie.
  assert.equal(await page.evaluate(() => sessionStorage.getItem("unticked.staff-token")), STAFF_TOKEN);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.deepEqual(await context.cookies(), []);
  assert.equal(await page.inputValue("#token"), "", "the token is not left in the field");

  await page.selectOption("#locale", "lv");
  await page.waitForSelector("#purposes blockquote[lang=lv]");
  // The e-mail channel: its purposes, each text as the config words it, nothing answered yet.
  const shown = await page.$$eval("#purposes .read-out", (blocks) =>
    blocks.map((b) => ({ id: b.dataset.purpose, text: b.querySelector("blockquote").textContent })),
  );
  assert.deepEqual(
    shown.map((s) => s.id),
    ["email-offers", "birthday-greetings"],
  );
  assert.match(shown[0].text, /Piekrītu saņemt piedāvājumus un jaunumus e-pastā/);
  const unasked = await page.$$eval("#purposes input[type=radio]:checked", (inputs) => inputs.map((i) => i.value));
  assert.deepEqual(unasked, ["unasked", "unasked"], "nothing is answered for the caller");

  assert.deepEqual(await axeViolations(page), [], "the staff page meets WCAG 2.2 AA");
  await page.fill("#identifier", "Marta.Liepa@Example.LV");
  await page.check("input[name='answer.email-offers'][value=given]");
  await page.check("input[name='answer.birthday-greetings'][value=refused]");
  await page.fill("#staff", "Līga K.");
  await page.fill("#recording", "calls/2026-12-02/0107.opus");
  await page.click("#record");
  await page.waitForSelector("#result:not([hidden])");
  const id = await page.getAttribute("#result", "data-record");
  assert.match(await page.textContent("#result"), /email-offers: given, birthday-greetings: refused/);
  assert.equal(await page.inputValue("#identifier"), "", "the next call starts blank");

  const record = await storedRecord(server.url, id);
  assert.equal(record.signer, "collector");
  assert.equal(record.source, "phone");
  assert.equal(record.locale, "lv");
  assert.deepEqual(record.assisted, { staff: "Līga K.", recording: "calls/2026-12-02/0107.opus" });
  const byId = Object.fromEntries(record.purposes.map((p) => [p.id, p]));
  assert.equal(byId["email-offers"].state, "given");
  assert.equal(byId["birthday-greetings"].state, "refused");
  // The hash is of the very text the agent read out from the page.
  assert.equal(byId["email-offers"].text_sha256, sha256(shown[0].text));
  assert.equal(byId["birthday-greetings"].text_sha256, sha256(shown[1].text));

  const found = await admin(server.url, "/v1/admin/subjects", { identifier: "marta.liepa@example.lv" });
  assert.equal(found.purposes["email-offers"].state, "given");
  assert.equal(found.history[0].source, "phone");

  // Another channel shows its own purposes only.
  await page.selectOption("#channel", "sms");
  assert.deepEqual(await page.$$eval("#purposes .read-out", (b) => b.map((x) => x.dataset.purpose)), ["sms-offers"]);

  const verified = execFileSync(BINARY, ["verify", "--db", server.db], { encoding: "utf8" });
  assert.match(verified, /: 1 records, .*: clean/, verified);
  assert.deepEqual(log.pageErrors, []);
  const noisy = log.console.filter((m) => m.type === "error");
  assert.deepEqual(noisy, [], JSON.stringify(noisy));
  await context.close();
});

test("the page shows the collector's refusal and records nothing for bad input", async () => {
  const { page, context } = await staffPage();
  await useToken(page, STAFF_TOKEN);
  await page.waitForSelector("#call:not([hidden])");
  const before = await logSize(server.url);
  await page.fill("#identifier", "not an address");
  await page.check("input[name='answer.email-offers'][value=given]");
  await page.fill("#staff", "Līga K.");
  await page.fill("#recording", "calls/0108");
  await page.click("#record");
  await page.waitForSelector("#refusal:not([hidden])");
  assert.match(await page.textContent("#refusal"), /bad-identifier/);
  await page.fill("#identifier", "marta.liepa@example.lv");
  await page.fill("#recording", "");
  await page.click("#record");
  await page.waitForFunction(() => /bad-reference/.test(document.getElementById("refusal").textContent));
  assert.match(await page.textContent("#refusal"), /recording/);
  assert.equal(await logSize(server.url), before);
  await context.close();
});

test("the admin token opens nothing here, and the page asks for the staff token again", async () => {
  const { page, context } = await staffPage();
  await useToken(page, ADMIN_TOKEN);
  await page.waitForSelector("#refusal:not([hidden])");
  assert.match(await page.textContent("#refusal"), /unauthorised/);
  assert.equal(await page.isHidden("#call"), true);
  assert.equal(await page.isVisible("#token"), true);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("unticked.staff-token")), null, "a refused token is not kept");
  await context.close();
});

test("the demo's index links the staff page", async () => {
  const { page, context } = await openPage(browser);
  await page.goto(server.url + "/");
  await page.click("a[href='/staff.html']");
  await page.waitForSelector("#token");
  await context.close();
});

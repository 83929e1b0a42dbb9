// End-to-end: the collector keeps every config it has served (issue 14). A shopper checks
// out while the endpoint is down; before it comes back, the site owner corrects a label and
// restarts the collector with the new wording. The record waiting in the outbox was made
// under the previous config and must still be accepted, checked against that config, and
// the shopper's wording kept. And a record made under a config the collector has never
// served is refused (422 `unknown-config`) and stays in the outbox until it has. Real
// Chromium, real collectors restarted over one log, behind one proxy (the shop's origin
// does not change across a restart).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, startServer, launchBrowser, openPage, CHOICES, fillCheckout, storedRecord, deliveredRecord, flakyProxy } from "./harness.mjs";

const OLD_LABEL = "I agree to receive offers and news by e-mail";
const CORRECTED_LABEL = "I agree to receive offers and news by email";

const waitingIds = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith("unticked:outbox:")));
const outboxEmpty = (page) => page.waitForFunction(() => !Object.keys(localStorage).some((k) => k.startsWith("unticked:outbox:")));
const closeProxy = async (proxy) => {
  proxy.server.closeAllConnections();
  await new Promise((resolve) => proxy.server.close(resolve));
};

// Everything started here is stopped whether the test passes or not.
const cleanup = [];
after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => {});
});

const configs = async (url) => (await (await fetch(`${url}/v1/configs`)).json()).configs;

/**
 * A web root of the test's own, a copy of www/ (the site owner edits its consent.json, and
 * serve compiles each config into its pkg/), and a log path beside it.
 */
function ownShop() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-history-"));
  cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
  const www = path.join(dir, "www");
  cpSync(path.join(ROOT, "www"), www, { recursive: true });
  const config = path.join(www, "consent.json");
  const original = readFileSync(config, "utf8");
  assert.equal(original.split(OLD_LABEL).length, 2, "the demo's English e-mail label, once");
  return { dir, www, config, db: path.join(dir, "log.db"), original, corrected: original.replace(OLD_LABEL, CORRECTED_LABEL) };
}

test("a record waiting in the outbox across a restart with a corrected label is accepted under the config it was made with", async () => {
  const { www, config, db, corrected } = ownShop();

  const first = await startServer({ www, db });
  let stopFirst = first.stop;
  cleanup.push(() => stopFirst());
  let proxy = await flakyProxy(first);
  cleanup.push(() => closeProxy(proxy));
  const browser = await launchBrowser();
  cleanup.push(() => browser.close());
  const { page, log } = await openPage(browser);

  // The checkout, e-mail offers ticked under the old wording, while the endpoint is down.
  proxy.down = true;
  await page.goto(proxy.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  assert.ok((await page.textContent("label[for$='-email-offers']")).includes(OLD_LABEL));
  await fillCheckout(page);
  await page.click("label[for$='-email-offers']");
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("button.buy")]);
  await page.waitForSelector("#done");
  const id = new URLSearchParams(order.postData()).get("consent.record");
  assert.ok(proxy.posts.length >= 1 && proxy.posts.every((p) => p === 503), JSON.stringify(proxy.posts));
  assert.equal(await storedRecord(first.url, id), null, "nothing reached the collector");
  const [served] = await configs(first.url);

  // The site owner corrects the label (same purpose version) and restarts the collector.
  await closeProxy(proxy);
  await first.stop();
  stopFirst = async () => {};
  writeFileSync(config, corrected);
  const second = await startServer({ www, db, extra: ["--public-origin", proxy.url] });
  cleanup.push(() => second.stop());
  const history = await configs(second.url);
  assert.deepEqual(
    history.map((c) => [c.sha256, c.current]),
    [
      [served.sha256, false],
      [history[1].sha256, true],
    ],
  );
  assert.notEqual(history[1].sha256, served.sha256);
  // The shop's origin is the proxy's, before and after: the outbox is that origin's.
  proxy = await flakyProxy({ url: second.url, proxyPort: first.proxyPort });

  // The shopper comes back to the shop: the page delivers what waits in the outbox.
  await page.goto(proxy.url + "/newsletter.html");
  const record = await deliveredRecord(second.url, id, 10000);
  await outboxEmpty(page);
  assert.equal(record.config_sha256, served.sha256, "made under the previous config");
  assert.deepEqual(
    record.purposes.filter((p) => p.state === "given").map((p) => p.id),
    ["email-offers"],
  );
  assert.deepEqual(proxy.posts.slice(-1), ["forwarded"]);
  // What the shopper was shown is the old wording, and it can still be printed.
  const shown = record.purposes.find((p) => p.id === "email-offers");
  const text = await (await fetch(`${second.url}/v1/texts/${shown.text_sha256}`)).json();
  assert.ok(text.text.includes(OLD_LABEL), text.text);

  // A shopper arriving now is shown the corrected label.
  const { page: fresh } = await openPage(browser);
  await fresh.goto(proxy.url + "/newsletter.html");
  await fresh.waitForSelector(CHOICES);
  assert.ok((await fresh.textContent("label[for$='-email-offers']")).includes(CORRECTED_LABEL));
  assert.deepEqual(log.pageErrors, []);
});

test("a record made under a config the collector never served gets 422 unknown-config and stays in the outbox until it has", async () => {
  const { dir, www, config, db, original, corrected } = ownShop();
  // The corrected config compiled into the web root by a collector on another log, so that
  // a page can render it while the shop's collector has never served it.
  writeFileSync(config, corrected);
  const compiler = await startServer({ www, db: path.join(dir, "other.db") });
  const [unserved] = await configs(compiler.url);
  await compiler.stop();
  writeFileSync(config, original);

  const first = await startServer({ www, db });
  let stopFirst = first.stop;
  cleanup.push(() => stopFirst());
  let proxy = await flakyProxy(first);
  cleanup.push(() => closeProxy(proxy));
  const browser = await launchBrowser();
  cleanup.push(() => browser.close());
  const { page, log } = await openPage(browser);
  // This page gets the config the collector never served, as from a shop that deployed a
  // new consent.json before restarting its collector.
  await page.route(proxy.url + "/consent.json", (route) => route.fulfill({ status: 200, contentType: "application/json", body: corrected }));

  await page.goto(proxy.url + "/newsletter.html");
  await page.waitForSelector(CHOICES);
  assert.ok((await page.textContent("label[for$='-email-offers']")).includes(CORRECTED_LABEL));
  await page.fill("#newsletter-email", "shopper@example.lv");
  await page.click("label[for$='-email-offers']");
  // The post at submit, or the confirmation page's retry: whichever comes back first.
  const refused = page.waitForResponse((r) => r.url().endsWith("/v1/records"), { timeout: 10000 });
  await page.click("form[data-unticked=newsletter] button.buy");
  // Its status only: the body of a response the page navigated away from is gone.
  assert.equal((await refused).status(), 422);
  await page.waitForSelector("#done");
  // The entry waits through the retries (2 s, then 4 s) while the collector refuses it.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const [key] = await waitingIds(page);
  assert.ok(key, "the refused record is still in the outbox");
  const id = key.slice("unticked:outbox:".length);
  assert.equal(await storedRecord(first.url, id), null);
  // The very delivery the outbox holds, posted again: refused for its config.
  const body = await page.evaluate((key) => JSON.parse(localStorage.getItem(key)).body, key);
  const again = await fetch(`${first.url}/v1/records`, { method: "POST", headers: { "content-type": "application/json" }, body });
  assert.deepEqual([again.status, (await again.json()).code], [422, "unknown-config"]);

  // The site owner restarts the collector with the config the page showed: the record is taken.
  await closeProxy(proxy);
  await first.stop();
  stopFirst = async () => {};
  writeFileSync(config, corrected);
  const second = await startServer({ www, db, extra: ["--public-origin", proxy.url] });
  cleanup.push(() => second.stop());
  proxy = await flakyProxy({ url: second.url, proxyPort: first.proxyPort });
  await page.goto(proxy.url + "/newsletter.html");
  const record = await deliveredRecord(second.url, id, 10000);
  assert.equal(record.config_sha256, unserved.sha256);
  await outboxEmpty(page);
  assert.deepEqual(log.pageErrors, []);
});

// End-to-end: the outbox delivers (issue 13). A shopper checks out while the endpoint is
// down; it comes back seconds later, while the shopper is on the confirmation page or has
// moved on to another page of the shop. No record may be lost either way. Real Chromium,
// the real collector behind a proxy whose record endpoint can be switched off; delivery is
// checked on the collector itself, not through the proxy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useShop, openPage, CHOICES, fillCheckout, storedRecord, deliveredRecord, flakyProxy } from "./harness.mjs";

const shop = useShop();

const given = (record) => record.purposes.filter((p) => p.state === "given").map((p) => p.id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const outboxEmpty = (page) => page.waitForFunction(() => !Object.keys(localStorage).some((k) => k.startsWith("unticked:outbox:")));

/**
 * The demo checkout, e-mail offers ticked, submitted while the endpoint answers 503; resolves
 * once the confirmation page shows, the endpoint still down, with the record's id.
 */
async function checkoutWhileDown(page, proxy) {
  proxy.down = true;
  await page.goto(proxy.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await fillCheckout(page);
  await page.click("label[for$='-email-offers']");
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("button.buy")]);
  await page.waitForSelector("#done");
  const id = new URLSearchParams(order.postData()).get("consent.record");
  assert.ok(proxy.posts.length >= 1 && proxy.posts.every((p) => p === 503), JSON.stringify(proxy.posts));
  assert.equal(await storedRecord(shop.server.url, id), null, "nothing reached the collector while it was down");
  return id;
}

/** A page and a proxy for test `t`, closed when it ends, whether it passes or not. */
async function journey(t) {
  const proxy = await flakyProxy(shop.server);
  const { page, context, log } = await openPage(shop.browser);
  t.after(async () => {
    await context.close();
    proxy.server.closeAllConnections();
    await new Promise((resolve) => proxy.server.close(resolve));
  });
  return { proxy, page, log };
}

test("endpoint down at checkout, back 8 s into the confirmation page: the record arrives while the shopper stays", async (t) => {
  const { proxy, page, log } = await journey(t);
  const id = await checkoutWhileDown(page, proxy);
  const confirmed = Date.now();
  await sleep(8000);
  assert.equal(await storedRecord(shop.server.url, id), null);
  proxy.down = false;

  // The shopper stays on the confirmation page, 20 s in all.
  const record = await deliveredRecord(shop.server.url, id, 20000 - (Date.now() - confirmed));
  assert.deepEqual(given(record), ["email-offers"]);
  assert.match(page.url(), /\/shop\/order$/, "delivered from the confirmation page itself");
  await outboxEmpty(page);
  // Retried with backoff, not in a tight loop: a few posts over those seconds.
  assert.ok(proxy.posts.length < 10, JSON.stringify(proxy.posts));
  assert.deepEqual(proxy.posts.slice(-1), ["forwarded"]);
  assert.deepEqual(log.pageErrors, []);
});

test("endpoint down at checkout and on the confirmation page, back 3 s later: the next page of the shop delivers the record", async (t) => {
  const { proxy, page, log } = await journey(t);
  const id = await checkoutWhileDown(page, proxy);
  await sleep(3000);
  assert.equal(await storedRecord(shop.server.url, id), null);
  proxy.down = false;

  // The shopper moves on at once, to another page of the shop that loads the widget.
  await page.goto(proxy.url + "/newsletter.html");
  const record = await deliveredRecord(shop.server.url, id, 5000);
  assert.deepEqual(given(record), ["email-offers"]);
  await outboxEmpty(page);
  assert.deepEqual(log.pageErrors, []);
});

test("endpoint back while the shopper is on the confirmation page, who then leaves for a page without the widget: sent at pagehide", async (t) => {
  const { proxy, page, log } = await journey(t);
  const id = await checkoutWhileDown(page, proxy);
  await sleep(3000);
  proxy.down = false;

  // The demo's home page does not load the widget: only the confirmation page's last
  // keepalive post, at pagehide, can deliver the record.
  await Promise.all([page.waitForURL(proxy.url + "/"), page.click("text=Back to the shop")]);
  const record = await deliveredRecord(shop.server.url, id, 5000);
  assert.deepEqual(given(record), ["email-offers"]);
  assert.deepEqual(log.pageErrors, []);
});

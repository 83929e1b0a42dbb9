// End-to-end: signed consent records (issue 3), from the shopper's click in Chromium to the
// real collector, which verifies each one with the native `record::open` before it answers 201.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { BINARY, useShop, openPage, CHOICES, CHECKOUT, fillCheckout, fixture, storedRecord, deliveredRecord, flakyProxy, UUID_V7 } from "./harness.mjs";

const shop = useShop();

const PURPOSES = ["email-offers", "sms-offers", "phone-calls", "catalogue-post", "birthday-greetings", "personalised-offers"];
const given = (record) => record.purposes.filter((p) => p.state === "given").map((p) => p.id);

/**
 * Submits the demo checkout after `tick`. Resolves with the order's fields, the delivery's
 * body and the record as the collector verified and stored it.
 */
async function buy(page, tick = async () => {}) {
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await fillCheckout(page);
  await tick();
  const delivery = page.waitForRequest((r) => r.url().endsWith("/v1/records") && r.method() === "POST");
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("button.buy")]);
  const body = JSON.parse((await delivery).postData());
  await page.waitForSelector("#done");
  const fields = new URLSearchParams(order.postData());
  return { fields, body, record: await deliveredRecord(shop.server.url, fields.get("consent.record")) };
}

test("two of six ticked on the checkout: the endpoint verifies a signed record with exactly those two given", async () => {
  const { page, context, log } = await openPage(shop.browser);
  const { fields, body, record } = await buy(page, async () => {
    await page.click("label[for$='-email-offers']");
    await page.click("label[for$='-phone-calls']");
  });
  const id = fields.get("consent.record");
  assert.match(id, UUID_V7, "the order carries the record id");
  assert.equal(record.id, id, "the collector verified and stored it");
  const entry = await (await fetch(`${shop.server.url}/v1/records/${id}`)).json();
  assert.equal(entry.record, body.record, "it keeps the exact bytes that were signed");
  assert.equal(entry.receipt.id, id, "with its receipt: log index, inclusion proof, signed checkpoint");
  assert.match(entry.receipt.leaf_hash, /^[0-9a-f]{64}$/);
  assert.ok(entry.receipt.checkpoint.size > entry.receipt.index);
  const verified = execFileSync(BINARY, ["verify", "--db", shop.server.db], { encoding: "utf8" });
  assert.match(verified, /: clean$/m, "and the whole log verifies");
  assert.deepEqual(given(record), ["email-offers", "phone-calls"]);
  assert.deepEqual(
    record.purposes.map((p) => [p.id, p.state]),
    PURPOSES.map((p) => [p, p === "email-offers" || p === "phone-calls" ? "given" : "refused"]),
  );
  assert.equal(record.form, "checkout");
  assert.equal(record.source, "checkout");
  assert.equal(record.locale, "en");
  assert.deepEqual(record.page, { origin: shop.server.url, path: "/checkout.html" });
  assert.equal(record.signature.alg, "Ed25519");
  for (const p of record.purposes) assert.match(p.text_sha256, /^[0-9a-f]{64}$/);

  // R8/R10: the contacts of the granted channels travel beside the record, never in it.
  assert.deepEqual(
    body.disclosures.map((d) => [d.channel, d.identifier]),
    [["email", "shopper@example.lv"], ["phone", "+37120000000"]],
  );
  assert.deepEqual(record.subjects.map((s) => s.channel), ["email", "phone"]);
  assert.doesNotMatch(body.record, /shopper|example\.lv|2000/);
  assert.doesNotMatch(body.record, /user.?agent|"ip"/i);
  assert.deepEqual(log.pageErrors, []);
  await context.close();
});

test("nothing ticked: every purpose refused, and no contact data at all", async () => {
  const { page, context } = await openPage(shop.browser);
  const { body, record } = await buy(page);
  assert.deepEqual(given(record), []);
  assert.equal(record.purposes.length, 6);
  assert.deepEqual(record.subjects, []);
  assert.deepEqual(body.disclosures, []);
  await context.close();
});

test("one browser signs with one key across page loads; another browser has its own", async () => {
  const first = await openPage(shop.browser);
  const a = await buy(first.page);
  const b = await buy(first.page);
  assert.notEqual(a.fields.get("consent.record"), b.fields.get("consent.record"), "a new record per submit");
  const key = (r) => r.record.signature.public_key;
  assert.equal(key(a), key(b), "the key is kept in IndexedDB");
  const other = await openPage(shop.browser);
  const c = await buy(other.page);
  assert.notEqual(key(c), key(a));
  // The key cannot be read by page script: WebCrypto made it non-extractable.
  const extractable = await first.page.evaluate(
    () =>
      new Promise((resolve) => {
        const open = indexedDB.open("unticked");
        open.onsuccess = () => {
          const get = open.result.transaction("keys").objectStore("keys").get("signing");
          get.onsuccess = () => resolve(get.result.privateKey.extractable);
        };
      }),
  );
  assert.equal(extractable, false);
  await first.context.close();
  await other.context.close();
});

test("a box ticked by a script is not consent, and the page is told (R1)", async () => {
  const { page, context, log } = await openPage(shop.browser);
  const violations = [];
  await page.exposeFunction("violation", (d) => violations.push(d));
  const { record } = await buy(page, async () => {
    await page.$eval("form", (f) => f.addEventListener("unticked:violation", (e) => window.violation(e.detail)));
    await page.click("label[for$='-email-offers']");
    // A theme script: one box "clicked" in code, one set without any event.
    await page.$eval("input[name='consent.sms-offers']", (b) => b.click());
    await page.$eval("input[name='consent.birthday-greetings']", (b) => (b.checked = true));
    // A script clicking a label: the browser passes a trusted click on to the box.
    await page.$eval("label[for$='-sms-offers']", (label) => label.click());
    // A script that unticks and reticks a box the shopper ticked makes it the script's tick.
    await page.click("label[for$='-phone-calls']");
    await page.$eval("input[name='consent.phone-calls']", (b) => (b.click(), b.click()));
    // The keyboard is the shopper's too.
    await page.focus("input[name='consent.personalised-offers']");
    await page.keyboard.press("Space");
  });
  assert.deepEqual(given(record), ["email-offers", "personalised-offers"]);
  assert.deepEqual(
    [...new Set(violations.map((v) => v.purpose))].sort(),
    ["birthday-greetings", "phone-calls", "sms-offers"],
  );
  assert.ok(violations.every((v) => v.rule === "R1" && /not consent/.test(v.message)));
  const warnings = log.console.filter((m) => m.type === "warning" && m.text.startsWith("unticked:"));
  assert.equal(warnings.length, 1, "one console warning per page");
  await context.close();
});

/** The outbox as stored: one localStorage key per waiting record. */
const OUTBOX = () =>
  Object.keys(localStorage)
    .filter((k) => k.startsWith("unticked:outbox:"))
    .map((k) => JSON.parse(localStorage.getItem(k)));
const outbox = (page) => page.evaluate(`(${OUTBOX})()`);
const attemptsAtLeast = (page, n) => page.waitForFunction(`(${OUTBOX})()[0]?.attempts >= ${n}`);

test("the outbox keeps a record while the endpoint is down, across reloads, and drains when it is back", async () => {
  const proxy = await flakyProxy(shop.server);
  const { page, context, log } = await openPage(shop.browser);
  proxy.down = true;
  // A shop that sends its order with fetch, so this page sees the endpoint's answer.
  const head = `<script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
    <script type="module">
      document.addEventListener("submit", (e) => {
        e.preventDefault();
        fetch(e.target.action, { method: "POST", body: new URLSearchParams(new FormData(e.target)) });
      });
    </script>`;
  await fixture(page, proxy.url, CHECKOUT, { head });
  await page.waitForSelector(CHOICES);
  await page.fill("#email", "shopper@example.lv");
  await page.click("label[for$='-email-offers']");
  const failed = page.waitForResponse((r) => r.url().endsWith("/v1/records"));
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("#buy")]);
  assert.equal((await failed).status(), 503);
  const id = new URLSearchParams(order.postData()).get("consent.record");
  await attemptsAtLeast(page, 1);
  assert.equal(await storedRecord(shop.server.url, id), null);

  // A reload while it is down: the record stays, and the new page tries it again at once.
  await page.reload();
  await page.waitForSelector(CHOICES);
  assert.deepEqual((await outbox(page)).map((e) => e.id), [id]);
  await attemptsAtLeast(page, 2);

  // Back up, and the browser comes back online: everything waiting goes (the retry timer's
  // next try is seconds away by now).
  proxy.down = false;
  const recorded = page.evaluate(
    () => new Promise((resolve) => document.addEventListener("unticked:recorded", (e) => resolve(e.detail), { once: true })),
  );
  await context.setOffline(true);
  await context.setOffline(false);
  assert.deepEqual(await recorded, { id, status: 201 });
  assert.deepEqual(await outbox(page), []);
  assert.deepEqual(given(await storedRecord(shop.server.url, id)), ["email-offers"]);
  assert.ok(proxy.posts.length >= 3, JSON.stringify(proxy.posts));
  assert.deepEqual(proxy.posts.slice(0, -1), Array(proxy.posts.length - 1).fill(503));
  assert.deepEqual(proxy.posts.slice(-1), ["forwarded"], "sent once it is back, and only once");
  assert.deepEqual(log.pageErrors, []);
  await context.close();
  proxy.server.closeAllConnections();
  proxy.server.close();
});

test("a shop that sends its form with fetch gets a record per submit, each delivered", async () => {
  const { page, context } = await openPage(shop.browser);
  await fixture(page, shop.server.url, CHECKOUT, {
    head: `<script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
      <script type="module">
        // The shop's own handler: it cancels the navigation and posts the form itself.
        document.addEventListener("submit", async (e) => {
          e.preventDefault();
          const response = await fetch(e.target.action, { method: "POST", body: new URLSearchParams(new FormData(e.target)) });
          window.orders = (window.orders || []).concat(new FormData(e.target).get("consent.record"));
          document.body.dataset.ordered = window.orders.length;
        });
      </script>`,
  });
  await page.waitForSelector(CHOICES);
  await page.fill("#email", "Anna.Ozola@Example.LV");
  await page.click("label[for$='-email-offers']");
  const recorded = () =>
    page.evaluate(() => new Promise((resolve) => document.forms[0].addEventListener("unticked:recorded", (e) => resolve(e.detail), { once: true })));
  let delivered = recorded();
  await page.click("#buy");
  const first = await delivered;
  delivered = recorded();
  await page.click("#buy");
  const second = await delivered;
  const orders = await page.evaluate(() => window.orders);
  assert.deepEqual([first.id, second.id], orders, "each order carries the id of its own record");
  assert.notEqual(first.id, second.id);
  for (const { id, status } of [first, second]) {
    assert.equal(status, 201);
    const record = await storedRecord(shop.server.url, id);
    assert.deepEqual(given(record), ["email-offers"]);
    assert.equal(record.page.path, "/fixture.html");
  }
  await context.close();
});

test("the widget never cancels or delays a submit", async () => {
  const { page, context } = await openPage(shop.browser);
  await fixture(page, shop.server.url, CHECKOUT);
  await page.waitForSelector(CHOICES);
  const prevented = await page.evaluate(() => {
    let seen;
    // Registered last on window: runs after every listener on the way up.
    addEventListener("submit", (e) => {
      seen = e.defaultPrevented;
      e.preventDefault(); // keep the page from navigating
    });
    document.forms[0].requestSubmit();
    return seen;
  });
  assert.equal(prevented, false);
  await context.close();
});

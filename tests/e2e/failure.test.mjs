// End-to-end: whatever goes wrong with the config, the shop's form works exactly as if the
// widget were absent, and the site owner gets one clear console error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, useShop, openPage, CHOICES, fillCheckout } from "./harness.mjs";

const shop = useShop();

const demoConfig = readFileSync(path.join(ROOT, "www/consent.json"), "utf8");

// The widget validates no config itself: a config `unticked build` did not compile (it
// refuses one that is not JSON or breaks a rule) has no compiled form, and the widget says so.
const notCompiled = /was not compiled; run `unticked build/;
const failures = [
  ["the config answers 500", (route) => route.fulfill({ status: 500, body: "oops" }), /HTTP 500/, "config-unreachable"],
  ["the config is unreachable", (route) => route.abort("connectionrefused"), /could not load the config/, "config-unreachable"],
  ["the config is not JSON", (route) => route.fulfill({ status: 200, body: "{ not json" }), notCompiled, "compiled-missing"],
  [
    "the config pre-ticks a purpose",
    (route) => route.fulfill({ status: 200, body: demoConfig.replace('"version": 1,', '"version": 1, "checked": true,') }),
    notCompiled,
    "compiled-missing",
  ],
];

for (const [name, handler, expected, code] of failures) {
  test(`${name}: nothing renders, one console error, and the order still goes through`, async () => {
    const { page, context, log } = await openPage(shop.browser);
    await page.route("**/consent.json", handler);
    await page.addInitScript(() => {
      window.untickedErrors = [];
      document.addEventListener("unticked:error", (e) => window.untickedErrors.push(e.detail));
    });
    const error = page.waitForEvent("console", {
      predicate: (m) => m.type() === "error" && m.text().startsWith("unticked:"),
      timeout: 10000,
    });
    await page.goto(shop.server.url + "/checkout.html");
    assert.match((await error).text(), expected);
    const details = await page.evaluate(() => window.untickedErrors);
    assert.equal(details.length, 1);
    assert.equal(details[0].code, code);
    assert.equal(await page.locator(CHOICES).count(), 0);

    await fillCheckout(page);
    const [request] = await Promise.all([
      page.waitForRequest((r) => r.url().endsWith("/shop/order") && r.method() === "POST"),
      page.click("button.buy"),
    ]);
    assert.equal(new URLSearchParams(request.postData()).get("name"), "Anna Bērziņa");
    await page.waitForSelector("#done");
    // The confirmation page loads the widget too (as every page of a shop should), but it has
    // no form: the entry delivers the outbox and never fetches the config there.
    await page.waitForLoadState("networkidle");
    assert.deepEqual(log.pageErrors, [], "nothing thrown into the page");
    const errors = log.console.filter((m) => m.type === "error");
    // Chromium adds its own line for a failed resource; the widget logs exactly one.
    assert.equal(errors.filter((m) => m.text.startsWith("unticked:")).length, 1, JSON.stringify(errors));
    await context.close();
  });
}

test("a browser without WebAssembly keeps the form working and is told why", async () => {
  const { page, context, log } = await openPage(shop.browser);
  await page.addInitScript(() => {
    delete globalThis.WebAssembly;
    window.untickedErrors = [];
    document.addEventListener("unticked:error", (e) => window.untickedErrors.push(e.detail));
  });
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForFunction(() => window.untickedErrors.length > 0);
  assert.equal(await page.evaluate(() => window.untickedErrors[0].code), "start");
  assert.equal(await page.locator(CHOICES).count(), 0);
  await fillCheckout(page);
  await Promise.all([page.waitForURL(/\/shop\/order$/), page.click("button.buy")]);
  await page.waitForSelector("#done");
  assert.deepEqual(log.pageErrors, []);
  await context.close();
});

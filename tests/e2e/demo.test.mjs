// End-to-end: the demo shop served by `unticked serve`, in real headless Chromium.
import { test } from "node:test";
import assert from "node:assert/strict";
import { useShop, openPage, CHOICES, BOXES, fillCheckout, UUID_V7 } from "./harness.mjs";

const shop = useShop();

for (const pagePath of ["/", "/checkout.html", "/newsletter.html", "/privacy.html"]) {
  test(`${pagePath} loads under the strict CSP with no console errors or warnings`, async () => {
    const { page, context, log } = await openPage(shop.browser);
    const response = await page.goto(shop.server.url + pagePath);
    assert.equal(response.status(), 200);
    assert.match(response.headers()["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval'; style-src 'self'/);
    if (pagePath.includes("checkout") || pagePath.includes("newsletter")) {
      await page.waitForSelector(CHOICES);
    }
    // Give late warnings (an unused preload is reported after load) a moment.
    await page.waitForTimeout(300);
    const noisy = log.console.filter((m) => m.type === "error" || m.type === "warning");
    assert.deepEqual(noisy, [], JSON.stringify(noisy));
    assert.deepEqual(log.pageErrors, []);
    await context.close();
  });
}

test("checkout shows six unticked, optional, labelled boxes just before the submit button", async () => {
  const { page, context } = await openPage(shop.browser);
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  const boxes = await page.$$eval(BOXES, (inputs) =>
    inputs.map((i) => ({
      name: i.name,
      checked: i.checked,
      required: i.required || i.hasAttribute("aria-required"),
      labels: i.labels.length,
      visible: i.getBoundingClientRect().width >= 24 && i.getBoundingClientRect().height >= 24,
    })),
  );
  assert.deepEqual(
    boxes.map((b) => b.name),
    ["consent.email-offers", "consent.sms-offers", "consent.phone-calls", "consent.catalogue-post", "consent.birthday-greetings", "consent.personalised-offers"],
  );
  for (const b of boxes) {
    assert.equal(b.checked, false, `${b.name} starts unticked`);
    assert.equal(b.required, false, `${b.name} is never required`);
    assert.equal(b.labels, 1, `${b.name} has its label`);
    assert.ok(b.visible, `${b.name} is at least 24x24 CSS px`);
  }
  const next = await page.$eval(CHOICES, (f) => f.nextElementSibling.textContent);
  assert.match(next, /Place order/);
  assert.equal(await page.$eval(`${CHOICES} .unticked__notice a[target=_blank]`, (a) => a.getAttribute("href")), "/privacy.html");
  await context.close();
});

test("a shopper who ticks nothing buys: the order reaches the shop with no consent, only its record id", async () => {
  const { page, context } = await openPage(shop.browser);
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await fillCheckout(page);
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/shop/order") && r.method() === "POST"),
    page.click("button.buy"),
  ]);
  const fields = new URLSearchParams(request.postData());
  assert.equal(fields.get("email"), "shopper@example.lv");
  assert.deepEqual([...fields.keys()].filter((k) => k.startsWith("consent.")), ["consent.record"]);
  assert.match(fields.get("consent.record"), UUID_V7);
  await page.waitForSelector("#done");
  assert.ok(await page.$("#no-consent"), "the shop confirms the order without any consent");
  assert.match(await page.textContent("#record"), new RegExp(fields.get("consent.record")));
  await context.close();
});

test("ticking two boxes with real clicks sends exactly those two with the order", async () => {
  const { page, context } = await openPage(shop.browser);
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await fillCheckout(page);
  const changes = [];
  await page.exposeFunction("recordChange", (d) => changes.push(d));
  await page.$eval("form", (f) => f.addEventListener("unticked:change", (e) => window.recordChange(e.detail)));
  // Click the labels, as a shopper does.
  await page.click("label[for$='-email-offers']");
  await page.click("label[for$='-phone-calls']");
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/shop/order")),
    page.click("button.buy"),
  ]);
  const fields = new URLSearchParams(request.postData());
  assert.deepEqual(
    [...fields.keys()].filter((k) => k.startsWith("consent.")),
    ["consent.email-offers", "consent.phone-calls", "consent.record"],
  );
  assert.deepEqual(changes, [
    { purpose: "email-offers", checked: true, trusted: true },
    { purpose: "phone-calls", checked: true, trusted: true },
  ]);
  await page.waitForSelector("#consents");
  await context.close();
});

test("the page language picks the language of the choices", async () => {
  const { page, context } = await openPage(shop.browser);
  await page.goto(shop.server.url + "/newsletter.html?lang=lv");
  await page.waitForSelector(CHOICES);
  assert.equal(await page.textContent(`${CHOICES} legend`), "Mārketinga izvēles");
  assert.match(await page.textContent(`${CHOICES} label`), /^Piekrītu saņemt piedāvājumus un jaunumus e-pastā \(neobligāti\)/);
  // The shop's language switcher reloads in Polish.
  await Promise.all([page.waitForURL(/lang=pl/), page.selectOption("#lang", "pl")]);
  await page.waitForSelector(CHOICES);
  assert.equal(await page.textContent(`${CHOICES} legend`), "Zgody marketingowe");
  await context.close();
});

test("a second copy of the widget's script renders nothing twice", async () => {
  const { page, context, log } = await openPage(shop.browser);
  await page.goto(shop.server.url + "/checkout.html");
  await page.waitForSelector(CHOICES);
  await page.evaluate(async () => {
    // Another URL is another module instance, as when a theme includes the script again.
    await import("/pkg/unticked.js?copy=2");
    await new Promise((r) => setTimeout(r, 300));
  });
  assert.equal(await page.locator(CHOICES).count(), 1);
  assert.equal(await page.locator(BOXES).count(), 6);
  assert.deepEqual(log.pageErrors, []);
  await context.close();
});

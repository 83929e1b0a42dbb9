// End-to-end: informed, localised, channel-true consent (issue 6). The Art. 13 layer in
// every built-in language, WCAG 2.2 AA checked by axe-core, the keyboard alone, the
// birthday field (R8) and contacts mapped by selector (R9), against the real collector.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { ROOT, BINARY, ADMIN_TOKEN, useShop, openPage, CHOICES, fillCheckout, fixture, deliveredRecord, startServer, axeViolations } from "./harness.mjs";

const shop = useShop();
const LANGUAGES = ["en", "lv", "pl", "cs", "de", "lt", "et"];
const SNAPSHOTS = path.join(ROOT, "tests/e2e/snapshots");

async function checkout(lang, options) {
  const opened = await openPage(shop.browser, options);
  await opened.page.goto(`${shop.server.url}/checkout.html?lang=${lang}`);
  await opened.page.waitForSelector(CHOICES);
  return opened;
}

for (const lang of LANGUAGES) {
  test(`${lang}: axe-core finds no WCAG 2.2 A/AA violation, with every detail open and the birthday field shown`, async () => {
    const { page, context } = await checkout(lang);
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      assert.deepEqual(await axeViolations(page), [], `closed, ${scheme}`);
    }
    for (const summary of await page.$$(`${CHOICES} summary`)) await summary.click();
    await page.click(`${CHOICES} input[name="consent.birthday-greetings"]`);
    await page.waitForSelector(`${CHOICES} .unticked__field`);
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      assert.deepEqual(await axeViolations(page), [], `open, ${scheme}`);
    }
    await context.close();
  });
}

test("each language renders its own words, and the fieldset says its language when the page's differs", async () => {
  for (const lang of LANGUAGES) {
    const { page, context } = await checkout(lang);
    const words = JSON.parse(readFileSync(path.join(ROOT, `crates/core/locales/${lang}.json`), "utf8"));
    const fieldset = page.locator(CHOICES);
    assert.equal(await fieldset.locator("legend").textContent(), words.legend);
    assert.equal(await fieldset.locator("summary").first().textContent(), words.details);
    assert.equal(await fieldset.getAttribute("lang"), null, `${lang}: the page is already in ${lang}`);
    // Snapshot: the whole rendering, so a change of words or structure shows in review.
    const html = (await fieldset.evaluate((f) => f.outerHTML))
      .replace(/ value="[0-9a-f-]{36}"/, ' value="RECORD-ID"')
      .replaceAll(/unticked-\d+-/g, "unticked-N-")
      .replaceAll("><", ">\n<");
    const file = path.join(SNAPSHOTS, `checkout.${lang}.html`);
    if (process.env.UPDATE_SNAPSHOTS) {
      mkdirSync(SNAPSHOTS, { recursive: true });
      writeFileSync(file, html + "\n");
    }
    assert.ok(existsSync(file), `${file} is missing: UPDATE_SNAPSHOTS=1 writes it`);
    assert.equal(html + "\n", readFileSync(file, "utf8"), `${lang}: rendering differs from ${file} (UPDATE_SNAPSHOTS=1 to accept)`);
    await context.close();
  }
  // A Czech shopper on an English page whose form says nothing: the browser's language.
  const { page, context } = await openPage(shop.browser, { locale: "cs-CZ" });
  await fixture(page, shop.server.url, `<form data-unticked="newsletter" lang=""><input id="newsletter-email"><button>Go</button></form>`);
  await page.waitForSelector(CHOICES);
  assert.equal(await page.getAttribute(CHOICES, "lang"), "cs");
  assert.equal(await page.textContent(`${CHOICES} legend`), "Marketingové souhlasy");
  await context.close();
});

test("every purpose tells the shopper what Art. 13 asks before they tick, in their language", async () => {
  const { page, context } = await checkout("pl");
  const facts = async (purpose) => {
    await page.click(`${CHOICES} [data-unticked-purpose=${purpose}] summary`);
    return page.$eval(`${CHOICES} [data-unticked-purpose=${purpose}] dl`, (dl) =>
      Object.fromEntries([...dl.querySelectorAll("dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])),
    );
  };
  assert.deepEqual(await facts("sms-offers"), {
    "Jak się z Tobą kontaktujemy": "SMS",
    "Jakie dane wykorzystujemy": "numer telefonu",
    // Countries by name in the shopper's language (CLDR, compiled by `unticked build`), not ISO codes.
    "Kto je otrzymuje": "Twilio Ireland Ltd, podmiot przetwarzający, Irlandia; Twilio Inc., podmiot przetwarzający, USA",
    "Przekazywanie poza UE/EOG": "USA: Ramy ochrony danych UE–USA",
    "Jak długo je przechowujemy": "Do czasu wycofania zgody",
    // Art. 7(3): the channel's own way out, beside the controller's address.
    "Wycofanie zgody": "Odpowiedz STOP na dowolny nasz SMS lub napisz na adres privacy@baltic-boots.example w dowolnym momencie.",
  });
  const personalised = await facts("personalised-offers");
  // Art. 13(2)(a): the period and when it starts.
  assert.equal(personalised["Jak długo je przechowujemy"], "36 miesięcy od wyrażenia zgody");
  assert.match(personalised["Profilowanie"], /^Zautomatyzowany system porządkuje produkty/);
  assert.equal((await facts("phone-calls"))["Jak długo je przechowujemy"], "24 miesiące od wyrażenia zgody");
  // Every channel names its own way out (the unsubscribe link, STOP, the call, the
  // preferences page), each with the controller's address as a mailto link.
  const words = JSON.parse(readFileSync(path.join(ROOT, "crates/core/locales/pl.json"), "utf8"));
  const channels = { "email-offers": "email", "sms-offers": "sms", "phone-calls": "phone", "catalogue-post": "post", "birthday-greetings": "email", "personalised-offers": "web" };
  for (const [purpose, channel] of Object.entries(channels)) {
    const withdrawal = await page.$eval(`${CHOICES} [data-unticked-purpose=${purpose}] dl`, (dl) => {
      const dd = [...dl.querySelectorAll("dt")].at(-1).nextElementSibling;
      return { text: dd.textContent, link: dd.querySelector("a")?.getAttribute("href") };
    });
    assert.deepEqual(withdrawal, {
      text: words[`withdraw_how:${channel}`].replace("{}", "privacy@baltic-boots.example"),
      link: "mailto:privacy@baltic-boots.example",
    }, purpose);
  }
  const label = await page.textContent(`${CHOICES} label[for$="-sms-offers"]`);
  assert.equal(label, "Wyrażam zgodę na otrzymywanie ofert SMS-em (opcjonalnie)");
  const notice = await page.textContent(`${CHOICES} .unticked__notice`);
  // The controller's address in the shopper's language (per locale in the config).
  assert.match(notice, /^Administrator: Baltic Boots SIA, Brīvības iela 100, Ryga, LV-1012, Łotwa, privacy@baltic-boots\.example/);
  // Art. 7(3), 13(2)(c): withdrawing does not affect the lawfulness of processing before it.
  assert.match(notice, /Inspektor ochrony danych: dpo@baltic-boots\.example\. Polityka prywatności \(wersja 2026-09\)\. Zgodę możesz wycofać w dowolnym momencie\. Wycofanie zgody nie wpływa na zgodność z prawem przetwarzania, którego dokonano na podstawie zgody przed jej wycofaniem\.$/);
  assert.equal(await page.getAttribute(`${CHOICES} .unticked__notice a[href="/privacy.html"]`, "target"), "_blank");
  await context.close();
});

test("the keyboard alone reaches every box and disclosure, and Space ticks a box as the shopper's own", async () => {
  const { page, context } = await checkout("lv");
  await fillCheckout(page);
  await page.focus("#country");
  const order = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el.closest("fieldset.unticked")) return el.className == "buy" ? "submit" : null;
      const outline = getComputedStyle(el).outlineStyle;
      return { what: el.tagName == "SUMMARY" ? "summary" : el.name || el.tagName, outline };
    });
    if (focused === "submit") break;
    if (focused) order.push(focused);
  }
  const purposes = ["email-offers", "sms-offers", "phone-calls", "catalogue-post", "birthday-greetings", "personalised-offers"];
  assert.deepEqual(
    order.map((f) => f.what),
    [...purposes.flatMap((p) => [`consent.${p}`, "summary"]), "A", "A", "A", "A"],
  );
  for (const f of order) assert.notEqual(f.outline, "none", `${f.what} shows where the focus is`);

  // Space on a box ticks it, Enter on a summary opens its details, and nothing else moves.
  await page.focus(`${CHOICES} input[name="consent.email-offers"]`);
  await page.keyboard.press("Space");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  assert.equal(await page.$eval(`${CHOICES} [data-unticked-purpose=email-offers] details`, (d) => d.open), true);
  assert.equal(new URL(page.url()).pathname, "/checkout.html", "ticking and opening change no context");
  const id = await page.inputValue("input[name='consent.record']");
  await page.focus("button.buy");
  await Promise.all([page.waitForURL(/\/shop\/order/), page.keyboard.press("Enter")]);
  const record = await deliveredRecord(shop.server.url, id);
  assert.deepEqual(
    record.purposes.filter((p) => p.state === "given").map((p) => p.id),
    ["email-offers"],
    "a Space press is the shopper's own tick (R1)",
  );
  await context.close();
});

/** The subject's state as the collector's admin API tells it. */
async function subject(identifier) {
  const response = await fetch(`${shop.server.url}/v1/admin/subjects`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ identifier }),
  });
  return response.json();
}

test("the birthday field appears only while its choice is ticked, clears when unticked, and goes only to the collector", async () => {
  const { page, context } = await checkout("en");
  await fillCheckout(page);
  const field = `${CHOICES} .unticked__field`;
  const box = `${CHOICES} input[name="consent.birthday-greetings"]`;
  assert.equal(await page.locator(field).count(), 0, "not asked before the choice");
  await page.click(box);
  await page.waitForSelector(field);
  assert.deepEqual(
    await page.$$eval(`${field} option`, (options) => options.slice(1, 4).map((o) => o.textContent)),
    ["January", "February", "March"],
  );
  assert.equal(await page.locator(`${field} [name]`).count(), 0, "no name: the value never goes to the shop");
  assert.equal(await page.getAttribute(`${field} input`, "autocomplete"), "bday-day");
  await page.fill(`${field} input`, "14");
  await page.selectOption(`${field} select`, "3");
  await page.click(box);
  assert.equal(await page.locator(field).count(), 0, "gone when unticked");
  await page.click(box);
  assert.equal(await page.inputValue(`${field} input`), "", "and cleared: ticking again asks afresh");
  assert.equal(await page.inputValue(`${field} select`), "");
  await page.fill(`${field} input`, "7");
  await page.selectOption(`${field} select`, "11");

  const id = await page.inputValue("input[name='consent.record']");
  const delivery = page.waitForRequest((r) => r.url().endsWith("/v1/records"));
  const [order] = await Promise.all([page.waitForRequest((r) => r.url().endsWith("/shop/order")), page.click("button.buy")]);
  const sent = [...new URLSearchParams(order.postData())];
  const shopFields = ["email", "phone", "name", "street", "postcode", "city", "country", "payment"];
  assert.deepEqual(
    sent.filter(([name]) => !shopFields.includes(name) && !name.startsWith("consent.")),
    [],
    "the shop's order carries nothing but its own fields and the consents",
  );
  assert.ok(!sent.some(([, value]) => value == "7" || value == "11"), "and no birthday");
  const body = (await delivery).postData();
  const { birthday } = JSON.parse(body);
  assert.equal(birthday.value, "--11-07");
  assert.match(birthday.salt, /^[0-9a-f]{32}$/, "with its own salt");
  const record = await deliveredRecord(shop.server.url, id);
  assert.doesNotMatch(JSON.stringify(record), /11-07/, "the signed record holds no birthday");
  // But it commits to it, as to a contact: SHA-256(salt ‖ --MM-DD).
  const salted = Buffer.concat([Buffer.from(birthday.salt, "hex"), Buffer.from(birthday.value)]);
  assert.deepEqual(record.beside, [{ commitment: createHash("sha256").update(salted).digest("hex"), field: "birthday" }]);
  assert.equal((await subject("shopper@example.lv")).birthday, "--11-07");
  // The browser's record opens (record::open) and the birthday kept checks out against it.
  const verified = execFileSync(BINARY, ["verify", "--db", shop.server.db], { encoding: "utf8" });
  assert.match(verified, /: clean$/m);
  assert.doesNotMatch(verified, /birthdays kept before/);
  await context.close();

  // One byte of the birthday changed in transit (November → January) is refused: by a
  // collector that never saw the record (422), and as a repeat under the stored id (409),
  // which keeps the birthday the shopper gave. A true repeat is the outbox's retry (200).
  const tampered = body.replace('"--11-07"', '"--01-07"');
  assert.notEqual(tampered, body);
  const post = (url, text) => fetch(`${url}/v1/records`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
  const fresh = await startServer({ extra: ["--public-origin", shop.server.url] });
  try {
    const refused = await post(fresh.url, tampered);
    assert.deepEqual([refused.status, (await refused.json()).code], [422, "birthday-mismatch"]);
  } finally {
    await fresh.stop();
  }
  const conflict = await post(shop.server.url, tampered);
  assert.deepEqual([conflict.status, (await conflict.json()).code], [409, "id-conflict"]);
  assert.equal((await post(shop.server.url, body)).status, 200);
  assert.equal((await subject("shopper@example.lv")).birthday, "--11-07");
});

test("contact fields mapped by id alone, the postal address from several fields, and a polite hint for an empty one", async () => {
  // The shop's fields have ids and no names: the widget finds them by the config's selectors.
  const form = `<form id="f" action="/shop/order" method="post" data-unticked="checkout">
    <input id="email" type="email"><input id="phone" type="tel">
    <input id="name"><input id="street"><input id="postcode"><input id="city"><input id="country" value="LV">
    <button id="buy" type="submit">Place order</button></form>`;
  const { page, context } = await openPage(shop.browser);
  await fixture(page, shop.server.url, form);
  await page.waitForSelector(CHOICES);
  const hint = (purpose) => page.textContent(`${CHOICES} [data-unticked-hint=${purpose}]`);
  await page.fill("#email", "Ieva@Example.LV");
  await page.click(`${CHOICES} input[name="consent.sms-offers"]`);
  assert.equal(await hint("sms-offers"), "For this we need your phone number; you can add it in this form.");
  assert.equal(await page.getAttribute(`${CHOICES} [data-unticked-hint=sms-offers]`, "role"), "status");
  await page.click(`${CHOICES} input[name="consent.email-offers"]`);
  assert.equal(await hint("email-offers"), "", "the e-mail field is filled: no hint");
  await page.click(`${CHOICES} input[name="consent.catalogue-post"]`);
  assert.match(await hint("catalogue-post"), /postal address/);
  await page.fill("#name", "Ieva Kalniņa");
  await page.fill("#street", "Brīvības  iela 5");
  await page.fill("#postcode", "LV-1010");
  await page.fill("#city", "Rīga");
  await page.locator("#city").blur();
  assert.equal(await hint("catalogue-post"), "", "the hint goes once the address is there");

  const id = await page.inputValue("input[name='consent.record']");
  const delivery = page.waitForRequest((r) => r.url().endsWith("/v1/records"));
  await page.click("#buy");
  const body = JSON.parse((await delivery).postData());
  assert.deepEqual(
    body.disclosures.map((d) => [d.channel, d.identifier]),
    [
      ["email", "ieva@example.lv"],
      ["post", "Ieva Kalniņa, Brīvības iela 5, LV-1010, Rīga"],
    ],
  );
  const record = await deliveredRecord(shop.server.url, id);
  const states = Object.fromEntries(record.purposes.map((p) => [p.id, p.state]));
  assert.equal(states["sms-offers"], "given", "given without a contact: the submit was never blocked");
  assert.deepEqual(record.subjects.map((s) => s.channel), ["email", "post"]);
  await context.close();
});

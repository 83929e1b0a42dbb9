// Writes screenshots of the demo pages (served by the real collector) to a directory:
//   node tools/screenshots.mjs docs
import { mkdirSync } from "node:fs";
import path from "node:path";
import { ROOT, ADMIN_TOKEN, startServer, launchBrowser, fillCheckout, deliveredRecord, CHOICES } from "../tests/e2e/harness.mjs";

const dir = path.resolve(ROOT, process.argv[2] || "target/screenshots");
mkdirSync(dir, { recursive: true });
const server = await startServer();
const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 }, locale: "en-US" });
  // The checkout in the first markets' languages and English, with one choice's details
  // open and the birthday choice ticked (its field shows), as a shopper would see them.
  for (const lang of ["en", "lv", "pl", "cs"]) {
    await page.goto(`${server.url}/checkout.html?lang=${lang}`);
    await page.waitForSelector(CHOICES);
    await page.click(`${CHOICES} [data-unticked-purpose=sms-offers] summary`);
    await page.click(`${CHOICES} input[name="consent.birthday-greetings"]`);
    await page.waitForSelector(`${CHOICES} .unticked__field select`);
    const file = path.join(dir, `checkout-${lang}.png`);
    await page.screenshot({ path: file, fullPage: true });
    console.log(file);
  }
  await page.goto(server.url + "/newsletter.html");
  await page.waitForSelector(CHOICES);
  await page.screenshot({ path: path.join(dir, "newsletter.png"), fullPage: true });
  console.log(path.join(dir, "newsletter.png"));

  // The site owner's console (/admin): three checkouts of one shopper's and others' choices,
  // then the sign-in, the subject view, the dashboard and the config history.
  for (const ticks of [["email-offers", "sms-offers"], ["email-offers"], []]) {
    const shopper = await browser.newPage({ locale: "en-US" });
    await shopper.goto(server.url + "/checkout.html");
    await shopper.waitForSelector(CHOICES);
    await fillCheckout(shopper);
    for (const purpose of ticks) await shopper.click(`label[for$='-${purpose}']`);
    const [order] = await Promise.all([shopper.waitForRequest((r) => r.url().endsWith("/shop/order")), shopper.click("button.buy")]);
    await shopper.waitForSelector("#done");
    await deliveredRecord(server.url, new URLSearchParams(order.postData()).get("consent.record"));
    await shopper.close();
  }
  const shot = async (name) => {
    const file = path.join(dir, name);
    await page.screenshot({ path: file, fullPage: true });
    console.log(file);
  };
  await page.goto(server.url + "/admin");
  await shot("console-sign-in.png");
  await page.fill("#token", ADMIN_TOKEN);
  await Promise.all([page.waitForNavigation(), page.press("#token", "Enter")]);
  await page.fill("#identifier", "shopper@example.lv");
  await Promise.all([page.waitForNavigation(), page.press("#identifier", "Enter")]);
  await shot("console-subject.png");
  await page.goto(server.url + "/admin/dashboard");
  await shot("console-dashboard.png");
  await page.goto(server.url + "/admin/configs");
  await shot("console-configs.png");
} finally {
  await browser.close();
  await server.stop();
}

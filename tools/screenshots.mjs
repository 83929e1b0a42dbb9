// Writes screenshots of the demo pages (served by the real collector) to a directory:
//   node tools/screenshots.mjs docs
import { mkdirSync } from "node:fs";
import path from "node:path";
import { ROOT, startServer, launchBrowser, CHOICES } from "../tests/e2e/harness.mjs";

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
} finally {
  await browser.close();
  await server.stop();
}

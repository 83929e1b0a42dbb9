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
  for (const [name, url] of [
    ["checkout", "/checkout.html"],
    ["newsletter", "/newsletter.html"],
    ["checkout-lv", "/checkout.html?lang=lv"],
  ]) {
    await page.goto(server.url + url);
    await page.waitForSelector(CHOICES);
    await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
    console.log(path.join(dir, `${name}.png`));
  }
} finally {
  await browser.close();
  await server.stop();
}

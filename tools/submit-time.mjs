// Measures, in headless Chromium, what the widget adds to a shopper's submit on the demo
// checkout: the time its own submit listener takes (the only part on the submit's path), and
// the time from the submit event until the signed record is handed to fetch (posted) and
// acknowledged. Prints figures; asserts nothing (timings are measured, never tested).
//
//   node tools/submit-time.mjs http://127.0.0.1:8080/checkout.html [submits]
import { launchBrowser, fillCheckout } from "../tests/e2e/harness.mjs";

const url = process.argv[2];
const submits = Number(process.argv[3] || 25);
if (!url) {
  console.error("usage: node tools/submit-time.mjs URL [submits]");
  process.exit(2);
}

// Runs before any page script. The first capture listener on window marks the submit; one
// registered in the bubble phase on window (after the widget's) marks when the event has
// passed the widget, and keeps the page from navigating so the delivery can be timed.
function probe() {
  window.__t = {};
  addEventListener("submit", () => (window.__t = { submit: performance.now() }), true);
  addEventListener("submit", (e) => {
    window.__t.passed = performance.now();
    e.preventDefault();
  });
  const send = window.fetch;
  window.fetch = function (input, init) {
    const isRecord = String(input).endsWith("/v1/records");
    if (isRecord) window.__t.posted = performance.now();
    const answer = send.apply(this, arguments);
    if (isRecord) answer.then(() => (window.__t.acknowledged = performance.now()));
    return answer;
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const p = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const browser = await launchBrowser();
try {
  const context = await browser.newContext();
  await context.addInitScript(probe);
  const page = await context.newPage();
  const rows = [];
  for (let i = 0; i < submits; i++) {
    await page.goto(url);
    await page.waitForSelector("fieldset.unticked");
    await fillCheckout(page);
    await page.click("label[for$='-email-offers']");
    await page.click("button.buy");
    await page.waitForFunction(() => window.__t.acknowledged !== undefined);
    const t = await page.evaluate(() => window.__t);
    rows.push({ listener: t.passed - t.submit, posted: t.posted - t.submit, acknowledged: t.acknowledged - t.submit });
  }
  console.log(`${submits} submits of ${url} (one browser, key already in IndexedDB after the first)`);
  for (const key of ["listener", "posted", "acknowledged"]) {
    const xs = rows.map((r) => r[key]);
    console.log(`submit → ${key.padEnd(12)} median ${median(xs).toFixed(1).padStart(6)} ms   p90 ${p(xs, 0.9).toFixed(1).padStart(6)} ms`);
  }
} finally {
  await browser.close();
}

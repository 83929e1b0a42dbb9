// Measures, in headless Chromium, the time from navigation start to the consent boxes
// being in the DOM, beside DOMContentLoaded from the same loads. Prints figures; asserts
// nothing (timings are measured, never tested).
//
//   node tools/render-time.mjs http://127.0.0.1:8080/checkout.html [loads]
import { launchBrowser } from "../tests/e2e/harness.mjs";

const url = process.argv[2];
const loads = Number(process.argv[3] || 15);
if (!url) {
  console.error("usage: node tools/render-time.mjs URL [loads]");
  process.exit(2);
}

// Runs before any page script: note when the first consent box is attached.
function probe() {
  new MutationObserver((_, observer) => {
    if (document.querySelector("input[name^='consent.']")) {
      window.__boxesAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
}

async function measure(page) {
  await page.goto(url);
  await page.waitForFunction(() => window.__boxesAt !== undefined);
  return page.evaluate(() => {
    const nav = performance.getEntriesByType("navigation")[0];
    return { boxes: window.__boxesAt, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd };
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => x.toFixed(1).padStart(7);

const browser = await launchBrowser();
try {
  for (const cache of ["cold", "warm"]) {
    const rows = [];
    const context = await browser.newContext();
    await context.addInitScript(probe);
    for (let i = 0; i < loads; i++) {
      const page = cache === "cold" ? await (await browser.newContext()).newPage() : await context.newPage();
      if (cache === "cold") await page.context().addInitScript(probe);
      rows.push(await measure(page));
      await (cache === "cold" ? page.context().close() : page.close());
    }
    await context.close();
    const boxes = rows.map((r) => r.boxes);
    const dcl = rows.map((r) => r.dcl);
    const gap = rows.map((r) => r.boxes - r.dcl);
    console.log(`${cache} cache, ${loads} loads of ${url} (ms from navigation start)`);
    console.log(`  boxes in DOM      median ${fmt(median(boxes))}  min ${fmt(Math.min(...boxes))}  max ${fmt(Math.max(...boxes))}`);
    console.log(`  DOMContentLoaded  median ${fmt(median(dcl))}  min ${fmt(Math.min(...dcl))}  max ${fmt(Math.max(...dcl))}`);
    console.log(`  boxes - DCL       median ${fmt(median(gap))}`);
  }
} finally {
  await browser.close();
}

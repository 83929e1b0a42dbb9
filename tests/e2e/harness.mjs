// Shared set-up for the end-to-end tests: the real `unticked serve` on a free port, and
// Debian's Chromium driven by playwright-core (no browser download).
import { before, after } from "node:test";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BINARY = path.join(ROOT, "target/debug/unticked");

/** Starts the collector serving www/ and resolves with { url, stop }. */
export function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, ["serve", "--www", "www", "--config", "www/consent.json", "--addr", "127.0.0.1:0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`collector did not start: ${out}${err}`)), 15000);
    child.stderr.on("data", (d) => (err += d));
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1],
          stop: () =>
            new Promise((done) => {
              child.once("exit", done);
              child.kill("SIGTERM");
            }),
        });
      }
    });
    child.once("exit", (code) => reject(new Error(`collector exited ${code}: ${out}${err}`)));
  });
}

/** Headless Chromium with the flags this machine needs (closed network, root). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A page that records console messages and uncaught page errors. */
export async function openPage(browser, options = {}) {
  const context = await browser.newContext({ locale: "en-US", ...options });
  const page = await context.newPage();
  const log = { console: [], pageErrors: [] };
  page.on("console", (m) => log.console.push({ type: m.type(), text: m.text() }));
  page.on("pageerror", (e) => log.pageErrors.push(String(e)));
  return { page, context, log };
}

export const CHOICES = "fieldset.unticked";
export const BOXES = "input[type=checkbox][name^='consent.']";

/** Fills the demo checkout's required fields, as a shopper would. */
export async function fillCheckout(page) {
  await page.fill("#email", "shopper@example.lv");
  await page.fill("#phone", "+371 2000 0000");
  await page.fill("#name", "Anna Bērziņa");
  await page.fill("#street", "Elizabetes iela 10");
  await page.fill("#postcode", "LV-1010");
  await page.fill("#city", "Rīga");
}

/** The collector and Chromium, started before a test file's tests and stopped after. */
export function useShop() {
  const shop = {};
  before(async () => {
    shop.server = await startServer();
    shop.browser = await launchBrowser();
  });
  after(async () => {
    await shop.browser?.close();
    await shop.server?.stop();
  });
  return shop;
}

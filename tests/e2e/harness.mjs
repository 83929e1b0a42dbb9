// Shared set-up for the end-to-end tests: the real `unticked serve` on a free port, and
// Debian's Chromium driven by playwright-core (no browser download).
import { before, after } from "node:test";
import { spawn } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/**
 * The debug `unticked` that `./build.sh` builds: in $CARGO_TARGET_DIR when it is set (a
 * worktree may keep its own; a relative one is taken from the project root, where build.sh
 * runs cargo), else in target/.
 */
export const BINARY = path.join(path.resolve(ROOT, process.env.CARGO_TARGET_DIR || "target"), "debug/unticked");

/** The admin token of the collectors the tests start. */
export const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdefgh";

/** The staff token of phone consent (`/v1/admin/assisted`), another than the admin one. */
export const STAFF_TOKEN = "e2e-staff-token-9876543210zyxwvuts";

/** The secret the demo shop's backend signs account tokens with, in the tests. */
export const ACCOUNT_SECRET = "e2e-account-secret-0123456789abcdef";

/** A free port on 127.0.0.1, for a proxy that starts after the collector. */
function freePort() {
  return new Promise((resolve) => {
    const probe = http.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
/**
 * Starts the collector serving `www` (www/ by default) and its consent.json (or the config
 * `config` names) with a fresh log (and `extra` arguments to `serve`), and resolves with
 * { url, db, stop, proxyPort }. The shop pages a test serves through `flakyProxy` have the
 * proxy's origin, so the collector is told it as one of its own (`--public-origin`), as a
 * site owner tells a collector behind a reverse proxy; it never takes its own origin from a
 * request's Host.
 */
export async function startServer({ db = path.join(mkdtempSync(path.join(os.tmpdir(), "unticked-")), "log.db"), extra = [], www = "www", config = path.join(www, "consent.json") } = {}) {
  const proxyPort = await freePort();
  return new Promise((resolve, reject) => {
    const args = ["serve", "--www", www, "--config", config, "--db", db, "--addr", "127.0.0.1:0", ...extra];
    args.push("--public-origin", `http://127.0.0.1:${proxyPort}`);
    const child = spawn(BINARY, args, {
      cwd: ROOT,
      env: { ...process.env, UNTICKED_ADMIN_TOKEN: ADMIN_TOKEN, UNTICKED_STAFF_TOKEN: STAFF_TOKEN, UNTICKED_ACCOUNT_SECRET: ACCOUNT_SECRET },
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
          db,
          proxyPort,
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

/**
 * Serves `body` as a page of the collector's origin at `path` (so the widget, its config and
 * the endpoint are the real ones), with the widget's script tag unless `head` says otherwise.
 */
export async function fixture(page, url, body, { path = "/fixture.html", head } = {}) {
  head ??= `<script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>`;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">${head}</head><body>${body}</body></html>`;
  await page.route(url + path, (route) => route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: html }));
  await page.goto(url + path);
}

/** The demo's checkout form, short: contact fields, the two kinds of submit the widget sees. */
export const CHECKOUT = `<form id="f" action="/shop/order" method="post" data-unticked="checkout">
  <input id="email" name="email" type="email"><input id="phone" name="phone" type="tel">
  <button id="buy" type="submit">Place order</button></form>`;

/** The consent record the collector holds under `id`, parsed; null when it has none. */
export async function storedRecord(url, id) {
  const response = await fetch(`${url}/v1/records/${id}`);
  return response.status === 200 ? JSON.parse((await response.json()).record) : null;
}

/**
 * The consent record under `id` once the collector has it (it stores only records that
 * verify). A record posted as the page navigates away is not seen by the page, only here.
 */
export async function deliveredRecord(url, id, timeoutMs = 5000) {
  for (const start = Date.now(); Date.now() - start < timeoutMs; await new Promise((r) => setTimeout(r, 50))) {
    const record = await storedRecord(url, id);
    if (record) return record;
  }
  throw new Error(`the collector has no record ${id} after ${timeoutMs} ms`);
}

/**
 * A real HTTP server in front of the collector (`target`) whose record endpoint can be
 * switched off: while `down`, a POST /v1/records is answered 503 `unavailable`, as a
 * collector under maintenance would; everything else is forwarded. `posts` lists what each
 * record post got (503 or "forwarded"). Resolves with { url, server, posts, down }.
 */
export function flakyProxy(server) {
  const target = server.url;
  const proxy = { down: false, posts: [] };
  proxy.server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/records") {
        proxy.posts.push(proxy.down ? 503 : "forwarded");
        if (proxy.down) {
          res.writeHead(503, { "content-type": "application/json" });
          return res.end('{"code":"unavailable","message":"down for maintenance"}');
        }
      }
      const upstream = http.request(target + req.url, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      });
      // The collector behind may stop while a retry is on its way (a test restarting it):
      // the browser gets a 502, as from a reverse proxy, never an uncaught socket error.
      upstream.on("error", () => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
        res.end('{"code":"unavailable","message":"the collector behind the proxy is not answering"}');
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) =>
    proxy.server.listen(server.proxyPort, "127.0.0.1", () => {
      proxy.url = `http://127.0.0.1:${proxy.server.address().port}`;
      resolve(proxy);
    }),
  );
}

/** An admin call (`POST`, JSON, the admin token) that must answer 200; its JSON answer. */
export async function admin(url, route, body) {
  const response = await fetch(`${url}${route}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status !== 200) throw new Error(`${route}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Where the subject's consent to each purpose stands, as the admin API tells it. */
export const stateOf = async (url, identifier) => (await admin(url, "/v1/admin/subjects", { identifier })).purposes;

/** The log's size by its latest checkpoint (0 when empty). */
export async function logSize(url) {
  const response = await fetch(`${url}/v1/checkpoint`);
  return response.status === 200 ? (await response.json()).size : 0;
}

/** A UUIDv7 (RFC 9562 §5.7), as record ids are. */
export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const AXE = readFileSync(path.join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");

/** axe-core's violations of WCAG 2.0–2.2 A and AA on the page as it is now. */
export async function axeViolations(page) {
  // Evaluated through the DevTools protocol: the pages' strict CSP forbids inline scripts.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE);
  return page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
    });
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
}

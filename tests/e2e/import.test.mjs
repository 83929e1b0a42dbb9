// A legacy list re-permissioned, in Chromium against the real collector (issue 15, item 4):
// `unticked import` with `--links` into a fresh log, then the shop's collector serves it; the
// contact opens the link from the links file, ticks one purpose and saves. Where they stand
// comes from the admin API: given by their answer, recorded with the source `import`, and
// the rest refused, never left `given` by the import itself. `unticked verify` finds the log
// clean.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT, BINARY, admin, stateOf, startServer, launchBrowser, openPage, BOXES } from "./harness.mjs";

const run = promisify(execFile);
const browser = await launchBrowser();
const servers = [];
after(async () => {
  await browser.close();
  await Promise.all(servers.map((s) => s.stop()));
});

const PUBLIC = "https://consent.shop.example";

test("an imported contact opens their re-permission link, ticks one purpose and saves: given with source import, the rest refused", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "unticked-import-"));
  const db = path.join(dir, "log.db");
  const list = path.join(dir, "customers.csv");
  const out = path.join(dir, "links.csv");
  writeFileSync(list, "email,name,source,collected_at\nAnna@Example.LV,Anna,newsletter,2022-05-01\njan@example.pl,Jan,,\n");
  // Before the collector starts: it holds the log while it runs, and an import refuses it.
  const { stdout } = await run(
    BINARY,
    ["import", "--db", db, "--config", "www/consent.json", "--source", "unknown", "--public-origin", PUBLIC, "--links", out, list],
    { cwd: ROOT },
  );
  assert.match(stdout, /2 rows: 2 contacts imported in 2 records/);
  const links = readFileSync(out, "utf8").trim().split("\n");
  assert.equal(links[0], "email,phone,link");
  const anna = links.find((line) => line.startsWith("anna@example.lv,"));
  assert.ok(anna, links.join("\n"));
  const link = new URL(anna.split(",")[2]);
  assert.equal(link.origin, PUBLIC);

  const shop = await startServer({ db });
  servers.push(shop);
  let now = await stateOf(shop.url, "anna@example.lv");
  assert.equal(now["email-offers"].state, "unconfirmed");
  assert.equal(now["email-offers"].awaiting, "answer");
  assert.equal(now["email-offers"].provenance, "newsletter");

  // The link as the contact's mail client opens it (here on the test collector's address).
  const { page, context, log } = await openPage(browser);
  const response = await page.goto(shop.url + link.pathname);
  assert.equal(response.status(), 200);
  assert.equal(response.headers()["cache-control"], "no-store");
  const ticked = () => page.$$eval(`${BOXES}:checked`, (boxes) => boxes.map((b) => b.name));
  assert.deepEqual(await ticked(), [], "nothing was ever given: every box unticked");
  await page.check("input[name='consent.email-offers']");
  await Promise.all([page.waitForURL(/saved=yes/), page.click("#save")]);
  assert.ok(await page.isVisible("#saved"));
  assert.deepEqual(await ticked(), ["consent.email-offers"]);
  assert.deepEqual(log.pageErrors, []);
  await context.close();

  const subject = await admin(shop.url, "/v1/admin/subjects", { identifier: "anna@example.lv" });
  now = subject.purposes;
  assert.equal(now["email-offers"].state, "given");
  assert.equal(now["birthday-greetings"].state, "refused", "left unticked: the answer is no");
  const [imported, answer] = subject.history;
  assert.equal(imported.source, "import");
  assert.equal(imported.imported.provenance, "newsletter");
  assert.deepEqual(imported.purposes, []);
  assert.equal(answer.source, "import");
  assert.equal(answer.signer, "collector");
  assert.deepEqual(
    answer.purposes.map((p) => [p.id, p.state]),
    [
      ["email-offers", "given"],
      ["birthday-greetings", "refused"],
    ],
  );
  // Jan has not answered yet.
  assert.equal((await stateOf(shop.url, "jan@example.pl"))["email-offers"].state, "unconfirmed");

  await shop.stop();
  servers.length = 0;
  const verified = await run(BINARY, ["verify", "--db", db]);
  assert.match(verified.stdout, /3 records, .*: clean/);
});

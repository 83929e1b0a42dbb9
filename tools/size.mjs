// Prints raw, gzip -9 and brotli sizes of what the widget makes a page download, per kind of
// page, and fails above the budgets (issue 13):
//   - a page without a form downloads the entry only: at most 3 KB gzip;
//   - a page with a form downloads the entry, the form code, the wasm, the stylesheet, the
//     compiled site and one sheet (the largest is counted): goal 30 KB, never above 35 KB;
//   - the shop's account page (`form[data-unticked="preferences"]`) downloads the entry, the
//     account code (no wasm, no form code), the stylesheet, the compiled site and the state
//     answer, whose bulk is the preferences sheet (the largest is counted): the same budget.
// The config itself (consent.json, the site owner's file, which the widget fetches only to
// find its compiled form by hash) is listed beside them and not counted.
//
//   node tools/size.mjs www/pkg www/consent.json
import { readFileSync, readdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import path from "node:path";

// KB = 1000 bytes: the stricter reading.
const WITHOUT_FORM_BUDGET = 3_000;
const WITH_FORM_BUDGET = 35_000;
const WITH_FORM_GOAL = 30_000;

const [pkg, config] = process.argv.slice(2);
if (!pkg || !config) {
  console.error("usage: node tools/size.mjs PKG_DIR CONFIG");
  process.exit(2);
}
// The hash the widget computes: of the config's text as Response.text() gives it (no BOM).
const text = readFileSync(config, "utf8").replace(/^\uFEFF/, "");
const compiled = path.join(pkg, "c", createHash("sha256").update(text, "utf8").digest("hex"));
let sheets;
try {
  sheets = readdirSync(compiled).filter((name) => name != "site.json");
} catch {
  console.error(`size: ${compiled} does not exist: run \`unticked build ${config} --out ${pkg}\``);
  process.exit(1);
}
const sizes = (file) => {
  const bytes = readFileSync(file);
  return {
    file,
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
};
const largest = (names) => names.map((name) => sizes(path.join(compiled, name))).reduce((a, b) => (b.gzip > a.gzip ? b : a));
// A checkout or newsletter page loads its own form's sheet; the account page gets the
// preferences sheet inside the collector's state answer.
const isPreferences = (name) => name.startsWith("preferences.");
const largestSheet = largest(sheets.filter((name) => !isPreferences(name)));
const largestPreferences = largest(sheets.filter(isPreferences));

const pad = (v, n) => String(v).padStart(n);
const kb = (n) => (n / 1000).toFixed(2);
let failed = false;
function table(title, rows, budget, goal) {
  console.log(`\n${title}`);
  console.log(`  ${"file".padEnd(34)} ${pad("raw", 8)} ${pad("gzip -9", 8)} ${pad("brotli", 8)}`);
  const total = { raw: 0, gzip: 0, brotli: 0 };
  for (const row of rows) {
    for (const k of Object.keys(total)) total[k] += row[k];
    const name = path.relative(pkg, row.file).replace(/^c\/[0-9a-f]{64}\//, "c/<sha256>/");
    console.log(`  ${name.padEnd(34)} ${pad(row.raw, 8)} ${pad(row.gzip, 8)} ${pad(row.brotli, 8)}`);
  }
  console.log(`  ${"total".padEnd(34)} ${pad(total.raw, 8)} ${pad(total.gzip, 8)} ${pad(total.brotli, 8)}`);
  const goalText = goal ? `goal ${kb(goal)} KB, ` : "";
  console.log(`  gzip total ${total.gzip} bytes = ${kb(total.gzip)} KB (${goalText}budget ${kb(budget)} KB)`);
  if (total.gzip > budget) {
    console.error(`size: ${title.toLowerCase()}: over budget by ${total.gzip - budget} bytes`);
    failed = true;
  }
}
table("Page without a form", [sizes(path.join(pkg, "unticked.js"))], WITHOUT_FORM_BUDGET);
table(
  "Page with a form",
  [
    sizes(path.join(pkg, "unticked.js")),
    sizes(path.join(pkg, "forms.js")),
    sizes(path.join(pkg, "unticked_bg.wasm")),
    sizes(path.join(pkg, "unticked.css")),
    sizes(path.join(compiled, "site.json")),
    largestSheet,
  ],
  WITH_FORM_BUDGET,
  WITH_FORM_GOAL,
);
table(
  "Account page",
  [
    sizes(path.join(pkg, "unticked.js")),
    sizes(path.join(pkg, "account.js")),
    sizes(path.join(pkg, "unticked.css")),
    sizes(path.join(compiled, "site.json")),
    largestPreferences,
  ],
  WITH_FORM_BUDGET,
  WITH_FORM_GOAL,
);
const own = sizes(config);
console.log(`\nNot counted: ${config} (the site owner's config, fetched to be hashed) ${own.raw} raw, ${own.gzip} gzip -9, ${own.brotli} brotli`);
if (failed) process.exit(1);

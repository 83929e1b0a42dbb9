// The shipped wasm (www/pkg/unticked_bg.wasm) and its wasm-bindgen glue, called from Node
// without a browser: every export with good arguments and with bad ones. A call that cannot
// do its work exactly throws (a `Failure` with a code, or the glue's TypeError); it never
// answers "" or something made up. Run by `./build.sh test` after the build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// build.sh writes the glue beside Cargo's output (CARGO_TARGET_DIR, else ./target).
const glue = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || "target", "glue/unticked.js");
const { initSync, Site, Form, Failure } = await import(glue);
initSync({ module: readFileSync(path.join(ROOT, "www/pkg/unticked_bg.wasm")) });

const config = readFileSync(path.join(ROOT, "www/consent.json"), "utf8");
const SHA = createHash("sha256").update(config).digest("hex");
const compiled = path.join(ROOT, "www/pkg/c", SHA);
const read = (name) => readFileSync(path.join(compiled, name), "utf8");
const placement = (locale = "en", edit = {}) => JSON.stringify({ configSha256: SHA, kind: "checkout", locale, pageLang: locale, ...edit });
const held = (edit = {}) => {
  const value = {
    id: "0190f5d2-7a1c-7def-8abc-0123456789ab",
    ticked: ["email-offers"],
    byShopper: ["email-offers"],
    email: "jan@example.pl",
    phone: "",
    post: "",
    birthdayDay: "",
    birthdayMonth: "",
    origin: "https://shop.example",
    path: "/checkout.html",
    now: Date.now(),
    ...edit,
  };
  for (const [k, v] of Object.entries(edit)) if (v === undefined) delete value[k];
  return JSON.stringify(value);
};
const random = () => new Uint8Array(80).fill(7);

/** Asserts that `call` throws a Failure with `code` whose message matches `pattern`. */
function fails(call, code, pattern = /./) {
  let thrown;
  try {
    call();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof Failure, `expected a Failure ${code}, got ${thrown}`);
  assert.equal(thrown.code, code, thrown.message);
  assert.match(thrown.message, pattern);
}

test("the compiled directory holds the site and a sheet per form and locale", () => {
  const names = readdirSync(compiled).sort();
  assert.ok(names.includes("site.json") && names.includes("checkout.lv.json") && names.includes("newsletter.et.json"), names.join(" "));
});

test("Site.open reads the site file, and refuses another config, format or member", () => {
  const site = Site.open(read("site.json"), SHA);
  assert.equal(site.endpoint, "/v1/records");
  fails(() => Site.open(read("site.json"), "0".repeat(64)), "compiled-mismatch", /config_sha256/);
  fails(() => Site.open(read("site.json").replace('"format":1', '"format":2'), SHA), "compiled-format");
  fails(() => Site.open(read("site.json").replace('"forms"', '"form"'), SHA), "compiled-invalid", /unknown field "form"/);
  fails(() => Site.open("not json", SHA), "compiled-invalid", /line 1/);
  // A missing argument: the glue throws before the wasm is called.
  assert.throws(() => Site.open(read("site.json")), TypeError);
});

test("Site.choose picks the form's locale and names its sheet, or throws form-unknown", () => {
  const site = Site.open(read("site.json"), SHA);
  assert.deepEqual(JSON.parse(site.choose("checkout", "pl-PL en")), { locale: "pl", sheet: "checkout.pl.json" });
  assert.deepEqual(JSON.parse(site.choose("newsletter", "fi")), { locale: "en", sheet: "newsletter.en.json" });
  fails(() => site.choose("contest", "en"), "form-unknown", /checkout newsletter/);
  assert.throws(() => site.choose(undefined, "en"), TypeError);
});

test("Form.mount reads a sheet exactly, or not at all", () => {
  const form = Form.mount(read("checkout.lv.json"), placement("lv"));
  const view = JSON.parse(form.view);
  assert.equal(view.locale, "lv");
  assert.equal(view.lang, false);
  assert.equal(view.purposes.length, 6);
  assert.equal(view.contact.email, "#email");
  assert.equal(view.birthday.day, "Diena");
  form.free();
  const sheet = read("checkout.en.json");
  fails(() => Form.mount(sheet.replace('"channel":"sms"', '"channel":"smss"'), placement()), "compiled-invalid", /\/purposes\/1\/channel: unknown value "smss"/);
  fails(() => Form.mount(sheet.replace('"source":"checkout"', '"source":"till"'), placement()), "compiled-invalid", /\/source: unknown value "till"/);
  fails(() => Form.mount(sheet.replace('"format":1', '"format":0'), placement()), "compiled-format");
  fails(() => Form.mount(sheet, placement("lv")), "compiled-mismatch", /locale/);
  fails(() => Form.mount(sheet, placement("en", { pageLang: undefined })), "bad-argument", /missing field "pageLang"/);
  fails(() => Form.mount(sheet, placement("en", { handle: 0 })), "bad-argument", /unknown field "handle"/);
  assert.throws(() => Form.mount(sheet), TypeError);
});

test("Form.capture returns a sealable record, or throws naming what is wrong", () => {
  const form = Form.mount(read("checkout.en.json"), placement());
  const captured = JSON.parse(form.capture(held(), random()));
  assert.deepEqual(captured.untrusted, []);
  assert.equal(captured.sealable.disclosures[0].identifier, "jan@example.pl");
  assert.ok(captured.sealable.parts.join("").includes('"config_sha256":"' + SHA + '"'));
  // Defect 1 of issue 13: one argument fewer answered "" and the record was dropped.
  for (const name of ["id", "ticked", "byShopper", "email", "phone", "post", "birthdayDay", "birthdayMonth", "origin", "path", "now"]) {
    fails(() => form.capture(held({ [name]: undefined }), random()), "bad-argument", new RegExp(`missing field "${name}"`));
  }
  fails(() => form.capture(held({ now: "today" }), random()), "bad-argument", /\/now/);
  fails(() => form.capture(held({ ticked: ["lottery"], byShopper: [] }), random()), "capture-unknown-purpose", /lottery/);
  fails(() => form.capture(held(), new Uint8Array(79)), "capture-randomness");
  assert.throws(() => form.capture(held()), TypeError, "no random bytes at all");
  form.free();
  assert.throws(() => form.capture(held(), random()), /null pointer|closure invoked|moved|freed/i, "a freed form captures nothing");
});

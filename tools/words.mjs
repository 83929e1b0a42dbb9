// Ships the widget's words (crates/core/locales/<language>.json, key → text) as arrays of
// the texts in the key order of en.json, which `locale::keys` follows (a core test checks):
// the keys were 40% of each file a shopper downloads.
import { readFileSync, writeFileSync, readdirSync, mkdirSync } from "node:fs";

const [from, to] = process.argv.slice(2);
const read = (name) => JSON.parse(readFileSync(`${from}/${name}`, "utf8"));
const order = Object.keys(read("en.json"));
mkdirSync(to, { recursive: true });
for (const name of readdirSync(from).filter((n) => n.endsWith(".json"))) {
  const words = read(name);
  const missing = order.find((key) => typeof words[key] != "string");
  if (missing) throw new Error(`${from}/${name} has no "${missing}"`);
  writeFileSync(`${to}/${name}`, JSON.stringify(order.map((key) => words[key])));
}

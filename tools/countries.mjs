// Writes crates/core/locales/countries/<language>.json: the name of every ISO 3166-1
// alpha-2 region in each language the widget speaks, from the ICU data of Node's Intl
// (CLDR's short form where it has one: "ASV", not "Amerikas Savienotās Valstis", as a
// Latvian reads it in a list). `unticked build` puts the names into each locale's compiled
// choices, so no shopper's browser computes them. Run it again after a CLDR update:
//
//   node tools/countries.mjs crates/core/locales/countries
import { writeFileSync, mkdirSync } from "node:fs";

const [to] = process.argv.slice(2);
const LANGUAGES = ["en", "lv", "pl", "cs", "de", "lt", "et"];
const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
mkdirSync(to, { recursive: true });
for (const language of LANGUAGES) {
  const short = new Intl.DisplayNames([language], { type: "region", style: "short", fallback: "none" });
  const names = {};
  for (const a of LETTERS)
    for (const b of LETTERS) {
      const code = a + b;
      const name = short.of(code);
      // Exceptional and private-use codes (EU, UN, QO, XA…) are no country a recipient is in.
      if (name && !/^(EU|EZ|UN|Q[M-Z]|X[A-Z]|ZZ|AA)$/.test(code)) names[code] = name;
    }
  writeFileSync(`${to}/${language}.json`, JSON.stringify(names, null, 0) + "\n");
}

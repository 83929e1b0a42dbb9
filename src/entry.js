// The module a page loads (bundled to www/pkg/unticked.js), on every page of the shop:
//
//   <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//
// It is small on purpose (at most 3 KB gzip, `./build.sh size` checks): a product page
// without a form downloads only this. It delivers what waits in the outbox (a checkout whose
// record could not be sent yet is sent from the confirmation page, or the next), and only
// when the page has a form for it, now or later (a single-page shop), loads the rest:
// - a `form[data-unticked]` of a kind the config names (checkout, newsletter): the DOM edge
//   and the wasm (./widget.js, bundled to pkg/forms.js);
// - the shop's account form, `form[data-unticked="preferences"]`: ./account.js
//   (pkg/account.js), which needs no wasm. A checkout page never downloads it.
import { drain, post, keepRaw, rebuild, prepare } from "./courier.js";
import { Attr, Kind } from "./names.ts";

const ACCOUNT = `[${Attr.FORM_KIND}="${Kind.PREFERENCES}"]`;
// Each module, with the forms it is for; left here until it is loaded.
let modules = [
  [`form[${Attr.FORM_KIND}]:not(${ACCOUNT})`, () => import("./forms.js")],
  ["form" + ACCOUNT, () => import("./account.js")],
];
// Set on window by the first copy of the widget, so that a second copy (a theme that adds
// the script again, another URL) does nothing and nothing renders twice.
const STARTED = "__untickedStarted";

// Loads each module whose forms the page has now.
function load() {
  modules = modules.filter(([selector, module]) => {
    if (!document.querySelector(selector)) return true;
    module().then(
      (loaded) => loaded.start({ post, keepRaw, rebuild, prepare }),
      (e) => {
        const message = "could not load the widget; the forms work without it: " + e;
        console.error("unticked: " + message);
        document.dispatchEvent(new CustomEvent("unticked:error", { bubbles: true, detail: { code: "start", message } }));
      },
    );
  });
  if (!modules.length) observer?.disconnect();
}

let observer;
if (window[STARTED]) {
  // R6: one record per submit. The first copy handles every form.
  const message = "the widget's script is on the page twice; the second copy does nothing";
  console.warn(`unticked: ${message} (R6)`);
  document.dispatchEvent(new CustomEvent("unticked:violation", { bubbles: true, detail: { rule: "R6", kind: "loaded-twice", message } }));
} else {
  window[STARTED] = true;
  drain();
  // Forms a single-page shop adds later, or a form that gets its attribute later.
  observer = new MutationObserver(load);
  observer.observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: [Attr.FORM_KIND] });
  load();
}

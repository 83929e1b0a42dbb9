// The module a page loads (bundled to www/pkg/unticked.js), on every page of the shop:
//
//   <script type="module" src="/pkg/unticked.js" data-config="/consent.json"></script>
//
// It is small on purpose (at most 3 KB gzip, `./build.sh size` checks): a product page
// without a form downloads only this. It delivers what waits in the outbox (a checkout whose
// record could not be sent yet is sent from the confirmation page, or the next), and only
// when the page has a `form[data-unticked]`, now or later (a single-page shop), loads the
// rest: the DOM edge, the wasm and the stylesheet (./widget.js, bundled to pkg/forms.js).
import { drain, post, keepRaw, rebuild, prepare } from "./courier.js";
import { Attr } from "./names.ts";

const FORM = `form[${Attr.FORM_KIND}]`;
// Set on window by the first copy of the widget, so that a second copy (a theme that adds
// the script again, another URL) does nothing and nothing renders twice.
const STARTED = "__untickedStarted";

function loadForms() {
  observer?.disconnect();
  import("./forms.js").then(
    (forms) => forms.start({ post, keepRaw, rebuild, prepare }),
    (e) => {
      const message = "could not load the widget; the forms work without it: " + e;
      console.error("unticked: " + message);
      document.dispatchEvent(new CustomEvent("unticked:error", { bubbles: true, detail: { code: "start", message } }));
    },
  );
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
  if (document.querySelector(FORM)) loadForms();
  else {
    // Forms a single-page shop adds later, or a form that gets its attribute later.
    observer = new MutationObserver(() => document.querySelector(FORM) && loadForms());
    observer.observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: [Attr.FORM_KIND] });
  }
}

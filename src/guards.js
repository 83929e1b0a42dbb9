// Guards against hostile or careless shop pages (R1, R3; docs/rules.md). Themes, plugins and
// A/B-testing scripts the site owner did not write may tick boxes, make them required,
// disable the submit button until a marketing box is ticked, or hide the boxes. The widget
// never blocks, cancels or delays a submit itself; it undoes what it can on its own inputs,
// does not count what the shopper did not do, and tells the site owner: an
// `unticked:violation` event on the form, one console warning per kind, and one report per
// kind, form kind and page load to the collector (`POST /v1/violations`, no personal data).

import { Attr } from "./names.ts";

// kind → [rule, what the site owner reads]. The collector knows the same kinds.
const KINDS = {
  "untrusted-tick": ["R1", "a consent box was ticked without the shopper's input; unticked, not consent"],
  "hidden-box": ["R1", "a consent box is hidden from the shopper; its ticks are not consent"],
  "fake-box": ["R1", "the page has its own input named like a consent box; left out of the submit"],
  "box-changed": ["R1", "a script renamed, retyped or moved a consent box; undone, and its ticks are not consent"],
  "required-added": ["R3", "a script made a consent box required; undone"],
  "disabled-added": ["R3", "a script disabled a consent box; undone"],
  "submit-gated": ["R3", "the submit button works only while a marketing box is ticked"],
  "submit-blocked": ["R3", "a script cancelled a submit because no marketing box was ticked"],
  "text-changed": ["R5", "a script changed a consent text after it was shown; its ticks are not consent"],
  "loaded-twice": ["R6", "the widget's script is on the page twice; the second copy does nothing"],
};

const warned = new Set();
const reported = new Set();
let reportUrl;

/** Where reports go: `violations` beside the records endpoint (`/v1/records` → `/v1/violations`). */
export function reportTo(endpoint) {
  try {
    reportUrl = new URL("violations", endpoint).href;
  } catch {
    reportUrl = undefined;
  }
}

/** Reports a violation of `kind` on `target` (the form), about `purpose` when there is one. */
export function violation(target, kind, purpose, formKind) {
  const [rule, message] = KINDS[kind];
  if (!warned.has(kind)) console.warn(`unticked: ${message} (${rule})` + (purpose ? `: ${purpose}` : ""));
  warned.add(kind);
  target.dispatchEvent(new CustomEvent("unticked:violation", { bubbles: true, detail: { rule, kind, purpose, message } }));
  const key = kind + " " + (formKind || "");
  if (!reportUrl || reported.has(key)) return;
  reported.add(key);
  const body = JSON.stringify({ kind, form: formKind || "unknown", page: location.pathname });
  fetch(reportUrl, { method: "POST", body, keepalive: true, credentials: "omit", headers: { "content-type": "application/json" } }).catch(() => {});
}

/**
 * Why the shopper cannot see `box`, or "" when they can: not rendered (display, visibility,
 * opacity, content-visibility, here or on an ancestor), too small, outside the page, or
 * covered by another element (at the centre of the box and of its label).
 */
export function hidden(box) {
  if (box.checkVisibility && !box.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return "not displayed";
  const r = box.getBoundingClientRect();
  if (r.width < 4 || r.height < 4) return "too small";
  const page = document.documentElement;
  const [x, y] = [r.left + scrollX, r.top + scrollY];
  if (x + r.width <= 0 || y + r.height <= 0 || x >= page.scrollWidth || y >= page.scrollHeight) return "off the page";
  // Covered: something else on top of the box and of its label (a sticky header over the box
  // alone leaves the choice readable and clickable).
  const covered = (el) => {
    const r = el.getBoundingClientRect();
    const [cx, cy] = [r.left + r.width / 2, r.top + r.height / 2];
    if (cx < 0 || cy < 0 || cx >= innerWidth || cy >= innerHeight) return false;
    const top = document.elementFromPoint(cx, cy);
    return top && top != box && !box.labels[0]?.contains(top);
  };
  if (covered(box) && (!box.labels[0] || covered(box.labels[0]))) return "covered";
  return "";
}

/**
 * Keeps the widget's own inputs free of `required`, `aria-required`, `disabled` and a
 * scripted `checked`, and notes when the text of a choice changes after it was shown.
 * `m` is the mounted form; `onText(purpose)` is told of a changed text.
 */
export function watchFieldset(m, form, onText) {
  const undone = new Map();
  const observer = new MutationObserver((records) => {
    try {
      for (const record of records) check(record);
    } catch (e) {
      console.error("unticked: internal error watching the choices:", e);
    }
  });
  function check(record) {
    const node = record.target;
    const purpose = m.boxes.get(node);
    if (record.type == "attributes") {
      if (!purpose) return;
      const name = record.attributeName;
      // A page that puts an attribute back each time it is undone would loop for ever with
      // the widget: after a few rounds the widget stops undoing (and has reported it).
      const rounds = (undone.get(node) || 0) + 1;
      if (rounds > 5) return;
      if (name == "name" || name == "type") {
        if (node.name == Attr.INPUT_NAME_PREFIX + purpose && node.type == "checkbox") return;
        undone.set(node, rounds);
        node.type = "checkbox";
        node.name = Attr.INPUT_NAME_PREFIX + purpose;
        return violation(form, "box-changed", purpose, m.kind);
      }
      if (!node.hasAttribute(name)) return;
      undone.set(node, rounds);
      node.removeAttribute(name);
      if (name == "checked" && m.byShopper.has(purpose)) return;
      const kind = { required: "required-added", "aria-required": "required-added", disabled: "disabled-added", checked: "untrusted-tick" }[name];
      if (kind == "untrusted-tick") node.checked = false;
      violation(form, kind, purpose, m.kind);
    } else {
      const row = (node.nodeType == Node.ELEMENT_NODE ? node : node.parentElement)?.closest(`[${Attr.PURPOSE}]`);
      const shown = row?.getAttribute(Attr.PURPOSE);
      if (shown && row.textContent != m.texts.get(shown)) onText(shown);
    }
  }
  observer.observe(m.fieldset, {
    subtree: true,
    attributes: true,
    attributeFilter: ["required", "aria-required", "disabled", "checked", "name", "type"],
    childList: true,
    characterData: true,
  });
  return observer;
}

/** The form's submit button, or undefined. */
const submitButton = (form) => form.querySelector("button[type=submit], input[type=submit], button:not([type])");

/**
 * After a box changed: if the submit button went from disabled to enabled as the first box
 * was ticked, or back as the last was unticked, the page gates the purchase on consent.
 * `before` is whether any box was ticked before the change.
 */
export function watchGating(form, m, before) {
  const button = submitButton(form);
  if (!button) return;
  const wasDisabled = button.disabled;
  // The page's own handlers run after the widget's; frameworks update a little later.
  setTimeout(() => {
    const now = [...m.fieldset.querySelectorAll("input[type=checkbox]")].some((b) => b.checked);
    const enabledByTick = !before && now && wasDisabled && !button.disabled;
    const disabledByUntick = before && !now && !wasDisabled && button.disabled;
    if (enabledByTick || disabledByUntick) violation(form, "submit-gated", undefined, m.kind);
  }, 100);
}

/**
 * Proof that the page blocks the purchase for want of consent: a submit of a valid form with
 * no box ticked by the shopper was cancelled, and a later one with a box ticked was not.
 * (A cancel alone proves nothing: a shop that posts with fetch cancels every submit, and so
 * does its validation when a field is missing.)
 */
export function watchCancel(event, form, m, noneTicked) {
  let valid = true;
  try {
    valid = form.matches(":valid");
  } catch {
    // A browser without :valid on forms: take the form as valid.
  }
  setTimeout(() => {
    if (event.defaultPrevented) m.blockedUnticked ||= noneTicked && valid;
    else if (!noneTicked && m.blockedUnticked) violation(form, "submit-blocked", undefined, m.kind);
  });
}

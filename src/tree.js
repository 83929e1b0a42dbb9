// A compiled sheet's tree as DOM, for every form the widget renders: the checkout's and
// newsletter's (./widget.js, pkg/forms.js) and the shop's account form (./account.js,
// pkg/account.js). One builder, so that both check a sheet the same way.
import { TAGS, ATTRIBUTES, ID_ATTRIBUTES, SAFE_LINKS } from "./names.ts";

// What the widget could not do: `code` names it (`unticked:error`), `message` says what to do.
export class Failure extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// DOM from a tree: an element is ["tag", [name, value, …], child, …], a text node a string.
// createElement, setAttribute and text nodes only: no config or translated text is ever
// parsed as markup, and nothing needs inline script or style (a strict CSP holds).
export function build([tag, attributes, ...children]) {
  const element = document.createElement(tag);
  for (let i = 0; i < attributes.length; i += 2) element.setAttribute(attributes[i], attributes[i + 1]);
  element.append(...children.map((child) => (typeof child == "string" ? child : build(child))));
  return element;
}

// A sheet's tree as DOM, built only if it keeps the rules of crates/core's
// compiled::check_tree (tags, attributes and links of the lists in ./names.ts, every input a
// checkbox; no `checked`, `required`, `disabled`, `style` or handler can even be written),
// each id prefixed with `prefix`. Anything else is refused, never repaired.
export function fromSheet(node, prefix, where) {
  const invalid = (what) => new Failure("compiled-invalid", `${where}: ${what}; run \`unticked build\` again`);
  if (!Array.isArray(node) || !Array.isArray(node[1])) throw invalid("an element is not [tag, [attributes], …children]");
  const [tag, attributes, ...children] = node;
  if (!TAGS.includes(tag)) throw invalid(`unknown tag "${tag}"`);
  const element = document.createElement(tag);
  if (attributes.length % 2) throw invalid(`an attribute of <${tag}> has no value`);
  for (let i = 0; i < attributes.length; i += 2) {
    const [name, value] = [attributes[i], attributes[i + 1]];
    if (!ATTRIBUTES.includes(name) || typeof value != "string") throw invalid(`unknown attribute "${name}" on <${tag}>`);
    if (name == "href" && (!SAFE_LINKS.some((p) => value.startsWith(p)) || value.startsWith("//"))) throw invalid(`a link to "${value}"`);
    element.setAttribute(name, ID_ATTRIBUTES.includes(name) ? prefix + value : value);
  }
  if (tag == "input" && element.getAttribute("type") != "checkbox") throw invalid("an input that is not a checkbox");
  for (const child of children) element.append(typeof child == "string" ? child : fromSheet(child, prefix, where));
  return element;
}

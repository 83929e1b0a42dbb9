// The courier: takes a capture at the submit event, keeps it in the outbox, hashes and
// signs it with WebCrypto and delivers it with a keepalive fetch (R3: nothing here blocks
// or delays the shopper's submit). The signing key is WebCrypto's and non-extractable: it
// never enters wasm memory or any script's reach (DESIGN.md, trust model, layer 1).

import { hex } from "./bytes.js";

const DB_NAME = "unticked";
const STORE = "keys";
const KEY_NAME = "signing";

let signingKey;

function idb(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function store(mode) {
  const open = indexedDB.open(DB_NAME, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return (await idb(open)).transaction(STORE, mode).objectStore(STORE);
}

// Ed25519 (RFC 8032) where the browser has it, ECDSA P-256 otherwise. Non-extractable:
// script on the page can use the key through WebCrypto but can never read it.
async function generate() {
  let alg = 0;
  let pair;
  try {
    pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  } catch {
    alg = 1;
    pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
  }
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { alg, privateKey: pair.privateKey, publicKey };
}

// One key per origin and browser, kept in IndexedDB. `add` (not `put`) so that of two tabs
// creating a key at once, the first one written wins and both use it.
async function loadKey() {
  try {
    const existing = await idb((await store("readonly")).get(KEY_NAME));
    if (existing) return existing;
    const key = await generate();
    try {
      await idb((await store("readwrite")).add(key, KEY_NAME));
      return key;
    } catch {
      return await idb((await store("readonly")).get(KEY_NAME));
    }
  } catch {
    // No IndexedDB (storage blocked): a key for this page only still proves the record
    // was not changed after capture; later records are just not tied to it.
    return generate();
  }
}

const unhex = (text) => new Uint8Array((text.match(/../g) || []).map((b) => parseInt(b, 16)));
const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

// Fills a sealable's parts (crates/core/src/capture.rs): strings are record text, numbers
// are holes, the nested array is the signature member, written only when `signed`.
const fill = (parts, holes, signed) =>
  parts.map((part) => (Array.isArray(part) ? (signed ? fill(part, holes, signed) : "") : typeof part == "string" ? part : holes[part])).join("");

// Hashes and signs a capture: the delivery body, with the record as a string so its exact
// canonical bytes arrive.
async function seal(capture) {
  const holes = await Promise.all(capture.inputs.map(async (input) => hex(await crypto.subtle.digest("SHA-256", unhex(input)))));
  signingKey ||= loadKey();
  let key;
  try {
    key = await signingKey;
  } catch (e) {
    signingKey = undefined;
    throw e;
  }
  const params = key.alg ? { name: "ECDSA", hash: "SHA-256" } : { name: "Ed25519" };
  const message = new TextEncoder().encode(fill(capture.parts, holes, false));
  holes[-1] = key.alg ? "ES256" : "Ed25519";
  holes[-2] = base64url(key.publicKey);
  holes[-3] = base64url(new Uint8Array(await crypto.subtle.sign(params, key.privateKey, message)));
  // The birthday (R8), like each contact, travels beside the record, never in it; so does the
  // account form's token (./account.js), which the collector asks of a preferences record.
  return JSON.stringify({ birthday: capture.birthday, disclosures: capture.disclosures, record: fill(capture.parts, holes, true), token: capture.token });
}

// Posts `body` without cookies; resolves to the HTTP status, or 0 when there was no answer.
// `keepalive` lets the post outlive the page: at submit, where the page is about to go, and
// at `pagehide`.
function send(url, body, keepalive) {
  return fetch(url, {
    method: "POST",
    body,
    keepalive,
    credentials: "omit",
    headers: { "content-type": "application/json" },
  }).then(
    (response) => response.status,
    () => 0,
  );
}

// Loads (or creates) the signing key now, on page load, so that at submit only hashing and
// signing are left: a few milliseconds, over well before a form's navigation unloads the
// page. Whatever is not sent by then waits in the outbox.
export function prepare() {
  signingKey ||= loadKey();
  signingKey.catch(() => (signingKey = undefined));
}

// The outbox: every capture stays in localStorage until the endpoint has acknowledged it
// (2xx; the record id makes a repeat idempotent) or holds other bytes under its id (409).
// Anything else (no answer, 5xx, 429, a 4xx while the collector's config lags the shop's)
// stays, and is sent again:
// - on every page load of the shop, everything waiting: the confirmation page after a
//   checkout, or the next page, delivers what the checkout could not;
// - by a timer while the page stays open: 2 s after a failure, doubling with each failure
//   of that entry (the count is stored, so it goes on from page to page), at most 5 min;
// - when the browser comes back online or the tab becomes visible again, everything;
// - at `pagehide`, with keepalive, what fits in the browser's keepalive budget (below).
// One entry is never sent twice at once by a page (`inFlight`); two tabs may, and the id
// makes that harmless. At most 50 wait: a shop whose endpoint is down for days must not
// fill the shopper's storage; beyond that the oldest is dropped, and the console says so.
//
// One localStorage key per record (`unticked:outbox:<id>`): tabs of one shop write their
// own keys, so no tab can write back a list that lacks another tab's new record.
const OUTBOX = "unticked:outbox:";
const CAPACITY = 50;
const FIRST_RETRY_MS = 2e3;
const LAST_RETRY_MS = 3e5;
// Fetch allows a page 64 KiB of keepalive bodies in flight (inflightKeepaliveBytes); a
// post beyond that fails at once, so it is not made and the entry waits for the next try.
// A delivery is at most 16 KiB (the collector's limit), so at least four fit.
const KEEPALIVE_BUDGET = 65536;
const inFlight = new Set();
// id → the timer of its next retry on this page
const retries = {};
let keptAlive = 0;

const warn = (message) => console.warn("unticked: " + message);

function read(key) {
  try {
    return JSON.parse(localStorage.getItem(key));
  } catch {
    return null;
  }
}

// Every entry waiting, oldest first.
function waiting() {
  const list = [];
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      const entry = key?.startsWith(OUTBOX) && read(key);
      if (entry?.id) list.push(entry);
    }
  } catch {
    // Storage blocked: nothing waits.
  }
  return list.sort((a, b) => a.created - b.created);
}

function save(entry) {
  try {
    localStorage.setItem(OUTBOX + entry.id, JSON.stringify(entry));
  } catch {
    warn("could not write the outbox in localStorage; a failed delivery will not be retried");
  }
}

function remove(id) {
  try {
    localStorage.removeItem(OUTBOX + id);
  } catch {
    // Storage blocked: there is nothing to remove.
  }
}

// Changes an entry as stored now, if it is still waiting (another tab may have sent it).
function update(id, edit) {
  const entry = read(OUTBOX + id);
  if (entry) save(edit(entry) || entry);
}

async function go(entry, target, keepalive) {
  // A raw capture (the wasm could not build it) waits for a widget that can: `rebuild`.
  if (inFlight.has(entry.id) || entry.raw) return;
  inFlight.add(entry.id);
  let status = 0;
  try {
    if (!entry.body) {
      entry.body = await seal(entry.capture);
      update(entry.id, (stored) => {
        stored.body = entry.body;
        delete stored.capture;
      });
    }
    const size = keepalive ? new Blob([entry.body]).size : 0;
    if (keptAlive + size <= KEEPALIVE_BUDGET) {
      keptAlive += size;
      status = await send(entry.endpoint, entry.body, keepalive);
      keptAlive -= size;
    }
  } catch (e) {
    warn("could not sign the consent record (" + e + "); it stays in the outbox");
  }
  inFlight.delete(entry.id);
  const done = (status > 199 && status < 300) || status == 409;
  if (done) remove(entry.id);
  else
    update(entry.id, (stored) => {
      clearTimeout(retries[entry.id]);
      retries[entry.id] = setTimeout(() => {
        const now = read(OUTBOX + entry.id);
        if (now) go(now, target);
      }, Math.min(FIRST_RETRY_MS * 2 ** stored.attempts++, LAST_RETRY_MS));
    });
  if (status == 409) console.error("unticked: the endpoint holds a different record under id " + entry.id);
  else if (done) target.dispatchEvent(new CustomEvent("unticked:recorded", { bubbles: true, detail: { id: entry.id, status } }));
  else warn("the consent record could not be delivered yet (HTTP " + status + "); it stays in the outbox");
}

// Keeps an entry, and drops the oldest beyond CAPACITY. Counting keys costs no parsing: the
// submit path reads the other entries only when the outbox is over capacity.
function keep(entry) {
  save(entry);
  let count = 0;
  try {
    for (let i = 0; i < localStorage.length; i++) if (localStorage.key(i)?.startsWith(OUTBOX)) count++;
  } catch {
    return;
  }
  if (count <= CAPACITY) return;
  const list = waiting();
  for (const old of list.slice(0, Math.max(0, list.length - CAPACITY))) {
    remove(old.id);
    warn("the outbox is full; dropped the oldest undelivered record " + old.id);
  }
}

const entryOf = (id, endpoint, fields) => ({ id, endpoint: new URL(endpoint, location.href).href, attempts: 0, created: Date.now(), ...fields });

// Keeps a capture (synchronously, before anything can fail) and sends it on its way.
// `target` (the form) receives `unticked:recorded` once the endpoint has it. The endpoint
// is resolved now: a retry may happen on another page of the shop.
export function post(target, id, endpoint, capture) {
  const entry = entryOf(id, endpoint, { capture });
  keep(entry);
  // Hashing and signing start once the submit event is over, at background priority where
  // the browser has a scheduler: after the form's own submission task, while the next page
  // is requested, so that neither the submit nor the navigation waits for them. The record
  // is in the outbox already; whatever is not sent by the time the page goes is sent from
  // the next one.
  later(() => go(entry, target, true));
}

const later = globalThis.scheduler?.postTask ? (task) => scheduler.postTask(task, { priority: "background" }) : (task) => setTimeout(task);

// Keeps what a form held at a submit the wasm could not capture (`raw`: the sheet's URL,
// where the form was mounted and what it held), so that the record is not lost: a widget
// that can build it does, on a later page (`rebuild`).
export function keepRaw(id, endpoint, raw) {
  keep(entryOf(id, endpoint, { raw }));
}

// Offers every raw entry to `build(raw)`, which resolves to a capture or rejects; a built
// one is sent like any other, a failed one keeps waiting.
export async function rebuild(build) {
  for (const entry of waiting().filter((e) => e.raw)) {
    try {
      const capture = await build(entry.raw);
      update(entry.id, (stored) => {
        stored.capture = capture;
        delete stored.raw;
      });
      const now = read(OUTBOX + entry.id);
      if (now) go(now, document);
    } catch (e) {
      warn("a consent record kept raw still cannot be built (" + (e.message || e) + "); it stays in the outbox");
    }
  }
}

// Sends everything waiting, with `keepalive` when the page is going.
const flush = (keepalive) => waiting().forEach((entry) => go(entry, document, keepalive));

// On page load (once: the widget starts once per page): sends everything waiting, and
// again when the browser comes back online, the tab becomes visible or the page goes.
export function drain() {
  addEventListener("online", () => flush());
  addEventListener("visibilitychange", () => document.hidden || flush());
  addEventListener("pagehide", () => flush(true));
  flush();
}

// Loads the widget's wasm and calls it. Its exports that take and return text (src/lib.rs,
// `abi`): the arguments go in as one UTF-8 text joined by U+001F, the answer comes back as
// an address and a length packed in a 64-bit integer. No generated glue: it cost more than
// this file and the DOM edge together.
const SEPARATOR = "\x1f";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
let wasm;

/** Fetches and instantiates the module beside this script. It imports nothing. */
export async function load() {
  const url = new URL("unticked_bg.wasm", import.meta.url);
  let loaded;
  try {
    loaded = await WebAssembly.instantiateStreaming(fetch(url), {});
  } catch (e) {
    // A server that does not send application/wasm: compile from the bytes instead.
    if (typeof WebAssembly != "object") throw e;
    loaded = await WebAssembly.instantiate(await (await fetch(url)).arrayBuffer(), {});
  }
  wasm = loaded.instance.exports;
}

function call(name, ...args) {
  const input = encoder.encode(args.map((arg) => String(arg).replaceAll(SEPARATOR, "")).join(SEPARATOR));
  const at = wasm.unticked_alloc(input.length);
  new Uint8Array(wasm.memory.buffer, at, input.length).set(input);
  const packed = wasm[name](at, input.length);
  const [address, length] = [Number(packed >> 32n), Number(packed & 0xffffffffn)];
  const answer = decoder.decode(new Uint8Array(wasm.memory.buffer, address, length));
  wasm.unticked_free(address, length);
  return answer;
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

export const configure = (text, sha256) => call("configure", text, sha256);
export const mount = (kind, pageLang, requested, idPrefix) => call("mount", kind, pageLang, requested, idPrefix);
export const unmount = (handle) => wasm.unmount(handle);
export const words = (language, text) => call("words", language, text);
// capture(handle, id, ticked, byShopper, email, phone, post, day, month, origin, path, now, random)
export const capture = (...args) => call("capture", ...args.slice(0, -1), hex(args.at(-1)));

// Bytes as the widget writes them: lowercase hex, SHA-256 and random bytes from WebCrypto.

export const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

// SHA-256 of the UTF-8 of `text`, lowercase hex.
export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

export const random = (n) => crypto.getRandomValues(new Uint8Array(n));

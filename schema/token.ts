/**
 * Token scheme (docs/protocol.md, "Auth"): a token is the unpadded base64url
 * HMAC-SHA256 of a subject text under HUB_SECRET. Works in Workers and in
 * Node >= 20 (both have WebCrypto on globalThis).
 */

/** Subject text of a device token. */
export function deviceSubject(group: string, device: string): string {
  return `device:${group}/${device}`;
}

/** Subject text of a gateway token: one gateway (e.g. the MQTT bridge) speaking for the devices of one group. */
export function gatewaySubject(group: string, gateway: string): string {
  return `gateway:${group}/${gateway}`;
}

/** Subject text of an operator token; `*` grants every group. */
export function operatorSubject(group: string | "*"): string {
  return `operator:${group}`;
}

const encoder = new TextEncoder();
// Spelled this way because Workers and Node type the global CryptoKey differently.
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const keyCache = new Map<string, Promise<HmacKey>>();

function hmacKey(secret: string): Promise<HmacKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    // Secrets are few (current and, during a rotation, previous); the cache
    // saves an importKey per request.
    if (keyCache.size > 8) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

function toBase64Url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * 43 base64url characters carry 258 bits for the MAC's 256: the last
 * character's two low bits are unused, so four spellings would decode to the
 * same MAC. Only the canonical one (unused bits zero, as every encoder
 * writes it) is a token: one token, one spelling (RFC 4648, section 3.5).
 */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

function fromBase64Url(s: string): Uint8Array | null {
  if (!TOKEN_PATTERN.test(s)) return null; // 32 bytes, unpadded, canonical
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Signs a subject: returns the token for it. */
export async function signToken(secret: string, subject: string): Promise<string> {
  const sig = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(subject));
  return toBase64Url(new Uint8Array(sig));
}

/**
 * Checks a token against a subject. `crypto.subtle.verify` compares the MAC
 * in constant time, so the check leaks nothing about how much of a wrong
 * token matched.
 */
export async function verifyToken(secret: string, subject: string, token: string): Promise<boolean> {
  const sig = fromBase64Url(token);
  if (!sig) return false;
  return crypto.subtle.verify("HMAC", await hmacKey(secret), sig, encoder.encode(subject));
}

/**
 * Operators authenticated by Cloudflare Access (docs/security.md, "Cloudflare
 * Access"). When the hub sits behind an Access application, Access adds a
 * signed JWT to every request it lets through, in the `Cf-Access-Jwt-Assertion`
 * header (and the `CF_Authorization` cookie). The Worker validates it against
 * the team's signing keys rather than trusting the header's presence:
 * https://developers.cloudflare.com/cloudflare-one/identity/authorization-cookie/validating-json/
 *
 * Configured with vars: ACCESS_TEAM_DOMAIN (e.g. "acme.cloudflareaccess.com")
 * and ACCESS_AUD (the application's audience tag). ACCESS_JWKS may pin the
 * keys as a JWKS JSON document instead of fetching them (air-gapped setups
 * and tests).
 */

export interface AccessConfig {
  teamDomain: string;
  aud: string;
  /** Pinned JWKS JSON, or undefined to fetch https://{team}/cdn-cgi/access/certs. */
  jwks?: string;
}

export function accessConfig(env: { ACCESS_TEAM_DOMAIN?: string; ACCESS_AUD?: string; ACCESS_JWKS?: string }): AccessConfig | null {
  const teamDomain = env.ACCESS_TEAM_DOMAIN?.trim();
  const aud = env.ACCESS_AUD?.trim();
  if (!teamDomain || !aud) return null;
  return env.ACCESS_JWKS ? { teamDomain, aud, jwks: env.ACCESS_JWKS } : { teamDomain, aud };
}

/** The Access JWT of a request: the header Access sets, else its cookie. */
export function accessToken(request: Request): string | null {
  const header = request.headers.get("cf-access-jwt-assertion");
  if (header) return header;
  const cookie = request.headers.get("cookie") ?? "";
  const m = /(?:^|;\s*)CF_Authorization=([^;]+)/.exec(cookie);
  return m?.[1] ?? null;
}

type Jwk = JsonWebKey & { kid?: string };
const KEY_TTL_MS = 10 * 60_000;
let cached: { source: string; at: number; keys: Map<string, CryptoKey> } | null = null;

async function signingKeys(cfg: AccessConfig, now: number): Promise<Map<string, CryptoKey>> {
  const source = cfg.jwks ?? `https://${cfg.teamDomain}/cdn-cgi/access/certs`;
  if (cached && cached.source === source && now - cached.at < KEY_TTL_MS) return cached.keys;
  let doc: unknown;
  if (cfg.jwks) doc = JSON.parse(cfg.jwks);
  else {
    const res = await fetch(source, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`Access certs: HTTP ${res.status}`);
    doc = await res.json();
  }
  const list: unknown = typeof doc === "object" && doc !== null && "keys" in doc ? doc.keys : null;
  if (!Array.isArray(list)) throw new Error("Access certs: no keys");
  const keys = new Map<string, CryptoKey>();
  for (const k of list as Jwk[]) {
    if (typeof k !== "object" || k === null || k.kty !== "RSA" || typeof k.kid !== "string") continue;
    keys.set(k.kid, await crypto.subtle.importKey("jwk", k, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]));
  }
  cached = { source, at: now, keys };
  return keys;
}

function b64urlBytes(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64urlJson(s: string): Record<string, unknown> | null {
  const bytes = b64urlBytes(s);
  if (!bytes) return null;
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Validates an Access JWT: RS256 signature by one of the team's keys,
 * issuer, audience, expiry and not-before. Returns the identity (email or
 * subject) or null. Never throws for a bad token.
 */
export async function verifyAccessJwt(cfg: AccessConfig, token: string, now = Date.now()): Promise<string | null> {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const [h, p, sig] = parts as [string, string, string];
  const header = b64urlJson(h);
  const payload = b64urlJson(p);
  const signature = b64urlBytes(sig);
  if (!header || !payload || !signature) return null;
  if (header.alg !== "RS256" || typeof header.kid !== "string") return null;
  let key: CryptoKey | undefined;
  try {
    key = (await signingKeys(cfg, now)).get(header.kid);
  } catch {
    return null;
  }
  if (!key) return null;
  const ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, signature, new TextEncoder().encode(`${h}.${p}`));
  if (!ok) return null;
  const seconds = now / 1000;
  if (payload.iss !== `https://${cfg.teamDomain}`) return null;
  const aud = payload.aud;
  if (!(aud === cfg.aud || (Array.isArray(aud) && aud.includes(cfg.aud)))) return null;
  if (typeof payload.exp !== "number" || payload.exp < seconds) return null;
  if (typeof payload.nbf === "number" && payload.nbf > seconds + 60) return null;
  const who = typeof payload.email === "string" ? payload.email : typeof payload.sub === "string" ? payload.sub : null;
  return who;
}

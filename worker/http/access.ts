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
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from "jose";

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

/** Clock skew allowed on `nbf` (Access and the Worker run on different machines); `exp` gets none. */
const NBF_SKEW_S = 60;
/** Keys fetched from the team are reused this long; an unknown `kid` refetches sooner (key rotation). */
const KEY_TTL_MS = 10 * 60_000;

// One key set per source, kept across requests so keys are imported and fetched once, not per request.
let cached: { source: string; keys: JWTVerifyGetKey } | null = null;

function signingKeys(cfg: AccessConfig): JWTVerifyGetKey {
  const source = cfg.jwks ?? `https://${cfg.teamDomain}/cdn-cgi/access/certs`;
  if (cached?.source === source) return cached.keys;
  const keys = cfg.jwks
    ? createLocalJWKSet(parseJwks(cfg.jwks))
    : createRemoteJWKSet(new URL(source), { timeoutDuration: 5000, cacheMaxAge: KEY_TTL_MS });
  cached = { source, keys };
  return keys;
}

function parseJwks(text: string): JSONWebKeySet {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== "object" || doc === null || !("keys" in doc) || !Array.isArray(doc.keys)) throw new Error("ACCESS_JWKS: no keys");
  // jose checks each key's fields itself; only the outer shape is ours to check.
  return { keys: doc.keys.filter((k): k is JWK => typeof k === "object" && k !== null) };
}

/**
 * Validates an Access JWT with jose: RS256 signature by one of the team's
 * keys, issuer, audience, expiry and not-before. Returns the identity (email
 * or subject) or null. Never throws for a bad token.
 */
export async function verifyAccessJwt(cfg: AccessConfig, token: string, now = Date.now()): Promise<string | null> {
  try {
    const { payload } = await jwtVerify(token, signingKeys(cfg), {
      algorithms: ["RS256"],
      issuer: `https://${cfg.teamDomain}`,
      audience: cfg.aud,
      requiredClaims: ["exp"],
      currentDate: new Date(now),
      clockTolerance: NBF_SKEW_S,
    });
    // jose applies one tolerance to both nbf and exp; an expired token gets none.
    if (typeof payload.exp !== "number" || payload.exp < now / 1000) return null;
    const email: unknown = payload.email;
    return typeof email === "string" ? email : (payload.sub ?? null);
  } catch {
    return null;
  }
}

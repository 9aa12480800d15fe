/**
 * Operators through Cloudflare Access: the Worker validates the Access JWT, it
 * does not trust the header; the live socket checks the Origin of
 * Access-authenticated handshakes (worker/http/origin.ts).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/http/app.ts";
import worker from "../../worker/index.ts";
import { operatorToken, uniqueGroup } from "./helpers.ts";

const TEAM = "acme.cloudflareaccess.com";
const AUD = "a1b2c3-audience-tag";

function b64url(bytes: Uint8Array | string): string {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function keyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
}

async function jwt(key: CryptoKey, kid: string, claims: Record<string, unknown>): Promise<string> {
  const head = b64url(JSON.stringify({ alg: "RS256", kid, typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(`${head}.${body}`));
  return `${head}.${body}.${b64url(new Uint8Array(sig))}`;
}

describe("Cloudflare Access", () => {
  it("accepts a valid Access JWT for operator routes and refuses forged, expired or foreign ones", async () => {
    const good = await keyPair();
    const other = await keyPair();
    const jwk = { ...(await crypto.subtle.exportKey("jwk", good.publicKey)), kid: "k1" };
    const accessEnv = { ...env, ACCESS_TEAM_DOMAIN: TEAM, ACCESS_AUD: AUD, ACCESS_JWKS: JSON.stringify({ keys: [jwk] }) };
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: `https://${TEAM}`, aud: [AUD], email: "ops@acme.example", exp: now + 600, iat: now };
    const group = uniqueGroup();
    const call = (headers: Record<string, string>, e: typeof accessEnv | typeof env = accessEnv) =>
      worker.fetch(new Request<unknown, IncomingRequestCfProperties>(`http://hub.test/v1/groups/${group}/devices`, { headers }), e);

    const valid = await jwt(good.privateKey, "k1", claims);
    expect((await call({ "cf-access-jwt-assertion": valid })).status).toBe(200);
    expect((await call({ cookie: `other=1; CF_Authorization=${valid}` })).status).toBe(200);

    const refused: [string, string][] = [
      ["signed by another key", await jwt(other.privateKey, "k1", claims)],
      ["unknown kid", await jwt(good.privateKey, "k2", claims)],
      ["wrong audience", await jwt(good.privateKey, "k1", { ...claims, aud: ["someone-else"] })],
      ["wrong issuer", await jwt(good.privateKey, "k1", { ...claims, iss: "https://evil.cloudflareaccess.com" })],
      ["expired", await jwt(good.privateKey, "k1", { ...claims, exp: now - 10 })],
      ["garbage", "not.a.jwt"],
      ["alg none", `${b64url(JSON.stringify({ alg: "none", kid: "k1" }))}.${b64url(JSON.stringify(claims))}.`],
    ];
    for (const [what, token] of refused) {
      const res = await call({ "cf-access-jwt-assertion": token });
      expect(res.status, what).toBe(401);
    }
    // Without Access configured, the header means nothing.
    expect((await call({ "cf-access-jwt-assertion": valid }, env)).status).toBe(401);
  });
});

describe("live socket under Cloudflare Access", () => {
  it("opens for the hub's own origin and LIVE_ALLOWED_ORIGINS, refuses other origins with 403 bad_origin, and never asks a token holder", async () => {
    const key = await keyPair();
    const jwk = { ...(await crypto.subtle.exportKey("jwk", key.publicKey)), kid: "k1" };
    const accessEnv = {
      ...env,
      ACCESS_TEAM_DOMAIN: TEAM,
      ACCESS_AUD: AUD,
      ACCESS_JWKS: JSON.stringify({ keys: [jwk] }),
      LIVE_ALLOWED_ORIGINS: "https://ops.acme.example, http://localhost:5173",
    };
    const now = Math.floor(Date.now() / 1000);
    const cookie = `CF_Authorization=${await jwt(key.privateKey, "k1", { iss: `https://${TEAM}`, aud: [AUD], sub: "ops", exp: now + 600 })}`;
    const group = uniqueGroup();
    const open = async (headers: Record<string, string>, query = ""): Promise<Response> => {
      const url = `https://hub.acme.example/v1/groups/${group}/live${query}`;
      // Hono's app.fetch, which takes any bindings: Env types the var as wrangler.jsonc's literal "".
      const res = await app.fetch(new Request(url, { headers: { upgrade: "websocket", ...headers } }), accessEnv);
      if (res.webSocket) {
        res.webSocket.accept();
        res.webSocket.close(1000, "done");
      }
      return res;
    };

    for (const origin of ["https://hub.acme.example", "https://ops.acme.example", "http://localhost:5173", "HTTPS://HUB.ACME.EXAMPLE:443"]) {
      expect((await open({ cookie, origin })).status, origin).toBe(101);
    }
    // A non-browser client sends no Origin and has no ambient cookie to abuse.
    expect((await open({ cookie })).status).toBe(101);
    for (const origin of ["https://evil.example", "http://hub.acme.example", "https://hub.acme.example.evil.example", "https://ops.acme.example:8443", "null", "garbage"]) {
      const res = await open({ cookie, origin });
      expect(res.status, origin).toBe(403);
      expect(await res.json(), origin).toMatchObject({ error: "bad_origin" });
    }
    // The header Access adds is checked the same way: it accompanies the cookie on every request Access lets through.
    const header = cookie.slice("CF_Authorization=".length);
    expect((await open({ "cf-access-jwt-assertion": header, origin: "https://evil.example" })).status).toBe(403);
    // An operator token cannot be sent by a foreign page that does not know it: any Origin.
    const token = await operatorToken(group);
    expect((await open({ cookie, origin: "https://evil.example" }, `?token=${token}`)).status).toBe(101);
    // A bad token with a cookie falls back to the cookie, and so to the Origin check.
    expect((await open({ cookie, origin: "https://evil.example" }, "?token=nope")).status).toBe(403);
    // Without credentials the answer stays 401, whatever the Origin.
    expect((await open({ origin: "https://evil.example" })).status).toBe(401);
  });
});

/** Operators through Cloudflare Access: the Worker validates the Access JWT, it does not trust the header. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index.ts";
import { uniqueGroup } from "./helpers.ts";

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

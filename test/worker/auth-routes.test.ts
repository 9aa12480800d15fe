/**
 * Every REST and socket route against missing, wrong, other-group and
 * wrong-kind tokens (401), and revoked peers (403 at the socket).
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { gatewaySubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import { deviceToken, operatorToken, uniqueGroup } from "./helpers.ts";

interface RouteCase {
  name: string;
  method: string;
  path: (g: string) => string;
  socket?: boolean;
  body?: string;
  /** The token kind this route wants. */
  wants: "operator" | "device" | "gateway";
}

const ROUTES: RouteCase[] = [
  { name: "devices", method: "GET", path: (g) => `/v1/groups/${g}/devices`, wants: "operator" },
  { name: "aggregates", method: "GET", path: (g) => `/v1/groups/${g}/aggregates`, wants: "operator" },
  { name: "rules GET", method: "GET", path: (g) => `/v1/groups/${g}/rules`, wants: "operator" },
  { name: "rules PUT", method: "PUT", path: (g) => `/v1/groups/${g}/rules`, body: '{"rules":[]}', wants: "operator" },
  { name: "storage", method: "GET", path: (g) => `/v1/groups/${g}/storage`, wants: "operator" },
  { name: "retention GET", method: "GET", path: (g) => `/v1/groups/${g}/retention`, wants: "operator" },
  { name: "retention PUT", method: "PUT", path: (g) => `/v1/groups/${g}/retention`, body: '{"minuteMs":null,"hourMs":null,"dayMs":null}', wants: "operator" },
  { name: "alerts", method: "GET", path: (g) => `/v1/groups/${g}/alerts`, wants: "operator" },
  { name: "revocations", method: "GET", path: (g) => `/v1/groups/${g}/revocations`, wants: "operator" },
  { name: "revoke", method: "PUT", path: (g) => `/v1/groups/${g}/revocations/device/d1`, wants: "operator" },
  { name: "unrevoke", method: "DELETE", path: (g) => `/v1/groups/${g}/revocations/device/d1`, wants: "operator" },
  { name: "live", method: "GET", path: (g) => `/v1/groups/${g}/live`, socket: true, wants: "operator" },
  { name: "device socket", method: "GET", path: (g) => `/v1/groups/${g}/devices/d1/ws`, socket: true, wants: "device" },
  { name: "gateway socket", method: "GET", path: (g) => `/v1/groups/${g}/gateways/w1/ws`, socket: true, wants: "gateway" },
];

async function tokenFor(kind: "operator" | "device" | "gateway", group: string): Promise<string> {
  if (kind === "operator") return operatorToken(group);
  if (kind === "device") return deviceToken(group, "d1");
  return signToken(TEST_SECRET, gatewaySubject(group, "w1"));
}

async function call(r: RouteCase, group: string, auth: string | null, viaQuery = false): Promise<Response> {
  const headers: Record<string, string> = {};
  if (r.socket) headers.upgrade = "websocket";
  let path = r.path(group);
  if (auth !== null && viaQuery) path += `?token=${encodeURIComponent(auth)}`;
  else if (auth !== null) headers.authorization = `Bearer ${auth}`;
  const init: RequestInit = { method: r.method, headers };
  if (r.body) init.body = r.body;
  return SELF.fetch(`http://hub.test${path}`, init);
}

describe("auth on every route", () => {
  for (const r of ROUTES) {
    it(`${r.name}: refuses missing, wrong, other-group and wrong-kind tokens; accepts the right one`, async () => {
      const group = uniqueGroup();
      const other = uniqueGroup();
      const wrongKinds = (["operator", "device", "gateway"] as const).filter((k) => k !== r.wants);
      const bad: [string, string | null][] = [
        ["missing", null],
        ["malformed", "not-a-token"],
        ["signed with another secret", await signToken("another-secret", `operator:${group}`)],
        ["other group", await tokenFor(r.wants, other)],
        ...(await Promise.all(wrongKinds.map(async (k): Promise<[string, string]> => [`${k} token`, await tokenFor(k, group)]))),
      ];
      for (const [what, token] of bad) {
        for (const viaQuery of [false, true]) {
          const res = await call(r, group, token, viaQuery);
          expect(res.status, `${what}${viaQuery ? " (query)" : ""}`).toBe(401);
          const body = (await res.json()) as { error: string; message: string };
          expect(body.error).toBe("unauthorized");
          // Never echo a credential back.
          if (token) expect(body.message).not.toContain(token);
        }
      }
      const ok = await call(r, group, await tokenFor(r.wants, group));
      expect([101, 200, 404]).toContain(ok.status); // 404: DELETE of a revocation that does not exist
      ok.webSocket?.accept();
      ok.webSocket?.close(1000, "done");
    });
  }

  it("revoked device and gateway tokens are refused at the socket with 403", async () => {
    const group = uniqueGroup();
    const op = await operatorToken(group);
    for (const kind of ["device", "gateway"] as const) {
      const id = kind === "device" ? "d1" : "w1";
      const put = await SELF.fetch(`http://hub.test/v1/groups/${group}/revocations/${kind}/${id}`, { method: "PUT", headers: { authorization: `Bearer ${op}` } });
      expect(put.status).toBe(200);
      const route = ROUTES.find((r) => r.wants === kind);
      if (!route) throw new Error("no route");
      const res = await call(route, group, await tokenFor(kind, group));
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: "revoked" });
    }
  });
});

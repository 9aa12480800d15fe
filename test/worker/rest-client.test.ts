/** The typed REST client (schema/client.ts) round-trips every route against the real Worker in workerd. */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HubClient } from "../../schema/client.ts";
import { PROTOCOL_VERSION } from "../../schema/protocol.ts";
import { gatewaySubject, operatorSubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import { bucketAgo, connectDevice, operatorToken, refusal, TestSocket, uniqueGroup } from "./helpers.ts";

const inWorkerd = (input: string, init?: RequestInit): Promise<Response> => SELF.fetch(input, init);

function client(token: string | null): HubClient {
  return new HubClient({ url: "http://hub.test", token, fetch: inWorkerd });
}

describe("typed REST client", () => {
  it("health, devices, aggregates, rates and groups after a device's batch", async () => {
    const group = uniqueGroup("client");
    const op = client(await operatorToken(group));
    expect(await op.health()).toEqual({ ok: true, protocol: PROTOCOL_VERSION });

    const { sock } = await connectDevice(group, "d1");
    const start = bucketAgo(2);
    sock.send({ type: "batch", seq: 1, readings: [[start + 1000, "temp", 20], [start + 2000, "temp", 22], [start + 3000, "hum", 40]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });

    const devices = await op.devices(group);
    expect(devices).toMatchObject([{ id: "d1", lastSeq: 1, online: true, readings: 3 }]);
    sock.close();

    const all = await op.aggregates(group);
    expect(all.truncated).toBe(false);
    expect(all.buckets.map((b) => b.metric)).toEqual(["hum", "temp"]);
    const temp = await op.aggregates(group, { device: "d1", metric: "temp", from: start, to: start + 59_999.5 });
    expect(temp.buckets).toEqual([{ device: "d1", metric: "temp", start, count: 2, sum: 42, min: 20, max: 22, last: 22 }]);
    expect((await op.aggregates(group, { from: start + 120_000 })).buckets).toEqual([]);

    const rates = await op.rates(group);
    expect(rates.readings.reduce((a, b) => a + b, 0)).toBe(3);

    const star = client(await signToken(TEST_SECRET, operatorSubject("*")));
    expect((await star.groups()).map((g) => g.id)).toContain(group);
    expect((await refusal(op.groups())).status).toBe(401);
  });

  it("rules and alerts: put, read back, and an alert raised by a reading", async () => {
    const group = uniqueGroup("client-rules");
    const op = client(await operatorToken(group));
    expect(await op.rules(group)).toMatchObject({ rules: [] });
    const doc = { rules: [{ id: "hot", metric: "temp", op: ">" as const, threshold: 30, forMs: 0 }], offlineAfterMs: 0 };
    expect(await op.putRules(group, doc)).toEqual(doc);
    expect(await op.rules(group)).toEqual(doc);

    const { sock } = await connectDevice(group, "boiler");
    sock.send({ type: "batch", seq: 1, readings: [[Date.now() - 1000, "temp", 35]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.close();
    const alerts = await op.alerts(group, { active: true, limit: 10 });
    expect(alerts).toMatchObject([{ kind: "threshold", ruleId: "hot", device: "boiler", metric: "temp", value: 35, clearedAt: null }]);

    const bad = await refusal(op.putRules(group, { rules: [{ id: "x", metric: "temp", op: ">", threshold: Number.NaN, forMs: 0 }], offlineAfterMs: 0 }));
    expect([bad.status, bad.code]).toEqual([400, "bad_rules"]);
  });

  it("revocations: revoke, list, refuse the socket, restore, and 404 not_revoked", async () => {
    const group = uniqueGroup("client-revoke");
    const op = client(await operatorToken(group));
    expect(await op.revoke(group, "gateway", "w1")).toMatchObject({ kind: "gateway", id: "w1" });
    expect((await op.revocations(group)).map((r) => `${r.kind}:${r.id}`)).toEqual(["gateway:w1"]);

    const gw = new HubClient({ url: "http://hub.test", token: await signToken(TEST_SECRET, gatewaySubject(group, "w1")), fetch: inWorkerd });
    const refused = await SELF.fetch(gw.socketUrl({ gateway: "w1" }, group).replace(/^ws/, "http"), { headers: { upgrade: "websocket" } });
    expect(refused.status).toBe(403);

    expect(await op.restore(group, "gateway", "w1")).toEqual({ kind: "gateway", id: "w1", revoked: false });
    expect(await op.revocations(group)).toEqual([]);
    const again = await refusal(op.restore(group, "gateway", "w1"));
    expect([again.status, again.code]).toEqual([404, "not_revoked"]);

    const opened = await SELF.fetch(gw.socketUrl({ gateway: "w1" }, group).replace(/^ws/, "http"), { headers: { upgrade: "websocket" } });
    expect(opened.status).toBe(101);
    if (opened.webSocket) new TestSocket(opened.webSocket).close();
  });

  it("builds socket URLs with the token in the query, and the live socket opens with it", async () => {
    const group = uniqueGroup("client-live");
    const op = client(await operatorToken(group));
    const url = new URL(op.socketUrl({ live: true }, group));
    expect(url.protocol).toBe("ws:");
    expect(url.pathname).toBe(`/v1/groups/${group}/live`);
    expect(url.searchParams.get("token")).toBe(await operatorToken(group));
    expect(new URL(op.socketUrl({ device: "a b" }, group)).pathname).toBe(`/v1/groups/${group}/devices/a%20b/ws`);
    const res = await SELF.fetch(url.toString().replace(/^ws/, "http"), { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(101);
    res.webSocket?.accept();
    res.webSocket?.close(1000, "done");
  });

  it("turns refusals into HubErrors with the hub's code", async () => {
    const group = uniqueGroup("client-errors");
    const op = client(await operatorToken(group));
    // Each call starts only when its turn comes: a refusal made eagerly would
    // reject before anything awaits it, an unhandled rejection that fails the run.
    const other = await operatorToken(uniqueGroup());
    const cases: [() => Promise<unknown>, number, string][] = [
      [() => client(null).devices(group), 401, "unauthorized"],
      [() => client(other).devices(group), 401, "unauthorized"],
      [() => op.aggregates(group, { from: 2000, to: 1000 }), 400, "bad_query"],
      [() => op.aggregates(group, { device: "a b" }), 400, "bad_query"],
      [() => op.alerts(group, { limit: 5000 }), 400, "bad_query"],
      [() => op.devices("bad group"), 400, "bad_group"],
      [() => op.revoke(group, "device", "x".repeat(65)), 400, "bad_id"],
    ];
    for (const [call, status, code] of cases) {
      const err = await refusal(call());
      expect([err.status, err.code], code).toEqual([status, code]);
    }
  });
});

describe("contract details the router keeps", () => {
  it("HEAD and other methods on a GET route are 405 with Allow; health answers any method", async () => {
    const group = uniqueGroup("methods");
    const auth = { authorization: `Bearer ${await operatorToken(group)}` };
    for (const method of ["HEAD", "OPTIONS", "POST"]) {
      const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/devices`, { method, headers: auth });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow"), method).toBe("GET");
    }
    const put = await SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, { method: "POST", headers: auth });
    expect([put.status, put.headers.get("allow")]).toEqual([405, "GET, PUT"]);
    for (const method of ["GET", "POST", "HEAD"]) {
      expect((await SELF.fetch("http://hub.test/v1/health", { method })).status, method).toBe(200);
    }
  });

  it("checks ids before the query, and the revocation kind before the id", async () => {
    const group = uniqueGroup("order");
    const auth = { headers: { authorization: `Bearer ${await operatorToken(group)}` } };
    const aggs = await SELF.fetch("http://hub.test/v1/groups/bad%20group/aggregates?from=x", auth);
    expect([aggs.status, ((await aggs.json()) as { error: string }).error]).toEqual([400, "bad_group"]);
    const kind = await SELF.fetch(`http://hub.test/v1/groups/${group}/revocations/sensor/bad%20id`, { ...auth, method: "PUT" });
    expect([kind.status, ((await kind.json()) as { error: string }).error]).toEqual([404, "not_found"]);
    // An empty id is a bad id, not an unknown route.
    const empty: [string, string, string][] = [
      ["GET", "/v1/groups//devices", "bad_group"],
      ["GET", `/v1/groups/${group}/devices//ws`, "bad_device"],
      ["PUT", `/v1/groups/${group}/revocations/device/`, "bad_id"],
    ];
    for (const [method, path, code] of empty) {
      const res = await SELF.fetch(`http://hub.test${path}`, { ...auth, method });
      expect([res.status, ((await res.json()) as { error: string }).error], path).toEqual([400, code]);
    }
    const dup = await SELF.fetch(`http://hub.test/v1/groups/${group}/aggregates?from=1&from=x`, auth);
    expect(dup.status).toBe(200); // a repeated parameter counts by its first value, as before
    await dup.arrayBuffer();
  });
});

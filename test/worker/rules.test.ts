/** Rules REST, threshold and offline alerts. */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { connectDevice, getJson, operatorToken, runTasksNow, uniqueGroup } from "./helpers.ts";

async function putRules(group: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, {
    method: "PUT",
    headers: { authorization: `Bearer ${await operatorToken(group)}`, "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

interface AlertJson {
  kind: string;
  ruleId: string | null;
  device: string;
  value: number;
  clearedAt: number | null;
}

describe("rules", () => {
  it("start empty, store a valid document, and refuse bad ones without changing it", async () => {
    const group = uniqueGroup();
    const token = await operatorToken(group);
    expect((await getJson(`/v1/groups/${group}/rules`, token)).body).toEqual({ rules: [], offlineAfterMs: 0 });
    const good = { rules: [{ id: "hot", metric: "temp", op: ">", threshold: 30, forMs: 0 }], offlineAfterMs: 60_000 };
    expect(await putRules(group, good)).toEqual({ status: 200, body: good });
    const bad: [unknown, RegExp][] = [
      ["{", /JSON/],
      [[], /object/],
      [{ rules: "x" }, /rules must be an array/],
      [{ rules: [{ id: "a b", metric: "t", op: ">", threshold: 1 }] }, /rules\[0\]\.id/],
      [{ rules: [{ id: "a", metric: "bad metric", op: ">", threshold: 1 }] }, /rules\[0\]\.metric/],
      [{ rules: [{ id: "a", metric: "t", op: "=>", threshold: 1 }] }, /rules\[0\]\.op/],
      [{ rules: [{ id: "a", metric: "t", op: ">", threshold: "1" }] }, /threshold/],
      [{ rules: [{ id: "a", metric: "t", op: ">", threshold: 1, forMs: -5 }] }, /forMs/],
      [{ rules: [{ id: "a", metric: "t", op: ">", threshold: 1, device: "x y" }] }, /device/],
      [{ rules: [{ id: "a", metric: "t", op: ">", threshold: 1 }, { id: "a", metric: "t", op: "<", threshold: 1 }] }, /twice/],
      [{ rules: [], offlineAfterMs: 5 }, /offlineAfterMs/],
      [{ rules: Array.from({ length: 101 }, (_, i) => ({ id: `r${i}`, metric: "t", op: ">", threshold: 1 })) }, /at most 100/],
    ];
    for (const [body, message] of bad) {
      const r = await putRules(group, body);
      expect(r.status, JSON.stringify(body).slice(0, 60)).toBe(400);
      expect(r.body).toMatchObject({ error: "bad_rules", message: expect.stringMatching(message) });
    }
    expect((await getJson(`/v1/groups/${group}/rules`, token)).body).toEqual(good);
    const wrong = await SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, { method: "PUT", body: "{}" });
    expect(wrong.status).toBe(401);
    const post = await SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
  });

  it("raise an alert when a threshold holds for forMs and clear it when it stops holding", async () => {
    const group = uniqueGroup();
    await putRules(group, { rules: [{ id: "hot", metric: "temp", op: ">", threshold: 30, forMs: 2000 }] });
    const { sock } = await connectDevice(group, "boiler");
    const t = Date.now() - 60_000;
    // Above 30 for only 1 s: no alert yet.
    sock.send({ type: "batch", seq: 1, readings: [[t, "temp", 31], [t + 1000, "temp", 32]] });
    await sock.next();
    const token = await operatorToken(group);
    expect((await getJson(`/v1/groups/${group}/alerts`, token)).body).toEqual({ alerts: [] });
    // Still above at +2 s: raised.
    sock.send({ type: "batch", seq: 2, readings: [[t + 2000, "temp", 33]] });
    await sock.next();
    let alerts = ((await getJson(`/v1/groups/${group}/alerts?active=true`, token)).body as { alerts: AlertJson[] }).alerts;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: "threshold", ruleId: "hot", device: "boiler", value: 33, clearedAt: null });
    // Back below: cleared, kept in history.
    sock.send({ type: "batch", seq: 3, readings: [[t + 3000, "temp", 20]] });
    await sock.next();
    expect(((await getJson(`/v1/groups/${group}/alerts?active=true`, token)).body as { alerts: AlertJson[] }).alerts).toEqual([]);
    alerts = ((await getJson(`/v1/groups/${group}/alerts`, token)).body as { alerts: AlertJson[] }).alerts;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.clearedAt).toEqual(expect.any(Number));
    sock.close();
  });

  it("raise an offline alert from the alarm for a silent device, cleared when it sends again", async () => {
    const group = uniqueGroup();
    await putRules(group, { rules: [], offlineAfterMs: 10_000 });
    const { sock } = await connectDevice(group, "sleepy");
    sock.send({ type: "batch", seq: 1, readings: [[Date.now() - 1000, "temp", 1]] });
    await sock.next();
    const stub = env.GROUPS.getByName(group);
    // Pretend the device was last seen a minute ago, then let the alarm run.
    await runInDurableObject(stub, (_obj, state) => {
      state.storage.sql.exec("UPDATE devices SET last_seen = ?", Date.now() - 60_000);
    });
    expect(await runTasksNow(stub, "alerts.offline")).toBe(true);
    const token = await operatorToken(group);
    const active = ((await getJson(`/v1/groups/${group}/alerts?active=true`, token)).body as { alerts: AlertJson[] }).alerts;
    expect(active).toHaveLength(1);
    expect(active[0]).toMatchObject({ kind: "offline", device: "sleepy", clearedAt: null });
    sock.send({ type: "batch", seq: 2, readings: [[Date.now() - 500, "temp", 2]] });
    await sock.next();
    expect(((await getJson(`/v1/groups/${group}/alerts?active=true`, token)).body as { alerts: AlertJson[] }).alerts).toEqual([]);
    sock.close();
  });

  it("rejects bad alert queries", async () => {
    const group = uniqueGroup();
    const token = await operatorToken(group);
    for (const q of ["?limit=0", "?limit=5000", "?limit=x", "?active=yes"]) {
      const r = await getJson(`/v1/groups/${group}/alerts${q}`, token);
      expect(r.status, q).toBe(400);
      expect(r.body).toMatchObject({ error: "bad_query" });
    }
  });
});

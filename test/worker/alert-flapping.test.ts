/**
 * Issue #12, finding 4, in workerd: a device alternating values around a
 * threshold in 5,000-reading batches costs a handful of alert rows (not one
 * per reading), the alert shows as `flapping` in the alerts API, rules keep
 * their hysteresis and minIntervalMs, and the alert table is pruned to its cap.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { describe, expect, it } from "vitest";
import type { Reading } from "../../schema/protocol.ts";
import type { Alert } from "../../schema/rules.ts";
import { AlertStore } from "../../worker/group/alerts/alert-store.ts";
import { DEFAULT_ALERT_LIMITS } from "../../worker/group/alerts/alerts.ts";
import { connectDevice, getJson, operatorToken, uniqueGroup } from "./helpers.ts";

async function putRules(group: string, doc: unknown): Promise<Response> {
  return SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, {
    method: "PUT",
    headers: { authorization: `Bearer ${await operatorToken(group)}`, "content-type": "application/json" },
    body: JSON.stringify(doc),
  });
}

async function alertsOf(group: string): Promise<Alert[]> {
  return ((await getJson(`/v1/groups/${group}/alerts?limit=1000`, await operatorToken(group))).body as { alerts: Alert[] }).alerts;
}

describe("alert flapping", () => {
  it("costs a bounded number of alert rows for a device alternating around the threshold, and shows the alert flapping", async () => {
    const group = uniqueGroup();
    const rule = { id: "hot", metric: "temp", op: ">", threshold: 50, forMs: 0, hysteresis: 2, minIntervalMs: 60_000 };
    expect((await putRules(group, { rules: [rule] })).status).toBe(200);
    expect((await getJson(`/v1/groups/${group}/rules`, await operatorToken(group))).body).toEqual({ rules: [rule], offlineAfterMs: 0 });
    const { sock } = await connectDevice(group, "flappy");
    const t = Date.now() - 60_000;
    for (let seq = 1; seq <= 3; seq++) {
      const readings = Array.from({ length: 5000 }, (_, i): Reading => [t + seq * 5000 + i, "temp", i % 2 === 0 ? 60 : 40]);
      sock.send({ type: "batch", seq, readings });
      expect(await sock.next()).toEqual({ type: "ack", seq });
    }
    const alerts = await alertsOf(group);
    // 15,000 alternating readings: one row per raise allowed by the burst, not 7,500.
    expect(alerts.length).toBeLessThanOrEqual(DEFAULT_ALERT_LIMITS.burst);
    expect(alerts.filter((a) => a.clearedAt === null)).toMatchObject([{ ruleId: "hot", device: "flappy", flapping: true }]);
    sock.close();
  });

  it("prunes the oldest cleared alerts past the row cap, keeping every active one", async () => {
    const group = uniqueGroup();
    (await connectDevice(group, "d")).sock.close();
    const left = await runInDurableObject(env.GROUPS.getByName(group), (_instance, state) => {
      const store = new AlertStore(drizzle(state.storage, { logger: false }));
      for (let i = 0; i < 30; i++) {
        const a = store.insertAlert({ kind: "threshold", ruleId: "r", device: `d${i}`, metric: "t", op: ">", threshold: 1, value: 2, raisedAt: i, clearedAt: null });
        if (i % 3 !== 0) store.clearAlert(a.id, i + 1);
      }
      const pruned = store.prune(12);
      return { pruned, rows: store.listAlerts(false, 100), active: store.activeAlerts().length };
    });
    expect(left.active).toBe(10);
    expect(left.pruned).toBe(12);
    expect(left.rows).toHaveLength(18);
    // The newest 12 rows all stay.
    expect(left.rows.slice(0, 12).map((a) => a.device)).toEqual(Array.from({ length: 12 }, (_, i) => `d${29 - i}`));
  });
});

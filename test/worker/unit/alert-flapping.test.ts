/**
 * Issue #12, finding 4: alert flapping. Hysteresis keeps an alert through
 * values between the threshold and the clear threshold, and changes are
 * budgeted in hub time, so a device alternating values costs a bounded
 * number of alert writes whatever timestamps it picks.
 */
import { describe, expect, it } from "vitest";
import { BUCKET_MS, type Reading } from "../../../schema/protocol.ts";
import { validateRules, type Alert } from "../../../schema/rules.ts";
import { Alerting, type AlertWriter } from "../../../worker/group/alerts/alerting.ts";

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % BUCKET_MS);

/** Counts every write, as the SQLite store would make them. */
class CountingWriter implements AlertWriter {
  readonly rows: Alert[] = [];
  writes = 0;
  insertAlert(a: Omit<Alert, "id">): Alert {
    this.writes++;
    const alert = { ...a, id: this.rows.length + 1 };
    this.rows.push(alert);
    return alert;
  }
  clearAlert(id: number, at: number): void {
    this.writes++;
    const a = this.rows.find((r) => r.id === id);
    if (a && a.clearedAt === null) a.clearedAt = at;
  }
  markFlapping(id: number): void {
    this.writes++;
    const a = this.rows.find((r) => r.id === id);
    if (a) a.flapping = true;
  }
}

const alternating = (n: number, ts: number): Reading[] => Array.from({ length: n }, (_, i): Reading => [ts + i, "t", i % 2 === 0 ? 60 : 40]);

describe("alert flapping", () => {
  it("bounds the writes of a device alternating around the threshold, and shows the alert as flapping", () => {
    const a = new Alerting({ minIntervalMs: 10_000, burst: 4 });
    a.load({ rules: [{ id: "hot", metric: "t", op: ">", threshold: 50, forMs: 0 }], offlineAfterMs: 0 }, []);
    const w = new CountingWriter();
    // One minute of hub time, a 5,000-reading alternating batch every second (the device's timestamps are its own).
    for (let s = 0; s < 60; s++) a.evaluate("d", alternating(5000, T0 - 3_600_000), T0 + s * 1000, w);
    // Burst of 4 changes, then one per 10 s: about 2 x (4 + 6) + a flapping mark each.
    expect(w.writes).toBeLessThanOrEqual(30);
    expect(a.activeAlerts()).toMatchObject([{ ruleId: "hot", flapping: true, clearedAt: null }]);
    // Once it calms down (below the threshold, and a change is due), it clears.
    const [cleared] = a.evaluate("d", [[T0, "t", 10]], T0 + 120_000, w);
    expect(cleared).toMatchObject({ ruleId: "hot", flapping: true, clearedAt: T0 + 120_000 });
  });

  it("never holds back the first raise and its clear", () => {
    const a = new Alerting({ minIntervalMs: 60_000, burst: 4 });
    a.load({ rules: [{ id: "hot", metric: "t", op: ">", threshold: 50, forMs: 0 }], offlineAfterMs: 0 }, []);
    const w = new CountingWriter();
    expect(a.evaluate("d", [[T0, "t", 60]], T0, w)).toMatchObject([{ clearedAt: null }]);
    expect(a.evaluate("d", [[T0 + 1, "t", 40]], T0 + 1, w)).toMatchObject([{ clearedAt: T0 + 1 }]);
    expect(w.rows[0]?.flapping).toBeUndefined();
  });

  it("keeps an alert through values within the hysteresis and clears past it", () => {
    const a = new Alerting();
    a.load({ rules: [{ id: "hot", metric: "t", op: ">", threshold: 50, forMs: 0, hysteresis: 5 }], offlineAfterMs: 0 }, []);
    const w = new CountingWriter();
    a.evaluate("d", [[T0, "t", 51]], T0, w);
    expect(a.evaluate("d", [[T0 + 1, "t", 49], [T0 + 2, "t", 46], [T0 + 3, "t", 52], [T0 + 4, "t", 45.5]], T0 + 1, w)).toEqual([]);
    expect(a.evaluate("d", [[T0 + 5, "t", 45]], T0 + 2, w)).toMatchObject([{ clearedAt: T0 + 2 }]);
    expect(w.writes).toBe(2);
  });

  it("extends rule documents: hysteresis and minIntervalMs are optional, checked, and absent from old documents", () => {
    const old = { rules: [{ id: "r", metric: "t", op: ">", threshold: 1, forMs: 0 }], offlineAfterMs: 0 };
    expect(validateRules(old)).toEqual({ ok: true, doc: old });
    const r = validateRules({ rules: [{ id: "r", metric: "t", op: "<", threshold: 1, hysteresis: 0.5, minIntervalMs: 30_000 }] });
    expect(r).toMatchObject({ ok: true, doc: { rules: [{ hysteresis: 0.5, minIntervalMs: 30_000 }] } });
    expect(validateRules({ rules: [{ id: "r", metric: "t", op: ">", threshold: 1, hysteresis: -1 }] })).toMatchObject({ ok: false });
    expect(validateRules({ rules: [{ id: "r", metric: "t", op: "==", threshold: 1, hysteresis: 1 }] })).toMatchObject({ ok: false });
    expect(validateRules({ rules: [{ id: "r", metric: "t", op: ">", threshold: 1, minIntervalMs: 1.5 }] })).toMatchObject({ ok: false });
  });
});

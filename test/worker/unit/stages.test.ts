/**
 * Pure unit tests of the pipeline's in-memory parts: socket attachments,
 * collapse (the one reading-merge rule), live state, fan-out flow control
 * and alerting. No runtime (the unit project runs in Node), no sockets, no
 * SQLite, and every clock is a number passed in.
 */
import { describe, expect, it } from "vitest";
import { BUCKET_MS, type GatewayReading, type Reading } from "../../../schema/protocol.ts";
import type { Alert } from "../../../schema/rules.ts";
import { Alerting, type AlertWriter } from "../../../worker/group/alerts/alerting.ts";
import { fromAttachment, MAX_ATTACHMENT_BYTES, toAttachment, type SocketRole } from "../../../worker/group/connections/attachment.ts";
import { addBatch, emptyCollapsed, type Collapsed, type PartialAggregate } from "../../../worker/group/ingest/collapse.ts";
import { LiveFanout, type DashboardSocket } from "../../../worker/group/live/fanout.ts";
import { LiveState } from "../../../worker/group/live/live-state.ts";

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % BUCKET_MS);
const dev = (id: string) => ({ kind: "device", id }) as const;
const gw = (id: string) => ({ kind: "gateway", id }) as const;

/** The merge rule spelled out reading by reading, to check collapse's fast path against. */
function reference(readings: readonly GatewayReading[]): Map<string, PartialAggregate> {
  const out = new Map<string, PartialAggregate>();
  for (const [ts, metric, value, device] of readings) {
    const key = `${device}|${metric}|${Math.floor(ts / BUCKET_MS) * BUCKET_MS}`;
    const a = out.get(key);
    if (!a) out.set(key, { count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, last: value });
    else {
      a.count++;
      a.sum += value;
      a.min = Math.min(a.min, value);
      a.max = Math.max(a.max, value);
      a.firstTs = Math.min(a.firstTs, ts);
      if (ts >= a.lastTs) [a.lastTs, a.last] = [ts, value];
    }
  }
  return out;
}

function flat(c: Collapsed): Map<string, PartialAggregate> {
  const out = new Map<string, PartialAggregate>();
  for (const [device, metrics] of c.aggregates) {
    for (const [metric, buckets] of metrics) for (const [start, a] of buckets) out.set(`${device}|${metric}|${start}`, a);
  }
  return out;
}

describe("collapse", () => {
  it("merges a device batch per metric and minute; on equal timestamps the later reading is `last`", () => {
    const c = emptyCollapsed();
    addBatch(c, dev("d"), 3, [[T0 + 5, "t", 4], [T0 + 1, "t", 9], [T0 + 5, "t", 2], [T0 + BUCKET_MS, "t", 7], [T0, "h", 1]]);
    addBatch(c, dev("d"), 2, [[T0 + 2, "t", -1]]);
    expect(flat(c)).toEqual(new Map([
      [`d|t|${T0}`, { count: 4, sum: 14, min: -1, max: 9, firstTs: T0 + 1, lastTs: T0 + 5, last: 2 }],
      [`d|t|${T0 + BUCKET_MS}`, { count: 1, sum: 7, min: 7, max: 7, firstTs: T0 + BUCKET_MS, lastTs: T0 + BUCKET_MS, last: 7 }],
      [`d|h|${T0}`, { count: 1, sum: 1, min: 1, max: 1, firstTs: T0, lastTs: T0, last: 1 }],
    ]));
    expect(c.peers.device.get("d")).toEqual({ lastSeq: 3, readings: 6, batches: 2 });
    expect(c).toMatchObject({ readings: 6, rows: 3 });
  });

  it("gives the same aggregates whether readings come from the device or through a gateway", () => {
    const readings: Reading[] = [];
    // More metrics than the fast path keeps slots for, over three minutes.
    for (let i = 0; i < 300; i++) readings.push([T0 + i * 700, `m${i % 11}`, (i * 37) % 101]);
    const native = emptyCollapsed();
    addBatch(native, dev("d"), 1, readings);
    const viaGateway = emptyCollapsed();
    const tagged: GatewayReading[] = readings.map(([ts, m, v]) => [ts, m, v, "d"]);
    addBatch(viaGateway, gw("g"), 1, tagged);
    expect(flat(native)).toEqual(reference(tagged));
    expect(flat(viaGateway)).toEqual(flat(native));
    expect(viaGateway.rows).toBe(native.rows);
  });

  it("counts a gateway batch for the gateway's seq, and once per device it names, whose lastSeq stays", () => {
    const c = emptyCollapsed();
    addBatch(c, gw("g"), 7, [[T0, "t", 1, "a"], [T0, "t", 2, "b"], [T0 + 1, "t", 3, "a"]]);
    addBatch(c, dev("a"), 4, [[T0 + 2, "t", 4]]);
    expect(c.peers.gateway.get("g")).toEqual({ lastSeq: 7, readings: 3, batches: 1 });
    expect(c.peers.device.get("a")).toEqual({ lastSeq: 4, readings: 3, batches: 2 });
    expect(c.peers.device.get("b")).toEqual({ lastSeq: 0, readings: 1, batches: 1 });
    expect(flat(c).get(`a|t|${T0}`)).toMatchObject({ count: 3, sum: 8, last: 4 });
  });
});

describe("live state", () => {
  const commit = (readings: Reading[], seq = 1): Collapsed => {
    const c = emptyCollapsed();
    addBatch(c, dev("d"), seq, readings);
    return c;
  };

  it("rebuilds from a seed, applies commits, and reports only what changed since an epoch", () => {
    const s = new LiveState(2);
    s.load({
      devices: [{ id: "d", lastSeen: T0, lastSeq: 1, readings: 1 }, { id: "e", lastSeen: T0, lastSeq: 0, readings: 0 }],
      latest: [{ device: "d", metric: "t", value: 5, ts: T0 }],
      rejects: [{ device: "e", code: "bad_metric", count: 2, lastAt: T0 }],
      online: new Set(["d"]),
    });
    expect(s.changedSince(0, T0).map((d) => d.id)).toEqual(["d", "e"]);
    const epoch = s.epoch++;
    s.applyCommit(commit([[T0 + 10, "t", 6]], 2), T0 + 1000);
    const changed = s.changedSince(epoch, T0 + 1000);
    expect(changed).toMatchObject([{ id: "d", online: true, lastSeq: 2, readings: 2, latest: { t: { value: 6, ts: T0 + 10 } } }]);
    expect(s.totals(T0 + 1000)).toMatchObject({ devices: 2, online: 1, readingsPerSec: 0.5, batchesPerSec: 0.5 });
  });

  it("lets rates drain to zero over the window, then stops touching devices", () => {
    const s = new LiveState(2);
    s.load({ devices: [], latest: [], rejects: [], online: new Set() });
    s.applyCommit(commit([[T0, "t", 1], [T0, "t", 2]]), T0);
    expect(s.touchActive(T0 + 1000)).toBe(true);
    expect(s.totals(T0 + 1000).readingsPerSec).toBe(1);
    expect(s.touchActive(T0 + 2000)).toBe(false);
    expect(s.totals(T0 + 2000).readingsPerSec).toBe(0);
  });

  it("counts a device's rejection on its row and a gateway's only in the totals", () => {
    const s = new LiveState();
    s.load({ devices: [], latest: [], rejects: [], online: new Set() });
    const before = s.epoch++;
    s.reject(gw("g"), "bad_device", T0);
    expect(s.changedSince(before, T0)).toEqual([]);
    expect(s.totalsChanged).toBeGreaterThan(before);
    s.reject(dev("d"), "bad_metric", T0);
    expect(s.changedSince(before, T0)).toMatchObject([{ id: "d", rejected: { count: 1, lastCode: "bad_metric", lastAt: T0 } }]);
    expect(s.totals(T0).rejected).toEqual({ bad_device: 1, bad_metric: 1 });
  });
});

class FakeSocket implements DashboardSocket {
  readonly sent: { type: string; seq: number; devices?: { id: string; readings: number }[] }[] = [];
  closed: number | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data) as FakeSocket["sent"][number]);
  }
  close(code: number): void {
    this.closed = code;
  }
  ack(fanout: LiveFanout<FakeSocket>): void {
    fanout.onMessage(this, JSON.stringify({ type: "ack", seq: this.sent.at(-1)?.seq }));
  }
}

describe("fan-out flow control", () => {
  function setup(n: number) {
    const sockets = Array.from({ length: n }, () => new FakeSocket());
    const state = new LiveState(2);
    state.load({ devices: [], latest: [], rejects: [], online: new Set() });
    // Ticks are driven by hand below; the timer interval only has to be long.
    const fanout = new LiveFanout({ name: () => "g", dashboards: () => sockets, outOfStep: () => null, setOutOfStep: () => {} }, state, { summaryIntervalMs: 3_600_000, ackTimeoutMs: 5000, markAfterMs: 3_600_000 });
    for (const s of sockets) fanout.sendSnapshot(s, { group: "g", alerts: [], rules: { rules: [], offlineAfterMs: 0 } }, T0);
    const data = (n: number, now: number) => {
      const c = emptyCollapsed();
      addBatch(c, dev("d"), 1, Array.from({ length: n }, (): Reading => [T0, "t", 1]));
      state.applyCommit(c, now);
    };
    return { sockets, fanout, data };
  }

  it("sends a socket nothing until it acks, then one frame with everything it missed", () => {
    const { sockets, fanout, data } = setup(2);
    const [slow, fast] = sockets as [FakeSocket, FakeSocket];
    fast.ack(fanout);
    data(3, T0 + 100);
    expect(fanout.send(T0 + 100)).toEqual({ sent: 1, waiting: 1 });
    fast.ack(fanout);
    data(2, T0 + 200);
    expect(fanout.send(T0 + 200)).toEqual({ sent: 1, waiting: 1 });
    expect(slow.sent.map((f) => f.type)).toEqual(["snapshot"]);
    slow.ack(fanout);
    expect(fanout.send(T0 + 300)).toMatchObject({ sent: 1 });
    expect(slow.sent.at(-1)).toMatchObject({ type: "summary", devices: [{ id: "d", readings: 5 }] });
  });

  it("sends nothing to an up-to-date socket when nothing changed", () => {
    const { sockets, fanout } = setup(1);
    (sockets[0] as FakeSocket).ack(fanout);
    expect(fanout.send(T0 + 100)).toEqual({ sent: 0, waiting: 0 });
  });

  it("closes a socket that leaves a frame unacked past the timeout with 4008", () => {
    const { sockets, fanout } = setup(1);
    const s = sockets[0] as FakeSocket;
    expect(fanout.send(T0 + 5000)).toEqual({ sent: 0, waiting: 1 });
    expect(s.closed).toBeNull();
    fanout.send(T0 + 5001);
    expect(s.closed).toBe(4008);
  });

  it("closes on anything but a JSON ack", () => {
    const { sockets, fanout } = setup(2);
    fanout.onMessage(sockets[0] as FakeSocket, new ArrayBuffer(1));
    expect(sockets[0]?.closed).toBe(1003);
    fanout.onMessage(sockets[1] as FakeSocket, '{"type":"hello"}');
    expect(sockets[1]?.closed).toBe(1007);
  });
});

class MemoryAlerts implements AlertWriter {
  readonly rows: Alert[] = [];
  insertAlert(a: Omit<Alert, "id">): Alert {
    const alert = { ...a, id: this.rows.length + 1 };
    this.rows.push(alert);
    return alert;
  }
  clearAlert(id: number, at: number): void {
    const a = this.rows.find((r) => r.id === id);
    if (a && a.clearedAt === null) a.clearedAt = at;
  }
  markFlapping(id: number): void {
    const a = this.rows.find((r) => r.id === id);
    if (a) a.flapping = true;
  }
}

describe("alerting", () => {
  it("raises a threshold alert once the condition held forMs by reading time, and clears it when it stops", () => {
    const a = new Alerting();
    const w = new MemoryAlerts();
    a.load({ rules: [{ id: "hot", metric: "t", op: ">", threshold: 50, forMs: 1000 }], offlineAfterMs: 0 }, []);
    expect(a.evaluate("d", [[T0, "t", 60], [T0 + 999, "t", 61]], T0, w)).toEqual([]);
    const raised = a.evaluate("d", [[T0 + 1000, "t", 62]], T0 + 5, w);
    expect(raised).toMatchObject([{ kind: "threshold", ruleId: "hot", device: "d", value: 62, raisedAt: T0 + 5, clearedAt: null }]);
    expect(a.evaluate("d", [[T0 + 2000, "t", 70]], T0 + 6, w)).toEqual([]);
    expect(a.evaluate("d", [[T0 + 3000, "t", 10]], T0 + 7, w)).toMatchObject([{ ruleId: "hot", clearedAt: T0 + 7 }]);
    expect(w.rows).toHaveLength(1);
  });

  it("applies a device rule to that device only", () => {
    const a = new Alerting();
    a.load({ rules: [{ id: "r", metric: "t", op: "<", threshold: 0, forMs: 0, device: "x" }], offlineAfterMs: 0 }, []);
    const w = new MemoryAlerts();
    expect(a.evaluate("y", [[T0, "t", -5]], T0, w)).toEqual([]);
    expect(a.evaluate("x", [[T0, "t", -5]], T0, w)).toHaveLength(1);
  });

  it("raises offline alerts for silent devices, schedules the next check, and clears them on data", () => {
    const a = new Alerting();
    const w = new MemoryAlerts();
    a.load({ rules: [], offlineAfterMs: 10_000 }, []);
    const devices = [{ id: "quiet", lastSeen: T0 }, { id: "busy", lastSeen: T0 + 9_000 }];
    expect(a.nextOfflineCheck(devices)).toBe(T0 + 10_000);
    expect(a.checkOffline(devices, T0 + 10_000, w)).toMatchObject([{ kind: "offline", device: "quiet", value: 10_000 }]);
    expect(a.checkOffline(devices, T0 + 10_001, w)).toEqual([]);
    expect(a.nextOfflineCheck(devices)).toBe(T0 + 19_000);
    expect(a.evaluate("quiet", [[T0 + 11_000, "t", 1]], T0 + 11_000, w)).toMatchObject([{ kind: "offline", device: "quiet", clearedAt: T0 + 11_000 }]);
  });
});

const LONGEST_ID = "x".repeat(64);

describe("attachments", () => {
  it("round-trip every role, stay far below the runtime's 2 KB, and refuse what they cannot trust", () => {
    const roles: SocketRole[] = [
      { kind: "peer", peer: { kind: "device", id: LONGEST_ID }, connectedAt: Number.MAX_SAFE_INTEGER },
      { kind: "peer", peer: { kind: "gateway", id: "bridge-1" }, connectedAt: 1 },
      { kind: "dashboard", connectedAt: 2 },
    ];
    for (const role of roles) {
      const a = toAttachment(role);
      expect(JSON.stringify(a).length).toBeLessThan(MAX_ATTACHMENT_BYTES / 8);
      expect(fromAttachment(structuredClone(a))).toEqual(role);
    }
    expect(toAttachment(roles[0] as SocketRole)).toEqual({ v: 1, kind: "device", id: LONGEST_ID, connectedAt: Number.MAX_SAFE_INTEGER });
    for (const bad of [null, 7, "device", {}, { v: 2, kind: "device", id: "a", connectedAt: 1 }, { v: 1, kind: "device", id: "bad id", connectedAt: 1 },
      { v: 1, kind: "sensor", id: "a", connectedAt: 1 }, { v: 1, kind: "gateway", id: "a" }, { k: "device", g: "g", t: 1 }, { k: "gateway", g: "g", d: "a", t: 1 }]) {
      expect(fromAttachment(bad), JSON.stringify(bad)).toBeNull();
    }
  });

  it("reads the one-letter attachments of sockets accepted before versioning", () => {
    expect(fromAttachment({ k: "device", g: "grp", d: "dev-1", t: 5 })).toEqual({ kind: "peer", peer: { kind: "device", id: "dev-1" }, connectedAt: 5 });
    expect(fromAttachment({ k: "gateway", g: "grp", w: "gw-1", t: 6 })).toEqual({ kind: "peer", peer: { kind: "gateway", id: "gw-1" }, connectedAt: 6 });
    expect(fromAttachment({ k: "live", g: "grp", t: 7 })).toEqual({ kind: "dashboard", connectedAt: 7 });
  });
});

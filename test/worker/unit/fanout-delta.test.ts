/**
 * Issue #16 item 4 and issue #12 finding 2: a tick encodes its frames once
 * for every socket, `delta` frames carry only the latest values that
 * changed, a socket that fell behind gets one catch-up frame, and the live
 * view stays bounded whatever one device sends.
 */
import { describe, expect, it } from "vitest";
import { BUCKET_MS, type Reading } from "../../../schema/protocol.ts";
import { addBatch, emptyCollapsed } from "../../../worker/group/ingest/collapse.ts";
import { LiveFanout, type DashboardSocket } from "../../../worker/group/live/fanout.ts";
import { LiveState, type LiveBounds } from "../../../worker/group/live/live-state.ts";

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % BUCKET_MS);
const RULES = { rules: [], offlineAfterMs: 0 };

interface Frame {
  type: string;
  seq: number;
  devices: { id: string; readings: number; latest: Record<string, { value: number }>; metricsOmitted?: number }[];
  omitted?: { devices: number };
}

class Socket implements DashboardSocket {
  readonly texts: string[] = [];
  closed: number | null = null;
  send(data: string): void {
    this.texts.push(data);
  }
  close(code: number): void {
    this.closed = code;
  }
  last(): Frame {
    return JSON.parse(this.texts.at(-1) ?? "null") as Frame;
  }
}

function setup(n: number, bounds: LiveBounds = { maxDevices: 100, maxMetrics: 100 }) {
  const sockets = Array.from({ length: n }, () => new Socket());
  const state = new LiveState(2, bounds);
  state.load({ devices: [], latest: [], rejects: [], online: new Set() });
  const fanout = new LiveFanout({ name: () => "g", dashboards: () => sockets, outOfStep: () => null, setOutOfStep: () => {} }, state, { summaryIntervalMs: 3_600_000, ackTimeoutMs: 60_000, markAfterMs: 3_600_000 });
  const ack = (s: Socket, delta: boolean) => fanout.onMessage(s, JSON.stringify({ type: "ack", seq: s.last().seq, ...(delta ? { delta } : {}) }));
  const data = (device: string, readings: Reading[], now: number) => {
    const c = emptyCollapsed();
    addBatch(c, { kind: "device", id: device }, 1, readings);
    state.applyCommit(c, now);
  };
  const snapshot = (s: Socket, now = T0) => fanout.sendSnapshot(s, { group: "g", alerts: [], rules: RULES }, now);
  return { sockets, state, fanout, ack, data, snapshot };
}

describe("fan-out encodes once per tick", () => {
  it("sends every up-to-date socket of a kind the same text, with one seq for the tick", () => {
    const { sockets, fanout, ack, data, snapshot } = setup(6);
    for (const s of sockets) snapshot(s);
    sockets.forEach((s, i) => ack(s, i % 2 === 0));
    data("d", [[T0, "a", 1], [T0, "b", 2]], T0 + 100);
    expect(fanout.send(T0 + 100)).toEqual({ sent: 6, waiting: 0 });
    const texts = new Set(sockets.map((s) => s.texts.at(-1)));
    expect(texts.size).toBe(2); // one delta, one summary
    expect(new Set(sockets.map((s) => s.last().seq)).size).toBe(1);
    expect(sockets.map((s) => s.last().type)).toEqual(["delta", "summary", "delta", "summary", "delta", "summary"]);
  });

  it("puts only changed latest values in a delta and whole rows in a summary", () => {
    const { sockets, fanout, ack, data, snapshot } = setup(2);
    const [deltaSock, summarySock] = sockets as [Socket, Socket];
    for (const s of sockets) snapshot(s);
    ack(deltaSock, true);
    ack(summarySock, false);
    data("d", [[T0, "a", 1], [T0, "b", 2]], T0 + 100);
    fanout.send(T0 + 100);
    ack(deltaSock, true);
    ack(summarySock, false);
    data("d", [[T0 + 1, "b", 3]], T0 + 200);
    fanout.send(T0 + 200);
    expect(deltaSock.last()).toMatchObject({ type: "delta", devices: [{ id: "d", readings: 3 }] });
    expect(deltaSock.last().devices[0]?.latest).toEqual({ b: { value: 3, ts: T0 + 1 } });
    expect(Object.keys(summarySock.last().devices[0]?.latest ?? {})).toEqual(["a", "b"]);
  });

  it("gives sockets that fell behind one shared catch-up frame with everything they missed", () => {
    const { sockets, fanout, ack, data, snapshot } = setup(4);
    const [fast, slow, behind1, behind2] = sockets as [Socket, Socket, Socket, Socket];
    for (const s of sockets) snapshot(s);
    ack(fast, true);
    data("d", [[T0, "a", 1]], T0 + 100);
    fanout.send(T0 + 100);
    ack(slow, true);
    ack(fast, true);
    data("d", [[T0, "b", 2]], T0 + 200);
    fanout.send(T0 + 200);
    for (const s of sockets) ack(s, true);
    data("d", [[T0, "c", 3]], T0 + 300);
    fanout.send(T0 + 300);
    // `fast` and `slow` got the last tick, so their delta holds c only; the
    // two behind (snapshots of different epochs) share one frame from the older.
    expect(slow.texts.at(-1)).toBe(fast.texts.at(-1));
    expect(Object.keys(fast.last().devices[0]?.latest ?? {})).toEqual(["c"]);
    expect(behind1.texts.at(-1)).toBe(behind2.texts.at(-1));
    expect(Object.keys(behind1.last().devices[0]?.latest ?? {})).toEqual(["a", "b", "c"]);
    expect(new Set(sockets.map((s) => s.last().seq)).size).toBe(1);
  });
});

describe("dashboard count", () => {
  it("lists the sockets once, not on every commit, until a dashboard connects or closes", () => {
    const sockets = [new Socket()];
    let listed = 0;
    const state = new LiveState(2);
    const fanout = new LiveFanout({ name: () => "g", dashboards: () => (listed++, sockets), outOfStep: () => null, setOutOfStep: () => {} }, state, { summaryIntervalMs: 3_600_000, ackTimeoutMs: 60_000, markAfterMs: 3_600_000 });
    for (let i = 0; i < 100; i++) fanout.count();
    expect(listed).toBe(1);
    sockets.push(new Socket());
    fanout.recount();
    expect(fanout.count()).toBe(2);
    fanout.onClose(sockets.pop() as Socket);
    expect(fanout.count()).toBe(1);
    expect(listed).toBe(3);
  });
});

describe("live view bounds", () => {
  it("keeps at most maxMetrics latest values per device and counts the rest, so a snapshot stays small", () => {
    const { sockets, state, data, snapshot } = setup(1, { maxDevices: 10, maxMetrics: 8 });
    // 20,000 metrics from one device (the attack sent 400,000; the bound does not depend on it).
    const readings = Array.from({ length: 20_000 }, (_, i): Reading => [T0, `m${i}`, i]);
    for (let i = 0; i < readings.length; i += 1000) data("noisy", readings.slice(i, i + 1000), T0 + 1);
    snapshot(sockets[0] as Socket, T0 + 2);
    const text = (sockets[0] as Socket).texts[0] ?? "";
    expect(text.length).toBeLessThan(2000);
    const row = (sockets[0] as Socket).last().devices[0];
    expect(Object.keys(row?.latest ?? {})).toHaveLength(8);
    // Names are remembered to count each once, up to 1,000 per device: past that the count is a lower bound.
    expect(row?.metricsOmitted).toBe(1000);
    expect(state.changedSince(0, T0 + 2)[0]?.latest).toHaveProperty("m7");
  });

  it("lists at most maxDevices devices and counts the others in omitted.devices and the totals", () => {
    const { sockets, fanout, ack, data, snapshot } = setup(1, { maxDevices: 3, maxMetrics: 4 });
    const s = sockets[0] as Socket;
    for (let i = 0; i < 5; i++) data(`d${i}`, [[T0, "t", i]], T0 + 1);
    snapshot(s, T0 + 2);
    expect(s.last().devices.map((d) => d.id)).toEqual(["d0", "d1", "d2"]);
    expect(s.last()).toMatchObject({ omitted: { devices: 2 }, totals: { devices: 5 } });
    ack(s, true);
    // A device beyond the bound changes only the totals: the frame lists no device.
    data("d4", [[T0 + 5, "t", 9]], T0 + 100);
    fanout.send(T0 + 100);
    expect(s.last()).toMatchObject({ type: "delta", devices: [], omitted: { devices: 2 } });
  });

  it("keeps a metric named __proto__ as a key", () => {
    const { sockets, data, snapshot } = setup(1);
    data("d", [[T0, "__proto__", 5]], T0 + 1);
    snapshot(sockets[0] as Socket, T0 + 2);
    expect(Object.keys((sockets[0] as Socket).last().devices[0]?.latest ?? {})).toEqual(["__proto__"]);
  });
});

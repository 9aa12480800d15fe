/**
 * Issue #12, finding 6: only the ack the hub waits for counts. A dashboard
 * socket that acks blindly (a huge seq, without reading) must not get a
 * new summary per ack: the bytes the hub sends it stay at one frame until
 * it acks that frame's seq, or the ack timeout closes it; a wake (a new
 * fan-out over the same sockets) changes neither. Nor for a silent socket
 * (it never acks at all) in a group where nothing else happens: it is
 * marked by the fan-out's own check timer, which fake timers drive here.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { BUCKET_MS, type Reading } from "../../../schema/protocol.ts";
import { addBatch, emptyCollapsed } from "../../../worker/group/ingest/collapse.ts";
import type { OutOfStep } from "../../../worker/group/connections/attachment.ts";
import { LiveFanout, type DashboardSocket } from "../../../worker/group/live/fanout.ts";
import { LiveState } from "../../../worker/group/live/live-state.ts";

const T0 = 1_700_000_000_000 - (1_700_000_000_000 % BUCKET_MS);

class CountingSocket implements DashboardSocket {
  frames = 0;
  bytes = 0;
  lastSeq = 0;
  closed: number | null = null;
  send(data: string): void {
    this.frames++;
    this.bytes += data.length;
    this.lastSeq = (JSON.parse(data) as { seq: number }).seq;
  }
  close(code: number): void {
    this.closed = code;
  }
}

/** `markAfterMs` and `clock` for the tests of the check timer; by default it never fires. */
function setup(opts: { markAfterMs?: number; clock?: () => number } = {}) {
  const blind = new CountingSocket();
  const honest = new CountingSocket();
  const state = new LiveState(2);
  state.load({ devices: [], latest: [], rejects: [], online: new Set() });
  // What the connection layer keeps in each socket's attachment: it outlives the fan-out.
  const marks = new Map<CountingSocket, OutOfStep>();
  // Attachment writes per socket: what marks cost.
  const writes = new Map<CountingSocket, number>();
  const fanoutOf = () =>
    new LiveFanout<CountingSocket>(
      {
        name: () => "g",
        dashboards: () => [blind, honest].filter((s) => s.closed === null),
        outOfStep: (ws) => marks.get(ws) ?? null,
        setOutOfStep: (ws, mark) => {
          writes.set(ws, (writes.get(ws) ?? 0) + 1);
          if (mark) marks.set(ws, mark);
          else marks.delete(ws);
        },
      },
      state,
      { summaryIntervalMs: 3_600_000, ackTimeoutMs: 60_000, markAfterMs: opts.markAfterMs ?? 3_600_000 },
      opts.clock,
    );
  let fanout = fanoutOf();
  for (const s of [blind, honest]) fanout.sendSnapshot(s, { group: "g", alerts: [], rules: { rules: [], offlineAfterMs: 0 } }, T0);
  const data = (now: number) => {
    const c = emptyCollapsed();
    addBatch(c, { kind: "device", id: "d" }, 1, [[now, "t", 1] satisfies Reading]);
    state.applyCommit(c, now);
  };
  const ack = (s: CountingSocket, seq: number) => fanout.onMessage(s, JSON.stringify({ type: "ack", seq }));
  return {
    blind,
    honest,
    marks,
    writes,
    data,
    ack,
    get fanout() {
      return fanout;
    },
    /** A wake from hibernation: in-memory state gone, sockets and their marks kept. */
    wake: () => void (fanout = fanoutOf()),
  };
}

describe("live acks", () => {
  it("ignores acks of any seq but the one awaited: a blind 2^31 ack gets no further frame", () => {
    const { blind, honest, fanout, data, ack } = setup();
    const snapshotBytes = blind.bytes;
    for (let i = 1; i <= 200; i++) {
      ack(blind, 2 ** 31);
      ack(blind, 0);
      ack(honest, honest.lastSeq);
      data(T0 + i * 100);
      fanout.send(T0 + i * 100);
    }
    // The honest socket got a summary each round; the blind one nothing past its snapshot.
    expect(honest.frames).toBe(201);
    expect(blind.frames).toBe(1);
    expect(blind.bytes).toBe(snapshotBytes);
    expect(blind.closed).toBeNull();
  });

  it("still catches a socket up once it acks the awaited seq, then awaits the new one", () => {
    const { blind, fanout, data, ack } = setup();
    data(T0 + 100);
    fanout.send(T0 + 100);
    ack(blind, blind.lastSeq);
    fanout.send(T0 + 200);
    expect(blind.frames).toBe(2);
    // An old seq (a duplicate ack) does not release the new frame.
    ack(blind, blind.lastSeq - 1);
    data(T0 + 300);
    fanout.send(T0 + 300);
    expect(blind.frames).toBe(2);
  });

  it("keeps a blind socket's debt across a wake: no new frame, and the ack timeout runs from the original send", () => {
    const t = setup();
    const { blind, honest, marks, data, ack } = t;
    ack(honest, honest.lastSeq);
    ack(blind, 2 ** 31);
    ack(blind, 2 ** 31);
    // Marked once, with the frame it owes and when that was sent; the honest socket not at all.
    expect([...marks]).toEqual([[blind, { seq: blind.lastSeq, since: T0 }]]);
    t.wake();
    data(T0 + 100);
    t.fanout.send(T0 + 100);
    expect([blind.frames, honest.frames]).toEqual([1, 2]);
    // 60 s after the snapshot, not after the wake, it is closed as too slow.
    ack(honest, honest.lastSeq);
    data(T0 + 60_001);
    t.fanout.send(T0 + 60_001);
    expect(blind.closed).toBe(4008);
    expect(honest.closed).toBeNull();
  });

  it("releases a restored socket when it acks the frame it owes, and clears its mark", () => {
    const t = setup();
    const { blind, marks, data, ack } = t;
    const owed = blind.lastSeq;
    ack(blind, owed + 1);
    t.wake();
    data(T0 + 100);
    t.fanout.send(T0 + 100);
    expect(blind.frames).toBe(1);
    ack(blind, owed);
    expect(marks.size).toBe(0);
    t.fanout.send(T0 + 200);
    // One catch-up frame with everything, at a seq above the one it owed.
    expect(blind.frames).toBe(2);
    expect(blind.lastSeq).toBeGreaterThan(owed);
  });
});

describe("silent sockets (they never ack) in a quiet group", () => {
  afterEach(() => void vi.useRealTimers());
  const MARK_MS = 5000;
  /** Snapshots at T0 under fake timers, the fan-out reading the faked clock; the honest socket acks. */
  function quiet() {
    vi.useFakeTimers({ now: T0 });
    const t = setup({ markAfterMs: MARK_MS, clock: () => Date.now() });
    t.ack(t.honest, t.honest.lastSeq);
    return t;
  }

  it("marks a silent socket out of step after markAfterMs with nothing else happening, once, then arms no timer", () => {
    const { blind, honest, marks, writes } = quiet();
    vi.advanceTimersByTime(MARK_MS - 1);
    expect(marks.size).toBe(0);
    vi.advanceTimersByTime(1);
    // The seq it owes and when that frame went out; the honest socket is not marked.
    expect([...marks]).toEqual([[blind, { seq: blind.lastSeq, since: T0 }]]);
    expect([writes.get(blind), writes.get(honest)]).toEqual([1, undefined]);
    // Nothing keeps the quiet group from hibernating now.
    expect(vi.getTimerCount()).toBe(0);
  });

  it("restores it after a wake as owing: no new frame, and the check closes it at its original timeout", () => {
    const t = quiet();
    const { blind, honest, data, ack } = t;
    vi.advanceTimersByTime(MARK_MS);
    // Woken 50 s later by a device's batch: the honest socket gets a summary, the silent one nothing.
    for (const at of [T0 + 50_000, T0 + 58_000]) {
      vi.setSystemTime(at);
      t.wake();
      data(at);
      t.fanout.send(at);
      ack(honest, honest.lastSeq);
      expect(blind.frames).toBe(1);
      // The check armed by that summary: before the timeout it leaves the silent socket open.
      vi.advanceTimersByTime(MARK_MS);
    }
    // The second check ran at T0 + 63 s, past 60 s from the snapshot: closed without another tick.
    expect(blind.closed).toBe(4008);
    expect([blind.frames, honest.frames, honest.closed]).toEqual([1, 3, null]);
  });

  it("costs an honest socket no attachment write over 200 summaries and a wake; the silent one one write", () => {
    const t = quiet();
    const { blind, honest, writes, data, ack } = t;
    for (let i = 1; i <= 200; i++) {
      if (i === 100) t.wake();
      const now = Date.now();
      data(now);
      t.fanout.send(now);
      ack(honest, honest.lastSeq);
      vi.advanceTimersByTime(100);
    }
    // 20 s of summaries: the check ran about four times.
    expect([honest.frames, writes.get(honest) ?? 0]).toEqual([201, 0]);
    expect([blind.frames, writes.get(blind), blind.closed]).toEqual([1, 1, null]);
  });
});

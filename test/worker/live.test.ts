/**
 * The live dashboard socket: snapshot, coalesced summaries, flow control,
 * idle silence, eviction. vitest.config.ts shortens the summary interval to
 * 100 ms and the rate window to 2 s, so nothing here waits for production ones.
 */
import { env, evictDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readLiveConfig } from "../../worker/group/live/live.ts";
import { connectDevice, makeReadings, openLive, operatorToken, uniqueGroup } from "./helpers.ts";

const TIMING = readLiveConfig({ ...env });
const SUMMARY_MS = TIMING.summaryIntervalMs;

interface DeviceJson {
  id: string;
  online: boolean;
  latest: Record<string, { value: number; ts: number }>;
  readings: number;
  readingsPerSec: number;
}

const deviceIn = (f: Record<string, unknown>, id: string): DeviceJson | undefined => (f.devices as DeviceJson[] | undefined)?.find((d) => d.id === id);

/** Resolves after `ms`: only for checking that nothing arrives, never as a phase of a test. */
const quietFor = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("live socket", () => {
  it("has the short test intervals", () => {
    expect(TIMING).toMatchObject({ summaryIntervalMs: 100, rateWindowS: 2 });
  });

  it("sends a snapshot, then a coalesced summary after data arrives", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "d1");
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(5) });
    await dev.sock.next();
    const live = await openLive(group);
    const snap = await live.frame(0);
    expect(snap).toMatchObject({ type: "snapshot", v: 1, group, seq: expect.any(Number) });
    const devices = snap.devices as DeviceJson[];
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ id: "d1", online: true, readings: 5, latest: { temp: { value: 4.5 } } });
    live.ack(snap);

    // Twenty batches in quick succession become one or two summaries, not twenty.
    for (let seq = 2; seq <= 21; seq++) dev.sock.send({ type: "batch", seq, readings: makeReadings(5) });
    for (let seq = 2; seq <= 21; seq++) await dev.sock.next();
    const last = await live.until((f) => deviceIn(f, "d1")?.readings === 105, 1);
    expect(live.frames.indexOf(last)).toBeLessThanOrEqual(2);
    expect(last).toMatchObject({ type: "summary", totals: { online: 1 } });
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("sends nothing more to a socket that has not acked, then catches it up in one frame", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "slow");
    const slow = await openLive(group);
    await slow.frame(0); // snapshot, deliberately not acked
    const prompt = await openLive(group);
    prompt.ack(await prompt.frame(0));
    for (let seq = 1; seq <= 10; seq++) {
      dev.sock.send({ type: "batch", seq, readings: makeReadings(3) });
      await dev.sock.next();
    }
    // Every tick goes to every socket that is due, so once the acking
    // dashboard has seen all 30 readings, the slow one was passed over.
    await prompt.until((f) => deviceIn(f, "slow")?.readings === 30, 1);
    expect(slow.frames).toHaveLength(1);
    slow.ack(slow.frames[0] ?? {});
    const catchUp = await slow.frame(1);
    expect(deviceIn(catchUp, "slow")?.readings).toBe(30);
    slow.ws.close(1000, "done");
    prompt.ws.close(1000, "done");
    dev.sock.close();
  });

  it("bounds the snapshot's latest values per device (loaded from SQLite) and sends deltas to a socket that asks", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "wide");
    const max = TIMING.maxMetrics;
    const names = Array.from({ length: max + 5 }, (_, i) => `m${String(i).padStart(3, "0")}`);
    dev.sock.send({ type: "batch", seq: 1, readings: names.map((m, i) => [Date.now(), m, i]) });
    await dev.sock.next();
    const live = await openLive(group);
    live.delta = true;
    const snap = await live.frame(0);
    // The first metrics by name are kept; the other five are counted.
    const row = deviceIn(snap, "wide") as DeviceJson & { metricsOmitted?: number };
    expect(Object.keys(row.latest)).toEqual(names.slice(0, max));
    expect(row.metricsOmitted).toBe(5);
    live.ack(snap);
    dev.sock.send({ type: "batch", seq: 2, readings: [[Date.now(), "m001", 42]] });
    await dev.sock.next();
    const delta = await live.until((f) => deviceIn(f, "wide")?.readings === max + 6, 1);
    expect(delta.type).toBe("delta");
    expect(deviceIn(delta, "wide")?.latest).toEqual({ m001: { value: 42, ts: expect.any(Number) } });
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("falls silent when the group is idle", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "quiet");
    const live = await openLive(group);
    live.ack(await live.frame(0));
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(3) });
    await dev.sock.next();
    // Summaries follow while the rate window drains, each acked, down to zero...
    await live.until((f) => deviceIn(f, "quiet")?.readings === 3, 1);
    const idle = await live.until((f) => deviceIn(f, "quiet")?.readingsPerSec === 0 && (f.totals as { readingsPerSec: number }).readingsPerSec === 0, 1, 10_000);
    // ...and then nothing at all, for many summary intervals.
    const count = live.frames.length;
    expect(live.frames[count - 1]).toBe(idle);
    await quietFor(SUMMARY_MS * 8);
    expect(live.frames.length).toBe(count);
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("keeps working across an eviction of the group's object", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "ev");
    const live = await openLive(group);
    live.ack(await live.frame(0));
    await evictDurableObject(env.GROUPS.getByName(group));
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(4) });
    expect(await dev.sock.next()).toEqual({ type: "ack", seq: 1 });
    const s = await live.frame(1);
    expect(s.type).toBe("summary");
    expect(deviceIn(s, "ev")).toMatchObject({ readings: 4, online: true });
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("refuses a wrong token and a missing upgrade, and closes on a non-ack frame", async () => {
    const group = uniqueGroup();
    const bad = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=nope`, { headers: { upgrade: "websocket" } });
    expect(bad.status).toBe(401);
    const plain = await SELF.fetch(`http://hub.test/v1/groups/${group}/live`, { headers: { authorization: `Bearer ${await operatorToken(group)}` } });
    expect(plain.status).toBe(426);
    const live = await openLive(group);
    await live.frame(0);
    live.ws.send("{not json");
    expect(await live.closed).toBe(1007);
  });
});

import { describe, expect, it } from "vitest";
import { aggregates, connectDevice, makeReadings, uniqueGroup } from "./helpers.ts";

describe("device socket ingest", () => {
  it("says hello with lastSeq 0, acks after commit, and aggregates per minute", async () => {
    const group = uniqueGroup();
    const { sock, lastSeq } = await connectDevice(group, "dev-1");
    expect(lastSeq).toBe(0);
    const t0 = Math.floor(Date.now() / 60_000) * 60_000 - 120_000; // two minutes ago, bucket aligned
    sock.send({
      type: "batch",
      seq: 1,
      readings: [
        [t0 + 1000, "temp", 20],
        [t0 + 2000, "temp", 22.5],
        [t0 + 500, "temp", -3],
        [t0 + 61_000, "temp", 7],
        [t0 + 3000, "hum", 40],
      ],
    });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const buckets = await aggregates(group);
    expect(buckets).toEqual([
      { device: "dev-1", metric: "hum", start: t0, count: 1, sum: 40, min: 40, max: 40, last: 40 },
      { device: "dev-1", metric: "temp", start: t0, count: 3, sum: 39.5, min: -3, max: 22.5, last: 22.5 },
      { device: "dev-1", metric: "temp", start: t0 + 60_000, count: 1, sum: 7, min: 7, max: 7, last: 7 },
    ]);
    sock.close();
  });

  it("acks a replayed seq with dup and does not apply it again", async () => {
    const group = uniqueGroup();
    const first = await connectDevice(group, "d");
    const readings = makeReadings(10);
    first.sock.send({ type: "batch", seq: 5, readings });
    expect(await first.sock.next()).toEqual({ type: "ack", seq: 5 });
    first.sock.close();

    const again = await connectDevice(group, "d");
    expect(again.lastSeq).toBe(5);
    again.sock.send({ type: "batch", seq: 5, readings });
    expect(await again.sock.next()).toEqual({ type: "ack", seq: 5, dup: true });
    again.sock.send({ type: "batch", seq: 3, readings });
    expect(await again.sock.next()).toEqual({ type: "ack", seq: 3, dup: true });
    const buckets = await aggregates(group);
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe(10);
    again.sock.close();
  });

  it("applies many pipelined batches exactly once, acking each in order", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "pipe");
    for (let seq = 1; seq <= 50; seq++) sock.send({ type: "batch", seq, readings: makeReadings(20) });
    // A duplicate in the same group commit as its original.
    sock.send({ type: "batch", seq: 50, readings: makeReadings(20) });
    for (let seq = 1; seq <= 50; seq++) expect(await sock.next()).toEqual({ type: "ack", seq });
    expect(await sock.next()).toEqual({ type: "ack", seq: 50, dup: true });
    const buckets = await aggregates(group, "?device=pipe&metric=temp");
    expect(buckets.reduce((n, b) => n + b.count, 0)).toBe(1000);
    sock.close();
  });
});

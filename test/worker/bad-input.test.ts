/**
 * Bad input on real device sockets: a representative dozen of the table in
 * bad-input-cases.ts (frames.test.ts runs all of it without sockets). Every case starts from a
 * device with one stored batch (seq 1), sends one bad input, checks the
 * exact outcome (close code, error frame or pong), then checks that nothing
 * was applied: aggregates and the device's lastSeq are unchanged, and seq 2
 * is still free (a good seq 2 is acked without `dup`).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readLimits } from "../../schema/limits.ts";
import { cases, goodBatch, LIMITS, paddedBatch, type Case } from "./bad-input-cases.ts";
import {
  aggregates,
  bucketAgo,
  connectDevice,
  lastSeqOf,
  makeReadings,
  uniqueGroup,
  type BucketJson,
  type TestSocket,
} from "./helpers.ts";

const DEVICE = "dev-bad";
const MINUTE = 60_000;

/** One case of each kind of outcome and field; the whole table runs without sockets in frames.test.ts. */
const ON_SOCKETS = [
  "bytes ff 00",
  "text 'hello'",
  "CBOR tagged Map",
  "valid batch one byte over the frame limit",
  "map without type",
  "type 'foo'",
  "seq 2^53 as uint64",
  "one reading over the per-batch limit",
  "ts 10 minutes in the future",
  "value NaN as float16",
  "bad metric in the middle of 100 readings",
  "text 'ping'",
];
const socketCases: Case[] = ON_SOCKETS.map((name) => {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no bad-input case named ${name}`);
  return c;
});

/** Asserts `frame` is exactly {type: "error", seq?, code, message} with a non-empty message. */
function expectErrorFrame(frame: unknown, code: string, seq: number | undefined): void {
  const expected =
    seq === undefined
      ? { type: "error", code, message: expect.any(String) }
      : { type: "error", seq, code, message: expect.any(String) };
  expect(frame).toStrictEqual(expected);
  expect((frame as { message: string }).message.length).toBeGreaterThan(0);
}

interface Baseline {
  sock: TestSocket;
  group: string;
  buckets: BucketJson[];
}

/** A device with batch seq 1 stored and acked, and the aggregates it produced. */
async function baseline(): Promise<Baseline> {
  const group = uniqueGroup("bad");
  const { sock, lastSeq } = await connectDevice(group, DEVICE);
  expect(lastSeq).toBe(0);
  const t0 = bucketAgo(3);
  sock.send({ type: "batch", seq: 1, readings: [[t0 + 1000, "temp", 10], [t0 + 2000, "temp", 30], [t0 + 3000, "hum", 50]] });
  expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
  const buckets = await aggregates(group);
  expect(buckets).toEqual([
    { device: DEVICE, metric: "hum", start: t0, count: 1, sum: 50, min: 50, max: 50, last: 50 },
    { device: DEVICE, metric: "temp", start: t0, count: 2, sum: 40, min: 10, max: 30, last: 30 },
  ]);
  expect(await lastSeqOf(group, DEVICE)).toBe(1);
  return { sock, group, buckets };
}

/** Sends a good seq-2 batch on `sock` and expects a plain (non-dup) ack and one more reading stored. */
async function expectSeq2Applies(sock: TestSocket, group: string, before: BucketJson[]): Promise<void> {
  sock.sendRaw(goodBatch.slice());
  expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
  const after = await aggregates(group);
  const count = (bs: BucketJson[]): number => bs.reduce((n, b) => n + b.count, 0);
  expect(count(after)).toBe(count(before) + 1);
  expect(await lastSeqOf(group, DEVICE)).toBe(2);
}

describe("bad input on a device socket", () => {
  it("has a frame limit of 1 MiB and a batch limit of 5000 readings in this config, as the cases assume", () => {
    const hub = readLimits({ ...env });
    expect(hub.maxFrameBytes).toBe(1024 * 1024);
    expect(hub.maxReadingsPerBatch).toBe(5000);
    expect({ frame: LIMITS.maxFrameBytes, batch: LIMITS.maxReadingsPerBatch }).toEqual({ frame: hub.maxFrameBytes, batch: hub.maxReadingsPerBatch });
  });

  it.each(socketCases)("$name", async (c) => {
    const { sock, group, buckets } = await baseline();
    sock.sendRaw(c.input());

    switch (c.expect.kind) {
      case "close": {
        const closed = await sock.closedWithin();
        expect(closed.code).toBe(c.expect.code);
        // Closed without answering the frame first.
        expect(sock.takeAll()).toEqual([]);
        break;
      }
      case "error":
        expectErrorFrame(await sock.next(), c.expect.code, c.expect.seq);
        break;
      case "pong":
        expect(await sock.next()).toBe("pong");
        break;
    }

    // Nothing of the bad input was applied.
    expect(await aggregates(group)).toEqual(buckets);
    expect(await lastSeqOf(group, DEVICE)).toBe(1);

    if (c.expect.kind === "close") {
      // A reconnect sees only seq 1, and seq 2 is still free.
      const again = await connectDevice(group, DEVICE);
      expect(again.lastSeq).toBe(1);
      await expectSeq2Applies(again.sock, group, buckets);
      again.sock.close();
    } else {
      // The socket is still usable, and seq 2 was not consumed by the bad frame.
      await expectSeq2Applies(sock, group, buckets);
      expect(sock.takeAll()).toEqual([]);
      sock.close();
    }
  });

  it("accepts a frame of exactly the frame limit", async () => {
    const { sock, group, buckets } = await baseline();
    sock.sendRaw(paddedBatch(2, LIMITS.maxFrameBytes));
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
    const after = await aggregates(group);
    expect(after.reduce((n, b) => n + b.count, 0)).toBe(buckets.reduce((n, b) => n + b.count, 0) + 1);
    sock.close();
  });

  it("accepts exactly the per-batch reading limit", async () => {
    const { sock, group } = await baseline();
    sock.send({ type: "batch", seq: 2, readings: makeReadings(LIMITS.maxReadingsPerBatch, "many") });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
    const many = await aggregates(group, "?metric=many");
    expect(many.reduce((n, b) => n + b.count, 0)).toBe(LIMITS.maxReadingsPerBatch);
    sock.close();
  });

  it("accepts boundary values: 64-char metric, seq MAX_SEQ, ts at the edges of the window", async () => {
    const { sock, group } = await baseline();
    const metric = "m".repeat(64);
    const now = Date.now();
    sock.send({
      type: "batch",
      seq: LIMITS.maxSeq,
      readings: [
        [now - LIMITS.maxPastMs + MINUTE, metric, 1],
        [now + LIMITS.maxFutureMs - MINUTE, metric, -1.25],
        [now, "A-z_0.9:x", 0],
      ],
    });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: LIMITS.maxSeq });
    expect(await lastSeqOf(group, DEVICE)).toBe(LIMITS.maxSeq);
    const long = await aggregates(group, `?metric=${metric}`);
    expect(long.map((b) => b.sum).sort()).toEqual([-1.25, 1]);
    sock.close();
  });
});

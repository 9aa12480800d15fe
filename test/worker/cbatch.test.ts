/**
 * Compact batches (`cbatch`) on real device and gateway sockets in workerd:
 * the same readings sent as `batch` and as `cbatch` give identical
 * aggregates and device rows; every typed-array tag and every CBOR head
 * width is read right; every bad frame is refused with its code and applies
 * nothing; seq, acks, duplicates and alerts behave as with `batch`.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encodeCompactBatch, type ValueEncoding } from "../../schema/cbatch-encode.ts";
import { encodeCbor } from "../../schema/cbor.ts";
import type { GatewayReading, Reading } from "../../schema/protocol.ts";
import type { Case } from "./bad-input-cases.ts";
import { cbatchCases, cbatchFrame, gatewayCbatchCases, raw, series } from "./cbatch-cases.ts";
import { aggregates, bucketAgo, connectDevice, connectGateway, devices, getJson, operatorToken, uniqueGroup, type TestSocket } from "./helpers.ts";

const MINUTE = 60_000;

/** Sends frames on `sock` and expects each acked, in order, without `dup`. */
async function sendAll(sock: TestSocket, frames: { seq: number; bytes: Uint8Array }[]): Promise<void> {
  for (const f of frames) {
    sock.sendRaw(f.bytes);
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: f.seq });
  }
}

/** What the hub keeps of a device: its aggregates and its row (lastSeq, readings), lastSeen left out. */
async function stored(group: string): Promise<unknown> {
  const rows = (await devices(group)).map(({ id, lastSeq, readings }) => ({ id, lastSeq, readings }));
  return { buckets: await aggregates(group), rows };
}

/**
 * 300 readings of four metrics over three minutes, with equal timestamps
 * (the later one must win `last`) and values of every kind: integers,
 * quarters, float32-exact and float64-only ones.
 */
function readingsOverMinutes(base: number): Reading[] {
  const out: Reading[] = [];
  const metrics = ["temp", "hum", "co2", "p"];
  for (let i = 0; i < 300; i++) {
    const ts = base + Math.floor(i / 2) * 1200; // pairs share a timestamp
    const m = metrics[i % 4] as string;
    const v = i % 5 === 0 ? i : i % 5 === 1 ? i / 4 : i % 5 === 2 ? Math.fround(20 + i / 7) : 20 + Math.sin(i);
    out.push([ts, m, v]);
  }
  return out;
}

describe("compact batches on a device socket", () => {
  it("give the same aggregates and device row as the same readings sent as v1 batches, for every value encoding", async () => {
    const rs = readingsOverMinutes(bucketAgo(4) + 500);
    const chunks = [rs.slice(0, 100), rs.slice(100, 250), rs.slice(250)];
    const v1 = uniqueGroup("cb-v1");
    const { sock } = await connectDevice(v1, "dev-1");
    await sendAll(sock, chunks.map((c, i) => ({ seq: i + 1, bytes: encodeBatch(i + 1, c) })));
    const expected = await stored(v1);
    expect(expected).toMatchObject({ rows: [{ id: "dev-1", lastSeq: 3, readings: 300 }] });
    for (const values of ["lossless", "float64"] as ValueEncoding[]) {
      const group = uniqueGroup(`cb-${values}`);
      const c = await connectDevice(group, "dev-1");
      await sendAll(c.sock, chunks.map((ch, i) => ({ seq: i + 1, bytes: encodeCompactBatch(i + 1, ch, { values }) })));
      expect(await stored(group), values).toEqual(expected);
      c.sock.close();
    }
    // float32 on request: the aggregates of the values rounded to float32, exactly.
    const rounded = rs.map(([ts, m, v]): Reading => [ts, m, Math.fround(v)]);
    const g32 = uniqueGroup("cb-f32");
    const a = await connectDevice(g32, "dev-1");
    await sendAll(a.sock, [{ seq: 1, bytes: encodeCompactBatch(1, rs, { values: "float32" }) }]);
    const r32 = uniqueGroup("cb-f32-v1");
    const b = await connectDevice(r32, "dev-1");
    await sendAll(b.sock, [{ seq: 1, bytes: encodeBatch(1, rounded) }]);
    expect(await stored(g32)).toEqual(await stored(r32));
    for (const s of [sock, a.sock, b.sock]) s.close();
  });

  it("reads every typed-array tag and every head width as the v1 readings they stand for", async () => {
    const t0 = bucketAgo(3) + 100;
    // Each frame with the v1 readings it carries (offsets from t0, running).
    const frames: { name: string; bytes: Uint8Array; readings: Reading[] }[] = [];
    const add = (name: string, seriesItems: number[][], readings: [number, string, number][]) =>
      frames.push({ name, bytes: cbatchFrame(frames.length + 1, t0, seriesItems), readings: readings.map(([d, m, v]) => [t0 + d, m, v]) });
    add("tag 64 offsets, tag 86 values", [series("a", raw.typed(64, [0, 255]), raw.typed(86, raw.f64le([0.1, -2.5])))], [[0, "a", 0.1], [255, "a", -2.5]]);
    add("tag 69 offsets, tag 85 values (widened exactly)", [series("b", raw.typed(69, raw.le16([1, 65_535])), raw.typed(85, raw.f32le([0.1, 3])))], [[1, "b", Math.fround(0.1)], [65_536, "b", 3]]);
    add("tag 70 offsets", [series("c", raw.typed(70, raw.le32([65_536, 70_000])), raw.typed(86, raw.f64le([1, 2])))], [[65_536, "c", 1], [135_536, "c", 2]]);
    add("typed arrays with 1-, 2- and 4-byte length heads", [series("d", raw.typed(64, [3], 1), raw.typed(86, raw.f64le([4]), 2)), series("e", raw.typed(69, raw.le16([9]), 4), raw.typed(85, raw.f32le([0.5]), 4))], [[3, "d", 4], [9, "e", 0.5]]);
    add(
      "plain offsets with every head width, shortest and not",
      [series("f", raw.array([raw.int(5), raw.int(200), raw.int(1000), raw.int(70_000), raw.int(7, 8), raw.int(7, 4), raw.int(7, 2), raw.int(7, 1)]), raw.array(Array.from({ length: 8 }, (_, k) => raw.int(k))))],
      [[5, "f", 0], [205, "f", 1], [1205, "f", 2], [71_205, "f", 3], [71_212, "f", 4], [71_219, "f", 5], [71_226, "f", 6], [71_233, "f", 7]],
    );
    add(
      "plain values: integers of every width and sign, half, single and double floats",
      [series("g", raw.array(Array.from({ length: 11 }, () => raw.int(1))), raw.array([raw.int(7), raw.int(100), raw.int(1000), raw.int(100_000), raw.int(2 ** 33), raw.int(-1), raw.int(-300), raw.int(-(2 ** 33)), raw.f16(1.5), raw.f32(0.25), raw.f64(0.1)]))],
      [7, 100, 1000, 100_000, 2 ** 33, -1, -300, -(2 ** 33), 1.5, 0.25, 0.1].map((v, k): [number, string, number] => [k + 1, "g", v]),
    );
    add("two series of two metrics in one frame", [series("h", raw.typed(64, [0]), raw.array([raw.int(1)])), series("i", raw.typed(64, [1]), raw.array([raw.int(2)]))], [[0, "h", 1], [1, "i", 2]]);
    add("an untagged byte string as uint8 offsets", [series("j", [...raw.head(2, 2), 4, 4], raw.array([raw.int(1), raw.int(2)]))], [[4, "j", 1], [8, "j", 2]]);

    const compactGroup = uniqueGroup("cb-tags");
    const v1Group = uniqueGroup("cb-tags-v1");
    const c = await connectDevice(compactGroup, "dev-1");
    const v = await connectDevice(v1Group, "dev-1");
    for (const f of frames) {
      c.sock.sendRaw(f.bytes);
      expect(await c.sock.next(), f.name).toStrictEqual({ type: "ack", seq: frames.indexOf(f) + 1 });
    }
    await sendAll(v.sock, frames.map((f, i) => ({ seq: i + 1, bytes: encodeBatch(i + 1, f.readings) })));
    expect(await stored(compactGroup)).toEqual(await stored(v1Group));
    // Spot checks of what the hub made of the widths.
    const buckets = await aggregates(compactGroup);
    expect(buckets.filter((x) => x.metric === "b").map((x) => x.sum)).toEqual([Math.fround(0.1), 3]);
    expect(buckets.find((x) => x.metric === "g")).toMatchObject({ count: 11, min: -(2 ** 33), max: 2 ** 33 });
    c.sock.close();
    v.sock.close();
  });

  it("refuses every bad frame with its code and applies nothing; the socket stays open and seq 2 stays free", async () => {
    await refusesAll("device", cbatchCases);
  });

  it("keeps seq semantics with v1 batches: duplicates acked with dup and not applied, hello resumes after both", async () => {
    const group = uniqueGroup("cb-seq");
    const base = bucketAgo(2);
    const { sock } = await connectDevice(group, "dev-1");
    const c2 = encodeCompactBatch(2, [[base + 1, "temp", 1], [base + 2, "temp", 2]]);
    sock.send({ type: "batch", seq: 1, readings: [[base, "temp", 10]] });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 1 });
    sock.sendRaw(c2);
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
    sock.sendRaw(c2);
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2, dup: true });
    // A v1 batch reusing seq 2 is a duplicate too, whatever it holds.
    sock.send({ type: "batch", seq: 2, readings: [[base + 3, "temp", 99]] });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2, dup: true });
    sock.close();
    const again = await connectDevice(group, "dev-1");
    expect(again.lastSeq).toBe(2);
    again.sock.sendRaw(encodeCompactBatch(1, [[base + 4, "temp", 50]]));
    expect(await again.sock.next()).toStrictEqual({ type: "ack", seq: 1, dup: true });
    expect(await aggregates(group)).toEqual([{ device: "dev-1", metric: "temp", start: base, count: 3, sum: 13, min: 1, max: 10, last: 2 }]);
    again.sock.close();
  });

  it("raises an alert from a compact batch's reading", async () => {
    const group = uniqueGroup("cb-alert");
    const token = await operatorToken(group);
    const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/rules`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ rules: [{ id: "hot", metric: "temp", op: ">", threshold: 30, forMs: 0 }] }),
    });
    expect(res.status).toBe(200);
    const { sock } = await connectDevice(group, "boiler");
    const t = Date.now() - MINUTE;
    sock.sendRaw(encodeCompactBatch(1, [[t, "hum", 90], [t, "temp", 20], [t + 1000, "temp", 35.5]]));
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 1 });
    const { body } = await getJson(`/v1/groups/${group}/alerts?active=true`, token);
    expect(body).toMatchObject({ alerts: [{ kind: "threshold", ruleId: "hot", device: "boiler", value: 35.5, clearedAt: null }] });
    sock.close();
  });
});

describe("compact batches on a gateway socket", () => {
  it("give each device the same aggregates and rows as the v1 gateway batch of the same readings", async () => {
    const base = bucketAgo(4) + 500;
    const rs: GatewayReading[] = readingsOverMinutes(base).map(([ts, m, v], i) => [ts, m, v, `dev-${i % 3}`]);
    const chunks = [rs.slice(0, 120), rs.slice(120)];
    const v1 = uniqueGroup("cbgw-v1");
    const a = await connectGateway(v1, "bridge-1");
    await sendAll(a.sock, chunks.map((c, i) => ({ seq: i + 1, bytes: encodeBatch(i + 1, c) })));
    const cb = uniqueGroup("cbgw");
    const b = await connectGateway(cb, "bridge-1");
    await sendAll(b.sock, chunks.map((c, i) => ({ seq: i + 1, bytes: encodeCompactBatch(i + 1, c) })));
    const expected = await stored(v1);
    expect(expected).toMatchObject({ rows: [{ id: "dev-0", readings: 100 }, { id: "dev-1", readings: 100 }, { id: "dev-2", readings: 100 }] });
    expect(await stored(cb)).toEqual(expected);
    // The gateway's own seq: a resent compact batch is a duplicate.
    b.sock.sendRaw(encodeCompactBatch(2, chunks[1] ?? []));
    expect(await b.sock.next()).toStrictEqual({ type: "ack", seq: 2, dup: true });
    a.sock.close();
    b.sock.close();
  });

  it("refuses every bad frame with its code and applies nothing", async () => {
    await refusesAll("gateway", gatewayCbatchCases);
  });
});

/** A v1 batch, as every v1 client writes it. */
function encodeBatch(seq: number, readings: readonly (Reading | GatewayReading)[]): Uint8Array {
  return encodeCbor({ type: "batch", seq, readings });
}

/**
 * Stores seq 1, then sends every case on the same socket: each must be
 * answered with exactly its error (the socket stays open), and afterwards
 * the stored data and lastSeq are unchanged and a good seq 2 applies.
 */
async function refusesAll(kind: "device" | "gateway", cases: Case[]): Promise<void> {
  const group = uniqueGroup(`cb-bad-${kind}`);
  const { sock } = kind === "device" ? await connectDevice(group, "dev-bad") : await connectGateway(group, "gw-bad");
  const device = (extra: [number, string, number]): Reading | GatewayReading => (kind === "device" ? extra : [...extra, "dev-bad"]);
  const t0 = bucketAgo(3);
  sock.sendRaw(encodeCompactBatch(1, [device([t0 + 1000, "temp", 10]), device([t0 + 2000, "temp", 30])]));
  expect(await sock.next()).toStrictEqual({ type: "ack", seq: 1 });
  const before = await stored(group);
  for (const c of cases) {
    sock.sendRaw(c.input());
    const want = c.expect;
    if (want.kind !== "error") throw new Error(`${c.name}: only error cases here`);
    const frame = await sock.next();
    expect(frame, c.name).toStrictEqual(want.seq === undefined ? { type: "error", code: want.code, message: expect.any(String) } : { type: "error", seq: want.seq, code: want.code, message: expect.any(String) });
  }
  expect(await stored(group)).toEqual(before);
  sock.sendRaw(encodeCompactBatch(2, [device([t0 + 3000, "temp", 20])]));
  expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
  expect(await aggregates(group)).toMatchObject([{ device: "dev-bad", metric: "temp", count: 3, sum: 60 }]);
  sock.close();
}

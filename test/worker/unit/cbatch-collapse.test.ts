/**
 * Collapse of compact batches against v1 batches: the same readings sent
 * either way give the same partial aggregates and the same per-peer
 * counters, device and gateway, for any readings (fast-check). Also the
 * alert path's readings, built only when read.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validateCompactBatch } from "../../../schema/cbatch.ts";
import { encodeCompactBatch, type ValueEncoding } from "../../../schema/cbatch-encode.ts";
import { decodeCbor } from "../../../schema/cbor.ts";
import { DEFAULT_LIMITS } from "../../../schema/limits.ts";
import { BUCKET_MS, type CompactBatchFrame, type GatewayReading, type Reading } from "../../../schema/protocol.ts";
import { isMap } from "../../../schema/validate.ts";
import { addBatch, emptyCollapsed, readingCount, type Collapsed } from "../../../worker/group/ingest/collapse.ts";

const NOW = 1_764_590_400_000 - (1_764_590_400_000 % BUCKET_MS);
const W = { now: NOW, limits: DEFAULT_LIMITS };

function compact(bytes: Uint8Array, gateway: boolean): CompactBatchFrame {
  const d = decodeCbor(bytes);
  if (!d.ok || !isMap(d.value)) throw new Error("encoder wrote no map");
  const r = validateCompactBatch(d.value, W, gateway);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.frame;
}

/** Everything a commit writes, as plain data: aggregates and per-peer counters. */
function plain(c: Collapsed): unknown {
  const aggs: Record<string, unknown> = {};
  for (const [device, metrics] of c.aggregates) for (const [metric, buckets] of metrics) for (const [start, a] of buckets) aggs[`${device}/${metric}/${start}`] = { ...a };
  const peers = { device: Object.fromEntries(c.peers.device), gateway: Object.fromEntries(c.peers.gateway) };
  return { aggs, peers, readings: c.readings, rows: c.rows };
}

const metric = fc.constantFrom("temp", "hum", "co2", "p");
const ts = fc.integer({ min: NOW - 5 * BUCKET_MS, max: NOW });
// Quarters: every sum is exact whatever the order of addition, so readings may come in any order.
const quarter = fc.integer({ min: -4000, max: 4000 }).map((k) => k / 4);
const encodings: ValueEncoding[] = ["lossless", "float64", "float32"];

describe("collapse of compact batches", () => {
  it("gives a device exactly what the v1 batch of the same readings gives, in any order", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(ts, metric, quarter), { minLength: 1, maxLength: 200 }), fc.constantFrom(...encodings), (rs, values) => {
        const readings = rs as Reading[];
        const v1 = emptyCollapsed();
        addBatch(v1, { kind: "device", id: "d" }, 3, readings);
        const c = emptyCollapsed();
        const frame = compact(encodeCompactBatch(3, readings, { values }), false);
        expect(readingCount(frame)).toBe(readings.length);
        addBatch(c, { kind: "device", id: "d" }, 3, frame);
        expect(plain(c)).toEqual(plain(v1));
      }),
      { numRuns: 300, seed: 16 },
    );
  });

  it("gives a gateway and each device it names what the v1 gateway batch gives", () => {
    const device = fc.constantFrom("a", "b", "c");
    fc.assert(
      fc.property(fc.array(fc.tuple(ts, metric, quarter, device), { minLength: 1, maxLength: 200 }), (rs) => {
        const readings = rs as GatewayReading[];
        const v1 = emptyCollapsed();
        addBatch(v1, { kind: "gateway", id: "g" }, 9, readings);
        const c = emptyCollapsed();
        addBatch(c, { kind: "gateway", id: "g" }, 9, compact(encodeCompactBatch(9, readings), true));
        expect(plain(c)).toEqual(plain(v1));
      }),
      { numRuns: 300, seed: 16 },
    );
  });

  it("sums any float values bit for bit when each metric's readings come in time order", () => {
    const value = fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 });
    fc.assert(
      fc.property(fc.array(fc.tuple(ts, metric, value), { minLength: 1, maxLength: 200 }), (rs) => {
        const readings = (rs as Reading[]).sort((x, y) => x[0] - y[0]);
        const v1 = emptyCollapsed();
        addBatch(v1, { kind: "device", id: "d" }, 1, readings);
        const c = emptyCollapsed();
        addBatch(c, { kind: "device", id: "d" }, 1, compact(encodeCompactBatch(1, readings), false));
        expect(plain(c)).toEqual(plain(v1));
      }),
      { numRuns: 200, seed: 16 },
    );
  });

  it("mixes v1 and compact batches of one device in one commit", () => {
    const c = emptyCollapsed();
    addBatch(c, { kind: "device", id: "d" }, 1, [[NOW - 1000, "t", 1]]);
    addBatch(c, { kind: "device", id: "d" }, 2, compact(encodeCompactBatch(2, [[NOW - 500, "t", 2], [NOW - 500, "t", 3]]), false));
    expect(plain(c)).toMatchObject({
      aggs: { [`d/t/${NOW - BUCKET_MS}`]: { count: 3, sum: 6, min: 1, max: 3, firstTs: NOW - 1000, lastTs: NOW - 500, last: 3 } },
      peers: { device: { d: { lastSeq: 2, readings: 3, batches: 2 } } },
      readings: 3,
      rows: 1,
    });
  });
});

/**
 * The archive's pure parts: a captured row's encoding round-trips every
 * kind of batch (v1 readings out of order, a compact batch with typed
 * arrays, a gateway's compact series), its time bounds, and object keys.
 */
import { describe, expect, it } from "vitest";
import { compactToReadings, validateCompactBatch } from "../../../schema/cbatch.ts";
import { encodeCompactBatch } from "../../../schema/cbatch-encode.ts";
import { decodeCbor } from "../../../schema/cbor.ts";
import type { Reading } from "../../../schema/protocol.ts";
import { partKey } from "../../../worker/group/archive/archive.ts";
import { decodeCaptured, encodeCaptured, timeBounds } from "../../../worker/group/archive/capture.ts";
import type { DeviceReadings } from "../../../worker/group/ingest/commit.ts";

const T0 = Date.UTC(2026, 11, 1, 10, 59, 58);
const LIMITS = { maxReadingsPerBatch: 5000, maxFutureMs: 1e12, maxPastMs: 1e12 };

/** A validated compact batch, as the hub holds one after decoding (typed arrays included). */
function compact(readings: readonly (Reading | [number, string, number, string])[], gateway = false) {
  const d = decodeCbor(encodeCompactBatch(9, readings));
  if (!d.ok) throw new Error(d.message);
  const v = validateCompactBatch(d.value as Record<string, unknown>, { now: T0, limits: LIMITS }, gateway);
  if (!v.ok) throw new Error(v.message);
  return v.frame;
}

const sorted = (rs: Iterable<Reading>) => [...rs].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1]) || a[2] - b[2]);

describe("archive capture", () => {
  it("round-trips v1 readings out of order, with their time bounds", () => {
    const readings: Reading[] = [
      [T0 + 3000, "temp", 20.5],
      [T0, "hum", 40],
      [T0 - 3_600_000, "temp", -1.25],
      [T0 + 1000, "temp", 1e-9],
    ];
    const b: DeviceReadings = { device: "d1", readings, count: readings.length, source: { kind: "device", id: "d1" }, seq: 3 };
    const back = decodeCaptured(encodeCaptured(b));
    expect(back.seq).toBe(3);
    expect(sorted(compactToReadings(back))).toEqual(sorted(readings));
    expect(timeBounds(b)).toEqual({ minTs: T0 - 3_600_000, maxTs: T0 + 3000 });
  });

  it("writes a compact batch back as its own columns, typed arrays included, without a gateway's device names", () => {
    const readings: Reading[] = [];
    for (let i = 0; i < 50; i++) readings.push([T0 + i * 100, "temp", Math.fround(20 + i / 8)], [T0 + i * 100 + 7, "power", 1e6 + i * 0.001]);
    const own = compact(readings);
    const b: DeviceReadings = { device: "d1", readings: [], count: 100, source: { kind: "device", id: "d1" }, seq: 9, compact: own };
    expect(sorted(compactToReadings(decodeCaptured(encodeCaptured(b))))).toEqual(sorted(readings));
    expect(timeBounds(b)).toEqual({ minTs: T0, maxTs: T0 + 49 * 100 + 7 });

    const fromGateway = compact([[T0, "temp", 1, "d2"], [T0 + 5, "temp", 2, "d2"]], true);
    const g: DeviceReadings = { device: "d2", readings: [], count: 2, source: { kind: "gateway", id: "w1" }, seq: 4, compact: fromGateway };
    const back = decodeCaptured(encodeCaptured(g));
    expect(back.series.every((s) => s.device === undefined)).toBe(true);
    expect(compactToReadings(back)).toEqual([[T0, "temp", 1], [T0 + 5, "temp", 2]]);
  });

  it("refuses bytes it did not write", () => {
    expect(() => decodeCaptured(new Uint8Array([0xa0]))).toThrow(/does not hold readings/);
    expect(() => decodeCaptured(new Uint8Array([0xff]))).toThrow(/not a CBOR map/);
  });

  it("keys parts by the UTC hour of their readings, hive style", () => {
    expect(partKey("plant-7", Date.UTC(2026, 0, 2, 3), 4)).toBe("groups/plant-7/readings/date=2026-01-02/hour=03/part-4.parquet");
  });
});

/**
 * Helpers of the history tests: the expected rollup of minute buckets by
 * the one merge rule, and a comparison that holds counts, min, max and last
 * exact and sums within 1e-9 relative.
 */
import { expect } from "vitest";
import { RESOLUTION_MS, type AggregateBucket, type Resolution } from "../../schema/api.ts";

/** A bucket with the timestamp of its last reading, as the expected side tracks it. */
export interface Expected extends AggregateBucket {
  lastTs: number;
}

/** Folds readings `[ts, metric, value]` of one device, in arrival order, into buckets of `r`. */
export function expectedBuckets(device: string, readings: readonly [number, string, number][], r: Resolution): AggregateBucket[] {
  const len = RESOLUTION_MS[r];
  const byKey = new Map<string, Expected>();
  for (const [ts, metric, value] of readings) {
    const start = Math.floor(ts / len) * len;
    const key = `${metric}\u0000${start}`;
    const b = byKey.get(key);
    if (!b) {
      byKey.set(key, { device, metric, start, count: 1, sum: value, min: value, max: value, last: value, lastTs: ts });
      continue;
    }
    b.count++;
    b.sum += value;
    b.min = Math.min(b.min, value);
    b.max = Math.max(b.max, value);
    if (ts >= b.lastTs) {
      b.lastTs = ts;
      b.last = value;
    }
  }
  return [...byKey.values()]
    .sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.start - b.start))
    .map(({ lastTs: _, ...b }) => b);
}

/** Same buckets: everything exact but sums, which may differ by float summation order (1e-9 relative). */
export function expectSameBuckets(actual: readonly AggregateBucket[], expected: readonly AggregateBucket[], what: string): void {
  expect(actual.map(({ sum: _, ...b }) => b), what).toEqual(expected.map(({ sum: _, ...b }) => b));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]?.sum ?? NaN;
    const e = expected[i]?.sum ?? NaN;
    expect(Math.abs(a - e), `${what}: sum of bucket ${i}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(e)));
  }
}

/** The packed form of an hour of minute buckets (worker/group/history/pack.ts): exact, and small for one-reading minutes. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_PART_BYTES, packHour, packParts, unpackHour, type PackedMinute } from "../../../worker/group/history/pack.ts";

const bits = (v: number): string => {
  const d = new DataView(new ArrayBuffer(8));
  d.setFloat64(0, v);
  return d.getBigUint64(0).toString(16);
};
/** Equal field by field, floats by their bits. */
function expectExact(got: PackedMinute[], want: PackedMinute[]): void {
  const key = (m: PackedMinute) => ({ ...m, sum: bits(m.sum), min: bits(m.min), max: bits(m.max), last: bits(m.last) });
  expect(got.map(key)).toEqual([...want].sort((a, b) => a.minute - b.minute).map(key));
}

const anyDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
const minuteArb = (minute: number) =>
  fc.record({
    minute: fc.constant(minute),
    count: fc.integer({ min: 1, max: 2 ** 40 }),
    sum: anyDouble,
    min: anyDouble,
    max: anyDouble,
    firstOff: fc.integer({ min: 0, max: 59_999 }),
    lastOff: fc.integer({ min: 0, max: 59_999 }),
    last: anyDouble,
  }).map((m) => ({ ...m, lastOff: Math.max(m.firstOff, m.lastOff) }));
const hourArb = fc.uniqueArray(fc.integer({ min: 0, max: 59 }), { minLength: 1, maxLength: 60 }).chain((ms) => fc.tuple(...ms.map(minuteArb)));

describe("packed hours", () => {
  it("give back every field bit for bit, -0, subnormals and extremes included", () => {
    fc.assert(fc.property(hourArb, (hour) => expectExact(unpackHour(packHour(hour)), hour)), { numRuns: 300 });
    const edge: PackedMinute[] = [
      { minute: 0, count: 1, sum: -0, min: -0, max: 0, firstOff: 0, lastOff: 0, last: -0 },
      { minute: 31, count: 3, sum: Number.MIN_VALUE, min: -Number.MAX_VALUE, max: Number.MAX_VALUE, firstOff: 5, lastOff: 59_999, last: 5e-324 },
      { minute: 32, count: 2 ** 53 - 1, sum: 1e308, min: 0.1, max: 0.30000000000000004, firstOff: 59_999, lastOff: 59_999, last: 0.2 },
      { minute: 59, count: 1, sum: 21.5, min: 21.5, max: 21.5, firstOff: 123, lastOff: 123, last: 21.5 },
    ];
    expectExact(unpackHour(packHour(edge)), edge);
  });

  it("takes under 20 bytes a minute for a sensor's one-reading minutes", () => {
    const hour: PackedMinute[] = Array.from({ length: 60 }, (_, m) => {
      const v = 20 + 5 * Math.sin(m / 60) + ((m * 7.3) % 1) * 0.01;
      return { minute: m, count: 1, sum: v, min: v, max: v, firstOff: (m * 7919) % 59_000, lastOff: (m * 7919) % 59_000, last: v };
    });
    const packed = packHour(hour);
    expect(packed.length / 60).toBeLessThan(20);
    expectExact(unpackHour(packed), hour);
  });

  it("splits an hour over the bound into parts of consecutive minutes, each within it and exact", () => {
    fc.assert(
      fc.property(hourArb, fc.integer({ min: 80, max: 1200 }), (hour, max) => {
        const parts = packParts(hour, max);
        const whole = packHour(hour);
        if (whole.length <= max) expect(parts).toHaveLength(1);
        for (const p of parts) {
          expect(p.data.length).toBeLessThanOrEqual(max);
          expectExact(unpackHour(p.data), p.minutes);
        }
        // Consecutive and complete: the parts' minutes in order are the hour's.
        expectExact(parts.flatMap((p) => unpackHour(p.data)), hour);
      }),
      { numRuns: 200 },
    );
    // An hour of three readings a minute (distinct min, max, last) takes about 2 KB: three parts of about equal size.
    const full: PackedMinute[] = Array.from({ length: 60 }, (_, m) => {
      const v = 20.1 + Math.sin(m / 7) * 3.3;
      return { minute: m, count: 3, sum: 3 * v + 0.1, min: v - 0.05, max: v + 0.15, firstOff: 100 * (m % 50), lastOff: 59_000 - m, last: v + 0.1 };
    });
    const parts = packParts(full);
    expect(packHour(full).length).toBeGreaterThan(2 * MAX_PART_BYTES);
    expect(parts).toHaveLength(3);
    const sizes = parts.map((p) => p.data.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThan(MAX_PART_BYTES / 4);
  });

  it("refuses a blob that is cut short, has trailing bytes or an unknown version", () => {
    const packed = packHour([{ minute: 3, count: 2, sum: 3, min: 1, max: 2, firstOff: 1, lastOff: 2, last: 2 }]);
    expect(() => unpackHour(packed.slice(0, -1))).toThrow(RangeError);
    expect(() => unpackHour(new Uint8Array([...packed, 0]))).toThrow(RangeError);
    expect(() => unpackHour(new Uint8Array([2, ...packed.slice(1)]))).toThrow(RangeError);
  });
});

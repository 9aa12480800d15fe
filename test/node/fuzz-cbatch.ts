/**
 * Generators of hostile compact batches (`cbatch`) for fuzz.test.ts: frames
 * assembled byte by byte, so typed arrays can carry any tag, any length and
 * any bytes, next to plain arrays of anything.
 */
import { encode as cborgEncode } from "cborg";
import fc from "fast-check";
import { encodeCompactBatch } from "../../schema/cbatch-encode.ts";
import { MAX_SEQ, type GatewayReading, type Reading } from "../../schema/protocol.ts";

const enc = (v: unknown): number[] => [...cborgEncode(v)];

/** A CBOR head for a length or tag below 2^32. */
function head(major: number, n: number): number[] {
  const m = major << 5;
  if (n < 24) return [m | n];
  if (n < 0x100) return [m | 24, n];
  if (n < 0x10000) return [m | 25, n >> 8, n & 0xff];
  return [m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
}

/** A map of already-encoded values. */
function map(entries: [string, number[]][]): number[] {
  return [...head(5, entries.length), ...entries.flatMap(([k, v]) => [...enc(k), ...v])];
}

/** Typed-array tags: the five accepted, big-endian and signed ones, clamped, float16/128, and one past the range. */
const TAGS = [64, 69, 70, 85, 86, 64, 69, 70, 85, 86, 65, 66, 67, 68, 71, 72, 77, 78, 79, 80, 81, 82, 83, 84, 87, 88];

/**
 * One column of `n` items: mostly a valid one (so that whole frames pass
 * often enough to check what is accepted), else a plain array of hostile
 * items, or a typed array with any tag and any bytes (lengths need not fit
 * the width), or a typed-array tag around something that is not a byte string.
 */
function column(n: number, role: "dt" | "values"): fc.Arbitrary<number[]> {
  const good =
    role === "dt"
      ? fc.oneof(
          fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }).map(enc),
          fc.uint8Array({ minLength: n, maxLength: n }).map((b) => [...head(6, 64), ...head(2, n), ...b]),
          fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }).map((d) => [...head(6, 69), ...head(2, 2 * n), ...new Uint8Array(Uint16Array.from(d).buffer)]),
          fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: n, maxLength: n }).map((d) => [...head(6, 70), ...head(2, 4 * n), ...new Uint8Array(Uint32Array.from(d).buffer)]),
        )
      : fc.oneof(
          fc.array(fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })), { minLength: n, maxLength: n }).map(enc),
          fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n }).map((v) => [...head(6, 85), ...head(2, 4 * n), ...new Uint8Array(Float32Array.from(v).buffer)]),
          fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n }).map((v) => [...head(6, 86), ...head(2, 8 * n), ...new Uint8Array(Float64Array.from(v).buffer)]),
        );
  const number = fc.oneof(
    fc.integer({ min: 0, max: 70_000 }),
    fc.constantFrom(-1, 0.5, 2 ** 32, 2 ** 53, Number.NaN, Infinity, -Infinity, -0, 1e300),
    fc.double(),
  );
  return fc.oneof(
    { weight: 12, arbitrary: good },
    { weight: 1, arbitrary: fc.array(fc.oneof(number, fc.constantFrom<unknown>("1", null, true, [1])), { minLength: n, maxLength: n }).map(enc) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom(...TAGS), fc.integer({ min: -1, max: 2 }), fc.uint8Array({ maxLength: 8 })).map(([tag, extra, seed]) => {
        const width = tag === 64 ? 1 : tag === 69 ? 2 : tag === 86 ? 8 : 4;
        const len = Math.max(0, n * width + extra);
        const bytes = Array.from({ length: len }, (_, k) => (seed.length ? (seed[k % seed.length] ?? 0) : k & 0xff));
        return [...head(6, tag), ...head(2, len), ...bytes];
      }),
    },
    { weight: 1, arbitrary: fc.constantFrom(69, 85).map((tag) => [...head(6, tag), ...enc([1, 2])]) },
  );
}

/** A cbatch map whose every field may be hostile; most are close to valid. */
export function nearlyValidCbatch(now: number): fc.Arbitrary<Uint8Array> {
  const series = fc
    .record({
      n: fc.integer({ min: 0, max: 12 }),
      skew: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, -1),
      metric: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("temp", "hum") }, fc.constantFrom("a".repeat(65), "", "bad metric"), fc.string({ maxLength: 8 })),
      device: fc.oneof({ weight: 4, arbitrary: fc.constantFrom("dev-1", "dev-2") }, fc.constantFrom("bad id", ""), fc.string({ maxLength: 8 })),
      notMap: fc.boolean(),
    })
    .chain((s) => fc.tuple(fc.constant(s), column(s.n, "dt"), column(Math.max(0, s.n + s.skew), "values")));
  // Whether series name their device is mostly decided per frame (gateway frames name it, device frames do not), so whole frames often pass.
  const named = fc.constantFrom<"all" | "none" | "some">("all", "all", "none", "none", "some");
  return fc
    .record({
      type: fc.constantFrom("cbatch", "cbatch", "cbatch", "cbatch", "Cbatch", "batch"),
      seq: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -2, max: 2 ** 31 }) }, fc.constantFrom(0, MAX_SEQ, MAX_SEQ + 1, 1.5, Number.NaN)),
      t0: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -8 * 86_400_000, max: 10 * 60_000 }).map((d) => now + d) }, fc.constantFrom(now + 0.5, 2 ** 60, -(2 ** 53))),
      series: fc.array(fc.tuple(series, fc.boolean()), { maxLength: 4 }),
      named,
    })
    .map((f) => {
      const items = f.series.map(([[s, dt, values], coin]) => {
        if (s.notMap && s.n === 0) return enc([0, 1]);
        const entries: [string, number[]][] = [["metric", enc(s.metric)], ["dt", dt], ["values", values]];
        if (f.named === "all" || (f.named === "some" && coin)) entries.push(["device", enc(s.device)]);
        return map(entries);
      });
      return Uint8Array.from(map([["type", enc(f.type)], ["seq", enc(f.seq)], ["t0", enc(f.t0)], ["series", [...head(4, items.length), ...items.flat()]]]));
    });
}

/** A valid cbatch map with `item` (raw CBOR) put where the validator looks: t0, the series array, a series, dt or values. */
export function cbatchWith(now: number, item: readonly number[], where: "t0" | "series" | "oneSeries" | "dt" | "values"): Uint8Array {
  const good = (): number[] => map([["metric", enc("temp")], ["dt", [...head(6, 64), 0x42, 0, 1]], ["values", enc([1.5, 2])]]);
  const s = where === "oneSeries" ? [...item] : where === "dt" ? map([["metric", enc("temp")], ["dt", [...item]], ["values", enc([1.5, 2])]]) : where === "values" ? map([["metric", enc("temp")], ["dt", enc([0, 1])], ["values", [...item]]]) : good();
  const series = where === "series" ? [...item] : [0x81, ...s];
  return Uint8Array.from(map([["type", enc("cbatch")], ["seq", enc(1)], ["t0", where === "t0" ? [...item] : enc(now - 60_000)], ["series", series]]));
}

/** Valid cbatch frames of every shape the encoder writes (widths, float32/64, integer values), to flip bits in. */
export function validCbatches(now: number): Uint8Array[] {
  // Offsets of every width: 10 ms steps (uint8), 100 ms (uint16), 40 s (uint32).
  const rs: Reading[] = [];
  for (let i = 0; i < 12; i++) rs.push([now - 600_000 + i * (i < 3 ? 10 : i < 6 ? 100 : 40_000), ["temp", "hum", "co2"][i % 3] as string, i % 4 === 0 ? i : 20 + i * 0.1]);
  const gw: GatewayReading[] = rs.map(([ts, m, v], i) => [ts, m, v, `dev-${i % 2}`]);
  const small = rs.slice(0, 3);
  return [encodeCompactBatch(7, rs), encodeCompactBatch(7, rs, { values: "float32" }), encodeCompactBatch(7, rs, { values: "float64" }), encodeCompactBatch(7, gw), encodeCompactBatch(7, small)];
}

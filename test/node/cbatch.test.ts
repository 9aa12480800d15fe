/**
 * Compact batches in schema/: the encoder against the validator, byte-level
 * frames built by hand for every tag and width, each refusal with its code,
 * and property tests that a `cbatch` carries exactly the readings of the
 * `batch` it replaces. And docs/protocol.md's worked example and its
 * Python and C encoders, run and compared byte for byte.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { encode as cborgEncode } from "cborg";
import { describe, expect, it } from "vitest";
import { compactToGatewayReadings, compactToReadings, validateCompactBatch, type CompactBatchFrame } from "../../schema/cbatch.ts";
import { encodeCompactBatch, type ValueEncoding } from "../../schema/cbatch-encode.ts";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { ErrorCode, type GatewayReading, type Reading } from "../../schema/protocol.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { raw } from "../worker/cbatch-cases.ts";
import { codeBlocks } from "./docs-commands.ts";
import { isMap, validateDeviceBatch, validateGatewayBatch, type Validated } from "../../schema/validate.ts";

const NOW = 1_764_590_400_000; // 2025-12-01T12:00:00Z: a fixed clock, injected into every check
const W = { now: NOW, limits: DEFAULT_LIMITS };

function check(bytes: Uint8Array, gateway = false): Validated<CompactBatchFrame> {
  const d = decodeCbor(bytes);
  if (!d.ok || !isMap(d.value)) throw new Error(`not a CBOR map: ${d.ok ? typeof d.value : d.message}`);
  return validateCompactBatch(d.value, W, gateway);
}

function ok(bytes: Uint8Array, gateway = false): CompactBatchFrame {
  const r = check(bytes, gateway);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.frame;
}

/** Per (device, metric, minute): count, sum, min, max, last, the way the hub aggregates (last: greatest ts, later wins a tie). */
function aggregate(readings: readonly (Reading | GatewayReading)[]): Map<string, { count: number; sum: number; min: number; max: number; lastTs: number; last: number }> {
  const m = new Map<string, { count: number; sum: number; min: number; max: number; lastTs: number; last: number }>();
  for (const r of readings) {
    const key = `${r.length === 4 ? r[3] : ""}/${r[1]}/${Math.floor(r[0] / 60_000)}`;
    const b = m.get(key);
    if (!b) m.set(key, { count: 1, sum: r[2], min: r[2], max: r[2], lastTs: r[0], last: r[2] });
    else {
      b.count++;
      b.sum += r[2];
      b.min = Math.min(b.min, r[2]);
      b.max = Math.max(b.max, r[2]);
      if (r[0] >= b.lastTs) {
        b.lastTs = r[0];
        b.last = r[2];
      }
    }
  }
  return m;
}

/** Sums in a fixed order (per series, by time) so floating-point rounding cannot differ between the two frames. */
function sortedForSum<T extends Reading | GatewayReading>(rs: readonly T[]): T[] {
  return [...rs].sort((a, b) => `${a[3] ?? ""}/${a[1]}`.localeCompare(`${b[3] ?? ""}/${b[1]}`) || a[0] - b[0]);
}

/** Hand-built RFC 8746 typed array: tag, byte string. */
function typed(tag: number, bytes: number[]): Uint8Array {
  return Uint8Array.from([0xd8, tag, 0x40 + bytes.length, ...bytes]);
}

/** A cbatch map with one series whose dt and values are given as raw CBOR items. */
function rawFrame(dt: Uint8Array, values: Uint8Array): Uint8Array {
  const t = (s: string) => cborgEncode(s);
  return Uint8Array.from([
    0xa4, ...t("type"), ...t("cbatch"), ...t("seq"), 0x07, ...t("t0"), ...cborgEncode(NOW - 60_000), ...t("series"),
    0x81, 0xa3, ...t("metric"), ...t("temp"), ...t("dt"), ...dt, ...t("values"), ...values,
  ]);
}

describe("cbatch frames built byte by byte", () => {
  const f64 = (x: number) => [...new Uint8Array(new Float64Array([x]).buffer)];
  const f32 = (x: number) => [...new Uint8Array(new Float32Array([x]).buffer)];
  const values2 = typed(86, [...f64(1.5), ...f64(-2.25)]);

  it("reads every offset width: tag 64 (uint8), 69 (uint16 LE), 70 (uint32 LE) and plain integers", () => {
    const cases: [string, Uint8Array, number[]][] = [
      ["uint8", typed(64, [5, 250]), [5, 255]],
      ["uint16", typed(69, [0x34, 0x12, 0x01, 0x00]), [0x1234, 0x1235]],
      ["uint32", typed(70, [0x10, 0x27, 0, 0, 0, 0, 1, 0]), [10_000, 10_000 + 65_536]],
      ["array", cborgEncode([0, 59_999]), [0, 59_999]],
    ];
    for (const [name, dt, offsets] of cases) {
      const readings = compactToReadings(ok(rawFrame(dt, values2)));
      expect(readings, name).toEqual([
        [NOW - 60_000 + offsets[0]!, "temp", 1.5],
        [NOW - 60_000 + offsets[1]!, "temp", -2.25],
      ]);
    }
  });

  it("reads values as tag 85 (float32, widened exactly), tag 86 (float64) and plain numbers", () => {
    const dt = typed(64, [0, 1]);
    expect(compactToReadings(ok(rawFrame(dt, typed(85, [...f32(0.1), ...f32(3)])))).map((r) => r[2])).toEqual([Math.fround(0.1), 3]);
    expect(compactToReadings(ok(rawFrame(dt, typed(86, [...f64(0.1), ...f64(3)])))).map((r) => r[2])).toEqual([0.1, 3]);
    expect(compactToReadings(ok(rawFrame(dt, cborgEncode([0.1, -3]))))).toEqual([
      [NOW - 60_000, "temp", 0.1],
      [NOW - 60_000 + 1, "temp", -3],
    ]);
  });

  it("reads typed arrays right at any alignment, from a plain array or from a pooled Node Buffer (whose slice() shares memory)", () => {
    const frame = rawFrame(typed(69, [1, 0, 2, 0]), typed(86, [...f64(1.5), ...f64(-2.25)]));
    const want = [[NOW - 60_000 + 1, "temp", 1.5], [NOW - 60_000 + 3, "temp", -2.25]];
    for (let shift = 0; shift < 8; shift++) {
      const plain = new Uint8Array(frame.length + shift);
      plain.set(frame, shift);
      const pooled = Buffer.from(Buffer.from(frame).toString("hex"), "hex");
      const inBuffer = Buffer.concat([Buffer.alloc(shift), frame]).subarray(shift);
      for (const bytes of [plain.subarray(shift), pooled, inBuffer]) expect(compactToReadings(ok(bytes)), `shift ${shift}`).toEqual(want);
    }
  });

  it("refuses each malformed frame with its code and applies nothing", () => {
    const dt = typed(64, [0, 1]);
    const cases: [string, Uint8Array, ErrorCode][] = [
      ["lengths differ", rawFrame(typed(64, [0, 1, 2]), values2), ErrorCode.BadSeries],
      ["empty series", rawFrame(typed(64, []), typed(86, [])), ErrorCode.BadSeries],
      ["signed offsets (tag 72, int8)", rawFrame(typed(72, [0, 1]), values2), ErrorCode.BadSeries],
      ["clamped offsets (tag 68)", rawFrame(typed(68, [0, 1]), values2), ErrorCode.BadSeries],
      ["uint64 offsets (tag 71)", rawFrame(typed(71, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]), values2), ErrorCode.BadSeries],
      ["int32 values (tag 78)", rawFrame(dt, typed(78, [1, 0, 0, 0, 2, 0, 0, 0])), ErrorCode.BadSeries],
      ["unknown tag around values", rawFrame(dt, Uint8Array.from([0xd9, 0x0f, 0xa0, ...cborgEncode([1, 2])])), ErrorCode.BadSeries],
      ["offset overflows the window", rawFrame(typed(70, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), values2), ErrorCode.TimestampOutOfRange],
      ["negative offset", rawFrame(cborgEncode([0, -1]), values2), ErrorCode.BadTimestamp],
      ["fractional offset", rawFrame(cborgEncode([0, 0.5]), values2), ErrorCode.BadTimestamp],
      ["NaN value", rawFrame(dt, typed(86, [...f64(1), ...f64(NaN)])), ErrorCode.BadValue],
      ["infinite float32 value", rawFrame(dt, typed(85, [...f32(1), ...f32(Infinity)])), ErrorCode.BadValue],
      ["text value", rawFrame(dt, cborgEncode([1, "2"])), ErrorCode.BadValue],
    ];
    for (const [name, bytes, code] of cases) {
      const r = check(bytes);
      expect(r.ok, name).toBe(false);
      if (!r.ok) {
        expect(r.code, name).toBe(code);
        expect(r.seq, name).toBe(7);
      }
    }
  });

  it("names the first reading outside the window, in a typed series checked by its ends", () => {
    // rawFrame's t0 is a minute ago: with 60 s offsets, reading 6 is the first past now + 5 min.
    const late = check(rawFrame(Uint8Array.from(raw.typed(69, raw.le16(Array<number>(20).fill(60_000)))), Uint8Array.from(raw.typed(85, raw.f32le(Array<number>(20).fill(1))))));
    expect(late).toMatchObject({ ok: false, code: ErrorCode.TimestampOutOfRange, message: expect.stringContaining("reading 6 at") });
    // Up to the edge of the window (now + 5 min exactly) is accepted.
    const edge = check(rawFrame(Uint8Array.from(raw.typed(70, raw.le32([360_000]))), Uint8Array.from(raw.typed(85, raw.f32le([1])))));
    expect(edge.ok).toBe(true);
    const past = check(rawFrame(Uint8Array.from(raw.typed(70, raw.le32([360_001]))), Uint8Array.from(raw.typed(85, raw.f32le([1])))));
    expect(past).toMatchObject({ ok: false, code: ErrorCode.TimestampOutOfRange, message: expect.stringContaining("reading 0 at") });
  });

  it("refuses bad frame-level fields", () => {
    const good = { type: "cbatch", seq: 1, t0: NOW, series: [{ metric: "m", dt: [0], values: [1] }] };
    const cases: [string, Record<string, unknown>, ErrorCode][] = [
      ["seq 0", { ...good, seq: 0 }, ErrorCode.BadSeq],
      ["seq text", { ...good, seq: "1" }, ErrorCode.BadSeq],
      ["t0 fractional", { ...good, t0: NOW + 0.5 }, ErrorCode.BadTimestamp],
      ["t0 missing", { ...good, t0: undefined }, ErrorCode.BadTimestamp],
      ["series missing", { ...good, series: undefined }, ErrorCode.BadReadings],
      ["series empty", { ...good, series: [] }, ErrorCode.BadReadings],
      ["series item not a map", { ...good, series: [[0, 1]] }, ErrorCode.BadSeries],
      ["bad metric", { ...good, series: [{ metric: "a b", dt: [0], values: [1] }] }, ErrorCode.BadMetric],
      ["t0 in the future", { ...good, t0: NOW + 3_600_000 }, ErrorCode.TimestampOutOfRange],
      ["too many readings", { ...good, series: [{ metric: "m", dt: new Array(DEFAULT_LIMITS.maxReadingsPerBatch + 1).fill(0), values: new Array(DEFAULT_LIMITS.maxReadingsPerBatch + 1).fill(1) }] }, ErrorCode.TooManyReadings],
    ];
    for (const [name, frame, code] of cases) {
      const r = check(encodeCbor(frame as never));
      expect(r.ok ? "ok" : r.code, name).toBe(code);
    }
    // Gateways name the device of each series.
    expect(check(encodeCbor(good), true)).toMatchObject({ ok: false, code: ErrorCode.BadDevice });
    expect(ok(encodeCbor({ ...good, series: [{ metric: "m", device: "d-1", dt: [0], values: [1] }] }), true).series[0]?.device).toBe("d-1");
  });
});

describe("encodeCompactBatch", () => {
  const reading = fc.tuple(fc.integer({ min: NOW - 3_600_000, max: NOW }), fc.constantFrom("temp", "hum", "co2", "p"), fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: -1e6, max: 1e6 }), fc.float({ noNaN: true, noDefaultInfinity: true }).map(Math.fround)));
  const encodings: ValueEncoding[] = ["lossless", "float64"];

  it("carries exactly the readings of the batch it replaces, with identical aggregates", () => {
    fc.assert(
      fc.property(fc.array(reading, { minLength: 1, maxLength: 300 }), fc.constantFrom(...encodings), (rs, values) => {
        const readings = rs as Reading[];
        const fromCompact = compactToReadings(ok(encodeCompactBatch(9, readings, { values })));
        const plain = validateDeviceBatch({ type: "batch", seq: 9, readings }, W);
        if (!plain.ok) throw new Error(plain.message);
        expect(sortedForSum(fromCompact)).toEqual(sortedForSum(plain.frame.readings));
        expect(aggregate(sortedForSum(fromCompact))).toEqual(aggregate(sortedForSum(plain.frame.readings)));
        // `last` depends on the order readings are applied: the compact order must give the same.
        const lasts = (m: ReturnType<typeof aggregate>) => [...m].map(([k, b]) => [k, b.lastTs, b.last]);
        expect(lasts(aggregate(fromCompact)).sort()).toEqual(lasts(aggregate(plain.frame.readings)).sort());
      }),
      { numRuns: 300, seed: 20261201 },
    );
  });

  it("gateway readings keep their devices", () => {
    const rs: GatewayReading[] = [
      [NOW - 10, "temp", 1, "a"],
      [NOW - 5, "temp", 2, "b"],
      [NOW - 1, "temp", 3, "a"],
    ];
    const frame = ok(encodeCompactBatch(3, rs), true);
    expect(frame.series.map((s) => [s.device, s.metric, s.dt.length])).toEqual([
      ["a", "temp", 2],
      ["b", "temp", 1],
    ]);
    expect(sortedForSum(compactToGatewayReadings(frame))).toEqual(sortedForSum(rs));
    const plain = validateGatewayBatch({ type: "batch", seq: 3, readings: rs }, W);
    expect(plain.ok).toBe(true);
  });

  it("float32 on request rounds values to float32; lossless keeps float64 where float32 would round", () => {
    const rs: Reading[] = [
      [NOW - 2, "temp", 21.53],
      [NOW - 1, "temp", 21.5],
    ];
    expect(compactToReadings(ok(encodeCompactBatch(1, rs, { values: "float32" }))).map((r) => r[2])).toEqual([Math.fround(21.53), 21.5]);
    expect(compactToReadings(ok(encodeCompactBatch(1, rs))).map((r) => r[2])).toEqual([21.53, 21.5]);
  });

  it("picks the narrowest offsets: a float32 reading costs 5 bytes plus a fixed overhead per series and frame", () => {
    const rs: Reading[] = [];
    for (let i = 0; i < 25; i++) for (const m of ["temp", "hum", "co2", "p"]) rs.push([NOW - 10_000 + i * 250, m, 20 + Math.sin(i) * 3]);
    const bytes = encodeCompactBatch(1234, rs, { values: "float32" });
    // 1 byte of offset and 4 of float32 per reading; per series its map, the
    // keys metric/dt/values, the name and two typed-array heads (at most 32
    // bytes); per frame type/seq/t0/series (at most 48 bytes).
    expect(bytes.length).toBeLessThanOrEqual(5 * rs.length + 32 * 4 + 48);
    // The same readings as a v1 batch: over three times the bytes.
    expect(encodeCbor({ type: "batch", seq: 1234, readings: rs }).length / bytes.length).toBeGreaterThan(3);
    // uint8 offsets (250 < 256): tag 64 appears once per series.
    const frame = ok(bytes);
    expect(frame.series.every((s) => s.dt instanceof Uint8Array)).toBe(true);
  });
});

describe("docs/protocol.md's worked example and encoders", () => {
  const t0 = 1_764_590_400_000;
  const readings: Reading[] = [[t0, "temp", 21.5], [t0 + 100, "hum", 40.5], [t0 + 250, "temp", 21.75], [t0 + 500, "temp", 22], [t0 + 1100, "hum", 41]];
  const blocks = (lang: string) => codeBlocks(ROOT, lang).filter((b) => b.where.startsWith("docs/protocol.md"));
  /** The annotated dump: each line's hex before the two-space gap that starts its note. */
  const dump = (): string => {
    const block = blocks("text").find((b) => b.code.startsWith("a4 "));
    if (!block) throw new Error("no worked example (a text block starting with a4) in docs/protocol.md");
    return block.code.split("\n").map((l) => (l.trim().split(/\s{2,}/)[0] ?? "").replace(/ /g, "")).join("");
  };
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

  it("the hex dump is what encodeCompactBatch writes for the five readings, and the hub reads them back", () => {
    expect(dump()).toBe(hex(encodeCompactBatch(8, readings)));
    const d = decodeCbor(Buffer.from(dump(), "hex"));
    if (!d.ok || !isMap(d.value)) throw new Error("the dump is not a CBOR map");
    const r = validateCompactBatch(d.value, { now: t0 + 60_000, limits: DEFAULT_LIMITS }, false);
    if (!r.ok) throw new Error(r.message);
    expect(sortedForSum(compactToReadings(r.frame))).toEqual(sortedForSum(readings));
  });

  const python = "/usr/bin/python3";
  const hasCbor2 = existsSync(python) && spawnSync(python, ["-c", "import cbor2"]).status === 0;
  it.skipIf(!hasCbor2 && !process.env.CI)("the Python (cbor2) encoder writes the dump's bytes", () => {
    const block = blocks("python").find((b) => b.code.includes("def cbatch("));
    if (!block) throw new Error("no Python cbatch encoder in docs/protocol.md");
    // The block ends with an expression, as in a REPL; printed here.
    const lines = block.code.trimEnd().split("\n");
    const last = lines.pop() ?? "";
    const r = spawnSync(python, ["-c", `${lines.join("\n")}\nprint(${last})`], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(dump());
  });

  const cc = ["/usr/bin/cc", "/usr/bin/gcc"].find((p) => existsSync(p));
  it.skipIf(!cc)("the C encoder compiles without warnings and writes the dump's bytes", () => {
    const block = blocks("c").find((b) => b.code.includes("cbatch_encode("));
    if (!block) throw new Error("no C cbatch encoder in docs/protocol.md");
    const dir = mkdtempSync(join(tmpdir(), "cbatch-c-"));
    try {
      const main = `
#include <stdio.h>
int main(void) {
  const uint32_t tdt[] = {0, 250, 250}, hdt[] = {100, 1000};
  const float tv[] = {21.5f, 21.75f, 22.0f}, hv[] = {40.5f, 41.0f};
  const struct series s[] = {{"temp", 3, tdt, tv}, {"hum", 2, hdt, hv}};
  uint8_t buf[512];
  size_t n = cbatch_encode(buf, 8, 1764590400000ULL, s, 2);
  for (size_t i = 0; i < n; i++) printf("%02x", buf[i]);
  printf("\\n");
  return 0;
}
`;
      writeFileSync(join(dir, "cbatch.c"), `${block.code}\n${main}`);
      const built = spawnSync(cc ?? "cc", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-o", join(dir, "cbatch"), join(dir, "cbatch.c")], { encoding: "utf8" });
      expect(built.status, built.stderr).toBe(0);
      const ran = spawnSync(join(dir, "cbatch"), { encoding: "utf8" });
      expect(ran.stdout.trim()).toBe(dump());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

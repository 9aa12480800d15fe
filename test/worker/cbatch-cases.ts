/**
 * Compact batches (`cbatch`) written byte by byte, as a device maker's own
 * encoder would: every head width (including non-shortest heads, which
 * CBOR allows), every typed-array tag, and the bad frames, each with the
 * exact error the hub answers. unit/frames.test.ts runs every bad case
 * without sockets; cbatch.test.ts runs them on a real socket.
 */
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { ErrorCode } from "../../schema/protocol.ts";
import type { Case, Outcome } from "./bad-input-cases.ts";

const MINUTE = 60_000;
const DAY = 24 * 3600_000;

/** Raw CBOR items as byte arrays. */
export const raw = {
  /** A head of major type `major` with argument `n`, in `width` bytes after the first (0: inline, n < 24). */
  head(major: number, n: number, width?: 0 | 1 | 2 | 4 | 8): number[] {
    const w = width ?? (n < 24 ? 0 : n < 0x100 ? 1 : n < 0x10000 ? 2 : n < 0x100000000 ? 4 : 8);
    const m = major << 5;
    if (w === 0) return [m | n];
    const out = [m | { 1: 24, 2: 25, 4: 26, 8: 27 }[w]];
    for (let i = w - 1; i >= 0; i--) out.push(Number((BigInt(n) >> BigInt(8 * i)) & 0xffn));
    return out;
  },
  /** An integer, negative ones as major type 1, in the given head width. */
  int(n: number, width?: 0 | 1 | 2 | 4 | 8): number[] {
    return n >= 0 ? raw.head(0, n, width) : raw.head(1, -1 - n, width);
  },
  text(s: string): number[] {
    const bytes = [...new TextEncoder().encode(s)];
    return [...raw.head(3, bytes.length), ...bytes];
  },
  f16(x: number): number[] {
    // Only values half precision holds exactly are used: sign, exponent and 10 bits of mantissa.
    const table: Record<string, number[]> = { "1.5": [0x3e, 0x00], "-2": [0xc0, 0x00], NaN: [0x7e, 0x00], "0.25": [0x34, 0x00] };
    const bits = table[String(x)];
    if (!bits) throw new Error(`no half-precision bits for ${x}`);
    return [0xf9, ...bits];
  },
  f32(x: number): number[] {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, x);
    return [0xfa, ...new Uint8Array(dv.buffer)];
  },
  f64(x: number): number[] {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setFloat64(0, x);
    return [0xfb, ...new Uint8Array(dv.buffer)];
  },
  array(items: number[][]): number[] {
    return [...raw.head(4, items.length), ...items.flat()];
  },
  map(entries: [string, number[]][]): number[] {
    return [...raw.head(5, entries.length), ...entries.flatMap(([k, v]) => [...raw.text(k), ...v])];
  },
  /** An RFC 8746 typed array: the tag, then a byte string (its length head `lenWidth` bytes wide if given). */
  typed(tag: number, bytes: number[], lenWidth?: 0 | 1 | 2 | 4 | 8): number[] {
    return [...raw.head(6, tag), ...raw.head(2, bytes.length, lenWidth), ...bytes];
  },
  le16: (xs: number[]): number[] => [...new Uint8Array(Uint16Array.from(xs).buffer)],
  le32: (xs: number[]): number[] => [...new Uint8Array(Uint32Array.from(xs).buffer)],
  f32le: (xs: number[]): number[] => [...new Uint8Array(Float32Array.from(xs).buffer)],
  f64le: (xs: number[]): number[] => [...new Uint8Array(Float64Array.from(xs).buffer)],
};

/** A series map from raw columns; `extra` adds fields (a device, say). */
export function series(metric: number[] | string, dt: number[], values: number[], extra: [string, number[]][] = []): number[] {
  return raw.map([["metric", typeof metric === "string" ? raw.text(metric) : metric], ["dt", dt], ["values", values], ...extra]);
}

/** A cbatch frame from raw parts; `t0` and `seq` as raw items or numbers. */
export function cbatchFrame(seq: number[] | number, t0: number[] | number, seriesItems: number[][], extra: [string, number[]][] = []): Uint8Array {
  return Uint8Array.from(
    raw.map([
      ["type", raw.text("cbatch")],
      ["seq", typeof seq === "number" ? raw.int(seq) : seq],
      ["t0", typeof t0 === "number" ? raw.int(t0) : t0],
      ["series", raw.array(seriesItems)],
      ...extra,
    ]),
  );
}

/** A recent, valid base timestamp. */
const recent = (): number => Date.now() - 2 * MINUTE;
const u8 = (xs: number[]): number[] => raw.typed(64, xs);
const f64s = (xs: number[]): number[] => raw.typed(86, raw.f64le(xs));
const good = (): number[] => series("temp", u8([0, 1]), f64s([1.5, 2.5]));
/** A seq-2 cbatch whose only series is `s`. */
const one = (s: number[]): Uint8Array => cbatchFrame(2, recent(), [s]);
const errorSeq2 = (code: ErrorCode): Outcome => ({ kind: "error", code, seq: 2 });

/** Bad compact batches on a device socket: each is refused with its code, seq 2 echoed where it could be read, nothing applied. */
export const cbatchCases: Case[] = [
  { name: "cbatch: seq missing", input: () => Uint8Array.from(raw.map([["type", raw.text("cbatch")], ["t0", raw.int(recent())], ["series", raw.array([good()])]])), expect: { kind: "error", code: ErrorCode.BadSeq } },
  { name: "cbatch: seq 0", input: () => cbatchFrame(0, recent(), [good()]), expect: { kind: "error", code: ErrorCode.BadSeq } },
  { name: "cbatch: t0 missing", input: () => Uint8Array.from(raw.map([["type", raw.text("cbatch")], ["seq", raw.int(2)], ["series", raw.array([good()])]])), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: t0 fractional", input: () => cbatchFrame(2, raw.f64(recent() + 0.5), [good()]), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: t0 as text", input: () => cbatchFrame(2, raw.text(String(recent())), [good()]), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: t0 10 minutes ahead", input: () => cbatchFrame(2, Date.now() + 10 * MINUTE, [good()]), expect: errorSeq2(ErrorCode.TimestampOutOfRange) },
  { name: "cbatch: t0 8 days ago", input: () => cbatchFrame(2, Date.now() - 8 * DAY, [good()]), expect: errorSeq2(ErrorCode.TimestampOutOfRange) },
  { name: "cbatch: series missing", input: () => Uint8Array.from(raw.map([["type", raw.text("cbatch")], ["seq", raw.int(2)], ["t0", raw.int(recent())]])), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "cbatch: series empty", input: () => cbatchFrame(2, recent(), []), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "cbatch: series is a map", input: () => Uint8Array.from(raw.map([["type", raw.text("cbatch")], ["seq", raw.int(2)], ["t0", raw.int(recent())], ["series", good()]])), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "cbatch: a series is an array", input: () => one(raw.array([raw.int(0), raw.int(1)])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: dt missing", input: () => one(raw.map([["metric", raw.text("temp")], ["values", f64s([1])]])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values missing", input: () => one(raw.map([["metric", raw.text("temp")], ["dt", u8([0])]])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: 3 offsets, 2 values", input: () => one(series("temp", u8([0, 1, 2]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: empty columns", input: () => one(series("temp", u8([]), f64s([]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 65 (uint16 big-endian)", input: () => one(series("temp", raw.typed(65, [0, 1, 0, 2]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 68 (clamped uint8)", input: () => one(series("temp", raw.typed(68, [0, 1]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 71 (uint64)", input: () => one(series("temp", raw.typed(71, [...raw.le32([0, 0]), ...raw.le32([1, 0])]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 72 (int8)", input: () => one(series("temp", raw.typed(72, [0, 1]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 69 with an odd byte", input: () => one(series("temp", raw.typed(69, [0, 0, 1]), f64s([1]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: offsets tag 69 around an array", input: () => one(series("temp", [...raw.head(6, 69), ...raw.array([raw.int(0)])], f64s([1]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values tag 81 (float32 big-endian)", input: () => one(series("temp", u8([0]), raw.typed(81, [0x3f, 0x80, 0, 0]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values tag 78 (int32)", input: () => one(series("temp", u8([0]), raw.typed(78, raw.le32([7])))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values tag 86 with 12 bytes", input: () => one(series("temp", u8([0]), raw.typed(86, [...raw.f64le([1]), 0, 0, 0, 0]))), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values under unknown tag 4000", input: () => one(series("temp", u8([0]), [...raw.head(6, 4000), ...raw.array([raw.int(1)])])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: values as a byte string", input: () => one(series("temp", u8([0]), [...raw.head(2, 8), ...raw.f64le([1])])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: a device's series names a device", input: () => one(series("temp", u8([0]), f64s([1]), [["device", raw.text("other")]])), expect: errorSeq2(ErrorCode.BadSeries) },
  { name: "cbatch: negative offset", input: () => one(series("temp", raw.array([raw.int(0), raw.int(-1)]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: fractional offset", input: () => one(series("temp", raw.array([raw.int(0), raw.f64(0.5)]), f64s([1, 2]))), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: offset as text", input: () => one(series("temp", raw.array([raw.text("1")]), f64s([1]))), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "cbatch: uint32 offset past the window", input: () => one(series("temp", raw.typed(70, raw.le32([0, 0xffffffff])), f64s([1, 2]))), expect: errorSeq2(ErrorCode.TimestampOutOfRange) },
  { name: "cbatch: offsets summing past the window", input: () => one(series("temp", raw.typed(69, raw.le16(Array<number>(20).fill(60_000))), f64s(Array<number>(20).fill(1)))), expect: errorSeq2(ErrorCode.TimestampOutOfRange) },
  { name: "cbatch: metric with a space", input: () => one(series("bad metric", u8([0]), f64s([1]))), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "cbatch: metric missing", input: () => one(raw.map([["dt", u8([0])], ["values", f64s([1])]])), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "cbatch: NaN in float64 values", input: () => one(series("temp", u8([0, 1]), f64s([1, NaN]))), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "cbatch: Infinity in float32 values", input: () => one(series("temp", u8([0, 1]), raw.typed(85, raw.f32le([1, Infinity])))), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "cbatch: NaN as float16 in plain values", input: () => one(series("temp", u8([0]), raw.array([raw.f16(NaN)]))), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "cbatch: text in plain values", input: () => one(series("temp", u8([0]), raw.array([raw.text("1")]))), expect: errorSeq2(ErrorCode.BadValue) },
  {
    name: "cbatch: one reading over the per-batch limit, in two series",
    input: () => {
      const n = DEFAULT_LIMITS.maxReadingsPerBatch / 2;
      const s = (m: string, k: number) => series(m, raw.typed(64, Array<number>(k).fill(0)), raw.typed(85, raw.f32le(Array<number>(k).fill(1))));
      return cbatchFrame(2, recent(), [s("temp", n), s("hum", n + 1)]);
    },
    expect: errorSeq2(ErrorCode.TooManyReadings),
  },
  {
    name: "cbatch: the third of four series is bad",
    input: () => cbatchFrame(2, recent(), [good(), series("hum", u8([0]), f64s([1])), series("co2", u8([0, 1]), f64s([1])), good()]),
    expect: errorSeq2(ErrorCode.BadSeries),
  },
];

/** Bad compact batches only a gateway socket refuses (a device would refuse them for naming a device). */
export const gatewayCbatchCases: Case[] = [
  { name: "cbatch (gateway): a series without its device", input: () => one(good()), expect: errorSeq2(ErrorCode.BadDevice) },
  { name: "cbatch (gateway): device with a space", input: () => one(series("temp", u8([0]), f64s([1]), [["device", raw.text("bad id")]])), expect: errorSeq2(ErrorCode.BadDevice) },
  { name: "cbatch (gateway): device is a number", input: () => one(series("temp", u8([0]), f64s([1]), [["device", raw.int(7)]])), expect: errorSeq2(ErrorCode.BadDevice) },
];

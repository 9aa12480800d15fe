/**
 * Writes compact batches (`cbatch`, docs/protocol.md "Compact batches") as
 * plain CBOR: each series' offsets in the narrowest unsigned typed array
 * that holds them, its values as float32 where that loses nothing (or where
 * the caller allows it to), otherwise float64, or as plain integers when
 * those are shorter.
 */
import { CbatchTag } from "./cbatch.ts";
import { CborWriter } from "./cbor.ts";
import type { GatewayReading, Reading } from "./protocol.ts";

/**
 * How values may be written: `lossless` (default) uses float32 for a series
 * only when every value survives the round trip exactly; `float32` always
 * does (values are rounded to float32); `float64` never does.
 */
export type ValueEncoding = "lossless" | "float32" | "float64";

export interface CompactEncodeOptions {
  values?: ValueEncoding;
}

interface Series {
  metric: string;
  device: string | undefined;
  ts: number[];
  values: number[];
}

/** Size in bytes of a CBOR integer head for `n`. */
function intSize(n: number): number {
  const a = n >= 0 ? n : -1 - n;
  return a < 24 ? 1 : a < 0x100 ? 2 : a < 0x10000 ? 3 : a < 0x100000000 ? 5 : 9;
}

function writeOffsets(out: CborWriter, s: Series, t0: number): void {
  let prev = t0;
  let max = 0;
  for (const ts of s.ts) {
    max = Math.max(max, ts - prev);
    prev = ts;
  }
  const n = s.ts.length;
  if (max > 0xffffffff) {
    // Offsets too wide for uint32 (series more than 49 days apart): plain integers.
    out.head(4, n);
    prev = t0;
    for (const ts of s.ts) {
      out.number(ts - prev);
      prev = ts;
    }
    return;
  }
  const [tag, width] = max <= 0xff ? [CbatchTag.Uint8, 1] : max <= 0xffff ? [CbatchTag.Uint16LE, 2] : [CbatchTag.Uint32LE, 4];
  const at = out.typed(tag, n, width);
  prev = t0;
  for (let k = 0; k < n; k++) {
    const d = (s.ts[k] as number) - prev;
    prev = s.ts[k] as number;
    if (width === 1) out.buf[at + k] = d;
    else if (width === 2) out.view.setUint16(at + 2 * k, d, true);
    else out.view.setUint32(at + 4 * k, d, true);
  }
}

function writeValues(out: CborWriter, values: readonly number[], encoding: ValueEncoding): void {
  const n = values.length;
  let ints = true;
  let intBytes = 0;
  let fits32 = true;
  for (const v of values) {
    if (ints && Number.isSafeInteger(v)) intBytes += intSize(v);
    else ints = false;
    if (fits32 && Math.fround(v) !== v) fits32 = false;
  }
  if (ints && intBytes + intSize(n) <= 2 + n * (fits32 || encoding === "float32" ? 4 : 8)) {
    out.head(4, n);
    for (const v of values) out.number(v);
    return;
  }
  if (encoding === "float32" || (encoding === "lossless" && fits32)) {
    const at = out.typed(CbatchTag.Float32LE, n, 4);
    for (let k = 0; k < n; k++) out.view.setFloat32(at + 4 * k, values[k] as number, true);
    return;
  }
  const at = out.typed(CbatchTag.Float64LE, n, 8);
  for (let k = 0; k < n; k++) out.view.setFloat64(at + 8 * k, values[k] as number, true);
}

/**
 * Encodes readings as one `cbatch` frame: one series per metric (per device
 * and metric for gateway readings), in order of first appearance, each
 * sorted by timestamp (stably, so equal timestamps keep their order and the
 * same reading stays `last`). `t0` is the earliest timestamp.
 */
export function encodeCompactBatch(seq: number, readings: readonly (Reading | GatewayReading)[], opts: CompactEncodeOptions = {}): Uint8Array {
  if (readings.length === 0) throw new RangeError("a compact batch needs at least one reading");
  const bySeries = new Map<string, Series>();
  let t0 = Infinity;
  for (const r of readings) {
    const device = r.length === 4 ? r[3] : undefined;
    const key = device === undefined ? r[1] : `${device}\u0000${r[1]}`;
    let s = bySeries.get(key);
    if (!s) {
      s = { metric: r[1], device, ts: [], values: [] };
      bySeries.set(key, s);
    }
    s.ts.push(r[0]);
    s.values.push(r[2]);
    if (r[0] < t0) t0 = r[0];
  }
  const out = new CborWriter(64 + readings.length * 6);
  out.head(5, 4);
  out.text("type");
  out.text("cbatch");
  out.text("seq");
  out.number(seq);
  out.text("t0");
  out.number(t0);
  out.text("series");
  out.head(4, bySeries.size);
  for (const s of bySeries.values()) {
    sortByTime(s);
    out.head(5, s.device === undefined ? 3 : 4);
    out.text("metric");
    out.text(s.metric);
    if (s.device !== undefined) {
      out.text("device");
      out.text(s.device);
    }
    out.text("dt");
    writeOffsets(out, s, t0);
    out.text("values");
    writeValues(out, s.values, opts.values ?? "lossless");
  }
  return out.buf.slice(0, out.pos);
}

/** Sorts a series by timestamp, stably; most series arrive sorted and skip the work. */
function sortByTime(s: Series): void {
  let sorted = true;
  for (let k = 1; k < s.ts.length && sorted; k++) if ((s.ts[k] as number) < (s.ts[k - 1] as number)) sorted = false;
  if (sorted) return;
  const order = s.ts.map((_, k) => k).sort((a, b) => (s.ts[a] as number) - (s.ts[b] as number) || a - b);
  s.ts = order.map((k) => s.ts[k] as number);
  s.values = order.map((k) => s.values[k] as number);
}

/**
 * Writes compact batches (`cbatch`, docs/protocol.md "Compact batches") as
 * plain CBOR: each series' offsets in the narrowest unsigned typed array
 * that holds them, its values as float32 where that loses nothing (or where
 * the caller allows it to), otherwise float64, or as plain integers when
 * those are shorter.
 */
import { CbatchTag } from "./cbatch.ts";
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

const textEncoder = new TextEncoder();

class Out {
  buf = new Uint8Array(1024);
  view = new DataView(this.buf.buffer);
  pos = 0;
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  head(major: number, n: number): void {
    this.ensure(9);
    const m = major << 5;
    if (n < 24) this.buf[this.pos++] = m | n;
    else if (n < 0x100) {
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = m | 25;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else if (n < 0x100000000) {
      this.buf[this.pos++] = m | 26;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    } else {
      this.buf[this.pos++] = m | 27;
      this.view.setUint32(this.pos, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
    }
  }
  int(n: number): void {
    if (n >= 0) this.head(0, n);
    else this.head(1, -1 - n);
  }
  text(s: string): void {
    const bytes = textEncoder.encode(s);
    this.head(3, bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  /** An RFC 8746 typed array: the tag, then a byte string of `n` elements of `width` bytes. */
  typed(tag: number, n: number, width: number): number {
    this.head(6, tag);
    this.head(2, n * width);
    this.ensure(n * width);
    const at = this.pos;
    this.pos += n * width;
    return at;
  }
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

function writeOffsets(out: Out, s: Series, t0: number): void {
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
      out.int(ts - prev);
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

function writeValues(out: Out, values: readonly number[], encoding: ValueEncoding): void {
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
    for (const v of values) out.int(v);
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
  const out = new Out();
  out.head(5, 4);
  out.text("type");
  out.text("cbatch");
  out.text("seq");
  out.int(seq);
  out.text("t0");
  out.int(t0);
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

/**
 * Compact batches (`cbatch`, docs/protocol.md "Compact batches"): readings
 * sent as columns, one series per metric (and device, from a gateway), with
 * timestamps as unsigned offsets and values as numbers or RFC 8746 typed
 * arrays (https://www.rfc-editor.org/rfc/rfc8746). Plain CBOR any library
 * writes: a map of text keys, arrays, integers, and the five typed-array tags
 * below.
 *
 * The validator reads the decoded frame column by column and never builds
 * an object per reading; the hub walks a validated batch with
 * {@link forEachReading}.
 */
import {
  ErrorCode,
  ID_PATTERN,
  METRIC_PATTERN,
  type CompactBatchFrame,
  type CompactSeries,
  type GatewayCompactBatchFrame,
  type GatewayReading,
  type Offsets,
  type Reading,
  type Values,
} from "./protocol.ts";
import { RefusedTypedArray } from "./cbatch-tags.ts";
import { isMap, isSeq, reject, type TimeWindow, type Validated } from "./validated.ts";

export { CbatchTag, type CompactBatchFrame, type CompactSeries, type GatewayCompactBatchFrame, type Offsets, type Values } from "./protocol.ts";

/** Why a typed array was refused at decode, for the error message. */
function refusal(v: unknown): string {
  return v instanceof RefusedTypedArray ? `; ${v.reason}` : "";
}

function isOffsets(v: unknown): v is Offsets {
  return Array.isArray(v) || v instanceof Uint8Array || v instanceof Uint16Array || v instanceof Uint32Array;
}

function isValues(v: unknown): v is Values {
  return Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array;
}

/**
 * Validates a decoded `cbatch` map. `gateway` requires a `device` in every
 * series. Checks, in order, the same limits as a `batch`: seq, the number of
 * readings, then each series' shape, metric, device, offsets (unsigned
 * integers whose running sum from `t0` stays inside the time window) and
 * values (finite). One bad series rejects the whole frame.
 */
export function validateCompactBatch(v: Record<string, unknown>, w: TimeWindow, gateway: true): Validated<GatewayCompactBatchFrame>;
export function validateCompactBatch(v: Record<string, unknown>, w: TimeWindow, gateway: false): Validated<CompactBatchFrame>;
export function validateCompactBatch(v: Record<string, unknown>, w: TimeWindow, gateway: boolean): Validated<CompactBatchFrame>;
// The gateway overload's series all carry `device`: checked below for every series.
export function validateCompactBatch(v: Record<string, unknown>, w: TimeWindow, gateway: boolean): Validated<CompactBatchFrame> {
  const seq = v.seq;
  if (!isSeq(seq)) return reject(ErrorCode.BadSeq, "seq must be an integer from 1 to 2^53-1");
  const t0 = v.t0;
  if (typeof t0 !== "number" || !Number.isSafeInteger(t0)) return reject(ErrorCode.BadTimestamp, "t0 must be integer milliseconds", seq);
  const raw = v.series;
  if (!Array.isArray(raw) || raw.length === 0) return reject(ErrorCode.BadReadings, "series must be a non-empty array", seq);
  // Shapes and lengths first, so an oversized frame is refused before any value is read.
  let readings = 0;
  for (let i = 0; i < raw.length; i++) {
    const s: unknown = raw[i];
    if (!isMap(s)) return reject(ErrorCode.BadSeries, `series ${i} is not a map`, seq);
    const dt = s.dt;
    const values = s.values;
    if (!isOffsets(dt)) return reject(ErrorCode.BadSeries, `series ${i}: dt must be an array of integers or a uint8/uint16/uint32 typed array (tags 64, 69, 70)${refusal(dt)}`, seq);
    if (!isValues(values)) return reject(ErrorCode.BadSeries, `series ${i}: values must be an array of numbers or a float32/float64 typed array (tags 85, 86)${refusal(values)}`, seq);
    if (dt.length === 0 || dt.length !== values.length) {
      return reject(ErrorCode.BadSeries, `series ${i}: dt has ${dt.length} offsets and values ${values.length} numbers; both must be the same, above 0`, seq);
    }
    readings += dt.length;
  }
  if (readings > w.limits.maxReadingsPerBatch) {
    return reject(ErrorCode.TooManyReadings, `${readings} readings exceed the limit of ${w.limits.maxReadingsPerBatch} per batch`, seq);
  }
  const minTs = w.now - w.limits.maxPastMs;
  const maxTs = w.now + w.limits.maxFutureMs;
  const series: CompactSeries[] = new Array<CompactSeries>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i] as Record<string, unknown>;
    const metric = s.metric;
    if (typeof metric !== "string" || !METRIC_PATTERN.test(metric)) {
      return reject(ErrorCode.BadMetric, `series ${i}: metric must match [A-Za-z0-9_.:-]{1,64}`, seq);
    }
    const device = s.device;
    if (gateway && (typeof device !== "string" || !ID_PATTERN.test(device))) {
      return reject(ErrorCode.BadDevice, `series ${i}: device must match [A-Za-z0-9_.-]{1,64}`, seq);
    }
    // As a device's v1 reading may not name a device: it speaks only for itself.
    if (!gateway && device !== undefined) return reject(ErrorCode.BadSeries, `series ${i}: a device's series names no device`, seq);
    const dt = s.dt as Offsets;
    const values = s.values as Values;
    // Offsets are unsigned, so a series' timestamps never decrease: it lies
    // in the window when its first and last readings do. The reading-by-
    // reading walk below runs for plain arrays, and to name the reading
    // when a typed series does not fit.
    const first = dt.length > 0 && !Array.isArray(dt) ? t0 + (dt[0] as number) : NaN;
    if (Array.isArray(dt) || first < minTs || t0 + typedSum(dt) > maxTs) {
      let ts = t0;
      for (let k = 0; k < dt.length; k++) {
        const d = dt[k] as unknown;
        if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
          return reject(ErrorCode.BadTimestamp, `series ${i}: offset ${k} must be an unsigned integer of milliseconds`, seq);
        }
        ts += d;
        if (ts < minTs || ts > maxTs) {
          return reject(ErrorCode.TimestampOutOfRange, `series ${i}: reading ${k} at ${ts} is outside the accepted window [${minTs}, ${maxTs}]`, seq);
        }
      }
    }
    const bad = firstNotFinite(values);
    if (bad >= 0) return reject(ErrorCode.BadValue, `series ${i}: value ${bad} must be a finite number`, seq);
    series[i] = gateway ? { metric, device: device as string, dt, values } : { metric, dt, values };
  }
  return { ok: true, frame: { type: "cbatch", seq, t0, series } };
}

// One function per array type: a loop that only ever sees one kind of
// typed array stays fast in V8, one shared by all kinds does not.
function sumU8(a: Uint8Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] as number;
  return s;
}
function sumU16(a: Uint16Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] as number;
  return s;
}
function sumU32(a: Uint32Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] as number;
  return s;
}

/** The sum of typed offsets (a plain array's is not needed: it is walked reading by reading). */
function typedSum(dt: Offsets): number {
  if (dt instanceof Uint8Array) return sumU8(dt);
  if (dt instanceof Uint16Array) return sumU16(dt);
  if (dt instanceof Uint32Array) return sumU32(dt);
  return NaN;
}

function notFinite32(a: Float32Array): number {
  for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k])) return k;
  return -1;
}
function notFinite64(a: Float64Array): number {
  for (let k = 0; k < a.length; k++) if (!Number.isFinite(a[k])) return k;
  return -1;
}

/** Index of the first value that is not a finite number, or -1. */
function firstNotFinite(values: Values): number {
  if (values instanceof Float64Array) return notFinite64(values);
  if (values instanceof Float32Array) return notFinite32(values);
  for (let k = 0; k < values.length; k++) {
    const x: unknown = values[k];
    if (typeof x !== "number" || !Number.isFinite(x)) return k;
  }
  return -1;
}

/** Readings in all series of a validated batch together. */
export function compactCount(b: CompactBatchFrame): number {
  let n = 0;
  for (const s of b.series) n += s.dt.length;
  return n;
}

/**
 * Calls `fn` for every reading of a validated batch, series by series, in
 * the order sent: the same readings a `batch` listing them would apply.
 */
export function forEachReading(b: CompactBatchFrame, fn: (ts: number, metric: string, value: number, device: string | undefined) => void): void {
  for (const s of b.series) {
    let ts = b.t0;
    const { dt, values, metric, device } = s;
    for (let k = 0; k < dt.length; k++) {
      ts += dt[k] as number;
      fn(ts, metric, values[k] as number, device);
    }
  }
}

/** The readings of a validated device batch, as a `batch` would carry them. */
export function compactToReadings(b: CompactBatchFrame): Reading[] {
  const out: Reading[] = [];
  forEachReading(b, (ts, metric, value) => out.push([ts, metric, value]));
  return out;
}

/** The readings of a validated gateway batch, as a gateway `batch` would carry them. */
export function compactToGatewayReadings(b: CompactBatchFrame): GatewayReading[] {
  const out: GatewayReading[] = [];
  forEachReading(b, (ts, metric, value, device) => out.push([ts, metric, value, device ?? ""]));
  return out;
}

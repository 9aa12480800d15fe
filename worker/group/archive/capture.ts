/**
 * The compact encoding of captured readings: one device's readings of one
 * applied batch as a `cbatch` frame (schema/cbatch-encode.ts): one series
 * per metric, offsets in the narrowest unsigned integers, values as float32
 * where that is lossless. Reusing the wire format keeps one encoder and one
 * validator for columns of readings, and a row costs little more than the
 * frame it came in.
 */
import { CbatchTag, validateCompactBatch, type CompactBatchFrame, type Offsets, type Values } from "../../../schema/cbatch.ts";
import { encodeCompactBatch } from "../../../schema/cbatch-encode.ts";
import { CborWriter, decodeCbor } from "../../../schema/cbor.ts";
import type { Reading } from "../../../schema/protocol.ts";
import { isMap } from "../../../schema/validate.ts";
import type { DeviceReadings } from "../ingest/commit.ts";

/** Earliest and latest reading time of one device's applied readings of one batch. */
export function timeBounds(b: DeviceReadings): { minTs: number; maxTs: number } {
  let minTs = Infinity;
  let maxTs = -Infinity;
  if (b.compact) {
    // Offsets are unsigned: a series starts at its first reading and ends at its last.
    for (const s of b.compact.series) {
      let ts = b.compact.t0;
      for (let k = 0; k < s.dt.length; k++) {
        ts += s.dt[k] as number;
        if (k === 0 && ts < minTs) minTs = ts;
      }
      if (ts > maxTs) maxTs = ts;
    }
  } else {
    for (const r of b.readings) {
      if (r[0] < minTs) minTs = r[0];
      if (r[0] > maxTs) maxTs = r[0];
    }
  }
  return { minTs, maxTs };
}

/** Encodes one device's applied readings of one batch. */
export function encodeCaptured(b: DeviceReadings): Uint8Array {
  if (b.compact) return encodeColumns(b.seq, b.compact);
  const readings = Array.isArray(b.readings) ? (b.readings as readonly Reading[]) : [...b.readings];
  return encodeCompactBatch(b.seq, readings);
}

/**
 * A validated compact batch is already columns: its series are written
 * back as they came (typed arrays byte for byte, plain arrays as arrays),
 * without a tuple per reading or a second pass to pick encodings. Ingest
 * runs this for every applied batch, so it has to cost little next to the
 * commit (`npm run bench:archive`). A gateway's series lose their `device`
 * (the row names it).
 */
function encodeColumns(seq: number, b: CompactBatchFrame): Uint8Array {
  const w = scratch;
  w.pos = 0;
  w.head(5, 4);
  w.text("type");
  w.text("cbatch");
  w.text("seq");
  w.number(seq);
  w.text("t0");
  w.number(b.t0);
  w.text("series");
  w.head(4, b.series.length);
  for (const s of b.series) {
    w.head(5, 3);
    w.text("metric");
    w.text(s.metric);
    w.text("dt");
    writeColumn(w, s.dt);
    w.text("values");
    writeColumn(w, s.values);
  }
  return w.buf.slice(0, w.pos);
}

/** Reused by every capture (encoding never yields); grows with the largest batch, which the frame limit bounds. */
const scratch = new CborWriter(16 * 1024);

/** Tags of the typed arrays a validated series may hold (the protocol's, little-endian like every host). */
const TAG_OF = new Map<unknown, number>([
  [Uint8Array, CbatchTag.Uint8],
  [Uint16Array, CbatchTag.Uint16LE],
  [Uint32Array, CbatchTag.Uint32LE],
  [Float32Array, CbatchTag.Float32LE],
  [Float64Array, CbatchTag.Float64LE],
]);

function writeColumn(w: CborWriter, col: Offsets | Values): void {
  if (Array.isArray(col)) {
    w.array(col as readonly number[]);
    return;
  }
  const typed = col as Exclude<Offsets | Values, readonly number[]>;
  const tag = TAG_OF.get(typed.constructor);
  if (tag === undefined) throw new Error("captured column is not a protocol typed array");
  const at = w.typed(tag, typed.length, typed.BYTES_PER_ELEMENT);
  w.buf.set(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength), at);
}

/** Rows were written by this hub, so any time is accepted; only their shape is checked. */
const ANY_TIME = { now: 0, limits: { maxReadingsPerBatch: Number.MAX_SAFE_INTEGER, maxFutureMs: Infinity, maxPastMs: Infinity } };

/** Decodes a captured row's data; throws on bytes this hub did not write. */
export function decodeCaptured(data: Uint8Array): CompactBatchFrame {
  const d = decodeCbor(data);
  if (!d.ok || !isMap(d.value)) throw new Error(`archive row is not a CBOR map: ${d.ok ? typeof d.value : d.message}`);
  const v = validateCompactBatch(d.value, ANY_TIME, false);
  if (!v.ok) throw new Error(`archive row does not hold readings: ${v.message}`);
  return v.frame;
}

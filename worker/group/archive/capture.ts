/**
 * The compact encoding of captured readings: one device's readings of one
 * applied batch as a `cbatch` frame (schema/cbatch-encode.ts): one series
 * per metric, offsets in the narrowest unsigned integers, values as float32
 * where that is lossless. Reusing the wire format keeps one encoder and one
 * validator for columns of readings, and a row costs little more than the
 * frame it came in.
 */
import { compactToReadings, validateCompactBatch, type CompactBatchFrame } from "../../../schema/cbatch.ts";
import { encodeCompactBatch } from "../../../schema/cbatch-encode.ts";
import { decodeCbor } from "../../../schema/cbor.ts";
import type { Reading } from "../../../schema/protocol.ts";
import { isMap } from "../../../schema/validate.ts";
import type { DeviceReadings } from "../ingest/commit.ts";

/** Encodes one device's applied readings of one batch. */
export function encodeCaptured(b: DeviceReadings): Uint8Array {
  const readings = b.compact ? compactToReadings(b.compact) : Array.isArray(b.readings) ? (b.readings as readonly Reading[]) : [...b.readings];
  return encodeCompactBatch(b.seq, readings);
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

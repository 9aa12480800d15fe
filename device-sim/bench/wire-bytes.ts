/**
 * Bytes per reading on the wire for one batch size, by frame type: the v1
 * `batch` (what every client sent before compact batches), `cbatch` with
 * float64 and with float32 values, and JSON as a reference (a v1 batch as
 * JSON text, what JSON-speaking platforms send). The readings are the
 * benchmark's own four-sensor signal (readings.ts), so the figures are for
 * the same frames the load generator sends.
 */
import { encodeCompactBatch } from "../../schema/cbatch-encode.ts";
import { encodeCbor } from "../../schema/cbor.ts";
import { ReadingSource } from "./readings.ts";

export interface WireBytes {
  readingsPerBatch: number;
  batch: number;
  cbatchFloat64: number;
  cbatchFloat32: number;
  json: number;
}

/** Averages over `batches` consecutive batches of one device, with seqs in the thousands (a device some minutes into its run). */
export function wireBytesPerReading(readingsPerBatch: number, batches = 200): WireBytes {
  const source = new ReadingSource(1);
  const now = Date.now();
  const total = { batch: 0, cbatchFloat64: 0, cbatchFloat32: 0, json: 0, readings: 0 };
  for (let i = 0; i < batches; i++) {
    const seq = 1000 + i;
    const readings = source.batch(readingsPerBatch, now + i * 4000);
    total.readings += readings.length;
    total.batch += encodeCbor({ type: "batch", seq, readings }).length;
    total.cbatchFloat64 += encodeCompactBatch(seq, readings, { values: "float64" }).length;
    total.cbatchFloat32 += encodeCompactBatch(seq, readings, { values: "float32" }).length;
    total.json += Buffer.byteLength(JSON.stringify({ type: "batch", seq, readings }));
  }
  const per = (n: number): number => n / total.readings;
  return {
    readingsPerBatch: total.readings / batches,
    batch: per(total.batch),
    cbatchFloat64: per(total.cbatchFloat64),
    cbatchFloat32: per(total.cbatchFloat32),
    json: per(total.json),
  };
}

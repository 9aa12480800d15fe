/** The frame a device client sends for one batch: compact (`cbatch`) by default, v1 `batch` on request. */
import { encodeCompactBatch, type ValueEncoding } from "../schema/cbatch-encode.ts";
import { encodeCbor, type CborValue } from "../schema/cbor.ts";
import type { GatewayReading, Reading } from "../schema/protocol.ts";

/**
 * Encodes batch `seq`: a compact batch unless `frames` is `batch` or a
 * reading has a shape only a v1 batch carries (then the hub refuses it
 * with the same error code as it would any v1 batch).
 */
export function encodeBatchFrame(
  seq: number,
  readings: readonly (readonly CborValue[])[],
  opts: { frames: "cbatch" | "batch"; values: ValueEncoding; endpoint: "devices" | "gateways" },
): Uint8Array {
  if (opts.frames === "cbatch" && compactable(readings, opts.endpoint === "gateways" ? 4 : 3)) {
    return encodeCompactBatch(seq, readings, { values: opts.values });
  }
  return encodeCbor({ type: "batch", seq, readings }, 64 + readings.length * 24);
}

/**
 * True when every reading is `[safe integer, text, number]` (plus the device
 * as text on a gateway socket, `width` 4): what a compact batch's columns
 * hold. Anything else (a test's deliberately bad reading) goes as v1.
 */
function compactable(readings: readonly (readonly CborValue[])[], width: 3 | 4): readings is readonly (Reading | GatewayReading)[] {
  for (const r of readings) {
    if (r.length !== width || !Number.isSafeInteger(r[0]) || typeof r[1] !== "string" || typeof r[2] !== "number") return false;
    if (width === 4 && typeof r[3] !== "string") return false;
  }
  return readings.length > 0;
}

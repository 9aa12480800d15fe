/** Adapters from the fuzz tests to the bridge's payload decoder. */
import { decodePayload } from "../../bridge/mapping.ts";
import type { Reading } from "../../schema/protocol.ts";

export function decodeMqttPayloadForFuzz(payload: Uint8Array, metric: string | undefined, now: number): { ok: true; readings: Reading[] } | { ok: false } {
  const r = decodePayload(payload, metric, now);
  return r.ok ? { ok: true, readings: r.readings } : { ok: false };
}

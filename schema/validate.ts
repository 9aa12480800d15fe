/**
 * Validators: the only way from decoded `unknown` to a typed frame.
 */
import { validateCompactBatch } from "./cbatch.ts";
import { isDownlinkReplyType, validateCommandFrame, validateConfigFrame, validateDownlinkReply } from "./downlink.ts";
import {
  ErrorCode,
  ID_PATTERN,
  METRIC_PATTERN,
  PROTOCOL_VERSION,
  type BatchFrame,
  type DeviceToHubFrame,
  type ErrorFrame,
  type GatewayBatchFrame,
  type GatewayReading,
  type GatewayToHubFrame,
  type HubToDeviceFrame,
  type PeerToHubFrame,
  type Reading,
} from "./protocol.ts";
import type { PeerKind } from "./api.ts";
import { isMap, isSeq, reject, type Rejection, type TimeWindow, type Validated } from "./validated.ts";

export { isMap, type Rejection, type TimeWindow, type Validated } from "./validated.ts";

/** The frames a peer of each kind may send (schema/protocol.ts). */
type FrameOfKind = { device: DeviceToHubFrame; gateway: GatewayToHubFrame };

/**
 * Validates a decoded frame from a peer of kind `kind` (a device or a
 * gateway: one model, worker/group/peer.ts), by its `type`: a `batch` (v1),
 * a compact `cbatch` (./cbatch.ts), or a downlink answer (./downlink.ts);
 * anything else is `unknown_type`. A gateway's frames are a device's with
 * every reading (or series, or answer) naming its device; one bad reading
 * rejects the whole batch. Unknown extra fields are ignored so newer peers
 * can add fields without breaking older hubs.
 */
export function validatePeerFrame<K extends PeerKind>(kind: K, v: Record<string, unknown>, w: TimeWindow): Validated<FrameOfKind[K]>;
export function validatePeerFrame(kind: PeerKind, v: Record<string, unknown>, w: TimeWindow): Validated<PeerToHubFrame> {
  const gateway = kind === "gateway";
  const type = v.type;
  if (type === "batch") return gateway ? validateGatewayBatch(v, w) : validateDeviceBatch(v, w);
  if (type === "cbatch") return validateCompactBatch(v, w, gateway);
  if (isDownlinkReplyType(type)) return validateDownlinkReply(v, gateway);
  return unknownType(type);
}

function unknownType(type: unknown): Rejection {
  if (typeof type !== "string") return reject(ErrorCode.BadFrame, "frame has no text field 'type'");
  return reject(ErrorCode.UnknownType, `unknown frame type '${type.slice(0, 32)}'`);
}

/** Validates a decoded v1 `batch` from a device; any other `type` is refused as by {@link validatePeerFrame}. */
export function validateDeviceBatch(v: Record<string, unknown>, w: TimeWindow): Validated<BatchFrame> {
  const r = validateBatch(v, w, false);
  // Every reading was checked to be [safe integer, valid metric, finite number].
  return r.ok ? { ok: true, frame: { type: "batch", seq: r.seq, readings: r.readings as Reading[] } } : r;
}

/** Validates a decoded v1 `batch` from a gateway: readings `[ts, metric, value, device]`. */
export function validateGatewayBatch(v: Record<string, unknown>, w: TimeWindow): Validated<GatewayBatchFrame> {
  const r = validateBatch(v, w, true);
  // As above, plus a fourth element that matches the id pattern.
  return r.ok ? { ok: true, frame: { type: "batch", seq: r.seq, readings: r.readings as GatewayReading[] } } : r;
}

/** The checks shared by device and gateway batches; `gateway` adds the fourth element. */
function validateBatch(
  v: Record<string, unknown>,
  w: TimeWindow,
  gateway: boolean,
): { ok: true; seq: number; readings: unknown[] } | Rejection {
  if (v.type !== "batch") return unknownType(v.type);
  const seq = v.seq;
  if (!isSeq(seq)) return reject(ErrorCode.BadSeq, "seq must be an integer from 1 to 2^53-1");
  const readings = v.readings;
  if (!Array.isArray(readings) || readings.length === 0) {
    return reject(ErrorCode.BadReadings, "readings must be a non-empty array", seq);
  }
  if (readings.length > w.limits.maxReadingsPerBatch) {
    return reject(
      ErrorCode.TooManyReadings,
      `${readings.length} readings exceed the limit of ${w.limits.maxReadingsPerBatch} per batch`,
      seq,
    );
  }
  const minTs = w.now - w.limits.maxPastMs;
  const maxTs = w.now + w.limits.maxFutureMs;
  const width = gateway ? 4 : 3;
  const goodMetrics: string[] = [];
  for (let i = 0; i < readings.length; i++) {
    const r: unknown = readings[i];
    if (!Array.isArray(r) || r.length !== width) {
      const shape = gateway ? "[ts, metric, value, device]" : "[ts, metric, value]";
      return reject(ErrorCode.BadReading, `reading ${i} is not ${shape}`, seq);
    }
    const ts: unknown = r[0];
    const metric: unknown = r[1];
    const value: unknown = r[2];
    if (typeof ts !== "number" || !Number.isSafeInteger(ts)) {
      return reject(ErrorCode.BadTimestamp, `reading ${i}: ts must be integer milliseconds`, seq);
    }
    if (ts < minTs || ts > maxTs) {
      return reject(
        ErrorCode.TimestampOutOfRange,
        `reading ${i}: ts ${ts} is outside the accepted window [${minTs}, ${maxTs}]`,
        seq,
      );
    }
    if (typeof metric !== "string" || !isGoodMetric(goodMetrics, metric)) {
      return reject(ErrorCode.BadMetric, `reading ${i}: metric must match [A-Za-z0-9_.:-]{1,64}`, seq);
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return reject(ErrorCode.BadValue, `reading ${i}: value must be a finite number`, seq);
    }
    if (gateway) {
      const device: unknown = r[3];
      if (typeof device !== "string" || !ID_PATTERN.test(device)) {
        return reject(ErrorCode.BadDevice, `reading ${i}: device must match [A-Za-z0-9_.-]{1,64}`, seq);
      }
    }
  }
  return { ok: true, seq, readings };
}

/**
 * `METRIC_PATTERN.test(metric)`, remembering a few names that passed: a
 * batch repeats a handful of metrics, and comparing a short text with `===`
 * costs a fraction of running the pattern (docs/benchmarks.md).
 */
function isGoodMetric(good: string[], metric: string): boolean {
  for (let k = 0; k < good.length; k++) if (good[k] === metric) return true;
  if (!METRIC_PATTERN.test(metric)) return false;
  if (good.length < 8) good.push(metric);
  return true;
}

/**
 * Validates a decoded hub frame on the device side. Returns null for a frame
 * the client does not understand (a newer hub may add types).
 */
export function validateHubFrame(v: unknown): HubToDeviceFrame | null {
  if (!isMap(v)) return null;
  switch (v.type) {
    case "hello": {
      const lastSeq = v.lastSeq;
      const ver = v.v;
      if (typeof ver !== "number" || ver < PROTOCOL_VERSION) return null;
      if (typeof lastSeq !== "number" || !Number.isSafeInteger(lastSeq) || lastSeq < 0) return null;
      return { type: "hello", v: ver, lastSeq };
    }
    case "ack": {
      if (!isSeq(v.seq)) return null;
      return v.dup === true ? { type: "ack", seq: v.seq, dup: true } : { type: "ack", seq: v.seq };
    }
    case "error": {
      const code = v.code;
      const message = v.message;
      // Codes are kept even when unknown to this client: a newer hub may add some.
      if (typeof code !== "string" || typeof message !== "string") return null;
      const frame: ErrorFrame = { type: "error", code, message };
      if (isSeq(v.seq)) frame.seq = v.seq;
      const wait = v.retryAfterMs;
      if (typeof wait === "number" && Number.isFinite(wait) && wait >= 0) frame.retryAfterMs = Math.min(wait, 60_000);
      return frame;
    }
    case "command":
      return validateCommandFrame(v);
    case "config":
      return validateConfigFrame(v);
    default:
      return null;
  }
}

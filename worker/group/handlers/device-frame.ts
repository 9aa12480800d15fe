/**
 * Entry point for every binary frame on a device socket: size check, CBOR
 * decode, validation, then dispatch to the handler for the frame's type.
 */
import { decodeCbor, encodeCbor } from "../../../schema/cbor.ts";
import type { Limits } from "../../../schema/limits.ts";
import { CloseCode, ErrorCode } from "../../../schema/protocol.ts";
import { isMap, validateDeviceFrame, type Rejection } from "../../../schema/validate.ts";
import type { Ingest } from "../ingest.ts";
import type { Throttle } from "../throttle.ts";
import type { DeviceSession } from "../sessions.ts";
import { handleBatch } from "./batch.ts";

export interface DeviceFrameContext {
  ingest: Ingest;
  limits: Limits;
  /** Told about every rejected batch, for the live view's rejection counts. */
  onReject?: (peer: string, code: string) => void;
  /** Per-peer rate limit; absent in contexts that do not limit. */
  throttle?: Throttle;
}

/**
 * Applies the rate limit to a valid batch. Duplicates pass (they apply
 * nothing); a refused batch gets `rate_limited` with `retryAfterMs`.
 * Returns whether the batch may go on to the group commit.
 */
export function admit(cx: DeviceFrameContext, ws: WebSocket, peer: string, seq: number, readings: number, highest: number): boolean {
  if (!cx.throttle || seq <= highest) return true;
  const r = cx.throttle.check(peer, seq, readings, Date.now());
  if (r.ok) return true;
  ws.send(
    encodeCbor({
      type: "error",
      seq,
      code: ErrorCode.RateLimited,
      message: "over the rate limit: wait retryAfterMs, then resend this batch and the ones after it",
      retryAfterMs: r.retryAfterMs,
    }),
  );
  cx.onReject?.(peer.slice(2), ErrorCode.RateLimited);
  return false;
}

export function handleDeviceFrame(
  cx: DeviceFrameContext,
  ws: WebSocket,
  session: DeviceSession,
  message: string | ArrayBuffer,
): void {
  const frame = decodeFrame(cx.limits, ws, message);
  if (!frame) return;
  const result = validateDeviceFrame(frame, { now: Date.now(), limits: cx.limits });
  if (!result.ok) {
    sendRejection(ws, result);
    cx.onReject?.(session.d, result.code);
    return;
  }
  switch (result.frame.type) {
    case "batch":
      if (!admit(cx, ws, `d:${session.d}`, result.frame.seq, result.frame.readings.length, cx.ingest.highest(session.d))) return;
      handleBatch(cx.ingest, ws, session, result.frame);
      return;
  }
}

/**
 * The transport checks every socket kind shares: binary, within the frame
 * limit, well-formed CBOR, a map. Closes the socket with the matching code
 * and returns null when one fails.
 */
export function decodeFrame(limits: Limits, ws: WebSocket, message: string | ArrayBuffer): Record<string, unknown> | null {
  if (typeof message === "string") {
    // `ping` never gets here: setWebSocketAutoResponse answers it.
    ws.close(CloseCode.UnsupportedData, "device frames must be binary CBOR");
    return null;
  }
  if (message.byteLength > limits.maxFrameBytes) {
    ws.close(CloseCode.MessageTooBig, `frame exceeds ${limits.maxFrameBytes} bytes`);
    return null;
  }
  const decoded = decodeCbor(new Uint8Array(message));
  if (!decoded.ok) {
    ws.close(CloseCode.InvalidPayload, "frame is not well-formed CBOR");
    return null;
  }
  if (!isMap(decoded.value)) {
    ws.close(CloseCode.InvalidPayload, "frame must be a CBOR map");
    return null;
  }
  return decoded.value;
}

/** Sends the error frame for a rejected batch; the socket stays open. */
export function sendRejection(ws: WebSocket, r: Rejection): void {
  ws.send(encodeCbor({ type: "error", seq: r.seq, code: r.code, message: r.message }));
}

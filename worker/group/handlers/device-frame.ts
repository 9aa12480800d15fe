/**
 * Entry point for every binary frame on a device socket: size check, CBOR
 * decode, validation, then dispatch to the handler for the frame's type.
 */
import { decodeCbor, encodeCbor } from "../../../schema/cbor.ts";
import type { Limits } from "../../../schema/limits.ts";
import { CloseCode } from "../../../schema/protocol.ts";
import { isMap, validateDeviceFrame } from "../../../schema/validate.ts";
import type { Ingest } from "../ingest.ts";
import type { DeviceSession } from "../sessions.ts";
import { handleBatch } from "./batch.ts";

export interface DeviceFrameContext {
  ingest: Ingest;
  limits: Limits;
}

export function handleDeviceFrame(
  cx: DeviceFrameContext,
  ws: WebSocket,
  session: DeviceSession,
  message: string | ArrayBuffer,
): void {
  if (typeof message === "string") {
    // `ping` never gets here: setWebSocketAutoResponse answers it.
    ws.close(CloseCode.UnsupportedData, "device frames must be binary CBOR");
    return;
  }
  if (message.byteLength > cx.limits.maxFrameBytes) {
    ws.close(CloseCode.MessageTooBig, `frame exceeds ${cx.limits.maxFrameBytes} bytes`);
    return;
  }
  const decoded = decodeCbor(new Uint8Array(message));
  if (!decoded.ok) {
    ws.close(CloseCode.InvalidPayload, "frame is not well-formed CBOR");
    return;
  }
  if (!isMap(decoded.value)) {
    ws.close(CloseCode.InvalidPayload, "frame must be a CBOR map");
    return;
  }
  const result = validateDeviceFrame(decoded.value, { now: Date.now(), limits: cx.limits });
  if (!result.ok) {
    const { code, message: text, seq } = result;
    ws.send(encodeCbor({ type: "error", seq, code, message: text }));
    return;
  }
  switch (result.frame.type) {
    case "batch":
      handleBatch(cx.ingest, ws, session, result.frame);
      return;
  }
}

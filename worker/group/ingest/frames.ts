/**
 * Every binary frame on a device or gateway socket takes one path: the
 * transport checks, CBOR decode, the validator of the peer's kind, then the
 * handler of the frame's type from one table (as MQTT.js has one handler per
 * packet type). A new frame type is a validator case in schema/validate.ts
 * and an entry in `HANDLERS`.
 */
import { decodeCbor, encodeCbor } from "../../../schema/cbor.ts";
import type { Limits } from "../../../schema/limits.ts";
import { CloseCode, type DownlinkReplyFrame, type PeerToHubFrame } from "../../../schema/protocol.ts";
import { isMap, validatePeerFrame, type Rejection } from "../../../schema/validate.ts";
import type { Peer } from "../peer.ts";
import { handleBatch } from "./handlers/batch.ts";
import { handleCompactBatch } from "./handlers/cbatch.ts";
import { handleCommandResult, handleConfigApplied } from "./handlers/downlink.ts";
import type { PeerReadings } from "./collapse.ts";

/** The socket a frame came on. */
export interface PeerSender {
  readonly peer: Peer;
  send(data: Uint8Array): boolean;
  close(code: number, reason: string): void;
}

/** What a frame handler may do: the ingest stage's capabilities, nothing more. */
export interface FrameContext {
  now(): number;
  /** Rate limit; false (and a `rate_limited` error sent) when the batch must wait. */
  admit(from: PeerSender, seq: number, readings: number): boolean;
  /** Queues a valid batch for the group commit (acked after it commits), or refuses it whole past a cardinality budget. */
  submit(from: PeerSender, seq: number, readings: PeerReadings): void;
  /** Answers a rejected frame with its error and reports it. */
  reject(from: PeerSender, r: Rejection): void;
  /** Hands a downlink answer to the downlink stage (an error frame if it is refused). */
  downlink(from: PeerSender, frame: DownlinkReplyFrame): void;
}

/** One signature for every frame type. */
export type FrameHandler<F extends PeerToHubFrame> = (cx: FrameContext, from: PeerSender, frame: F) => void;

type FrameOf = { [T in PeerToHubFrame["type"]]: Extract<PeerToHubFrame, { type: T }> };
type HandlerTable = { [T in keyof FrameOf]: FrameHandler<FrameOf[T]> };

const HANDLERS: HandlerTable = {
  batch: handleBatch,
  cbatch: handleCompactBatch,
  command_result: handleCommandResult,
  config_applied: handleConfigApplied,
};

/** Decodes, validates and dispatches one message from a peer. */
export function dispatchFrame(cx: FrameContext, limits: Limits, from: PeerSender, message: string | ArrayBuffer): void {
  const decoded = decodeFrame(limits, from, message);
  if (!decoded) return;
  // The validator is the only way from a decoded map to a typed frame.
  const result = validatePeerFrame(from.peer.kind, decoded, { now: cx.now(), limits });
  if (!result.ok) {
    cx.reject(from, result);
    return;
  }
  handle(cx, from, result.frame);
}

/** Generic over the type, so the compiler pairs each frame with its own handler. */
function handle<T extends keyof FrameOf>(cx: FrameContext, from: PeerSender, frame: FrameOf[T] & { type: T }): void {
  const handler: FrameHandler<FrameOf[T]> = HANDLERS[frame.type];
  handler(cx, from, frame);
}

/**
 * The transport checks every socket kind shares: binary, within the frame
 * limit, well-formed CBOR, a map. Closes the socket with the matching code
 * and returns null when one fails.
 */
function decodeFrame(limits: Pick<Limits, "maxFrameBytes">, from: PeerSender, message: string | ArrayBuffer): Record<string, unknown> | null {
  if (typeof message === "string") {
    // `ping` never gets here: setWebSocketAutoResponse answers it.
    from.close(CloseCode.UnsupportedData, "device frames must be binary CBOR");
    return null;
  }
  if (message.byteLength > limits.maxFrameBytes) {
    from.close(CloseCode.MessageTooBig, `frame exceeds ${limits.maxFrameBytes} bytes`);
    return null;
  }
  const decoded = decodeCbor(new Uint8Array(message));
  if (!decoded.ok) {
    from.close(CloseCode.InvalidPayload, "frame is not well-formed CBOR");
    return null;
  }
  if (!isMap(decoded.value)) {
    from.close(CloseCode.InvalidPayload, "frame must be a CBOR map");
    return null;
  }
  return decoded.value;
}

/** The error frame for a rejected frame; the socket stays open. */
export function rejectionFrame(r: Rejection, retryAfterMs?: number): Uint8Array {
  const frame = r.seq === undefined ? { type: "error", code: r.code, message: r.message } : { type: "error", seq: r.seq, code: r.code, message: r.message };
  return encodeCbor(retryAfterMs === undefined ? frame : { ...frame, retryAfterMs });
}

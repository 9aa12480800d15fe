/**
 * Socket sessions. Everything the Durable Object must know about a socket
 * after waking from hibernation rides in its attachment, which the runtime
 * stores with the socket (JSON-clean, at most 2 KB:
 * https://developers.cloudflare.com/durable-objects/best-practices/websockets/#websocket-hibernation-api).
 */
import { isValidId } from "../../schema/protocol.ts";

/** Attachment of a device socket. Keys are short on purpose. */
export interface DeviceSession {
  k: "device";
  /** Group id. */
  g: string;
  /** Device id. */
  d: string;
  /** Connect time, ms. */
  t: number;
}

export function deviceTag(device: string): string {
  return `d:${device}`;
}

/** Reads a socket's attachment back, checking it rather than trusting its shape. */
export function readSession(ws: WebSocket): DeviceSession | null {
  const a: unknown = ws.deserializeAttachment();
  if (typeof a !== "object" || a === null) return null;
  const r = a as Record<string, unknown>;
  if (r.k !== "device" || typeof r.g !== "string" || typeof r.d !== "string" || typeof r.t !== "number") return null;
  if (!isValidId(r.g) || !isValidId(r.d)) return null;
  return { k: "device", g: r.g, d: r.d, t: r.t };
}

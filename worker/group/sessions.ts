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

/**
 * Attachment of a gateway socket. `k` tells the two kinds apart: device and
 * gateway ids live in separate namespaces, so a gateway named like a device
 * is a different peer with its own lastSeq.
 */
export interface GatewaySession {
  k: "gateway";
  g: string;
  /** Gateway id. */
  w: string;
  t: number;
}

/** Attachment of a dashboard (live) socket. */
export interface LiveSession {
  k: "live";
  g: string;
  t: number;
}

export type Session = DeviceSession | GatewaySession | LiveSession;

export function deviceTag(device: string): string {
  return `d:${device}`;
}

export function gatewayTag(gateway: string): string {
  return `w:${gateway}`;
}

/** Reads a socket's attachment back, checking it rather than trusting its shape. */
export function readSession(ws: WebSocket): Session | null {
  const a: unknown = ws.deserializeAttachment();
  if (typeof a !== "object" || a === null) return null;
  const r = a as Record<string, unknown>;
  if (typeof r.g !== "string" || typeof r.t !== "number" || !isValidId(r.g)) return null;
  if (r.k === "device" && typeof r.d === "string" && isValidId(r.d)) return { k: "device", g: r.g, d: r.d, t: r.t };
  if (r.k === "gateway" && typeof r.w === "string" && isValidId(r.w)) return { k: "gateway", g: r.g, w: r.w, t: r.t };
  if (r.k === "live") return { k: "live", g: r.g, t: r.t };
  return null;
}

/**
 * What the runtime keeps with each hibernatable socket: its attachment
 * (JSON-clean, at most 2 KB:
 * https://developers.cloudflare.com/durable-objects/best-practices/websockets/#websocket-hibernation-api).
 * It is all the object knows about a socket after waking, so it is
 * versioned: sockets stay open across a deploy, and a new version must read
 * what the old one wrote.
 */
import { isValidId } from "../../../schema/protocol.ts";
import type { Peer, PeerKind } from "../peer.ts";

/**
 * Why a peer's socket no longer speaks for its peer: a newer socket
 * replaced it (4001), or the peer was revoked (4003). Kept in the
 * attachment, so a wake from hibernation never brings such a socket back as
 * valid while its client ignores the close.
 */
export type EndReason = "replaced" | "revoked";

/**
 * A dashboard socket out of step (issue #12, finding 6): it owes the ack of
 * frame `seq`, sent at `since` (ms), and acked another seq meanwhile. Kept
 * in the attachment so that a wake neither forgets the frame it owes (and
 * sends it another) nor restarts its ack timeout (live/fanout.ts).
 */
export interface OutOfStep {
  seq: number;
  since: number;
}

/** Who is on a socket: a device or gateway, or a dashboard. */
export type SocketRole =
  | { kind: "peer"; peer: Peer; connectedAt: number; ended?: EndReason; downlink?: true }
  | { kind: "dashboard"; connectedAt: number; outOfStep?: OutOfStep };

/** The attachment written today. */
export interface AttachmentV1 {
  v: 1;
  kind: PeerKind | "dashboard";
  /** The peer's id; "" for a dashboard. */
  id: string;
  /** Connect time, ms. */
  connectedAt: number;
  /** Set once the socket was replaced or its peer revoked (absent in attachments written before). */
  ended?: EndReason;
  /**
   * The peer opted in to downlink (`?downlink=1`). Absent means no: so
   * attachments written before the flag existed read as they always did.
   */
  downlink?: true;
  /** A dashboard socket's out-of-step mark (absent: in step, as in attachments written before it). */
  outOfStep?: OutOfStep;
}

/** Largest attachment the runtime stores. */
export const MAX_ATTACHMENT_BYTES = 2048;

export function toAttachment(role: SocketRole): AttachmentV1 {
  if (role.kind === "dashboard") {
    const a: AttachmentV1 = { v: 1, kind: "dashboard", id: "", connectedAt: role.connectedAt };
    if (role.outOfStep) a.outOfStep = { seq: role.outOfStep.seq, since: role.outOfStep.since };
    return a;
  }
  const a: AttachmentV1 = { v: 1, kind: role.peer.kind, id: role.peer.id, connectedAt: role.connectedAt };
  if (role.ended) a.ended = role.ended;
  if (role.downlink) a.downlink = true;
  return a;
}

/**
 * Reads an attachment back, checking it rather than trusting its shape:
 * today's version, or the unversioned one-letter form
 * (`{k: "device"|"gateway"|"live", g, d|w, t}`) of sockets accepted before
 * it, which may still be open after a deploy. Null for anything else.
 */
export function fromAttachment(a: unknown): SocketRole | null {
  if (typeof a !== "object" || a === null) return null;
  const r = a as Record<string, unknown>;
  if (r.v === 1) {
    const at = r.connectedAt;
    if (typeof at !== "number") return null;
    if (r.kind === "dashboard") {
      if (r.outOfStep === undefined) return { kind: "dashboard", connectedAt: at };
      const mark = readOutOfStep(r.outOfStep);
      return mark ? { kind: "dashboard", connectedAt: at, outOfStep: mark } : null;
    }
    if ((r.kind === "device" || r.kind === "gateway") && typeof r.id === "string" && isValidId(r.id)) {
      const role: SocketRole = { kind: "peer", peer: { kind: r.kind, id: r.id }, connectedAt: at };
      if (r.ended === "replaced" || r.ended === "revoked") role.ended = r.ended;
      else if (r.ended !== undefined) return null;
      if (r.downlink === true) role.downlink = true;
      else if (r.downlink !== undefined) return null;
      return role;
    }
    return null;
  }
  return fromLegacy(r);
}

function readOutOfStep(v: unknown): OutOfStep | null {
  if (typeof v !== "object" || v === null) return null;
  const { seq, since } = v as Record<string, unknown>;
  return Number.isSafeInteger(seq) && typeof seq === "number" && seq >= 0 && typeof since === "number" && Number.isFinite(since) ? { seq, since } : null;
}

/** Whether an attachment is in today's version (one that is not gets rewritten). */
export function isCurrent(a: unknown): boolean {
  return typeof a === "object" && a !== null && (a as Record<string, unknown>).v === 1;
}

function fromLegacy(r: Record<string, unknown>): SocketRole | null {
  const at = r.t;
  if (typeof at !== "number" || typeof r.g !== "string" || !isValidId(r.g)) return null;
  if (r.k === "live") return { kind: "dashboard", connectedAt: at };
  const id = r.k === "device" ? r.d : r.k === "gateway" ? r.w : undefined;
  if ((r.k === "device" || r.k === "gateway") && typeof id === "string" && isValidId(id)) {
    return { kind: "peer", peer: { kind: r.k, id }, connectedAt: at };
  }
  return null;
}

/**
 * The group's sockets, in the spirit of partyserver's `Connection`: this
 * stage alone accepts sockets with the hibernation API, writes and reads
 * their attachments, tags them, enforces the per-group socket limits and
 * closes them without throwing. After a wake from hibernation the sockets
 * are still open; `restore()` rebuilds their connections from attachments.
 */
import type { Limits } from "../../../schema/limits.ts";
import { CloseCode } from "../../../schema/protocol.ts";
import { jsonError } from "../../http/json.ts";
import { log } from "../../log.ts";
import { peerName, peerTag, type Peer } from "../peer.ts";
import { fromAttachment, isCurrent, toAttachment, type EndReason, type OutOfStep, type SocketRole } from "./attachment.ts";

/** Tag of dashboard (live) sockets. */
const DASHBOARD_TAG = "live";
/** Second tag of gateway sockets that opted in to downlink (they carry commands for devices without a socket). */
const DOWNLINK_GATEWAY_TAG = "dl:w";

/** One open socket: sending and closing never throw (a socket may close at any time). */
abstract class OpenSocket {
  readonly ws: WebSocket;
  readonly connectedAt: number;

  constructor(ws: WebSocket, connectedAt: number) {
    this.ws = ws;
    this.connectedAt = connectedAt;
  }

  /** Sends a frame; false if the socket is already closing. */
  send(data: string | Uint8Array): boolean {
    try {
      this.ws.send(data);
      return true;
    } catch {
      return false;
    }
  }

  close(code: number, reason: string): void {
    closeSafely(this.ws, code, reason);
  }
}

/** A device's or gateway's socket. */
export class PeerConnection extends OpenSocket {
  readonly kind = "peer";
  readonly peer: Peer;
  /**
   * Set when the socket was replaced or its peer revoked: from then on it
   * speaks for nobody, whatever its client does (see `Connections.end`).
   */
  ended: EndReason | null;
  /** The peer opted in to downlink frames (`?downlink=1`). */
  readonly downlink: boolean;

  constructor(ws: WebSocket, peer: Peer, connectedAt: number, ended: EndReason | null = null, downlink = false) {
    super(ws, connectedAt);
    this.peer = peer;
    this.ended = ended;
    this.downlink = downlink;
  }
}

/** A dashboard's (live) socket. */
export class DashboardConnection extends OpenSocket {
  readonly kind = "dashboard";
  /** Set while the socket is out of step (attachment.ts, `OutOfStep`). */
  outOfStep: OutOfStep | null;

  constructor(ws: WebSocket, connectedAt: number, outOfStep: OutOfStep | null = null) {
    super(ws, connectedAt);
    this.outOfStep = outOfStep;
  }
}

export type Connection = PeerConnection | DashboardConnection;

function connectionOf(ws: WebSocket, role: SocketRole): Connection {
  return role.kind === "peer"
    ? new PeerConnection(ws, role.peer, role.connectedAt, role.ended ?? null, role.downlink === true)
    : new DashboardConnection(ws, role.connectedAt, role.outOfStep ?? null);
}

/** Closes a socket; a socket that is already closing is left as it is. */
export function closeSafely(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closing or closed
  }
}

/** Codes an endpoint may put in a Close frame (RFC 6455 section 7.4). */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/** Close code of each way a peer's socket ends. */
const END_CLOSE: Readonly<Record<EndReason, { code: number; reason: (p: Peer) => string }>> = {
  replaced: { code: CloseCode.Replaced, reason: (p) => `replaced by a newer connection for this ${p.kind}` },
  revoked: { code: CloseCode.Revoked, reason: (p) => `this ${p.kind} has been revoked` },
};

/** Connection timing; injectable so tests need not wait for production values. */
export interface ConnectionTiming {
  /**
   * How long a replaced or revoked socket has to complete its close
   * handshake before the hub closes it again and logs the client
   * (REPLACED_GRACE_MS). Its frames are dropped from the first moment either way.
   */
  replacedGraceMs: number;
}

export const DEFAULT_CONNECTION_TIMING: Readonly<ConnectionTiming> = { replacedGraceMs: 5000 };

/** The connection timing from env vars; a var that is set but not a positive integer throws, as limits do. */
export function readConnectionTiming(env: Readonly<Record<string, unknown>>): ConnectionTiming {
  const raw = env.REPLACED_GRACE_MS;
  if (raw === undefined || raw === "") return { ...DEFAULT_CONNECTION_TIMING };
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error("REPLACED_GRACE_MS must be a positive integer");
  return { replacedGraceMs: n };
}

export class Connections {
  private readonly ctx: DurableObjectState;
  private readonly limits: Pick<Limits, "maxPeerSockets" | "maxDashboardSockets">;
  private readonly timing: ConnectionTiming;
  /** A cache of what the runtime stores with each socket; may be lost with the object. */
  private readonly known = new Map<WebSocket, Connection>();
  /**
   * Peer sockets that still speak for their peer, counted once per wake by
   * walking every socket, then kept by accept, end and forget; null until
   * first needed. Walking on each connect made opening n sockets cost n^2/2
   * attachment reads (10,000 devices took minutes). While it is set, every
   * live peer socket is in `known`.
   */
  private livePeers: number | null = null;

  constructor(ctx: DurableObjectState, limits: Pick<Limits, "maxPeerSockets" | "maxDashboardSockets">, timing: ConnectionTiming = DEFAULT_CONNECTION_TIMING) {
    this.ctx = ctx;
    this.limits = limits;
    this.timing = timing;
  }

  /**
   * The connection of a socket: cached, else restored from its attachment
   * (after a wake, the runtime hands back open sockets through
   * `ctx.getWebSockets()` and events); null if it has none we can read. An
   * attachment of an older version is rewritten in today's.
   */
  get(ws: WebSocket): Connection | null {
    let c = this.known.get(ws);
    if (!c) {
      const stored: unknown = ws.deserializeAttachment();
      const role = fromAttachment(stored);
      if (!role) return null;
      if (!isCurrent(stored)) ws.serializeAttachment(toAttachment(role));
      c = connectionOf(ws, role);
      this.known.set(ws, c);
      // Sockets accepted before `ended` was written carry no mark: one with
      // a newer socket of the same peer beside it was replaced all the same.
      if (c.kind === "peer" && c.ended === null && this.ofPeer(c.peer).some((o) => o !== ws && attachedAt(o) > role.connectedAt)) {
        this.end(ws, "replaced");
      }
    }
    return c;
  }

  /**
   * Ends a peer's socket: marks it (in memory and in its attachment, so a
   * wake does not bring it back as valid), sends the close, and closes it
   * again after the grace if its client ignores that. The runtime has no
   * way to abort a socket whose client never answers a close, so from here
   * on the socket is worthless instead: its frames are dropped before
   * decoding, it is not online and it does not count against the limit.
   */
  end(ws: WebSocket, reason: EndReason): void {
    const c = this.get(ws);
    if (c?.kind !== "peer" || c.ended !== null) return;
    c.ended = reason;
    if (this.livePeers !== null) this.livePeers--;
    try {
      ws.serializeAttachment(toAttachment({ kind: "peer", peer: c.peer, connectedAt: c.connectedAt, ended: reason, ...(c.downlink ? { downlink: true as const } : {}) }));
    } catch {
      // already closed: nothing will come from it
    }
    const { code } = END_CLOSE[reason];
    const text = END_CLOSE[reason].reason(c.peer);
    closeSafely(ws, code, text);
    setTimeout(() => {
      if (ws.readyState === WebSocket.CLOSED) return;
      log.warn("group.socket_ignored_close", { peer: peerName(c.peer), reason });
      closeSafely(ws, code, `${text}: close ignored`);
    }, this.timing.replacedGraceMs);
  }

  /** A dashboard socket's out-of-step mark, restored from its attachment after a wake; null when in step. */
  outOfStep(ws: WebSocket): OutOfStep | null {
    const c = this.get(ws);
    return c?.kind === "dashboard" ? c.outOfStep : null;
  }

  /** Sets (or, with null, clears) a dashboard socket's out-of-step mark, in memory and in its attachment. */
  setOutOfStep(ws: WebSocket, mark: OutOfStep | null): void {
    const c = this.get(ws);
    if (c?.kind !== "dashboard") return;
    c.outOfStep = mark;
    try {
      ws.serializeAttachment(toAttachment({ kind: "dashboard", connectedAt: c.connectedAt, ...(mark ? { outOfStep: mark } : {}) }));
    } catch {
      // already closed: nothing will come from it
    }
  }

  /**
   * The 503 for a socket past the group's limits, or null when it may be
   * accepted. A peer that reconnects replaces its own socket, so it never
   * counts against the limit.
   */
  refusal(peer: Peer | null): Response | null {
    const dashboards = this.ctx.getWebSockets(DASHBOARD_TAG).length;
    if (peer === null) {
      return dashboards >= this.limits.maxDashboardSockets
        ? tooMany(`this group accepts at most ${this.limits.maxDashboardSockets} dashboard sockets`)
        : null;
    }
    if (this.livePeerSockets() >= this.limits.maxPeerSockets && !this.isConnected(peer)) {
      return tooMany(`this group accepts at most ${this.limits.maxPeerSockets} device and gateway sockets`);
    }
    return null;
  }

  /** Ends a peer's older sockets (4001): one socket per peer. */
  replace(peer: Peer): void {
    for (const ws of this.ofPeer(peer)) this.end(ws, "replaced");
  }

  /** Device and gateway sockets that still speak for their peer (ended ones do not count). */
  private livePeerSockets(): number {
    if (this.livePeers === null) {
      let n = 0;
      for (const ws of this.ctx.getWebSockets()) {
        const c = this.get(ws);
        if (c?.kind === "peer" && c.ended === null) n++;
      }
      this.livePeers = n;
    }
    return this.livePeers;
  }

  /** Accepts a new hibernatable socket for a peer (opted in to downlink or not); the response goes back to the client. */
  acceptPeer(peer: Peer, now: number, downlink = false): { conn: PeerConnection; response: Response } {
    const { ws, response } = this.accept({ kind: "peer", peer, connectedAt: now, ...(downlink ? { downlink: true as const } : {}) });
    const conn = new PeerConnection(ws, peer, now, null, downlink);
    this.known.set(ws, conn);
    if (this.livePeers !== null) this.livePeers++;
    return { conn, response };
  }

  /** Accepts a new hibernatable dashboard socket. */
  acceptDashboard(now: number): { conn: DashboardConnection; response: Response } {
    const { ws, response } = this.accept({ kind: "dashboard", connectedAt: now });
    const conn = new DashboardConnection(ws, now);
    this.known.set(ws, conn);
    return { conn, response };
  }

  private accept(role: SocketRole): { ws: WebSocket; response: Response } {
    const pair = new WebSocketPair();
    const server = pair[1];
    const tags = [role.kind === "peer" ? peerTag(role.peer) : DASHBOARD_TAG];
    if (role.kind === "peer" && role.peer.kind === "gateway" && role.downlink) tags.push(DOWNLINK_GATEWAY_TAG);
    this.ctx.acceptWebSocket(server, tags);
    server.serializeAttachment(toAttachment(role));
    return { ws: server, response: new Response(null, { status: 101, webSocket: pair[0] }) };
  }

  /** Open sockets of one peer. */
  ofPeer(peer: Peer): WebSocket[] {
    return this.ctx.getWebSockets(peerTag(peer));
  }

  /** Open dashboard sockets (restored ones included). */
  dashboards(): WebSocket[] {
    return this.ctx.getWebSockets(DASHBOARD_TAG);
  }

  /**
   * Open sockets that opted in to downlink and still speak for their peer:
   * of one peer, or of every gateway (found by their tag, without a scan
   * of every socket).
   */
  downlinkSockets(peer: Peer | "gateways"): PeerConnection[] {
    const out: PeerConnection[] = [];
    for (const ws of peer === "gateways" ? this.ctx.getWebSockets(DOWNLINK_GATEWAY_TAG) : this.ofPeer(peer)) {
      const c = this.get(ws);
      if (c?.kind === "peer" && c.ended === null && c.downlink) out.push(c);
    }
    return out;
  }

  /** Devices with a socket of their own (devices heard through a gateway have none). */
  onlineDevices(): Set<string> {
    const online = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const c = this.get(ws);
      if (c?.kind === "peer" && c.ended === null && c.peer.kind === "device") online.add(c.peer.id);
    }
    return online;
  }

  /** Whether a peer has an open socket, other than `except`, that still speaks for it. */
  isConnected(peer: Peer, except?: WebSocket): boolean {
    return this.ofPeer(peer).some((ws) => {
      if (ws === except) return false;
      const c = this.get(ws);
      return c?.kind === "peer" && c.ended === null;
    });
  }

  /** Drops a socket that is gone; returns what it was. */
  forget(ws: WebSocket): Connection | null {
    // Only a socket still in `known` is in the live count (a second close
    // event for the same socket must not count it out twice).
    const counted = this.known.has(ws);
    const c = this.get(ws);
    if (counted && this.livePeers !== null && c?.kind === "peer" && c.ended === null) this.livePeers--;
    this.known.delete(ws);
    return c;
  }
}

/** Connect time from a socket's attachment, without caching its connection. */
function attachedAt(ws: WebSocket): number {
  const role = fromAttachment(ws.deserializeAttachment());
  return role?.connectedAt ?? 0;
}

function tooMany(message: string): Response {
  return jsonError(503, "too_many_sockets", message, { "retry-after": "30" });
}

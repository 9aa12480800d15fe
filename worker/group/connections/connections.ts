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
import { peerTag, type Peer } from "../peer.ts";
import { fromAttachment, isCurrent, toAttachment, type SocketRole } from "./attachment.ts";

/** Tag of dashboard (live) sockets. */
const DASHBOARD_TAG = "live";

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

  constructor(ws: WebSocket, peer: Peer, connectedAt: number) {
    super(ws, connectedAt);
    this.peer = peer;
  }
}

/** A dashboard's (live) socket. */
export class DashboardConnection extends OpenSocket {
  readonly kind = "dashboard";
}

export type Connection = PeerConnection | DashboardConnection;

function connectionOf(ws: WebSocket, role: SocketRole): Connection {
  return role.kind === "peer" ? new PeerConnection(ws, role.peer, role.connectedAt) : new DashboardConnection(ws, role.connectedAt);
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

export class Connections {
  private readonly ctx: DurableObjectState;
  private readonly limits: Pick<Limits, "maxPeerSockets" | "maxDashboardSockets">;
  /** A cache of what the runtime stores with each socket; may be lost with the object. */
  private readonly known = new Map<WebSocket, Connection>();

  constructor(ctx: DurableObjectState, limits: Pick<Limits, "maxPeerSockets" | "maxDashboardSockets">) {
    this.ctx = ctx;
    this.limits = limits;
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
    }
    return c;
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
    const peers = this.ctx.getWebSockets().length - dashboards;
    if (peers >= this.limits.maxPeerSockets && this.ofPeer(peer).length === 0) {
      return tooMany(`this group accepts at most ${this.limits.maxPeerSockets} device and gateway sockets`);
    }
    return null;
  }

  /** Closes a peer's older sockets (4001): one socket per peer. */
  replace(peer: Peer): void {
    for (const ws of this.ofPeer(peer)) closeSafely(ws, CloseCode.Replaced, `replaced by a newer connection for this ${peer.kind}`);
  }

  /** Accepts a new hibernatable socket for a peer; the response goes back to the client. */
  acceptPeer(peer: Peer, now: number): { conn: PeerConnection; response: Response } {
    const { ws, response } = this.accept({ kind: "peer", peer, connectedAt: now });
    const conn = new PeerConnection(ws, peer, now);
    this.known.set(ws, conn);
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
    this.ctx.acceptWebSocket(server, [role.kind === "peer" ? peerTag(role.peer) : DASHBOARD_TAG]);
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

  /** Devices with a socket of their own (devices heard through a gateway have none). */
  onlineDevices(): Set<string> {
    const online = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const c = this.get(ws);
      if (c?.kind === "peer" && c.peer.kind === "device") online.add(c.peer.id);
    }
    return online;
  }

  /** Whether a peer has an open socket other than `except`. */
  isConnected(peer: Peer, except?: WebSocket): boolean {
    return this.ofPeer(peer).some((ws) => ws !== except);
  }

  /** Drops a socket that is gone; returns what it was. */
  forget(ws: WebSocket): Connection | null {
    const c = this.get(ws);
    this.known.delete(ws);
    return c;
  }
}

function tooMany(message: string): Response {
  return jsonError(503, "too_many_sockets", message, { "retry-after": "30" });
}

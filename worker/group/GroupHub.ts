/**
 * One Durable Object per device group. Thin: it routes lifecycle events to
 * small modules (handlers/, ingest.ts, store.ts) and owns nothing heavier
 * than what hibernation may throw away.
 *
 * What may be lost at any time (hibernation, eviction, restart) and how it
 * comes back:
 * - `Ingest` caches and pending batches: rebuilt from SQLite; unacked batches are resent by devices.
 * - Socket sessions: restored from attachments via `ctx.getWebSockets()`.
 * - Live view state, rules and per-socket summary progress (watch.ts): rebuilt from SQLite on first use.
 */
import { DurableObject } from "cloudflare:workers";
import type { DeviceInfo } from "../../schema/api.ts";
import { readLimits, type Limits } from "../../schema/limits.ts";
import { CloseCode, PING_TEXT, PONG_TEXT, isValidId } from "../../schema/protocol.ts";
import type { AggregateQuery } from "../http/params.ts";
import { jsonError } from "../http/json.ts";
import { log } from "../log.ts";
import { connectPeer } from "./handlers/connect.ts";
import { handleDeviceFrame } from "./handlers/device-frame.ts";
import { connectGateway, handleGatewayFrame } from "./handlers/gateway.ts";
import { Ingest } from "./ingest.ts";
import { deviceTag, gatewayTag, readSession, type Session } from "./sessions.ts";
import { Store, type Bucket } from "./store.ts";
import { Watch } from "./watch.ts";
import { REGISTRY_NAME } from "../registry.ts";
import { Revocations, type PeerKind, type Revocation } from "./revocations.ts";
import { LIVE_TAG } from "./live-sockets.ts";
import { Throttle } from "./throttle.ts";
import { RateHistory } from "./rate-history.ts";
import type { RatesResponse } from "../../schema/api.ts";
import type { Alert, RulesDoc } from "../../schema/rules.ts";


export class GroupHub extends DurableObject<Env> {
  private readonly store: Store;
  private readonly limits: Limits;
  private readonly ingest: Ingest;
  private readonly watch: Watch;
  private readonly revocations: Revocations;
  private readonly throttle: Throttle;
  private readonly rates: RateHistory;
  /** Sessions of open sockets, restored from attachments; a cache of what the runtime stores. */
  private readonly sessions = new Map<WebSocket, Session>();
  private groupName = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.limits = readLimits({ ...env });
    this.store = new Store(ctx.storage);
    this.revocations = new Revocations(this.store.db);
    this.throttle = new Throttle(this.limits);
    const rates = (this.rates = new RateHistory(ctx.storage.kv));
    const watch = new Watch(ctx, this.store.db, () => this.group(), () => this.onlineDevices());
    this.watch = watch;
    this.ingest = new Ingest(this.store, this.limits, () => this.group(), {
      hasPendingWork: () => watch.hasPendingRejects,
      inCommit: (batches, now) => {
        rates.add(batches.reduce((n, b) => n + b.readings.length, 0), now);
        return watch.inCommit(batches, now);
      },
      afterCommit: (c, alerts, now) => watch.afterCommit(c, alerts, now),
      afterFailure: () => watch.afterFailure(),
    });
    // Runs again on every wake from hibernation: keep it to migrations and
    // cheap setup. Events wait until it finishes.
    void ctx.blockConcurrencyWhile(() => this.store.migrate());
    // Answered by the runtime without waking the object, so keep-alives cost nothing.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
    // After a wake from hibernation the sockets are still open; their
    // attachments say who is on each one.
    for (const ws of ctx.getWebSockets()) this.session(ws);
  }

  /** The session of a socket: from the cache, else from its attachment (one structured-clone read). */
  private session(ws: WebSocket): Session | null {
    let s = this.sessions.get(ws);
    if (!s) {
      s = readSession(ws) ?? undefined;
      if (!s) return null;
      this.sessions.set(ws, s);
      this.groupName ||= s.g;
    }
    return s;
  }

  /** The group's id, from the request or a restored socket (ctx.id.name is not always set). */
  private group(): string {
    return this.groupName || "?";
  }

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const group = url.searchParams.get("group") ?? "";
      // The Worker sends `/device?device=`, `/gateway?gateway=` or `/live`.
      const kind = url.pathname.slice(1);
      if (kind === "live" && isValidId(group) && request.headers.get("upgrade")?.toLowerCase() === "websocket") {
        this.groupName = group;
        if (this.ctx.getWebSockets(LIVE_TAG).length >= this.limits.maxDashboardSockets) {
          return jsonError(503, "too_many_sockets", `this group accepts at most ${this.limits.maxDashboardSockets} dashboard sockets`, {
            "retry-after": "30",
          });
        }
        return this.connectLive(group);
      }
      const id = url.searchParams.get(kind) ?? "";
      if ((kind !== "device" && kind !== "gateway") || !isValidId(group) || !isValidId(id)) {
        return jsonError(404, "not_found", "no such route");
      }
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return jsonError(426, "upgrade_required", "WebSocket upgrade required");
      }
      this.groupName = group;
      if (this.revocations.isRevoked(kind, id)) {
        return jsonError(403, "revoked", `this ${kind} has been revoked by an operator`);
      }
      const tag = kind === "device" ? deviceTag(id) : gatewayTag(id);
      // A reconnect replaces its own socket, so it never counts against the limit.
      const peers = this.ctx.getWebSockets().length - this.ctx.getWebSockets(LIVE_TAG).length;
      if (peers >= this.limits.maxPeerSockets && this.ctx.getWebSockets(tag).length === 0) {
        return jsonError(503, "too_many_sockets", `this group accepts at most ${this.limits.maxPeerSockets} device and gateway sockets`, {
          "retry-after": "30",
        });
      }
      this.throttle.reset(tag);
      if (kind === "gateway") {
        this.register(group, Date.now());
        const cx = { ctx: this.ctx, store: this.store, ingest: this.ingest, limits: this.limits, sessions: this.sessions };
        return connectGateway(cx, group, id);
      }
      return this.connectDevice(group, id);
    } catch (err) {
      log.error("group.fetch", err, { group: this.group() });
      return jsonError(500, "internal", "internal error");
    }
  }

  private registered = false;

  /**
   * Lists the group in the registry (GET /v1/groups) once per wake, the first
   * time a device or gateway connects. Best effort: a failure is logged and
   * retried at the next wake; it never holds up a connection.
   */
  private register(group: string, now: number): void {
    if (this.registered) return;
    this.registered = true;
    const failed = (err: unknown) => {
      this.registered = false;
      log.error("group.register", err, { group });
    };
    try {
      this.ctx.waitUntil(this.env.REGISTRY.getByName(REGISTRY_NAME).add(group, now).catch(failed));
    } catch (err) {
      failed(err);
    }
  }

  private connectDevice(group: string, device: string): Response {
    const now = Date.now();
    this.register(group, now);
    const cx = { ctx: this.ctx, ingest: this.ingest, sessions: this.sessions };
    const response = connectPeer(cx, { k: "device", g: group, d: device, t: now }, () => {
      this.store.touchDevice(device, now);
      return this.store.lastSeq(device);
    });
    this.watch.setOnline(device, true, now);
    return response;
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const session = this.session(ws);
    try {
      if (!session) {
        ws.close(CloseCode.InternalError, "unknown session");
        return;
      }
      if (session.k === "live") {
        this.watch.fanout.onMessage(ws, message);
        return;
      }
      const cx = {
        ingest: this.ingest,
        limits: this.limits,
        throttle: this.throttle,
        onReject: (peer: string, code: string) => this.onReject(peer, code),
      };
      if (session.k === "gateway") handleGatewayFrame(cx, ws, session, message);
      else handleDeviceFrame(cx, ws, session, message);
    } catch (err) {
      log.error("group.webSocketMessage", err, { group: this.group(), peer: session ? peerName(session) : undefined });
      try {
        ws.close(CloseCode.InternalError, "internal error");
      } catch {
        // already closed
      }
    }
  }

  override webSocketClose(ws: WebSocket, code: number, _reason: string, _wasClean: boolean): void {
    try {
      this.forget(ws);
    } catch (err) {
      log.error("group.webSocketClose", err, { group: this.group() });
    }
    // Complete the closing handshake. 1005 (no status) and 1006 (abnormal)
    // are reserved and may not be sent: https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1
    try {
      ws.close(isSendableCloseCode(code) ? code : CloseCode.Normal, "closing");
    } catch {
      // the socket is already fully closed
    }
  }

  override webSocketError(ws: WebSocket, error: unknown): void {
    const session = this.session(ws);
    log.error("group.webSocketError", error, { group: this.group(), peer: session ? peerName(session) : undefined });
    this.forget(ws);
  }

  /** A socket is gone: drop its session and update the live view. */
  private forget(ws: WebSocket): void {
    const s = this.session(ws);
    this.sessions.delete(ws);
    if (s?.k === "live") this.watch.fanout.onClose(ws);
    if (s?.k === "device") {
      const others = this.ctx.getWebSockets(deviceTag(s.d)).filter((o) => o !== ws);
      if (others.length === 0) this.watch.setOnline(s.d, false, Date.now());
    }
  }

  private onlineDevices(): Set<string> {
    const online = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const s = this.session(ws);
      // Devices heard through a gateway have no socket of their own.
      if (s?.k === "device") online.add(s.d);
    }
    return online;
  }

  /** A rejected batch: counted with the next group commit and shown live. */
  private onReject(peer: string, code: string): void {
    this.watch.reject(peer, code, Date.now());
    this.ingest.schedule();
  }

  private connectLive(group: string): Response {
    this.ingest.flush();
    const pair = new WebSocketPair();
    const server = pair[1];
    this.watch.acceptLive(server, group, Date.now());
    this.sessions.set(server, { k: "live", g: group, t: Date.now() });
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  /** Offline alerts are checked by alarm, which also wakes a hibernating group. */
  override alarm(): void {
    try {
      this.watch.alarm(Date.now());
    } catch (err) {
      log.error("group.alarm", err, { group: this.group() });
    }
  }

  /** RPC for GET /v1/groups/{group}/rules. */
  getRules(): RulesDoc {
    return this.watch.getRules();
  }

  /** RPC for PUT /v1/groups/{group}/rules (already validated by the Worker). */
  putRules(doc: RulesDoc): RulesDoc {
    this.ingest.flush();
    return this.watch.putRules(doc, Date.now());
  }

  /** RPC for GET /v1/groups/{group}/revocations. */
  listRevocations(): Revocation[] {
    return this.revocations.list();
  }

  /** RPC for PUT /v1/groups/{group}/revocations/{kind}/{id}: refuses it from now on and closes its socket at once. */
  revoke(kind: PeerKind, id: string): Revocation {
    const r = this.revocations.revoke(kind, id, Date.now());
    for (const ws of this.ctx.getWebSockets(kind === "device" ? deviceTag(id) : gatewayTag(id))) {
      try {
        ws.close(CloseCode.Revoked, `this ${kind} has been revoked`);
      } catch {
        // already closing
      }
      this.forget(ws);
    }
    return r;
  }

  /** RPC for DELETE /v1/groups/{group}/revocations/{kind}/{id}. */
  restore(kind: PeerKind, id: string): boolean {
    return this.revocations.restore(kind, id);
  }

  /** RPC for GET /v1/groups/{group}/alerts. */
  listAlerts(activeOnly: boolean, limit: number): Alert[] {
    this.ingest.flush();
    return this.watch.store.listAlerts(activeOnly, limit);
  }

  /** RPC for GET /v1/groups/{group}/rates. */
  rateHistory(): RatesResponse {
    this.ingest.flush();
    return this.rates.series(Date.now());
  }

  /** RPC for GET /v1/groups/{group}/devices. */
  listDevices(): DeviceInfo[] {
    this.ingest.flush();
    const online = this.onlineDevices();
    return this.store.listDevices().map((d) => ({ ...d, online: online.has(d.id) }));
  }

  /** RPC for GET /v1/groups/{group}/aggregates. Commits pending batches first so acked data is visible. */
  queryAggregates(q: AggregateQuery): { buckets: Bucket[]; truncated: boolean } {
    this.ingest.flush();
    return this.store.queryAggregates(q);
  }
}

/** For logs: which peer a socket belongs to. */
function peerName(s: Session): string {
  return s.k === "device" ? `device:${s.d}` : s.k === "gateway" ? `gateway:${s.w}` : "dashboard";
}

/** Codes an endpoint may put in a Close frame (RFC 6455 section 7.4). */
function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/**
 * One Durable Object per device group. A thin router of lifecycle events
 * (fetch, socket messages and closes, alarm, RPC) to the pipeline stages
 * (docs/architecture.md),
 * each behind a small host interface it needs from this object:
 *
 *   connections/  accepting sockets, attachments, tags, limits, revocations
 *   ingest/       frame validation and dispatch, rate limit, group commit, SQLite
 *   live/         dashboards: live state and summary fan-out
 *   alerts/       rules, threshold and offline alerts
 *   downlink/     commands and desired configuration for devices (queue and config in SQLite)
 *   archive/      raw readings captured in the commit, flushed to R2 as Parquet
 *   history/      minute, hour and day buckets: queries, retention, backfill
 *   scheduler.ts  the one alarm, shared by every stage's timed tasks
 *
 * The object's name is the group's id (objects are reached by name, so
 * `ctx.id.name` holds it; `?group=` from the Worker is accepted as well).
 *
 * In-memory caches, and how each comes back after hibernation or eviction, are
 * listed where the stages are built: worker/group/stages.ts.
 */
import { DurableObject } from "cloudflare:workers";
import type { AggregateQuery, AggregatesResponse, CommandEntry, ConfigResponse, DeviceInfo, RatesResponse, Retention, StorageResponse } from "../../schema/api.ts";
import { encodeCbor } from "../../schema/cbor.ts";
import { CloseCode, DOWNLINK_PARAM, PING_TEXT, PONG_TEXT, PROTOCOL_VERSION, isValidId } from "../../schema/protocol.ts";
import type { Alert, RulesDoc } from "../../schema/rules.ts";
import { jsonError } from "../http/json.ts";
import { log } from "../log.ts";
import type { Alerts } from "./alerts/alerts.ts";
import type { Archive, RawFilter, RawResult } from "./archive/archive.ts";
import { closeSafely, isSendableCloseCode, type Connections, type PeerConnection } from "./connections/connections.ts";
import type { PeerSeq, PeerSeqs } from "./connections/peer-seqs.ts";
import type { Revocation, Revocations } from "./connections/revocations.ts";
import type { CommandRequest, Downlink, Queued } from "./downlink/downlink.ts";
import type { History } from "./history/history.ts";
import type { Ingest } from "./ingest/ingest.ts";
import { Store } from "./ingest/store.ts";
import type { Live } from "./live/live.ts";
import { peerName, type Peer, type PeerKind } from "./peer.ts";
import type { Scheduler } from "./scheduler.ts";
import { buildStages } from "./stages.ts";
import type { Registration } from "../registry.ts";

export class GroupHub extends DurableObject<Env> {
  private readonly store: Store;
  private readonly connections: Connections;
  private readonly revocations: Revocations;
  private readonly seqs: PeerSeqs;
  private readonly ingest: Ingest<Alert[]>;
  private readonly live: Live;
  private readonly alerts: Alerts;
  private readonly archive: Archive;
  private readonly history: History;
  private readonly registration: Registration;
  private readonly scheduler: Scheduler;
  private readonly downlink: Downlink;
  /** The group's id when `ctx.id.name` is not set (an object reached by id rather than by name). */
  private fallbackName = "";

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const store = new Store(ctx.storage);
    // Runs again on every wake from hibernation: keep it to migrations and
    // cheap setup. Events wait until the migrations finish.
    void ctx.blockConcurrencyWhile(async () => {
      await store.migrate();
      this.history.wake(Date.now());
    });
    // Answered by the runtime without waking the object, so keep-alives cost nothing.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_TEXT, PONG_TEXT));
    ({
      store: this.store, connections: this.connections, revocations: this.revocations, seqs: this.seqs, ingest: this.ingest,
      live: this.live, alerts: this.alerts, archive: this.archive, history: this.history, registration: this.registration,
      scheduler: this.scheduler, downlink: this.downlink,
    } = buildStages(ctx, env, store, () => this.name));
  }

  /** The group's id. */
  private get name(): string {
    return this.ctx.id.name ?? (this.fallbackName || "?");
  }

  override async fetch(request: Request): Promise<Response> {
    try {
      const url = new URL(request.url);
      const group = url.searchParams.get("group");
      if (group !== null && isValidId(group)) this.fallbackName ||= group;
      if (!isValidId(this.name)) return jsonError(404, "not_found", "no such route");
      // The Worker sends `/device?device=`, `/gateway?gateway=` or `/live`, always as an upgrade.
      const route = url.pathname.slice(1);
      const upgrade = request.headers.get("upgrade")?.toLowerCase() === "websocket";
      if (route === "live" && upgrade) return this.connectDashboard();
      if (route !== "device" && route !== "gateway") return jsonError(404, "not_found", "no such route");
      const id = url.searchParams.get(route) ?? "";
      if (!isValidId(id)) return jsonError(404, "not_found", "no such route");
      if (!upgrade) return jsonError(426, "upgrade_required", "WebSocket upgrade required");
      return this.connectPeer({ kind: route, id }, url.searchParams.get(DOWNLINK_PARAM) === "1");
    } catch (err) {
      log.error("group.fetch", err, { group: this.name });
      return jsonError(500, "internal", "internal error");
    }
  }

  private connectPeer(peer: Peer, downlink: boolean): Response {
    if (this.revocations.isRevoked(peer.kind, peer.id)) {
      return jsonError(403, "revoked", `this ${peer.kind} has been revoked by an operator`);
    }
    const refusal = this.connections.refusal(peer);
    if (refusal) return refusal;
    const waitMs = this.ingest.connectWait(peer);
    if (waitMs > 0) {
      const message = `this ${peer.kind} sent more work than its budget; reconnect in ${waitMs} ms`;
      return jsonError(429, "rate_limited", message, { "retry-after": String(Math.ceil(waitMs / 1000)) });
    }
    const now = Date.now();
    this.registration.note(this.name, now);
    const lastSeq = this.ingest.connect(peer, now);
    this.connections.replace(peer);
    const { conn, response } = this.connections.acceptPeer(peer, now, downlink);
    conn.send(encodeCbor({ type: "hello", v: PROTOCOL_VERSION, lastSeq }));
    // Every hello is followed by what still waits for the peer (docs/protocol.md, "Downlink").
    if (downlink) this.downlink.onHello(peer, conn, now);
    if (peer.kind === "device") this.live.setOnline(peer.id, true, now);
    return response;
  }

  private connectDashboard(): Response {
    const refusal = this.connections.refusal(null);
    if (refusal) return refusal;
    // Commit pending batches first, so the snapshot holds every acked one.
    this.ingest.flush();
    const now = Date.now();
    const { conn, response } = this.connections.acceptDashboard(now);
    this.live.welcome(conn.ws, { alerts: this.alerts.list(false, 50), rules: this.alerts.rules() }, now);
    return response;
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const conn = this.connections.get(ws);
    try {
      if (!conn) closeSafely(ws, CloseCode.InternalError, "unknown session");
      else if (conn.kind === "dashboard") this.live.onMessage(ws, message);
      else if (this.speaksForPeer(conn)) this.ingest.onMessage(conn, message);
    } catch (err) {
      log.error("group.webSocketMessage", err, { group: this.name, peer: conn?.kind === "peer" ? peerName(conn.peer) : conn?.kind });
      closeSafely(ws, CloseCode.InternalError, "internal error");
    }
  }

  /**
   * Checked on every frame, before it is decoded: a socket that was
   * replaced, or whose peer is revoked (the set is cached and updated by the
   * revocation route in this same object), speaks for nobody. Its frame is
   * dropped and counted (live totals `rejected.replaced` / `rejected.revoked`,
   * and the device's rejection count), and the socket is ended if it was not yet.
   */
  private speaksForPeer(conn: PeerConnection): boolean {
    if (conn.ended === null && !this.revocations.isRevoked(conn.peer.kind, conn.peer.id)) return true;
    if (conn.ended === null) this.endSocket(conn.ws, "revoked");
    this.live.rejected(conn.peer, conn.ended ?? "revoked", Date.now());
    this.ingest.schedule();
    return false;
  }

  /** Ends a peer's socket (replaced or revoked) and takes its device offline if it has no other. */
  private endSocket(ws: WebSocket, reason: "replaced" | "revoked"): void {
    const conn = this.connections.get(ws);
    this.connections.end(ws, reason);
    if (conn?.kind === "peer" && conn.peer.kind === "device" && !this.connections.isConnected(conn.peer)) {
      this.live.setOnline(conn.peer.id, false, Date.now());
    }
  }

  override webSocketClose(ws: WebSocket, code: number, _reason: string, _wasClean: boolean): void {
    try {
      this.forget(ws);
    } catch (err) {
      log.error("group.webSocketClose", err, { group: this.name });
    }
    // Complete the closing handshake. 1005 (no status) and 1006 (abnormal)
    // are reserved and may not be sent: https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1
    closeSafely(ws, isSendableCloseCode(code) ? code : CloseCode.Normal, "closing");
  }

  override webSocketError(ws: WebSocket, error: unknown): void {
    try {
      const conn = this.forget(ws);
      log.error("group.webSocketError", error, { group: this.name, peer: conn?.kind === "peer" ? peerName(conn.peer) : conn?.kind });
    } catch (err) {
      log.error("group.webSocketError", err, { group: this.name });
    }
  }

  /** A socket is gone: drop its connection and update the live view. */
  private forget(ws: WebSocket): ReturnType<Connections["forget"]> {
    const conn = this.connections.forget(ws);
    if (conn?.kind === "dashboard") this.live.onClose(ws);
    if (conn?.kind === "peer" && conn.peer.kind === "device" && !this.connections.isConnected(conn.peer, ws)) {
      this.live.setOnline(conn.peer.id, false, Date.now());
    }
    return conn;
  }

  /** The one alarm runs every stage's due tasks (scheduler.ts); it also wakes a hibernating group. */
  override async alarm(): Promise<void> {
    try {
      await this.scheduler.alarm(Date.now());
    } catch (err) {
      log.error("group.alarm", err, { group: this.name });
    }
  }

  /** RPC for GET /v1/groups/{group}/rules. */
  getRules(): RulesDoc {
    return this.rpc("getRules", () => this.alerts.rules());
  }

  /** RPC for PUT /v1/groups/{group}/rules (already validated by the Worker). */
  putRules(doc: RulesDoc): RulesDoc {
    return this.rpc("putRules", () => {
      this.ingest.flush();
      const rules = this.alerts.putRules(doc, Date.now());
      this.live.markDirty();
      return rules;
    });
  }

  /** RPC for GET /v1/groups/{group}/revocations. */
  listRevocations(): Revocation[] {
    return this.rpc("listRevocations", () => this.revocations.list());
  }

  /** RPC for PUT /v1/groups/{group}/revocations/{kind}/{id}: refuses it from now on and closes its socket at once. */
  revoke(kind: PeerKind, id: string): Revocation {
    return this.rpc("revoke", () => {
      const r = this.revocations.revoke(kind, id, Date.now());
      for (const ws of this.connections.ofPeer({ kind, id })) this.endSocket(ws, "revoked");
      return r;
    });
  }

  /** RPC for DELETE /v1/groups/{group}/revocations/{kind}/{id}. */
  restore(kind: PeerKind, id: string): boolean {
    return this.rpc("restore", () => this.revocations.restore(kind, id));
  }

  /** RPC for GET /v1/groups/{group}/peers/{kind}/{id}/seq; null if the peer never connected. */
  peerSeq(kind: PeerKind, id: string): PeerSeq | null {
    return this.rpc("peerSeq", () => {
      this.ingest.flush();
      return this.seqs.get({ kind, id });
    });
  }

  /** RPC for PUT /v1/groups/{group}/peers/{kind}/{id}/seq: sets lastSeq (audited, and logged); null if the peer never connected. */
  resetSeq(kind: PeerKind, id: string, lastSeq: number, by: string): PeerSeq | null {
    return this.rpc("resetSeq", () => {
      const peer = { kind, id };
      const r = this.ingest.resetSeq(peer, () => this.seqs.reset(peer, lastSeq, by, Date.now()));
      if (r) log.info("group.seq_reset", { group: this.name, peer: peerName(peer), by, old: r.resets[0]?.oldSeq, new: lastSeq });
      return r;
    });
  }

  /** RPC for POST /v1/groups/{group}/devices/{device}/commands (body checked by the Worker). */
  queueCommand(device: string, req: CommandRequest): Promise<Queued> {
    return this.rpc("queueCommand", () => this.downlink.queue(device, req));
  }

  /** RPC for GET /v1/groups/{group}/devices/{device}/commands, newest first. */
  listCommands(device: string, limit: number): CommandEntry[] {
    return this.rpc("listCommands", () => this.downlink.list(device, limit));
  }

  /** RPC for GET /v1/groups/{group}/devices/{device}/commands/{id}; null if the device has no such command. */
  getCommand(device: string, id: string): CommandEntry | null {
    return this.rpc("getCommand", () => this.downlink.get(device, id));
  }

  /** RPC for PUT /v1/groups/{group}/devices/{device}/config (checked by the Worker); the new version. */
  putConfig(device: string, desired: Record<string, unknown>): Promise<number> {
    return this.rpc("putConfig", () => this.downlink.putConfig(device, desired));
  }

  /** RPC for PUT /v1/groups/{group}/config: `devices`, or every device the group has seen; how many. */
  putGroupConfig(devices: string[] | null, desired: Record<string, unknown>): Promise<number> {
    return this.rpc("putGroupConfig", () => this.downlink.putConfigMany(devices ?? this.store.listDevices().map((d) => d.id), desired));
  }

  /** RPC for GET /v1/groups/{group}/devices/{device}/config. */
  getConfig(device: string): ConfigResponse {
    return this.rpc("getConfig", () => this.downlink.config(device));
  }

  /** RPC for GET /v1/groups/{group}/alerts. */
  listAlerts(activeOnly: boolean, limit: number): Alert[] {
    return this.rpc("listAlerts", () => {
      this.ingest.flush();
      return this.alerts.list(activeOnly, limit);
    });
  }

  /** RPC for GET /v1/groups/{group}/rates. */
  rateHistory(): RatesResponse {
    return this.rpc("rateHistory", () => {
      this.ingest.flush();
      return this.live.rateHistory(Date.now());
    });
  }

  /** RPC for GET /v1/groups/{group}/devices. */
  listDevices(): DeviceInfo[] {
    return this.rpc("listDevices", () => {
      this.ingest.flush();
      const online = this.connections.onlineDevices();
      return this.store.listDevices().map((d) => ({ ...d, online: online.has(d.id) }));
    });
  }

  /** RPC for GET /v1/groups/{group}/aggregates. Commits pending batches first so acked data is visible. */
  queryAggregates(q: AggregateQuery): AggregatesResponse {
    return this.rpc("queryAggregates", () => {
      this.ingest.flush();
      return this.history.query(q, Date.now());
    });
  }

  /** RPC for GET /v1/groups/{group}/readings: raw readings from the archive and the rows not yet flushed. */
  async readRaw(q: RawFilter): Promise<RawResult> {
    try {
      this.ingest.flush();
      return await this.archive.read(q);
    } catch (err) {
      log.error("group.readRaw", err, { group: this.name });
      throw err;
    }
  }

  /** RPC for GET /v1/groups/{group}/storage. */
  storage(): StorageResponse {
    return this.rpc("storage", () => {
      this.ingest.flush();
      return this.history.storage();
    });
  }

  /** RPC for GET /v1/groups/{group}/retention. */
  getRetention(): Retention {
    return this.rpc("getRetention", () => this.history.retention());
  }

  /** RPC for PUT /v1/groups/{group}/retention (already validated by the Worker); pruning by it starts at once. */
  putRetention(r: Retention): Retention {
    return this.rpc("putRetention", () => this.history.putRetention(r, Date.now()));
  }

  /** Runs an RPC method; a failure is logged with the group's name before the Worker sees it. */
  private rpc<T>(method: string, run: () => T): T {
    try {
      return run();
    } catch (err) {
      log.error(`group.${method}`, err, { group: this.name });
      throw err;
    }
  }
}

/**
 * Device-side client for the hub's device socket (docs/protocol.md).
 *
 * It connects, reads `hello`, sends batches, and keeps every batch until the
 * hub acks it. After a reconnect it resends what was not acked, starting
 * above the `lastSeq` the hub reports, so the hub applies each batch exactly
 * once. The simulator, the MQTT bridge and the benchmarks all use it.
 *
 * The same logic serves gateway sockets (docs/protocol.md, "Gateway
 * socket"): with `endpoint: "gateways"` the id names a gateway and each
 * reading carries its device as a fourth element; bridge/gateway-client.ts
 * wraps that.
 */
import { EventEmitter } from "node:events";
import WebSocket from "ws";
import { decodeCbor, encodeCbor, type CborValue } from "../schema/cbor.ts";
import { CloseCode, type Reading } from "../schema/protocol.ts";
import { validateHubFrame } from "../schema/validate.ts";
import { encodeBatchFrame } from "./batch-frame.ts";
import { DownlinkRunner } from "./downlink.ts";
import { closeSocket, corkForTick, deviceSocketUrl } from "./socket.ts";
import type { ClientState, DeviceClientEvents, DeviceClientOptions } from "./options.ts";

export type { ClientState, DeviceClientEvents, DeviceClientOptions } from "./options.ts";

interface Entry<R> {
  seq: number; // 0 until first sent
  readings: readonly R[];
  sentAt: number;
}

/** A device connection that survives disconnects without losing or duplicating batches. */
export class DeviceClient<R extends readonly CborValue[] = Reading> extends EventEmitter<DeviceClientEvents<R>> {
  readonly opts: Required<DeviceClientOptions<R>>;
  private ws: WebSocket | null = null;
  private queue: Entry<R>[] = [];
  /** Entries [0, inFlight) were sent on the current socket and await acks. */
  private inFlight = 0;
  private nextSeq: number;
  private attempt = 0;
  private helloSeen = false;
  private stopped = false;
  private suspended = false;
  private throttledUntil = 0;
  /** After a `rate_limited` or `overloaded` error without seq: no reconnect before this time. */
  private reconnectNotBefore = 0;
  private corked = false;
  private throttleTimer: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;
  /** When the current socket last delivered a frame (any frame proves the hub is alive). */
  private lastHeardAt = 0;
  private idleWaiters: (() => void)[] = [];
  state: ClientState = "idle";
  /** Command and configuration handlers, with the memory that runs each command once (with `downlink: true`). */
  readonly downlink: DownlinkRunner;

  constructor(opts: DeviceClientOptions<R>) {
    super();
    this.opts = {
      endpoint: "devices",
      unacked: [],
      tokenInQuery: false,
      maxInFlight: 32,
      maxQueued: 10_000,
      lastSeq: 0,
      backoffInitialMs: 250,
      backoffMaxMs: 30_000,
      ackTimeoutMs: 30_000,
      keepAliveMs: 0,
      reconnectWhenReplaced: false,
      frames: "cbatch",
      values: "lossless",
      downlink: false,
      executed: [],
      ...opts,
    };
    this.downlink = new DownlinkRunner({ executed: this.opts.executed, send: (f) => this.helloSeen && this.sendRaw(encodeCbor(f)) });
    this.nextSeq = this.opts.lastSeq + 1;
    for (const u of [...this.opts.unacked].sort((a, b) => a.seq - b.seq)) {
      this.queue.push({ seq: u.seq, readings: u.readings, sentAt: 0 });
      if (u.seq >= this.nextSeq) this.nextSeq = u.seq + 1;
    }
  }

  /** Batches not yet acked, with their seqs once assigned (to save for a restart). */
  unackedBatches(): { seq: number; readings: readonly R[] }[] {
    return this.queue.filter((e) => e.seq !== 0).map((e) => ({ seq: e.seq, readings: e.readings }));
  }

  /** Batches queued but never sent (no seq yet). */
  unsentBatches(): (readonly R[])[] {
    return this.queue.filter((e) => e.seq === 0).map((e) => e.readings);
  }

  /** Highest seq assigned so far (what a device should save to continue later). */
  get lastAssignedSeq(): number {
    return this.nextSeq - 1;
  }

  /** Batches not yet acked (in flight or waiting). */
  get pending(): number {
    return this.queue.length;
  }

  /** Starts connecting; reconnects on its own until `close()`. */
  start(): this {
    if (this.state === "idle") this.connect();
    return this;
  }

  /**
   * Queues a batch. Returns false, and keeps nothing, when the queue is full
   * (the caller decides what to drop). The seq is assigned when the batch is
   * first sent, after `hello`, so a device with no saved state never reuses
   * a seq the hub has already applied.
   */
  send(readings: readonly R[]): boolean {
    if (this.stopped) throw new Error("client is closed");
    if (this.queue.length >= this.opts.maxQueued) return false;
    this.queue.push({ seq: 0, readings, sentAt: 0 });
    this.pump();
    return true;
  }

  /** Sends raw bytes or text as they are (tests and fault injection). */
  sendRaw(data: Uint8Array | string): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  /** Resolves when every queued batch has been acked (or rejected). */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops the connection as a network fault would; the client reconnects. */
  dropConnection(): void {
    this.ws?.terminate();
  }

  /** Goes offline (as a device losing its network): no socket until `resume()`; `send` keeps queueing. */
  suspend(): void {
    this.suspended = true;
    clearTimeout(this.timer);
    this.ws?.terminate();
    if (!this.ws) this.setState("offline");
  }

  /** Comes back from `suspend()`. */
  resume(): void {
    if (!this.suspended) return;
    this.suspended = false;
    if (!this.ws && !this.stopped) this.connect();
  }

  /** Stops for good: closes the socket and stops reconnecting. Unacked batches stay in `pending`. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.throttleTimer);
    clearInterval(this.keepAlive);
    if (this.ws) await closeSocket(this.ws, "client closing");
    this.setState("closed");
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private setState(s: ClientState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  private connect(): void {
    if (this.stopped || this.suspended) return;
    this.setState("connecting");
    this.helloSeen = false;
    this.inFlight = 0;
    const headers: Record<string, string> = this.opts.tokenInQuery ? {} : { authorization: `Bearer ${this.opts.token}` };
    const ws = new WebSocket(deviceSocketUrl(this.opts), { headers, perMessageDeflate: false, handshakeTimeout: 10_000 });
    ws.binaryType = "nodebuffer";
    this.ws = ws;
    ws.on("unexpected-response", (_req, res) => {
      this.emit("connectError", `hub answered ${res.statusCode}`, res.statusCode);
      res.resume();
      ws.terminate();
    });
    ws.on("error", (err) => {
      if (!this.helloSeen) this.emit("connectError", err.message);
    });
    ws.on("message", (data, isBinary) => {
      this.lastHeardAt = Date.now();
      if (!isBinary) return; // "pong"
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
      this.onFrame(bytes);
    });
    ws.on("close", (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.keepAlive);
      clearTimeout(this.timer);
      this.inFlight = 0;
      this.emit("disconnect", code, reason.toString());
      if (this.stopped) return;
      if (this.suspended) {
        this.setState("offline");
        return;
      }
      if (code === CloseCode.Replaced && !this.opts.reconnectWhenReplaced) {
        // Another connection took this device over; fighting it would flap both.
        this.stopped = true;
        this.setState("closed");
        return;
      }
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    this.setState("backoff");
    const ceiling = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    const floor = Math.max(0, this.reconnectNotBefore - Date.now());
    // Full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
    // a fleet that lost the hub together must not come back in lockstep.
    this.timer = setTimeout(() => this.connect(), floor + Math.random() * ceiling);
  }

  private onFrame(bytes: Uint8Array): void {
    const decoded = decodeCbor(bytes);
    const frame = decoded.ok ? validateHubFrame(decoded.value) : null;
    if (!frame) return; // a frame from a newer hub this client does not know
    switch (frame.type) {
      case "hello":
        this.onHello(frame.lastSeq);
        return;
      case "ack":
        this.onAck(frame.seq, frame.dup === true);
        return;
      case "error":
        this.emit("errorFrame", frame.code, frame.message, frame.seq);
        this.onError(frame.seq, frame.code, frame.message, frame.retryAfterMs);
        return;
      case "command":
      case "config":
        this.downlink.onFrame(frame);
        return;
    }
  }

  private onHello(lastSeq: number): void {
    this.helloSeen = true;
    this.attempt = 0;
    // A new connection starts unthrottled (the hub drops its block too).
    this.throttledUntil = 0;
    // Batches at or below lastSeq were applied before the last disconnect.
    this.settleThrough(lastSeq);
    this.setState("open");
    this.emit("hello", lastSeq);
    if (this.opts.keepAliveMs > 0) {
      this.keepAlive = setInterval(() => this.sendRaw("ping"), this.opts.keepAliveMs);
    }
    this.pump();
    this.checkIdle();
  }

  /**
   * Settles queued batches the hub reports as applied (its `lastSeq` for
   * this device, from `hello` or from `GET /v1/groups/{group}/devices` after
   * `close()`): each is emitted as an `ack` with `dup` true and leaves the
   * queue. Returns how many were settled.
   */
  settleThrough(lastSeq: number): number {
    let confirmed = 0;
    while (confirmed < this.queue.length) {
      const e = this.queue[confirmed];
      if (!e || e.seq === 0 || e.seq > lastSeq) break;
      confirmed++;
    }
    // Only between sockets or after close: the in-flight window is empty then.
    this.inFlight = Math.max(0, this.inFlight - confirmed);
    for (const e of this.queue.splice(0, confirmed)) this.emit("ack", e.seq, true, 0, e.readings.length, e.readings);
    if (this.nextSeq <= lastSeq) this.nextSeq = lastSeq + 1;
    if (confirmed > 0) this.checkIdle();
    return confirmed;
  }

  private onAck(seq: number, dup: boolean): void {
    const i = this.queue.findIndex((e) => e.seq === seq);
    if (i < 0 || i >= this.inFlight) return; // an ack for a batch already settled by hello
    const [e] = this.queue.splice(i, 1);
    this.inFlight--;
    if (e) this.emit("ack", seq, dup, Date.now() - e.sentAt, e.readings.length, e.readings);
    this.pump();
    this.checkIdle();
  }

  private onError(seq: number | undefined, code: string, message: string, retryAfterMs?: number): void {
    if (seq === undefined && (code === "rate_limited" || code === "overloaded")) {
      // Over the work budget, or the group sheds load: the hub dropped
      // frames unread and drops the rest of this socket's, so nothing sent
      // since is known to be applied. Reconnect after the wait; `hello`
      // says where to resume.
      this.emit("reject", seq, code, message);
      this.reconnectNotBefore = Date.now() + (retryAfterMs ?? 1000);
      this.ws?.terminate();
      return;
    }
    if (seq !== undefined) {
      const i = this.queue.findIndex((e) => e.seq === seq);
      if (code === "rate_limited") {
        // Nothing from this seq on was applied (the hub holds every later
        // batch behind it): wait, then resend from here, in order.
        if (i >= 0 && i < this.inFlight) {
          this.inFlight = i;
          this.emit("reject", seq, code, message);
          this.throttledUntil = Date.now() + (retryAfterMs ?? 1000);
          clearTimeout(this.throttleTimer);
          this.throttleTimer = setTimeout(() => this.pump(), retryAfterMs ?? 1000);
        }
        return;
      }
      if (i >= 0 && i < this.inFlight) {
        if (code === "internal" || code === "storage_full") {
          // Nothing was applied; resend everything in flight on a fresh
          // connection (after retryAfterMs when the group's storage is full).
          this.emit("reject", seq, code, message);
          if (code === "storage_full") this.reconnectNotBefore = Date.now() + (retryAfterMs ?? 10_000);
          this.ws?.terminate();
          return;
        }
        const [e] = this.queue.splice(i, 1);
        this.inFlight--;
        this.emit("reject", seq, code, message, e?.readings);
        this.pump();
        this.checkIdle();
        return;
      }
    }
    this.emit("reject", seq, code, message);
    this.pump();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.queue.length === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Sends queued batches while the window allows. */
  private pump(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.helloSeen) return;
    const now = Date.now();
    if (now < this.throttledUntil) return;
    // One write per tick rather than per batch (see corkForTick).
    if (!this.corked && this.inFlight < this.opts.maxInFlight && this.inFlight < this.queue.length) {
      this.corked = corkForTick(ws, () => (this.corked = false));
    }
    while (this.inFlight < this.opts.maxInFlight && this.inFlight < this.queue.length) {
      const e = this.queue[this.inFlight];
      if (!e) break;
      if (e.seq === 0) e.seq = this.nextSeq++;
      e.sentAt = now;
      ws.send(encodeBatchFrame(e.seq, e.readings, this.opts));
      this.inFlight++;
    }
    this.armAckTimer();
  }

  private armAckTimer(): void {
    clearTimeout(this.timer);
    const oldest = this.queue[0];
    if (this.inFlight === 0 || !oldest) return;
    const quietSince = Math.max(oldest.sentAt, this.lastHeardAt);
    const wait = Math.max(0, quietSince + this.opts.ackTimeoutMs - Date.now());
    this.timer = setTimeout(() => {
      if (this.inFlight === 0) return;
      // Frames arrived meanwhile (acks of other batches, pongs): slow, not dead.
      if (this.queue[0] && Date.now() - Math.max(this.queue[0].sentAt, this.lastHeardAt) < this.opts.ackTimeoutMs) {
        this.armAckTimer();
        return;
      }
      // The hub went quiet with batches outstanding: start over on a new socket.
      this.ws?.terminate();
    }, wait);
  }
}


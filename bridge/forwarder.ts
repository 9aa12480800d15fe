/**
 * The hub side of the bridge: one gateway socket per group ("lane"), with
 * readings batched by time or count like a device's, and each message
 * settled when the hub has acked the batch that holds it.
 *
 * Exactly-once towards the hub is the gateway client's: it keeps batches
 * until acked and resends them after a reconnect, and the hub drops
 * replays by the gateway's seq. What the hub rejects is split into one
 * batch per message and retried, so one bad message cannot take the good
 * ones of its batch down with it.
 */
import { encodeCbor, type CborValue } from "../schema/cbor.ts";
import { DEFAULT_LIMITS } from "../schema/limits.ts";
import type { CommandFrame, ConfigFrame, GatewayReading, Reading } from "../schema/protocol.ts";
import { GatewayClient } from "./gateway-client.ts";
import type { Logger } from "./log.ts";
import type { BridgeCounters } from "./metrics.ts";

export interface ForwarderOptions<H> {
  hubUrl: string;
  gateway: string;
  /** The gateway token for a group, or null when this bridge has none (its messages are dropped). */
  token: (group: string) => string | null;
  batchMs: number;
  batchReadings: number;
  /** Batches in flight (sent, not acked) per group socket. */
  hubWindow: number;
  /** Frame type of batches; float32 values (rounded) or lossless. */
  frames: "cbatch" | "batch";
  float32: boolean;
  backoffInitialMs: number;
  backoffMaxMs: number;
  ackTimeoutMs: number;
  counters: BridgeCounters;
  log: Logger;
  /** The hub acked the message's batch. */
  onAcked: (h: H) => void;
  /** The hub rejected the message on its own. */
  onRejected: (h: H, detail: string) => void;
  /** Another connection took over this gateway id (close 4001): two bridges share an id. */
  onReplaced: (group: string) => void;
  /** With downlink: the sockets opt in, and each command or config frame for a device comes here. */
  downlink?: (group: string, frame: CommandFrame | ConfigFrame) => void;
}

interface Part<H> {
  h: H;
  from: number;
  to: number;
}

interface Sent<H> {
  parts: Part<H>[];
  /** A retry of one message after its batch was rejected. */
  isolated: boolean;
}

class Lane<H> {
  readonly group: string;
  readonly client: GatewayClient;
  private readonly f: ForwarderOptions<H>;
  private open: GatewayReading[] = [];
  private parts: Part<H>[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Batches handed to the client and not yet acked or rejected, by identity (the client's ack event returns the array). */
  private readonly sent = new Map<readonly GatewayReading[], Sent<H>>();
  /** Set by close(), so the client's "closed" state is not taken for a takeover. */
  private closing = false;
  /** The hub refused the token on the last connect attempt: a configuration error, not an outage. */
  unauthorized = false;

  constructor(group: string, token: string, f: ForwarderOptions<H>) {
    this.group = group;
    this.f = f;
    this.client = new GatewayClient({
      url: f.hubUrl,
      group,
      gateway: f.gateway,
      token,
      maxInFlight: f.hubWindow,
      // The MQTT window bounds what can be queued here.
      maxQueued: Number.MAX_SAFE_INTEGER,
      backoffInitialMs: f.backoffInitialMs,
      backoffMaxMs: f.backoffMaxMs,
      ackTimeoutMs: f.ackTimeoutMs,
      keepAliveMs: 20_000,
      frames: f.frames,
      values: f.float32 ? "float32" : "lossless",
      downlink: f.downlink !== undefined,
    });
    const relay = f.downlink;
    if (relay) this.client.downlink.passThrough((frame) => relay(group, frame));
    this.client.on("ack", (_seq, dup, _latency, readings, batch) => this.onAck(batch, dup, readings));
    this.client.on("reject", (seq, code, message, batch) => this.onReject(seq, code, message, batch));
    this.client.on("hello", (lastSeq) => {
      this.unauthorized = false;
      f.log.info("hub.connected", { group, gateway: f.gateway, lastSeq });
    });
    this.client.on("disconnect", (code) => {
      if (this.closing) return;
      f.counters.hubDisconnects++;
      f.log.limited(`hub.disconnected:${group}`, "warn", "hub.disconnected", { group, code });
    });
    this.client.on("connectError", (message, status) => {
      // A refused upgrade is followed by a socket error without a status; keep what the status said.
      if (status !== undefined) this.unauthorized = status === 401;
      const level = status === 401 ? "error" : "warn";
      f.log.limited(`hub.connectError:${group}`, level, "hub.connect_failed", { group, status, message });
    });
    this.client.on("state", (state) => {
      if (state === "closed" && !this.closing) f.onReplaced(group);
    });
    this.client.start();
  }

  get connected(): boolean {
    return this.client.state === "open";
  }

  /** Batches sent or being filled, not yet settled. */
  get busy(): boolean {
    return this.sent.size > 0 || this.open.length > 0;
  }

  add(device: string, readings: readonly Reading[], h: H): void {
    if (this.open.length + readings.length > DEFAULT_LIMITS.maxReadingsPerBatch) this.flush();
    const from = this.open.length;
    for (const [ts, metric, value] of readings) this.open.push([ts, metric, value, device]);
    this.parts.push({ h, from, to: this.open.length });
    if (this.open.length >= this.f.batchReadings) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.f.batchMs);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.open.length === 0) return;
    const batch = this.open;
    const parts = this.parts;
    this.open = [];
    this.parts = [];
    this.send(batch, { parts, isolated: false });
  }

  private send(batch: GatewayReading[], s: Sent<H>): void {
    this.sent.set(batch, s);
    const c = this.f.counters;
    c.batchesSent++;
    c.readingsForwarded += batch.length;
    if (!s.isolated) c.forwarded += s.parts.length;
    this.client.send(batch);
  }

  private onAck(batch: readonly GatewayReading[], dup: boolean, readings: number): void {
    const s = this.sent.get(batch);
    if (!s) return;
    this.sent.delete(batch);
    const c = this.f.counters;
    c.batchesAcked++;
    if (dup) c.batchesDup++;
    c.readingsAcked += readings;
    c.hubAcked += s.parts.length;
    for (const p of s.parts) this.f.onAcked(p.h);
  }

  private onReject(seq: number | undefined, code: string, message: string, batch: readonly GatewayReading[] | undefined): void {
    this.f.counters.batchesRejected++;
    const s = batch ? this.sent.get(batch) : undefined;
    this.f.log.limited(`hub.rejected:${this.group}`, "warn", "hub.rejected", { group: this.group, seq, code, message });
    if (!batch || !s) return;
    this.sent.delete(batch);
    if (!s.isolated && s.parts.length > 1) {
      for (const p of s.parts) {
        this.send(batch.slice(p.from, p.to), { parts: [{ h: p.h, from: 0, to: p.to - p.from }], isolated: true });
      }
      return;
    }
    for (const p of s.parts) this.f.onRejected(p.h, `${code}: ${message}`);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    await this.client.close();
  }
}

export class Forwarder<H> {
  private readonly f: ForwarderOptions<H>;
  private readonly lanes = new Map<string, Lane<H>>();

  constructor(f: ForwarderOptions<H>) {
    this.f = f;
  }

  /** Queues one message's readings for its group; false when there is no token for the group. */
  submit(group: string, device: string, readings: readonly Reading[], h: H): boolean {
    const lane = this.lane(group);
    if (!lane) return false;
    lane.add(device, readings, h);
    return true;
  }

  /** The group's lane, opened on first use (so downlink can reach a group before any reading); null without a token. */
  lane(group: string): Lane<H> | null {
    let lane = this.lanes.get(group);
    if (!lane) {
      const token = this.f.token(group);
      if (token === null) return null;
      lane = new Lane(group, token, this.f);
      this.lanes.set(group, lane);
    }
    return lane;
  }

  /** Sends a downlink answer on the group's gateway socket; false when it is not open. */
  reply(group: string, frame: CborValue): boolean {
    const lane = this.lanes.get(group);
    return lane?.connected === true && lane.client.sendRaw(encodeCbor(frame));
  }

  /** group -> gateway socket open */
  connections(): Map<string, boolean> {
    return new Map([...this.lanes].map(([g, l]) => [g, l.connected]));
  }

  /** Groups whose gateway token the hub refused on the last attempt. */
  unauthorized(): string[] {
    return [...this.lanes].filter(([, l]) => l.unauthorized).map(([g]) => g);
  }

  /** Sends what is being batched now, then waits (up to `timeoutMs`) for the hub to ack everything sent. */
  async drain(timeoutMs: number): Promise<boolean> {
    for (const l of this.lanes.values()) l.flush();
    const deadline = Date.now() + timeoutMs;
    while ([...this.lanes.values()].some((l) => l.busy)) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((l) => l.close()));
    this.lanes.clear();
  }
}

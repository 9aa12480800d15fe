/**
 * The downlink stage (docs/protocol.md, "Downlink"): commands and desired
 * configuration for devices, kept in the group's SQLite so they survive
 * disconnects, hibernation and restarts. A command goes out on the device's
 * own opted-in socket (or, when it has none, on the group's opted-in
 * gateway sockets) as soon as it is queued, and again after every `hello`
 * until the device answers it or it expires; the expiry sweep is a
 * scheduler task. Configuration is versioned per device and sent until the
 * device reports that version applied.
 *
 * Writes of commands, configurations and answers share one transaction per
 * few milliseconds (write-batch.ts): a commit per command would bound the
 * group at a few hundred commands a second.
 *
 * In memory: the group's command rate bucket, which starts full after a
 * wake, and writes waiting for their batch (their callers wait too; none is answered before it commits).
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { CommandEntry, ConfigResponse } from "../../../schema/api.ts";
import { encodeCbor, type CborValue } from "../../../schema/cbor.ts";
import { cborSize } from "../../../schema/downlink.ts";
import type { DownlinkLimits } from "../../../schema/limits.ts";
import { ErrorCode, type CommandResultFrame, type ConfigAppliedFrame, type DownlinkReplyFrame } from "../../../schema/protocol.ts";
import { reject, type Rejection } from "../../../schema/validated.ts";
import type { CommandRow } from "../../../schema/tables.ts";
import type { Peer, PeerKind } from "../peer.ts";
import type { TaskRequester } from "../scheduler.ts";
import { DownlinkStore, toEntry } from "./downlink-store.ts";
import { WriteBatch } from "./write-batch.ts";

/** A socket downlink frames can go out on. */
export interface DownlinkTarget {
  send(data: Uint8Array): boolean;
}

/** What the downlink stage needs from its host. */
export interface DownlinkHost {
  /** Schedules the expiry sweep (task {@link EXPIRY_TASK}). */
  readonly scheduler: TaskRequester;
  /** The device's own sockets that opted in to downlink. */
  deviceSockets(device: string): DownlinkTarget[];
  /** The group's gateway sockets that opted in to downlink. */
  gatewaySockets(): DownlinkTarget[];
}

/** The scheduler task that expires commands past their time to live. */
export const EXPIRY_TASK = "downlink.expiry";
/** Commands one sweep step expires (one `IN` list of ids); a longer backlog continues at once. */
const EXPIRE_STEP = 90;

/** What queueing a command gives: its id, or why not (429). */
export type Queued = { ok: true; id: string } | { ok: false; code: "too_many_commands" | "rate_limited"; message: string; retryAfterMs: number };

/** The new command as the Worker checked it. */
export interface CommandRequest {
  name: string;
  args: unknown;
  ttlMs: number;
}

export class Downlink {
  private readonly store: DownlinkStore;
  private readonly host: DownlinkHost;
  private readonly limits: DownlinkLimits;
  /** Token bucket of the group's command rate: a second's worth at most. */
  private tokens: number;
  private refilledAt = 0;
  private readonly batch: WriteBatch;
  private readonly clock: () => number;

  /** `batchMs`: how long a write waits for others to share its transaction. */
  constructor(db: DrizzleSqliteDODatabase, host: DownlinkHost, limits: DownlinkLimits, batchMs: number, clock: () => number = Date.now) {
    this.store = new DownlinkStore(db);
    this.host = host;
    this.limits = limits;
    this.tokens = limits.commandsPerSec;
    this.clock = clock;
    this.batch = new WriteBatch((fn) => db.transaction(fn), batchMs);
  }

  /** Queues a command and sends it at once if its device (or a gateway) is listening; settles once committed. */
  queue(device: string, req: CommandRequest): Promise<Queued> {
    const wait = this.takeToken(this.clock());
    if (wait > 0) return Promise.resolve({ ok: false, code: "rate_limited", message: `this group accepts ${this.limits.commandsPerSec} commands per second`, retryAfterMs: wait });
    return this.batch.run(() => this.queueNow(device, req, this.clock()));
  }

  private queueNow(device: string, req: CommandRequest, now: number): Queued {
    if (this.store.countOpen(device) >= this.limits.maxQueuedCommands) {
      const message = `device ${device} has ${this.limits.maxQueuedCommands} commands waiting (DOWNLINK_MAX_QUEUED)`;
      return { ok: false, code: "too_many_commands", message, retryAfterMs: 1000 };
    }
    const row = this.store.insert({ id: crypto.randomUUID(), device, name: req.name, args: req.args, createdAt: now, expiresAt: now + req.ttlMs });
    this.store.prune(device, this.limits.historyPerDevice);
    this.host.scheduler.request(EXPIRY_TASK, row.expiresAt);
    this.deliver(this.targetsOf(device), [row], now);
    return { ok: true, id: row.id };
  }

  list(device: string, limit: number): CommandEntry[] {
    return this.store.list(device, limit).map(toEntry);
  }

  /** One command of a device, or null. */
  get(device: string, id: string): CommandEntry | null {
    const r = this.store.get(id);
    return r?.device === device ? toEntry(r) : null;
  }

  config(device: string): ConfigResponse {
    return this.store.config(device);
  }

  /** Stores a new desired configuration and sends it if the device (or a gateway) is listening; settles with its version once committed. */
  putConfig(device: string, desired: Record<string, unknown>): Promise<number> {
    return this.batch.run(() => this.putConfigNow(device, desired, this.clock()));
  }

  /** One desired configuration for many devices, in one transaction; settles with how many once committed. */
  putConfigMany(devices: readonly string[], desired: Record<string, unknown>): Promise<number> {
    return this.batch.run(() => {
      const now = this.clock();
      for (const d of new Set(devices)) this.putConfigNow(d, desired, now);
      return new Set(devices).size;
    });
  }

  private putConfigNow(device: string, desired: Record<string, unknown>, now: number): number {
    const version = this.store.putConfig(device, desired, now);
    const { targets, via } = this.targetsOf(device);
    const frame = encodeCbor(configFrame(device, version, desired, via));
    for (const t of targets) t.send(frame);
    return version;
  }

  /**
   * After `hello` on an opted-in socket: everything still waiting for the
   * device (or, on a gateway, for every device without a downlink socket of
   * its own), commands oldest first, then configuration.
   */
  onHello(peer: Peer, target: DownlinkTarget, now: number): void {
    if (peer.kind === "device") {
      this.deliver({ targets: [target], via: "device" }, this.store.pending(now, peer.id), now);
      const c = this.store.config(peer.id);
      if (c.appliedVersion < c.version) target.send(encodeCbor(configFrame(peer.id, c.version, c.desired, "device")));
      return;
    }
    const direct = (d: string): boolean => this.host.deviceSockets(d).length > 0;
    this.deliver({ targets: [target], via: "gateway" }, this.store.pending(now).filter((r) => !direct(r.device)), now);
    for (const device of this.store.unappliedConfigs()) {
      if (direct(device)) continue;
      const c = this.store.config(device);
      target.send(encodeCbor(configFrame(device, c.version, c.desired, "gateway")));
    }
  }

  /** A device's (or gateway's) answer; settles with a rejection to send back, or null when it was taken (and committed). */
  onReply(from: Peer, frame: DownlinkReplyFrame): Promise<Rejection | null> {
    const device = from.kind === "device" ? from.id : frame.device;
    if (device === undefined) return Promise.resolve(reject(ErrorCode.BadDevice, "a gateway's downlink answer must name its device"));
    return this.batch.run(() => (frame.type === "command_result" ? this.onResult(device, frame, this.clock()) : this.onApplied(device, frame, this.clock())));
  }

  private onResult(device: string, frame: CommandResultFrame, now: number): Rejection | null {
    const row = this.store.get(frame.id);
    if (row?.device !== device) return reject(ErrorCode.UnknownCommand, `no command ${frame.id} for device ${device}`);
    if (frame.result !== undefined && cborSize(frame.result) > this.limits.maxArgsBytes) {
      return reject(ErrorCode.BadFrame, `command_result: result exceeds ${this.limits.maxArgsBytes} bytes`);
    }
    // A result is taken while the command waits, even past its expiry if
    // the sweep has not run: the device did run it, and that is the truth to keep.
    const done = this.store.finish(frame.id, frame.ok ? "succeeded" : "failed", now, frame.result, frame.error ?? null);
    if (!done) return reject(ErrorCode.UnknownCommand, `command ${frame.id} is already ${row.status}`);
    return null;
  }

  private onApplied(device: string, frame: ConfigAppliedFrame, now: number): Rejection | null {
    const c = this.store.config(device);
    if (frame.version > c.version) return reject(ErrorCode.UnknownConfig, `device ${device} has no configuration version ${frame.version} (latest ${c.version})`);
    if (frame.reported !== undefined && cborSize(frame.reported) > this.limits.maxArgsBytes) {
      return reject(ErrorCode.BadFrame, `config_applied: reported exceeds ${this.limits.maxArgsBytes} bytes`);
    }
    this.store.applied(device, frame.version, frame.reported, now);
    return null;
  }

  /** The expiry sweep (scheduler task): one bounded step; when to run next. */
  expire(now: number): number | null {
    const gone = this.store.expireDue(now, EXPIRE_STEP);
    if (gone.length >= EXPIRE_STEP) return now;
    return this.store.nextExpiry();
  }

  /** Where a device's frames go: its own opted-in sockets, else the gateways'. */
  private targetsOf(device: string): { targets: DownlinkTarget[]; via: PeerKind } {
    const own = this.host.deviceSockets(device);
    return own.length > 0 ? { targets: own, via: "device" } : { targets: this.host.gatewaySockets(), via: "gateway" };
  }

  /** Sends commands on every target and marks those that went out on at least one delivered. */
  private deliver(to: { targets: DownlinkTarget[]; via: PeerKind }, rows: CommandRow[], now: number): void {
    if (to.targets.length === 0 || rows.length === 0) return;
    const sent: string[] = [];
    for (const r of rows) {
      const frame = encodeCbor(commandFrame(r, to.via));
      let any = false;
      for (const t of to.targets) any = t.send(frame) || any;
      if (any) sent.push(r.id);
    }
    if (sent.length > 0) this.store.markDelivered(sent, now);
  }

  /** Ms to wait before the group may queue another command (0: take one now). */
  private takeToken(now: number): number {
    const rate = this.limits.commandsPerSec;
    this.tokens = Math.min(rate, this.tokens + (Math.max(0, now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / rate);
  }
}

function commandFrame(r: CommandRow, via: PeerKind): CborValue {
  // Args were stored from JSON the Worker parsed: a CBOR value.
  const args = JSON.parse(r.args) as CborValue;
  const frame = { type: "command", id: r.id, name: r.name, args, expiresAt: r.expiresAt };
  return via === "gateway" ? { ...frame, device: r.device } : frame;
}

function configFrame(device: string, version: number, desired: Record<string, unknown>, via: PeerKind): CborValue {
  const frame = { type: "config", version, desired: desired as CborValue };
  return via === "gateway" ? { ...frame, device } : frame;
}

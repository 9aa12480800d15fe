/**
 * Group commit. Batches that arrive close together share one SQLite
 * transaction: each commit costs an fsync, so committing per message caps a
 * group near 2,000 commits/s, while decoding alone reaches millions of
 * readings/s (docs/benchmarks.md). A batch waits at most `groupCommitMs`
 * (or until `groupCommitReadings` are pending) and is acked only after the
 * transaction holding it has committed.
 *
 * In-memory state here may be lost at any time (eviction, hibernation,
 * a crash): `accepted` is a cache of each device's highest seq, rebuilt from
 * SQLite on demand, and `pending` batches were never acked, so their devices
 * resend them.
 */
import { encodeCbor } from "../../schema/cbor.ts";
import { ErrorCode, type GatewayReading, type Reading } from "../../schema/protocol.ts";
import type { Limits } from "../../schema/limits.ts";
import { log } from "../log.ts";
import type { Alert } from "../../schema/rules.ts";
import { addBatch, addGatewayBatch, emptyCollapsed, type Collapsed } from "./collapse.ts";
import type { Store } from "./store.ts";

type Pending =
  | {
      ws: WebSocket;
      device: string;
      seq: number;
      /** null for a duplicate: acked with `dup: true`, not applied. */
      readings: readonly Reading[] | null;
      gateway?: undefined;
    }
  | {
      ws: WebSocket;
      /** The gateway's id: exactly-once is per gateway seq. */
      device: string;
      seq: number;
      readings: readonly GatewayReading[] | null;
      gateway: true;
    };

/**
 * What else happens with a group commit (live view, alerts). `inCommit`
 * runs inside the transaction, so its writes commit with the batches.
 */
export interface IngestHooks {
  /** Extra writes besides batches are waiting (the commit runs even without batches). */
  hasPendingWork(): boolean;
  inCommit(batches: { device: string; readings: readonly Reading[] }[], now: number): Alert[];
  afterCommit(c: Collapsed, alerts: Alert[], now: number): void;
  afterFailure(): void;
}

/** Figures the live view and tests can read. */
export interface IngestStats {
  commits: number;
  batches: number;
  readings: number;
  duplicates: number;
}

export class Ingest {
  private pending: Pending[] = [];
  private pendingReadings = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** device -> highest seq accepted (committed, or pending in this process). */
  private readonly accepted = new Map<string, number>();
  /** The same for gateways, whose ids are a namespace of their own. */
  private readonly acceptedGateways = new Map<string, number>();
  readonly stats: IngestStats = { commits: 0, batches: 0, readings: 0, duplicates: 0 };

  private readonly store: Store;
  private readonly limits: Limits;
  private readonly group: () => string;

  private readonly hooks: IngestHooks | null;

  constructor(store: Store, limits: Limits, group: () => string, hooks: IngestHooks | null = null) {
    this.store = store;
    this.limits = limits;
    this.group = group;
    this.hooks = hooks;
  }

  /** Highest seq accepted for a device (committed or pending): a batch at or below it is a duplicate. */
  highest(device: string): number {
    return this.accepted.get(device) ?? this.store.lastSeq(device);
  }

  /** The same for a gateway. */
  highestGateway(gateway: string): number {
    return this.acceptedGateways.get(gateway) ?? this.store.gatewayLastSeq(gateway);
  }

  /** Queues a validated batch for the next group commit. */
  submit(ws: WebSocket, device: string, seq: number, readings: readonly Reading[]): void {
    const highest = this.accepted.get(device) ?? this.store.lastSeq(device);
    if (seq <= highest) {
      this.pending.push({ ws, device, seq, readings: null });
    } else {
      this.accepted.set(device, seq);
      this.pending.push({ ws, device, seq, readings });
      this.pendingReadings += readings.length;
    }
    this.schedule();
  }

  /** Queues a validated gateway batch; exactly-once by the gateway's seq, as for a device. */
  submitGateway(ws: WebSocket, gateway: string, seq: number, readings: readonly GatewayReading[]): void {
    const highest = this.acceptedGateways.get(gateway) ?? this.store.gatewayLastSeq(gateway);
    if (seq <= highest) {
      this.pending.push({ ws, device: gateway, seq, readings: null, gateway: true });
    } else {
      this.acceptedGateways.set(gateway, seq);
      this.pending.push({ ws, device: gateway, seq, readings, gateway: true });
      this.pendingReadings += readings.length;
    }
    this.schedule();
  }

  /** Makes sure a commit happens soon (also for hook work without batches). */
  schedule(): void {
    if (this.pendingReadings >= this.limits.groupCommitReadings || this.limits.groupCommitMs === 0) {
      this.flush();
    } else {
      this.timer ??= setTimeout(() => this.flush(), this.limits.groupCommitMs);
    }
  }

  /** True while batches wait for a commit. */
  get busy(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Commits everything pending, then acks it. Never throws: on failure no
   * batch is acked, each gets an `internal` error frame, and the seq cache is
   * dropped so it is rebuilt from what SQLite actually holds.
   */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.pending;
    const hookWork = this.hooks?.hasPendingWork() === true;
    if (batch.length === 0 && !hookWork) return;
    this.pending = [];
    this.pendingReadings = 0;

    const collapsed = emptyCollapsed();
    let duplicates = 0;
    for (const p of batch) {
      if (!p.readings) duplicates++;
      else if (p.gateway) addGatewayBatch(collapsed, p.device, p.seq, p.readings);
      else addBatch(collapsed, p.device, p.seq, p.readings);
    }
    const now = Date.now();
    const hooks = this.hooks;
    let results: Alert[] = [];
    try {
      if (collapsed.devices.size > 0 || collapsed.gateways.size > 0 || hookWork) {
        this.store.commit(collapsed, now, hooks ? () => (results = hooks.inCommit(appliedBatches(batch), now)) : undefined);
      }
    } catch (err) {
      log.error("ingest.commit", err, { group: this.group(), batches: batch.length, readings: collapsed.readings });
      hooks?.afterFailure();
      this.accepted.clear();
      this.acceptedGateways.clear();
      for (const p of batch) {
        send(p.ws, { type: "error", seq: p.seq, code: ErrorCode.Internal, message: "commit failed; send the batch again" });
      }
      return;
    }
    this.stats.commits++;
    this.stats.batches += batch.length - duplicates;
    this.stats.readings += collapsed.readings;
    this.stats.duplicates += duplicates;
    // The runtime's output gate also holds these sends until the write is
    // durable: https://blog.cloudflare.com/durable-objects-easy-fast-correct-choose-three/
    for (const p of batch) {
      send(p.ws, p.readings ? { type: "ack", seq: p.seq } : { type: "ack", seq: p.seq, dup: true });
    }
    try {
      hooks?.afterCommit(collapsed, results, now);
    } catch (err) {
      // The data is committed and acked; only the live view missed an update.
      log.error("ingest.afterCommit", err, { group: this.group() });
    }
  }
}

/** The applied (non-duplicate) batches as per-device reading lists, gateway batches split by device. */
function appliedBatches(batch: readonly Pending[]): { device: string; readings: readonly Reading[] }[] {
  const out: { device: string; readings: readonly Reading[] }[] = [];
  for (const p of batch) {
    if (!p.readings) continue;
    if (!p.gateway) {
      out.push({ device: p.device, readings: p.readings });
      continue;
    }
    const byDevice = new Map<string, Reading[]>();
    for (const [ts, metric, value, device] of p.readings) {
      let list = byDevice.get(device);
      if (!list) byDevice.set(device, (list = []));
      list.push([ts, metric, value]);
    }
    for (const [device, readings] of byDevice) out.push({ device, readings });
  }
  return out;
}

function send(ws: WebSocket, frame: { type: string; seq?: number; dup?: true; code?: string; message?: string }): void {
  try {
    ws.send(encodeCbor(frame));
  } catch {
    // The socket closed after the batch arrived; the device resends after
    // reconnecting and gets a dup ack.
  }
}

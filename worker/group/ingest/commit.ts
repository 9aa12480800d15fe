/**
 * Group commit. Batches that arrive close together share one SQLite
 * transaction: each commit costs an fsync, so committing per message caps a
 * group near 2,000 commits/s, while decoding alone reaches millions of
 * readings/s (docs/benchmarks.md). A batch waits at most `groupCommitMs`
 * (or until `groupCommitReadings` are pending) and is acked only after the
 * transaction holding it has committed.
 *
 * In-memory state here may be lost at any time (eviction, hibernation,
 * a crash): `accepted` is a cache of each peer's highest seq, rebuilt from
 * SQLite on demand, and `pending` batches were never acked, so their peers
 * resend them.
 */
import { encodeCbor } from "../../../schema/cbor.ts";
import type { Limits } from "../../../schema/limits.ts";
import { compactCount, compactToReadings } from "../../../schema/cbatch.ts";
import { CloseCode, ErrorCode, type CompactBatchFrame, type CompactSeries, type GatewayReading, type Reading } from "../../../schema/protocol.ts";
import { log } from "../../log.ts";
import { byKind, type Peer } from "../peer.ts";
import { addBatch, emptyCollapsed, readingCount, type Collapsed, type PeerReadings } from "./collapse.ts";
import type { Store } from "./store.ts";

/** Where acks go: the socket the batch came on. */
export interface AckTarget {
  send(data: Uint8Array): boolean;
  /** Ends the socket (after a `storage_full` refusal, so that no later batch of it overtakes the refused one). */
  close?(code: number, reason: string): void;
}

interface Pending {
  to: AckTarget;
  peer: Peer;
  seq: number;
  /** null for a duplicate: acked with `dup: true`, not applied. */
  readings: PeerReadings | null;
}

/**
 * One device's applied readings of a commit (a gateway batch gives one per
 * device it names). An iterable, so a compact batch's readings are only
 * built when something (an alert rule) reads them.
 */
export interface DeviceReadings {
  device: string;
  readings: Iterable<Reading>;
  /** The peer that sent the batch (the device itself, or a gateway) and the batch's seq. */
  source: Peer;
  seq: number;
  /** How many readings `readings` yields. */
  count: number;
  /** A compact batch's own columns (this device's series), for stages that keep columns (the archive). */
  compact?: CompactBatchFrame;
}

/**
 * What the group commit needs from its host: the other stages' work that
 * rides on a commit. `inCommit` runs inside the transaction, so its writes
 * commit with the batches.
 */
export interface IngestHost<Note = unknown> {
  /** The group's id, for logs. */
  name(): string;
  /** Writes besides batches are waiting (the commit runs even without batches). */
  hasPendingWork(): boolean;
  /** Inside the transaction; what it returns is handed to `afterCommit` (e.g. alerts raised). */
  inCommit(c: Collapsed, batches: DeviceReadings[], now: number): Note;
  afterCommit(c: Collapsed, note: Note, now: number): void;
  afterFailure(): void;
  /**
   * Asked before a commit that applies readings: null to go ahead, or how
   * long (ms) peers should wait because the group is at its storage budget;
   * then nothing is applied and every batch gets `storage_full`.
   */
  storageFull(now: number): number | null;
}

export class GroupCommit<Note> {
  private pending: Pending[] = [];
  private pendingReadings = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Per kind: id -> highest seq accepted (committed, or pending in this process). */
  private readonly accepted = byKind(() => new Map<string, number>());
  private readonly store: Store;
  private readonly limits: Pick<Limits, "groupCommitMs" | "groupCommitReadings">;
  private readonly host: IngestHost<Note>;

  constructor(store: Store, limits: Pick<Limits, "groupCommitMs" | "groupCommitReadings">, host: IngestHost<Note>) {
    this.store = store;
    this.limits = limits;
    this.host = host;
  }

  /** Highest seq accepted for a peer (committed or pending): a batch at or below it is a duplicate. */
  highest(peer: Peer): number {
    return this.accepted[peer.kind].get(peer.id) ?? this.store.lastSeq(peer);
  }

  /** Drops the cached highest seq of a peer (an operator reset its stored lastSeq); call after a flush. */
  forget(peer: Peer): void {
    this.accepted[peer.kind].delete(peer.id);
  }

  /** Queues a validated batch for the next group commit; exactly-once by the peer's seq. */
  submit(to: AckTarget, peer: Peer, seq: number, readings: PeerReadings): void {
    if (seq <= this.highest(peer)) {
      this.pending.push({ to, peer, seq, readings: null });
    } else {
      this.accepted[peer.kind].set(peer.id, seq);
      this.pending.push({ to, peer, seq, readings });
      this.pendingReadings += readingCount(readings);
    }
    this.schedule();
  }

  /** Makes sure a commit happens soon (also for the host's work without batches). */
  schedule(): void {
    if (this.pendingReadings >= this.limits.groupCommitReadings || this.limits.groupCommitMs === 0) {
      this.flush();
    } else {
      this.timer ??= setTimeout(() => this.flush(), this.limits.groupCommitMs);
    }
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
    const hostWork = this.host.hasPendingWork();
    if (batch.length === 0 && !hostWork) return;
    this.pending = [];
    this.pendingReadings = 0;

    const collapsed = emptyCollapsed();
    for (const p of batch) if (p.readings) addBatch(collapsed, p.peer, p.seq, p.readings);
    const now = Date.now();
    const full = collapsed.readings > 0 ? this.host.storageFull(now) : null;
    if (full !== null) {
      this.refuseFull(batch, full);
      return;
    }
    let note: Note | undefined;
    let committed = false;
    try {
      if (collapsed.readings > 0 || hostWork) {
        this.store.commit(collapsed, now, () => {
          note = this.host.inCommit(collapsed, appliedByDevice(batch), now);
        });
        committed = true;
      }
    } catch (err) {
      log.error("ingest.commit", err, { group: this.host.name(), batches: batch.length, readings: collapsed.readings });
      this.host.afterFailure();
      for (const m of Object.values(this.accepted)) m.clear();
      for (const p of batch) {
        send(p.to, { type: "error", seq: p.seq, code: ErrorCode.Internal, message: "commit failed; send the batch again" });
      }
      return;
    }
    // The runtime's output gate also holds these sends until the write is
    // durable: https://blog.cloudflare.com/durable-objects-easy-fast-correct-choose-three/
    for (const p of batch) send(p.to, p.readings ? { type: "ack", seq: p.seq } : { type: "ack", seq: p.seq, dup: true });
    if (!committed) return;
    try {
      this.host.afterCommit(collapsed, note as Note, now);
    } catch (err) {
      // The data is committed and acked; only the live view missed an update.
      log.error("ingest.afterCommit", err, { group: this.host.name() });
    }
  }

  /**
   * The group is at its storage budget: nothing is applied. Duplicates are
   * acked as ever (they need no space); every other batch gets
   * `storage_full` with `retryAfterMs`, and its socket is closed so that
   * none of its later batches can be applied ahead of the refused one (the
   * peer resends from the `hello`'s lastSeq). The host's other pending
   * writes wait for the next commit.
   */
  private refuseFull(batch: readonly Pending[], retryAfterMs: number): void {
    for (const m of Object.values(this.accepted)) m.clear();
    const refused = new Set<AckTarget>();
    for (const p of batch) {
      if (!p.readings) {
        send(p.to, { type: "ack", seq: p.seq, dup: true });
        continue;
      }
      send(p.to, { type: "error", seq: p.seq, code: ErrorCode.StorageFull, message: "the group's storage is full; nothing was applied: keep the batch, reconnect after retryAfterMs and resend", retryAfterMs });
      refused.add(p.to);
    }
    for (const to of refused) to.close?.(CloseCode.TryAgainLater, "storage full");
  }
}

/** The applied (non-duplicate) batches as per-device reading lists, gateway batches split by device. */
function appliedByDevice(batch: readonly Pending[]): DeviceReadings[] {
  const out: DeviceReadings[] = [];
  for (const p of batch) {
    if (!p.readings) continue;
    const from = { source: p.peer, seq: p.seq };
    if ("series" in p.readings) {
      appliedCompact(out, from, p.peer.kind === "device" ? p.peer.id : undefined, p.readings);
      continue;
    }
    if (p.peer.kind === "device") {
      out.push({ device: p.peer.id, readings: p.readings as readonly Reading[], count: p.readings.length, ...from });
      continue;
    }
    const byDevice = new Map<string, Reading[]>();
    for (const [ts, metric, value, device] of p.readings as readonly GatewayReading[]) {
      let list = byDevice.get(device);
      if (!list) byDevice.set(device, (list = []));
      list.push([ts, metric, value]);
    }
    for (const [device, readings] of byDevice) out.push({ device, readings, count: readings.length, ...from });
  }
  return out;
}

/** A compact batch's readings per device (`device` for a device's batch, else each series' own), built on first read. */
function appliedCompact(out: DeviceReadings[], from: Pick<DeviceReadings, "source" | "seq">, device: string | undefined, b: CompactBatchFrame): void {
  if (device !== undefined) {
    out.push({ device, readings: lazyReadings(b), count: compactCount(b), compact: b, ...from });
    return;
  }
  const byDevice = new Map<string, CompactSeries[]>();
  for (const s of b.series) {
    const d = s.device ?? "";
    let list = byDevice.get(d);
    if (!list) byDevice.set(d, (list = []));
    list.push(s);
  }
  for (const [d, series] of byDevice) {
    const own = { ...b, series };
    out.push({ device: d, readings: lazyReadings(own), count: compactCount(own), compact: own, ...from });
  }
}

function lazyReadings(b: CompactBatchFrame): Iterable<Reading> {
  return { [Symbol.iterator]: () => compactToReadings(b)[Symbol.iterator]() };
}

function send(to: AckTarget, frame: { type: string; seq: number; dup?: true; code?: string; message?: string; retryAfterMs?: number }): void {
  // A socket that closed after its batch arrived is fine: the peer resends after reconnecting and gets a dup ack.
  to.send(encodeCbor(frame));
}

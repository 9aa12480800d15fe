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
import { byKind, peerTag, type Peer } from "../peer.ts";
import { addBatch, emptyCollapsed, readingCount, type Collapsed, type PeerReadings } from "./collapse.ts";
import { SumOverflow, type Store } from "./store.ts";

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
  /**
   * A transaction rolled back: drop what it invalidated. `retrying` while
   * its batches are about to be retried in parts (`GroupCommit.isolate`);
   * false once the failed flush is over (every batch applied or refused).
   */
  afterFailure(retrying: boolean): void;
  /** A batch was refused at commit (`bad_value` or `internal`): counted like any rejected frame. */
  refused(peer: Peer, code: string): void;
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
   * Commits everything pending, then acks it. Never throws. When the commit
   * fails, its batches are retried apart (`isolate`) so that only a batch
   * that fails on its own is refused; the seq cache is dropped so it is
   * rebuilt from what SQLite actually holds.
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

    const collapsed = collapse(batch);
    const now = Date.now();
    const full = collapsed.readings > 0 ? this.host.storageFull(now) : null;
    if (full !== null) {
      this.refuseFull(batch, full);
      return;
    }
    if (collapsed.readings === 0 && !hostWork) {
      for (const p of batch) send(p.to, answer(p, null));
      return;
    }
    const after: (() => void)[] = [];
    const failure = this.attempt(collapsed, batch, now, after);
    const applied = failure === null ? [] : batch.filter((p) => p.readings);
    const outcome = applied.length > 1 ? this.isolate(applied, now, after) : new Map(applied.map((p) => [p, refusal(failure)]));
    if (failure !== null) {
      for (const m of Object.values(this.accepted)) m.clear();
      this.host.afterFailure(false);
    }
    const closing = new Set<AckTarget>();
    // The runtime's output gate also holds these sends until the write is
    // durable: https://blog.cloudflare.com/durable-objects-easy-fast-correct-choose-three/
    for (const p of batch) {
      const f = outcome.get(p) ?? null;
      send(p.to, answer(p, f));
      if (f?.code === ErrorCode.Internal) closing.add(p.to);
    }
    // `internal` says "reconnect and resend": closing the socket keeps its later batches (in the next commit) from overtaking the one to resend.
    for (const to of closing) to.close?.(CloseCode.TryAgainLater, "commit failed");
    for (const f of after) f();
    for (const [p, r] of outcome) this.host.refused(p.peer, r.code);
  }

  /**
   * One transaction of `batch` (and the host's pending work): null once it
   * committed (its `afterCommit` queued on `after`, to run once the acks
   * are sent), or the error it rolled back on (then `afterFailure` has run:
   * the caches it invalidated are dropped).
   */
  private attempt(collapsed: Collapsed, batch: readonly Pending[], now: number, after: (() => void)[]): unknown {
    let note: Note | undefined;
    try {
      this.store.commit(collapsed, now, () => {
        note = this.host.inCommit(collapsed, appliedByDevice(batch), now);
      });
    } catch (err) {
      const fields = { group: this.host.name(), batches: batch.length, readings: collapsed.readings };
      // An overflowing sum is a device's bad values, not the hub's fault: no stack.
      if (err instanceof SumOverflow) log.warn("ingest.sum_overflow", { ...fields, detail: err.message });
      else log.error("ingest.commit", err, fields);
      this.host.afterFailure(true);
      return err;
    }
    after.push(() => {
      try {
        this.host.afterCommit(collapsed, note as Note, now);
      } catch (err) {
        // The data is committed and acked; only the live view missed an update.
        log.error("ingest.afterCommit", err, { group: this.host.name() });
      }
    });
    return null;
  }

  /**
   * A group commit of these batches (none a duplicate) failed: bisects them
   * so that only a batch that fails alone is refused. Each half is its own
   * transaction (with every `inCommit` hook); a half that fails is split
   * again, so one bad batch among n costs about 2·log2(n) more
   * transactions, and a good batch is applied exactly once (a transaction
   * carries its peers' seqs, and a failed one rolled back whole). Halves
   * run in order, and once a batch of a peer failed with `internal`, the
   * peer's later batches are not applied: its resend must not become a
   * duplicate. A failure that is no batch's (every part fails: the
   * database itself refuses writes) would cost 2n − 1 transactions, so the
   * retries stop after `retryBudget(n)` (room for two bad batches) and the
   * batches left get `internal`. Returns the refusal of each batch not applied.
   */
  private isolate(applied: readonly Pending[], now: number, after: (() => void)[]): Map<Pending, Refusal> {
    const out = new Map<Pending, Refusal>();
    const blocked = new Set<string>();
    let budget = retryBudget(applied.length);
    const split = (items: readonly Pending[]): void => {
      const half = Math.ceil(items.length / 2);
      run(items.slice(0, half));
      run(items.slice(half));
    };
    const run = (items: readonly Pending[]): void => {
      const live: Pending[] = [];
      for (const p of items) {
        if (blocked.has(peerTag(p.peer))) out.set(p, INTERNAL);
        else live.push(p);
      }
      if (live.length === 0) return;
      if (budget-- <= 0) {
        for (const p of live) out.set(p, INTERNAL);
        return;
      }
      const failure = this.attempt(collapse(live), live, now, after);
      if (failure === null) return;
      const [only] = live;
      if (live.length > 1 || !only) return split(live);
      const r = refusal(failure);
      out.set(only, r);
      if (r === INTERNAL) blocked.add(peerTag(only.peer));
    };
    split(applied);
    return out;
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

/** Why a batch was not applied: its error code and message. */
interface Refusal {
  code: typeof ErrorCode.BadValue | typeof ErrorCode.Internal;
  message: string;
}

/** Transactions `isolate` may spend on n batches: finding one bad batch takes 2·⌈log2 n⌉, this leaves room for two. */
export function retryBudget(n: number): number {
  return 4 * Math.ceil(Math.log2(n)) + 4;
}

const INTERNAL: Refusal = { code: ErrorCode.Internal, message: "commit failed; send the batch again" };

/** A lone batch's failure: `bad_value` when the hub can name it (a bucket's sum overflows), else `internal`. */
function refusal(err: unknown): Refusal {
  if (err instanceof SumOverflow) return { code: ErrorCode.BadValue, message: `${err.message}: nothing of this batch was applied; do not resend it` };
  return INTERNAL;
}

function collapse(batch: readonly Pending[]): Collapsed {
  const c = emptyCollapsed();
  for (const p of batch) if (p.readings) addBatch(c, p.peer, p.seq, p.readings);
  return c;
}

/** The frame answering a batch: its refusal, or an ack (`dup` for a duplicate). */
function answer(p: Pending, refused: Refusal | null): Frame {
  if (refused) return { type: "error", seq: p.seq, ...refused };
  return p.readings ? { type: "ack", seq: p.seq } : { type: "ack", seq: p.seq, dup: true };
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

type Frame = { type: string; seq: number; dup?: true; code?: string; message?: string; retryAfterMs?: number };

function send(to: AckTarget, frame: Frame): void {
  // A socket that closed after its batch arrived is fine: the peer resends after reconnecting and gets a dup ack.
  to.send(encodeCbor(frame));
}

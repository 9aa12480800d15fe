/**
 * One simulated device: a DeviceClient plus a batch buffer with the
 * platform's batching policy (a batch every `batchMs` or `batchReadings`,
 * whichever comes first), fault injection, and the accounting that feeds
 * the report and `--verify`.
 */
import { encodeCbor, type CborValue } from "../schema/cbor.ts";
import { MAX_SEQ, type Reading } from "../schema/protocol.ts";
import { DeviceClient, type DeviceClientOptions } from "../client/index.ts";
import type { Expected } from "./expected.ts";
import { mulberry32 } from "./signal.ts";
import type { Stats } from "./stats.ts";

/** Fault rates are per device per second. */
export interface FaultConfig {
  dropRate: number;
  offlineRate: number;
  offlineForMs: number;
  malformedRate: number;
  resendRate: number;
  clockSkewMs: number;
  /** Fraction of readings delivered late, and by how much. */
  lateFraction: number;
  lateByMs: number;
}

export const NO_FAULTS: FaultConfig = {
  dropRate: 0,
  offlineRate: 0,
  offlineForMs: 10_000,
  malformedRate: 0,
  resendRate: 0,
  clockSkewMs: 0,
  lateFraction: 0,
  lateByMs: 5 * 60_000,
};

export interface BatchPolicy {
  batchMs: number;
  batchReadings: number;
}

/** Malformed frames the fault injector sends; each must come back as an error frame. */
const MALFORMED: readonly ((now: number) => CborValue)[] = [
  (now) => ({ type: "batch", seq: MAX_SEQ, readings: [[now, "bad metric!", 1]] }),
  (now) => ({ type: "batch", seq: MAX_SEQ, readings: [[now, "temp", Number.NaN]] }),
  (now) => ({ type: "batch", seq: 0, readings: [[now, "temp", 1]] }),
  () => ({ type: "batch", seq: MAX_SEQ, readings: [] }),
  (now) => ({ type: "batch", seq: MAX_SEQ, readings: [[now + 3_600_000, "temp", 1]] }),
  (now) => ({ type: "telemetry", seq: MAX_SEQ, readings: [[now, "temp", 1]] }),
];

export class SimDevice {
  readonly group: string;
  readonly device: string;
  readonly client: DeviceClient;
  /** Fixed clock error of this device, ms. */
  readonly skewMs: number;
  private batch: Reading[] = [];
  private batchStartedAt = 0;
  private offlineUntil = 0;
  private hellos = 0;
  private lastAcked: { seq: number; readings: readonly Reading[] } | null = null;
  private readonly rnd: () => number;
  private readonly stats: Stats;
  private readonly policy: BatchPolicy;
  private readonly faults: FaultConfig;

  constructor(
    id: { group: string; device: string; seed: number },
    clientOpts: DeviceClientOptions,
    ctx: { stats: Stats; expected: Expected | null; policy: BatchPolicy; faults: FaultConfig },
  ) {
    this.group = id.group;
    this.device = id.device;
    this.stats = ctx.stats;
    this.policy = ctx.policy;
    this.faults = ctx.faults;
    this.rnd = mulberry32(id.seed ^ 0x5bd1e995);
    this.skewMs = Math.round((this.rnd() * 2 - 1) * ctx.faults.clockSkewMs);
    const stats = ctx.stats;
    const expected = ctx.expected;
    this.client = new DeviceClient(clientOpts);
    this.client.on("hello", () => {
      stats.connected++;
      if (++this.hellos > 1) stats.reconnects++;
    });
    this.client.on("ack", (seq, dup, latencyMs, n, readings) => {
      stats.ackedBatches++;
      stats.ackedReadings += n;
      if (dup) stats.duplicateAcks++;
      else stats.latency.record(latencyMs);
      expected?.add(this.group, this.device, readings);
      this.lastAcked = { seq, readings };
    });
    // Every error frame, not only those that settle a queued batch: refusals
    // of batches held back behind a `rate_limited` one, and errors without
    // a seq (work budget, an unreadable frame), count too.
    this.client.on("errorFrame", (code, _message, seq) => {
      stats.bump(stats.errors, code);
      if (seq === undefined) stats.errorsWithoutSeq++;
    });
    this.client.on("connectError", (message) => {
      stats.connectErrors++;
      stats.lastConnectError = message;
    });
    this.client.on("disconnect", (code) => {
      stats.bump(stats.closes, String(code));
      if (this.client.state === "open" || this.hellos > 0) stats.connected = Math.max(0, stats.connected - 1);
    });
  }

  /** Adds one reading to the current batch, applying clock skew and late delivery. */
  push(ts: number, metric: string, value: number, now: number): void {
    let t = ts + this.skewMs;
    if (this.faults.lateFraction > 0 && this.rnd() < this.faults.lateFraction) {
      t -= this.faults.lateByMs;
      this.stats.bump(this.stats.faults, "late_reading");
    }
    if (this.batch.length === 0) this.batchStartedAt = now;
    this.batch.push([t, metric, value]);
    this.stats.generatedReadings++;
    if (this.batch.length >= this.policy.batchReadings) this.flush();
  }

  /** Sends the batch when it is old enough. */
  maybeFlush(now: number): void {
    if (this.batch.length > 0 && now - this.batchStartedAt >= this.policy.batchMs) this.flush();
  }

  /** Sends a whole batch made elsewhere (benchmark sources), bypassing per-reading faults. */
  sendBatch(readings: Reading[]): void {
    this.stats.generatedReadings += readings.length;
    this.flush(readings);
  }

  flush(given?: Reading[]): void {
    const b = given ?? this.batch;
    if (b.length === 0) return;
    if (!given) this.batch = [];
    // A closed client (the run is over) keeps nothing more: count it as dropped rather than throw from a timer.
    if (this.client.state !== "closed" && this.client.send(b)) {
      this.stats.sentBatches++;
      this.stats.sentReadings += b.length;
    } else {
      this.stats.droppedReadings += b.length;
    }
  }

  /** Rolls the dice for each fault over the last `dtMs`. */
  injectFaults(now: number, dtMs: number): void {
    const f = this.faults;
    const dt = dtMs / 1000;
    if (this.offlineUntil > 0) {
      if (now >= this.offlineUntil) {
        this.offlineUntil = 0;
        this.client.resume();
      }
      return;
    }
    const open = this.client.state === "open";
    if (f.dropRate > 0 && open && this.rnd() < f.dropRate * dt) {
      this.client.dropConnection();
      this.stats.bump(this.stats.faults, "connection_drop");
    }
    if (f.offlineRate > 0 && this.rnd() < f.offlineRate * dt) {
      this.offlineUntil = now + f.offlineForMs;
      this.client.suspend();
      this.stats.bump(this.stats.faults, "offline");
    }
    if (f.malformedRate > 0 && open && this.rnd() < f.malformedRate * dt) {
      const make = MALFORMED[Math.floor(this.rnd() * MALFORMED.length)];
      if (make && this.client.sendRaw(encodeCbor(make(now)))) {
        this.stats.bump(this.stats.faults, "malformed_frame");
      }
    }
    if (f.resendRate > 0 && open && this.lastAcked && this.rnd() < f.resendRate * dt) {
      const { seq, readings } = this.lastAcked;
      if (this.client.sendRaw(encodeCbor({ type: "batch", seq, readings }))) this.stats.bump(this.stats.faults, "resend_acked");
    }
  }

  /** Queued, unacked work left at the end of a run. */
  unacked(): { batches: number; readings: number } {
    let readings = 0;
    for (const b of this.client.unackedBatches()) readings += b.readings.length;
    for (const b of this.client.unsentBatches()) readings += b.length;
    return { batches: this.client.pending, readings };
  }
}

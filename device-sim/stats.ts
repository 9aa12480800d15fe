/** Counters and a latency histogram for a simulator run. */

/** Log-bucketed histogram: about 1% relative precision, constant memory, any number of samples. */
export class Histogram {
  private readonly counts = new Map<number, number>();
  count = 0;
  max = 0;
  private static readonly base = Math.log(1.01);

  record(ms: number): void {
    const v = Math.max(0, ms);
    const i = Math.round(Math.log1p(v) / Histogram.base);
    this.counts.set(i, (this.counts.get(i) ?? 0) + 1);
    this.count++;
    if (v > this.max) this.max = v;
  }

  /** Value at quantile q (0..1), in ms; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = Math.max(1, Math.ceil(q * this.count));
    const keys = [...this.counts.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.counts.get(k) ?? 0;
      if (seen >= target) return Math.min(this.max, Math.expm1(k * Histogram.base));
    }
    return this.max;
  }
}

/** Everything a run counts. JSON-clean except the histogram. */
export class Stats {
  readonly startedAt = Date.now();
  devices = 0;
  connected = 0;
  generatedReadings = 0;
  sentBatches = 0;
  sentReadings = 0;
  ackedBatches = 0;
  ackedReadings = 0;
  /** Batches the hub reported as already applied (dup ack, or at/below lastSeq in hello). */
  duplicateAcks = 0;
  reconnects = 0;
  connectErrors = 0;
  /** The last connect error's message (the first thing to show when nothing was acked). */
  lastConnectError = "";
  /** Batches left unacked when the sockets closed that the hub's lastSeq showed as applied. */
  settledByLastSeq = 0;
  /** Readings dropped because a device's offline buffer was full. */
  droppedReadings = 0;
  /** Error frames by code, every one the hub sent. */
  readonly errors: Record<string, number> = {};
  /** Of those, the ones without a seq (not about one batch: over the work budget, an unreadable frame). */
  errorsWithoutSeq = 0;
  /** Close codes seen, by code. */
  readonly closes: Record<string, number> = {};
  /** Faults injected, by kind. */
  readonly faults: Record<string, number> = {};
  readonly latency = new Histogram();

  bump(map: Record<string, number>, key: string, n = 1): void {
    map[key] = (map[key] ?? 0) + n;
  }
}

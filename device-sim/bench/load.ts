/**
 * The load generator: N DeviceClients in one group, each fed by its own
 * ReadingSource. Two ways to drive them:
 * - saturate: every ack is answered with a new batch, so each client keeps
 *   its in-flight window full and the hub, not a schedule, sets the pace;
 * - paced: a fixed total rate, spread evenly over the devices.
 * Ack latency is measured per batch from the moment the bench hands it to
 * the client (so time queued behind a full window counts) to the ack event.
 */
import { DeviceClient } from "../client.ts";
import { deviceSubject, signToken } from "../../schema/token.ts";
import { ReadingSource } from "./readings.ts";

export interface FleetOptions {
  url: string;
  group: string;
  secret: string;
  devices: number;
  batchSize: number;
  maxInFlight: number;
}

/** Counters over a measurement window. */
export interface WindowCounts {
  batches: number;
  readings: number;
}

type Mode = "idle" | "saturate" | "paced";

export class Fleet {
  readonly opts: FleetOptions;
  private readonly clients: DeviceClient[] = [];
  private readonly sources: ReadingSource[] = [];
  /** Per device, send times (performance.now()) of batches not yet settled; `heads[i]` indexes the oldest. */
  private readonly sendTimes: number[][] = [];
  private readonly heads: number[] = [];
  private mode: Mode = "idle";
  private pacer: NodeJS.Timeout | undefined;

  /** Everything acked over the fleet's life (the hub must hold exactly this much). */
  readonly total: WindowCounts = { batches: 0, readings: 0 };
  /** Acked since the last `resetWindow()`. */
  window: WindowCounts = { batches: 0, readings: 0 };
  /** Latencies (ms) of batches acked while recording. */
  latencies: number[] = [];
  recordLatency = false;
  /** Batches the pacer could not queue because a client's queue was full. */
  dropped = 0;
  /** The first rejections (batches the hub refused for good), as text. */
  readonly rejects: string[] = [];
  rejected = 0;
  /** `rate_limited` answers (the client waits and resends; nothing is lost). */
  throttled = 0;
  disconnects = 0;

  constructor(opts: FleetOptions) {
    this.opts = opts;
  }

  deviceId(i: number): string {
    return `dev-${String(i).padStart(3, "0")}`;
  }

  /** Connects every device and resolves once each has had its `hello`. */
  async connect(): Promise<void> {
    const hellos: Promise<void>[] = [];
    for (let i = 0; i < this.opts.devices; i++) {
      const device = this.deviceId(i);
      const token = await signToken(this.opts.secret, deviceSubject(this.opts.group, device));
      const client = new DeviceClient({
        url: this.opts.url,
        group: this.opts.group,
        device,
        token,
        maxInFlight: this.opts.maxInFlight,
        maxQueued: 100_000,
        backoffInitialMs: 50,
        backoffMaxMs: 1000,
      });
      this.clients.push(client);
      this.sources.push(new ReadingSource(i + 1));
      this.sendTimes.push([]);
      this.heads.push(0);
      client.on("ack", (_seq, _dup, _ms, readings) => this.onSettled(i, readings));
      client.on("reject", (seq, code, message) => {
        // The client resends after `internal` (on a new socket) and after
        // `rate_limited` (when told to): those batches are not settled yet.
        if (code === "rate_limited") {
          this.throttled++;
          return;
        }
        if (code === "internal") return;
        if (this.rejects.length < 20) this.rejects.push(`${device} seq ${seq ?? "?"}: ${code} ${message}`);
        this.rejected++;
        if (seq !== undefined) this.onSettled(i, -1);
      });
      client.on("disconnect", () => {
        if (this.mode !== "idle" || client.pending > 0) this.disconnects++;
      });
      hellos.push(
        new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`${device}: no hello within 15 s`)), 15_000);
          client.once("hello", () => {
            clearTimeout(t);
            resolve();
          });
        }),
      );
      client.start();
    }
    await Promise.all(hellos);
  }

  /** Batches handed to clients and not yet settled. */
  get outstanding(): number {
    let n = 0;
    for (const c of this.clients) n += c.pending;
    return n;
  }

  resetWindow(): void {
    this.window = { batches: 0, readings: 0 };
  }

  private onSettled(i: number, readings: number): void {
    const times = this.sendTimes[i];
    const head = this.heads[i] ?? 0;
    if (times && head < times.length) {
      const sentAt = times[head] ?? 0;
      this.heads[i] = head + 1;
      // Compact now and then instead of shifting on every ack.
      if (head + 1 > 4096) {
        times.splice(0, head + 1);
        this.heads[i] = 0;
      }
      if (readings >= 0 && this.recordLatency) this.latencies.push(performance.now() - sentAt);
    }
    if (readings < 0) return; // rejected
    this.total.batches++;
    this.total.readings += readings;
    this.window.batches++;
    this.window.readings += readings;
    if (this.mode === "saturate") this.topUp(i);
  }

  private sendOne(i: number): boolean {
    const client = this.clients[i];
    const source = this.sources[i];
    if (!client || !source) return false;
    const readings = source.batch(this.opts.batchSize, Date.now());
    this.sendTimes[i]?.push(performance.now());
    if (client.send(readings)) return true;
    this.sendTimes[i]?.pop();
    return false;
  }

  /** Keeps a client's queue at twice its window, so the window never runs dry waiting for us. */
  private topUp(i: number): void {
    const client = this.clients[i];
    if (!client) return;
    const target = this.opts.maxInFlight * 2;
    while (client.pending < target && this.sendOne(i));
  }

  /** Every client sends as fast as its acks come back. */
  saturate(): void {
    this.stopPacer();
    this.mode = "saturate";
    for (let i = 0; i < this.clients.length; i++) this.topUp(i);
  }

  /** Sends `readingsPerSecond` in total, as whole batches spread round-robin over the devices. */
  paced(readingsPerSecond: number): void {
    this.stopPacer();
    this.mode = "paced";
    const batchesPerMs = readingsPerSecond / this.opts.batchSize / 1000;
    const start = performance.now();
    let sent = 0;
    let next = 0;
    const tick = (): void => {
      const due = Math.floor((performance.now() - start) * batchesPerMs) - sent;
      for (let k = 0; k < due; k++) {
        if (!this.sendOne(next)) this.dropped++;
        next = (next + 1) % this.clients.length;
        sent++;
      }
    };
    // Node's timers fire at 1 ms granularity at best; each tick sends what is due.
    this.pacer = setInterval(tick, 1);
  }

  private stopPacer(): void {
    clearInterval(this.pacer);
    this.pacer = undefined;
  }

  /** Stops feeding and waits until every batch handed out so far is settled. */
  async drain(timeoutMs = 30_000): Promise<void> {
    this.stopPacer();
    this.mode = "idle";
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.outstanding} batches still unacked after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.clients.map((c) => c.idle())), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.stopPacer();
    this.mode = "idle";
    await Promise.all(this.clients.map((c) => c.close()));
  }

  /** Highest seq each device has been assigned, by device id. */
  lastSeqs(): Map<string, number> {
    return new Map(this.clients.map((c, i) => [this.deviceId(i), c.lastAssignedSeq]));
  }
}

/**
 * The benchmark's load: the simulator's fleet engine (device-sim/engine.ts),
 * one group of N devices with four sensors each, driven from outside:
 * - saturate: every device keeps its in-flight window full (`--rate max`),
 *   so the hub, not a schedule, sets the pace;
 * - paced: a fixed total rate, spread evenly over the devices.
 * Ack latency is per batch, from the moment the client puts it on the wire
 * to its ack (client/device-client.ts), as the simulator reports it.
 */
import { Simulation, simConfig } from "../engine.ts";
import { fleetFromOptions } from "../fleet.ts";
import { ReadingSource } from "./readings.ts";
import { waitFor } from "../../harness/wait.ts";

export interface FleetOptions {
  url: string;
  group: string;
  secret: string;
  devices: number;
  batchSize: number;
  maxInFlight: number;
  /** Frame type the devices send (default `cbatch`, as DeviceClient does). */
  frames?: "cbatch" | "batch";
  /** The metrics each device's `ReadingSource` sends (default `METRICS`): paced rates are per metric. */
  metrics?: readonly string[];
}

/** Counters over a measurement window. */
export interface WindowCounts {
  batches: number;
  readings: number;
}

/** Four sensors per device, as a typical environmental node reports them. */
export const METRICS = ["temp_c", "humidity_pct", "pressure_hpa", "battery_v"];

export class Fleet {
  readonly opts: FleetOptions;
  private readonly sim: Simulation;
  /** Everything acked over the fleet's life (the hub must hold exactly this much). */
  readonly total: WindowCounts = { batches: 0, readings: 0 };
  /** Acked since the last `resetWindow()`. */
  window: WindowCounts = { batches: 0, readings: 0 };
  /** Latencies (ms) of batches acked while recording. */
  latencies: number[] = [];
  recordLatency = false;
  /** The first rejections (batches the hub refused for good), as text. */
  readonly rejects: string[] = [];
  rejected = 0;
  /** `rate_limited` answers (the client waits and resends; nothing is lost). */
  throttled = 0;
  disconnects = 0;
  private driving = false;

  constructor(opts: FleetOptions) {
    this.opts = opts;
    const fleet = fleetFromOptions({ groups: 1, prefix: "bench", devices: opts.devices, metrics: [...(opts.metrics ?? METRICS)], rate: 1 });
    fleet.groups = [opts.group];
    this.sim = new Simulation(
      simConfig(
        { url: opts.url, secret: opts.secret, fleet },
        {
          policy: { batchMs: 100, batchReadings: opts.batchSize },
          maxInFlight: opts.maxInFlight,
          bufferBatches: 100_000,
          connectRate: 1000,
          // Fine-grained ticks so a paced rate is spread evenly, not sent in bursts.
          tickMs: 1,
          batchSource: (i) => new ReadingSource(i + 1, opts.metrics),
          frames: opts.frames ?? "cbatch",
        },
      ),
    );
  }

  /** Connects every device (paused) and resolves once each has had its `hello`. */
  async connect(): Promise<void> {
    await this.sim.start();
    this.sim.setRate(0);
    for (const d of this.sim.simDevices()) {
      const c = d.client;
      c.on("ack", (_seq, dup, latencyMs, readings) => {
        this.total.batches++;
        this.total.readings += readings;
        this.window.batches++;
        this.window.readings += readings;
        if (this.recordLatency && !dup) this.latencies.push(latencyMs);
      });
      c.on("reject", (seq, code, message) => {
        // The client resends after `internal` (on a new socket) and after
        // `rate_limited` (when told to): those batches are not settled yet.
        if (code === "rate_limited") {
          this.throttled++;
          return;
        }
        if (code === "internal") return;
        if (this.rejects.length < 20) this.rejects.push(`${d.device} seq ${seq ?? "?"}: ${code} ${message}`);
        this.rejected++;
      });
      c.on("disconnect", () => {
        if (this.driving || c.pending > 0) this.disconnects++;
      });
    }
    await waitFor(() => this.sim.simDevices().every((d) => d.client.state === "open"), "every device's hello", 15_000, 20);
  }

  /** Batches handed to clients and not yet settled. */
  get outstanding(): number {
    let n = 0;
    for (const d of this.sim.simDevices()) n += d.client.pending;
    return n;
  }

  /** Batches the generator could not queue because a device's buffer was full. */
  get dropped(): number {
    return Math.ceil(this.sim.stats.droppedReadings / this.opts.batchSize);
  }

  resetWindow(): void {
    this.window = { batches: 0, readings: 0 };
  }

  /** Every device sends as fast as its acks come back. */
  saturate(): void {
    this.driving = true;
    this.sim.setRate(Infinity);
  }

  /** Sends `readingsPerSecond` in total, spread evenly over the devices. */
  paced(readingsPerSecond: number): void {
    this.driving = true;
    this.sim.setRate(readingsPerSecond / this.opts.devices / (this.opts.metrics ?? METRICS).length);
  }

  /** Stops feeding and waits until every batch handed out so far is settled. */
  async drain(timeoutMs = 30_000): Promise<void> {
    this.driving = false;
    this.sim.setRate(0);
    for (const d of this.sim.simDevices()) d.flush();
    if (!(await this.sim.settle(timeoutMs))) throw new Error(`${this.outstanding} batches still unacked after ${timeoutMs} ms`);
  }

  async close(): Promise<void> {
    this.driving = false;
    await this.sim.finish();
  }

  /** Highest seq each device has been assigned, by device id. */
  lastSeqs(): Map<string, number> {
    return new Map(this.sim.simDevices().map((d) => [d.device, d.client.lastAssignedSeq]));
  }
}

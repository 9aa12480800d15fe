/**
 * The fleet engine's configuration: the CLI's options as data, and their
 * defaults for programs that drive a fleet in-process.
 */
import type { Reading } from "../schema/protocol.ts";
import type { DownlinkSimConfig } from "./downlink.ts";
import type { Fleet } from "./fleet.ts";
import type { ReplayData } from "./replay.ts";
import { NO_FAULTS, type BatchPolicy, type FaultConfig } from "./sim-device.ts";

export interface SimConfig {
  url: string;
  secret: string;
  /** Generated fleet, or null when replaying. */
  fleet: Fleet | null;
  replay: ReplayData | null;
  /** Replay speed factor; Infinity replays as fast as the hub acks. */
  speed: number;
  /** Replay timestamps as recorded, or shifted by whole minutes so none is stamped later than it is sent. */
  replayTime: "shift" | "original";
  prefix: string;
  seed: number;
  durationMs: number | null;
  /** Stop after this many generated readings (whole fleet). */
  maxReadings: number | null;
  policy: BatchPolicy;
  maxInFlight: number;
  /** Offline buffer per device, in batches. */
  bufferBatches: number;
  faults: FaultConfig;
  statePath: string | null;
  recordPath: string | null;
  verify: boolean;
  drainTimeoutMs: number;
  /**
   * How long each REST call at the start and end of a run (preflight,
   * lastSeq, --verify) may keep retrying a busy hub. Default 60 s.
   */
  httpTimeoutMs?: number;
  /** Check before connecting that the hub answers and takes our tokens (the CLI does; in-process drivers know their hub). */
  preflight?: boolean;
  /** New connections per second while the fleet comes up. */
  connectRate: number;
  progress: boolean;
  /** Frame type of batches (default `cbatch`; `batch` for a hub that predates compact batches). */
  frames?: "cbatch" | "batch";
  /**
   * Generate values as float32 (rounded where they are made, so records and
   * --verify see what the hub stores): compact batches then carry 4 bytes a
   * value instead of 8. Default false: values as float64.
   */
  float32?: boolean;
  /** `--downlink`: devices opt in and run the built-in commands; null (the default): they do not. */
  downlink?: DownlinkSimConfig | null;
  /** Generation tick, ms (default 20); benchmarks pacing a rate precisely use less. */
  tickMs?: number;
  /**
   * Makes whole batches instead of the signal generators (benchmarks: cheap
   * random walks, so the load generator's cost stays on encoding and I/O).
   * Called once per device, with its index in the fleet.
   */
  batchSource?: (deviceIndex: number) => { batch(size: number, now: number): Reading[] };
}

/**
 * A configuration with the CLI's defaults (`npm run sim -- --help`), for the
 * programs that drive a fleet in-process: the demo, the benchmarks, chaos.
 */
export function simConfig(base: Pick<SimConfig, "url" | "secret" | "fleet">, overrides: Partial<SimConfig> = {}): SimConfig {
  return {
    replay: null,
    speed: 1,
    replayTime: "shift",
    prefix: base.fleet?.groups[0] ?? "sim",
    seed: 1,
    durationMs: null,
    maxReadings: null,
    policy: { batchMs: 100, batchReadings: 100 },
    maxInFlight: 32,
    bufferBatches: 1000,
    faults: NO_FAULTS,
    statePath: null,
    recordPath: null,
    verify: false,
    drainTimeoutMs: 30_000,
    connectRate: 2000,
    progress: false,
    ...base,
    ...overrides,
  };
}

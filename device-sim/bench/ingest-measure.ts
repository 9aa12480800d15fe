/**
 * What `npm run bench:ingest` measures and how: CPU accounting of the bench
 * process, workerd and the rest of the machine; measurement windows;
 * ack latency percentiles; the CPU ceiling in a worker thread; profiling;
 * and the check that a hub holds exactly the readings it acked.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { Worker } from "node:worker_threads";
import { setTimeout as sleep } from "node:timers/promises";
import { encodeBatchFrame } from "../../client/batch-frame.ts";
import { HubClient } from "../../schema/client.ts";
import { operatorSubject, signToken } from "../../schema/token.ts";
import type { CeilingInput, CeilingResult } from "./ceiling.ts";
import { dirBytes, machineCpuSeconds, processCpuSeconds, startHub, type Hub, type WranglerConfig } from "./hub.ts";
import type { IngestOptions } from "./ingest-options.ts";
import { fmtCpu, fmtInt } from "./ingest-format.ts";
import { Fleet } from "./load.ts";
import { Inspector, hotFunctions, sourceMapper, type CpuProfile, type HotFunction } from "./profile.ts";
import { ReadingSource } from "./readings.ts";

/** One bench run: its options, its progress lines, and what to undo when it ends. */
export interface BenchRun {
  opts: IngestOptions;
  progress(line: string): void;
  /** Everything to undo on exit; run newest first. */
  cleanups: (() => Promise<void>)[];
  /** The run's temp directory (bundle, SQLite files), once created. */
  workDir: string | null;
}

/** Paced run: this long at the target rate before latencies count. */
export const PACED_LEAD_IN_S = 1;
/** Seconds per stage of the CPU ceiling (three stages). */
export const CEILING_STAGE_S = 1.5;

interface CpuMark {
  wall: number;
  node: NodeJS.CpuUsage;
  workerd: number | null;
  machine: { busy: number; total: number } | null;
}

/**
 * CPU used per wall second (1.0 = one core busy): by the bench process
 * (the load generator), by workerd (the hub), and by everything else on the
 * machine. `other` well above zero means the figures were disturbed.
 */
export interface CpuUse {
  node: number;
  workerd: number | null;
  other: number | null;
}

function cpuMark(hub: Hub): CpuMark {
  return {
    wall: performance.now(),
    node: process.cpuUsage(),
    workerd: processCpuSeconds(hub.workerdPid),
    machine: machineCpuSeconds(),
  };
}

function cpuSince(a: CpuMark, hub: Hub): CpuUse {
  const b = cpuMark(hub);
  const wall = (b.wall - a.wall) / 1000;
  const node = (b.node.user - a.node.user + b.node.system - a.node.system) / 1e6 / wall;
  const workerd = a.workerd !== null && b.workerd !== null ? (b.workerd - a.workerd) / wall : null;
  let other: number | null = null;
  if (a.machine && b.machine && workerd !== null) {
    // Scale by the machine's own clock so jiffy rounding does not count as load.
    const cores = cpus().length;
    const machineWall = (b.machine.total - a.machine.total) / cores;
    const busy = machineWall > 0 ? (b.machine.busy - a.machine.busy) / machineWall : 0;
    other = Math.max(0, busy - node - workerd);
  }
  return { node, workerd, other };
}

/** Cores other processes used since `a`, for a stretch where workerd does not run. */
export function otherCoresSince(a: { node: NodeJS.CpuUsage; machine: { busy: number; total: number } | null; wall: number }): number | null {
  const m = machineCpuSeconds();
  if (!a.machine || !m) return null;
  const n = process.cpuUsage(a.node);
  const wall = (m.total - a.machine.total) / cpus().length;
  if (wall <= 0) return null;
  return Math.max(0, (m.busy - a.machine.busy) / wall - (n.user + n.system) / 1e6 / ((performance.now() - a.wall) / 1000));
}

export interface Window {
  seconds: number;
  batches: number;
  readings: number;
  readingsPerSec: number;
  /** Median of the one-second rates: robust against a short disturbance. */
  medianPerSec: number;
  perSecond: number[];
  cpu: CpuUse;
  /** CPU time per reading, ns: what each side pays, whatever else runs on the machine. */
  hubNsPerReading: number | null;
  loadNsPerReading: number;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] ?? NaN) : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

/** Lets the fleet run for `seconds`, printing a progress line each second. */
export async function runWindow(run: BenchRun, fleet: Fleet, hub: Hub, label: string, seconds: number): Promise<Window> {
  fleet.resetWindow();
  const start = cpuMark(hub);
  let lastMark = start;
  let lastReadings = 0;
  const perSecond: number[] = [];
  const end = start.wall + seconds * 1000;
  for (;;) {
    const left = end - performance.now();
    if (left <= 0) break;
    await sleep(Math.min(1000, left));
    const dt = (performance.now() - lastMark.wall) / 1000;
    if (dt < 0.5) continue; // a sliver at the end of the window: too short to say anything
    const cpu = cpuSince(lastMark, hub);
    const rate = (fleet.window.readings - lastReadings) / dt;
    perSecond.push(rate);
    run.progress(`${label.padEnd(28)} ${fmtInt(rate).padStart(10)} readings/s  unacked ${String(fleet.outstanding).padStart(4)}  ${fmtCpu(cpu)}`);
    lastMark = cpuMark(hub);
    lastReadings = fleet.window.readings;
  }
  const cpu = cpuSince(start, hub);
  const wall = (performance.now() - start.wall) / 1000;
  const { batches, readings } = fleet.window;
  const perReading = (cores: number | null): number | null => (cores === null || readings === 0 ? null : (cores * wall * 1e9) / readings);
  return {
    seconds: wall,
    batches,
    readings,
    readingsPerSec: readings / wall,
    medianPerSec: median(perSecond),
    perSecond,
    cpu,
    hubNsPerReading: perReading(cpu.workerd),
    loadNsPerReading: perReading(cpu.node) ?? NaN,
  };
}

export interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function latencyStats(samples: number[]): Latency {
  const s = Float64Array.from(samples).sort();
  const at = (q: number): number => (s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN));
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] ?? NaN, mean: sum / s.length };
}

export interface Verification {
  ok: boolean;
  ackedReadings: number;
  aggregateCount: number;
  buckets: number;
  deviceReadings: number;
  seqsMatch: boolean;
  /** Batches refused for good, and the first few refusals as text. */
  rejected: number;
  rejects: string[];
  /** `rate_limited` answers (only with --rate-limit): the client waited and resent. */
  throttled: number;
  disconnects: number;
  dropped: number;
  sqliteBytes: number;
}

/** The hub must hold exactly what it acked: sum of aggregate counts, per-device readings and lastSeq. */
export async function verify(hub: Hub, fleet: Fleet, secret: string): Promise<Verification> {
  const group = fleet.opts.group;
  const client = new HubClient({ url: hub.url, token: await signToken(secret, operatorSubject(group)) });
  const { buckets, truncated } = await client.aggregates(group);
  let aggregateCount = 0;
  for (const b of buckets) aggregateCount += b.count;

  const devices = await client.devices(group);
  const expectedSeqs = fleet.lastSeqs();
  let deviceReadings = 0;
  let seqsMatch = devices.length === expectedSeqs.size;
  for (const d of devices) {
    deviceReadings += d.readings;
    if (expectedSeqs.get(d.id) !== d.lastSeq) seqsMatch = false;
  }
  const ackedReadings = fleet.total.readings;
  const ok =
    !truncated &&
    aggregateCount === ackedReadings &&
    deviceReadings === ackedReadings &&
    seqsMatch &&
    fleet.rejected === 0 &&
    fleet.dropped === 0;
  return {
    ok,
    ackedReadings,
    aggregateCount,
    buckets: buckets.length,
    deviceReadings,
    seqsMatch,
    rejected: fleet.rejected,
    rejects: fleet.rejects,
    throttled: fleet.throttled,
    disconnects: fleet.disconnects,
    dropped: fleet.dropped,
    sqliteBytes: dirBytes(hub.persistDir),
  };
}

export interface CommitModeResult {
  groupCommitMs: number;
  saturation: Window;
  verification: Verification;
  profile?: ProfileSummary;
}

export interface PacedResult {
  targetReadingsPerSec: number;
  achieved: Window;
  latencyMs: Latency;
}

/** The Node ceiling for frames of one type, each exactly what DeviceClient puts on the wire. */
export async function measureCeiling(run: BenchRun, config: WranglerConfig, type: "cbatch" | "batch" = "cbatch"): Promise<CeilingResult> {
  const { devices: deviceCount, batch, readingsPerBatch } = run.opts;
  const frames: Uint8Array[] = [];
  const devices: string[] = [];
  const now = Date.now();
  for (let d = 0; d < deviceCount; d++) {
    const source = new ReadingSource(d + 1);
    for (let seq = 1; seq <= Math.max(4, Math.ceil(2000 / deviceCount)); seq++) {
      frames.push(encodeBatchFrame(seq, source.batch(batch, now), { frames: type, values: "lossless", endpoint: "devices" }));
      devices.push(`dev-${d}`);
    }
  }
  const input: CeilingInput = {
    frames,
    devices,
    readingsPerFrame: readingsPerBatch,
    secondsPerStage: CEILING_STAGE_S,
    // About one 4 ms group commit at ten thousand batches/s. (Saturation
    // packs more per commit; collapse costs about the same either way.)
    batchesPerCommit: 40,
    vars: config.vars,
  };
  const worker = new Worker(new URL("./ceiling.ts", import.meta.url), {
    workerData: input,
    env: { ...process.env, CBOR_NATIVE_ACCELERATION_DISABLED: "true" },
  });
  run.cleanups.push(() => worker.terminate().then(() => undefined));
  return new Promise<CeilingResult>((resolve, reject) => {
    worker.once("message", (m: CeilingResult) => resolve(m));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`ceiling worker exited with ${code}`)));
  });
}

let hubCount = 0;

export async function withHub<T>(
  run: BenchRun,
  entry: string,
  config: WranglerConfig,
  secret: string,
  vars: Record<string, string>,
  fn: (hub: Hub) => Promise<T>,
): Promise<T> {
  const hub = await startHub({
    persistDir: join(run.workDir ?? tmpdir(), `state-${++hubCount}`),
    entry,
    config,
    secret,
    vars,
    inspector: run.opts.profile,
    onLog: (l) => process.stderr.write(`[workerd] ${l}\n`),
  });
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    await hub.dispose();
  };
  run.cleanups.push(dispose);
  try {
    return await fn(hub);
  } finally {
    await dispose();
  }
}

export async function withFleet<T>(run: BenchRun, hub: Hub, secret: string, group: string, fn: (fleet: Fleet) => Promise<T>, frames: "cbatch" | "batch" = "cbatch"): Promise<T> {
  const { devices, batch, inFlight } = run.opts;
  const fleet = new Fleet({ url: hub.url, group, secret, devices, batchSize: batch, maxInFlight: inFlight, frames });
  run.cleanups.push(() => fleet.close());
  await fleet.connect();
  try {
    return await fn(fleet);
  } finally {
    await fleet.close();
  }
}

/** Hot functions of the hub's isolate and of this process over one more saturated window. */
export interface ProfileSummary {
  /** Throughput while both profilers ran (they cost some). */
  readingsPerSec: number;
  cpu: CpuUse;
  hub: HotFunction[];
  loadGenerator: HotFunction[];
}

async function profileWindow(run: BenchRun, fleet: Fleet, hub: Hub, label: string): Promise<ProfileSummary> {
  const { profileS, profileOut } = run.opts;
  if (!hub.inspectorUrl) throw new Error("hub started without an inspector");
  // workerd's isolate may not serve the inspector while sockets keep it busy
  // without a pause (one commit per message does), so the profilers start
  // and stop with the fleet idle.
  await fleet.drain();
  const inspector = await Inspector.connect(hub.inspectorUrl, "core:user:");
  const self = new Session();
  self.connect();
  try {
    await self.post("Profiler.enable");
    await self.post("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.startProfiling(200);
    await self.post("Profiler.start");
    run.progress(`${label}: profiling hub and load generator for ${profileS} s`);
    fleet.saturate();
    const w = await runWindow(run, fleet, hub, `${label} profiling`, profileS);
    await fleet.drain();
    const nodeProfile: CpuProfile = (await self.post("Profiler.stop")).profile;
    const hubProfile = await inspector.stopProfiling();
    if (profileOut !== undefined) {
      await mkdir(profileOut, { recursive: true });
      const slug = label.replace(/\W+/g, "-");
      await writeFile(join(profileOut, `hub-${slug}.cpuprofile`), JSON.stringify(hubProfile));
      await writeFile(join(profileOut, `load-${slug}.cpuprofile`), JSON.stringify(nodeProfile));
      run.progress(`wrote ${profileOut}/hub-${slug}.cpuprofile and load-${slug}.cpuprofile`);
    }
    const mapper = sourceMapper(hub.sourceMapPath, basename(hub.sourceMapPath, ".map"));
    return {
      readingsPerSec: w.readingsPerSec,
      cpu: w.cpu,
      hub: hotFunctions(hubProfile, 25, mapper),
      loadGenerator: hotFunctions(nodeProfile, 25),
    };
  } finally {
    self.disconnect();
    inspector.close();
  }
}

export async function saturate(run: BenchRun, fleet: Fleet, hub: Hub, label: string): Promise<{ window: Window; profile?: ProfileSummary }> {
  const { warmupS, durationS } = run.opts;
  fleet.saturate();
  if (warmupS > 0) {
    run.progress(`${label}: warm-up ${warmupS} s`);
    await runWindow(run, fleet, hub, `${label} warm-up`, warmupS);
  }
  run.progress(`${label}: measuring saturation for ${durationS} s`);
  const window = await runWindow(run, fleet, hub, `${label} saturation`, durationS);
  const profile = run.opts.profile ? await profileWindow(run, fleet, hub, label) : undefined;
  await fleet.drain();
  return profile ? { window, profile } : { window };
}

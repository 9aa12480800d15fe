/**
 * `npm run bench:ingest`: ingest throughput and ack latency of one device
 * group, measured end to end against the real Worker on workerd.
 *
 *   npm run bench:ingest                      about 1 minute, human-readable summary
 *   npm run bench:ingest -- --duration 20     longer measurement windows
 *   npm run bench:ingest -- --json            the result as JSON on stdout
 *
 * One run measures, side by side:
 *   1. the CPU ceiling: decode + validate + collapse in Node, no sockets or SQLite;
 *   2. saturation with group commit (wrangler.jsonc's GROUP_COMMIT_MS);
 *   3. ack latency at half of that rate, paced;
 *   4. saturation with group commit off (GROUP_COMMIT_MS=0: one commit per message);
 * then checks that each hub's aggregates hold exactly the readings it acked.
 * Progress goes to stderr; only 127.0.0.1 is contacted; temp dirs and the
 * workerd process are removed on exit. docs/benchmarks.md has the figures.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, tmpdir, totalmem, release } from "node:os";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { encodeCbor } from "../../schema/cbor.ts";
import { operatorSubject, signToken } from "../../schema/token.ts";
import type { CeilingInput, CeilingResult } from "./ceiling.ts";
import { ROOT, bundleWorker, dirBytes, machineCpuSeconds, processCpuSeconds, readWranglerConfig, startHub, type Hub, type WranglerConfig } from "./hub.ts";
import { Fleet } from "./load.ts";
import { Inspector, hotFunctions, sourceMapper, type CpuProfile, type HotFunction } from "./profile.ts";
import { METRIC_COUNT, ReadingSource } from "./readings.ts";

// ---------------------------------------------------------------- options

const USAGE = `usage: npm run bench:ingest -- [options]

  --duration N    seconds per measurement window (default 10)
  --warmup N      seconds of saturation before measuring it (default 3)
  --devices N     device sockets in the group (default 10)
  --batch N       readings per batch (default 100; rounded down to whole ticks of 4 metrics)
  --in-flight N   unacked batches per device at saturation (default 32)
  --rate-limit    keep the hub's per-device rate limit (PEER_READINGS_PER_SEC);
                  by default the bench turns it off to measure what the group can take
  --json          print the result as JSON on stdout
  --profile       after each saturation window, profile the hub's isolate and
                  this process for a few more seconds and list the hottest functions
  --profile-out D also write the .cpuprofile files (open in Chrome DevTools) to directory D
  -h, --help      this text
`;

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "3" },
    devices: { type: "string", default: "10" },
    batch: { type: "string", default: "100" },
    "in-flight": { type: "string", default: "32" },
    json: { type: "boolean", default: false },
    "rate-limit": { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    "profile-out": { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function numberArg(name: string, raw: string, min: number, max: number, integer = true): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    process.stderr.write(`--${name} must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got '${raw}'\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const DURATION_S = numberArg("duration", args.duration, 1, 600, false);
const WARMUP_S = numberArg("warmup", args.warmup, 0, 120, false);
const DEVICES = numberArg("devices", args.devices, 1, 1000);
const BATCH = numberArg("batch", args.batch, 4, 5000);
/** ReadingSource emits whole ticks of every metric. */
const READINGS_PER_BATCH = Math.max(1, Math.floor(BATCH / METRIC_COUNT)) * METRIC_COUNT;
const IN_FLIGHT = numberArg("in-flight", args["in-flight"], 1, 1024);
const JSON_OUT = args.json;
const KEEP_RATE_LIMIT = args["rate-limit"];
const PROFILE_OUT = args["profile-out"];
const PROFILE = args.profile || PROFILE_OUT !== undefined;
/** Length of a profiling window, s. */
const PROFILE_S = Math.min(5, DURATION_S);
/** Paced run: this long at the target rate before latencies count. */
const PACED_LEAD_IN_S = 1;
/** Seconds per stage of the CPU ceiling (three stages). */
const CEILING_STAGE_S = 1.5;

const TARGET_READINGS_PER_S = 1_000_000;
const TARGET_P99_MS = 25;

// ---------------------------------------------------------------- plumbing

const t0 = performance.now();
function progress(line: string): void {
  const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${s}s] ${line}\n`);
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString("en-US");
const fmtMs = (n: number): string => (n < 10 ? n.toFixed(2) : n.toFixed(1));
const fmtX = (n: number): string => `${n.toFixed(n < 10 ? 2 : 1)}x`;

/** The run's temp directory (bundle, SQLite files), once created. */
let workDir: string | null = null;
/** Everything to undo on exit; run newest first. */
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | null = null;
/** Runs the cleanups once; every caller waits for the same run. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Also picks up cleanups registered while this runs (a hub that finished starting).
    for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) {
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  })();
  return cleaning;
}
/** Set when a signal or the watchdog stops the run: the exit code to leave with. */
let stopCode: number | null = null;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  // `on`, not `once`: Ctrl-C reaches both npm and this process, and npm
  // forwards it too; a second signal must not kill the cleanup halfway.
  process.on(sig, () => {
    if (stopCode !== null) return;
    stopCode = 130;
    process.stderr.write(`\n${sig}: stopping the fleet and the hub, removing temp files\n`);
    // Miniflare's own handler runs right after this one: it kills workerd and
    // exits at once, so the temp files must go now, synchronously.
    if (workDir !== null) rmSync(workDir, { recursive: true, force: true });
    void cleanup().finally(() => process.exit(130));
  });
}
// The bench stops by itself even if the hub hangs.
const watchdogMs = (90 + 4 * DURATION_S + 2 * WARMUP_S) * 1000;
const watchdog = setTimeout(() => {
  stopCode = 3;
  process.stderr.write(`bench did not finish within ${watchdogMs / 1000} s; aborting\n`);
  void cleanup().finally(() => process.exit(3));
}, watchdogMs);
watchdog.unref();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- measurement

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
function otherCoresSince(a: { node: NodeJS.CpuUsage; machine: { busy: number; total: number } | null; wall: number }): number | null {
  const m = machineCpuSeconds();
  if (!a.machine || !m) return null;
  const n = process.cpuUsage(a.node);
  const wall = (m.total - a.machine.total) / cpus().length;
  if (wall <= 0) return null;
  return Math.max(0, (m.busy - a.machine.busy) / wall - (n.user + n.system) / 1e6 / ((performance.now() - a.wall) / 1000));
}

const fmtCore = (n: number | null): string => (n === null ? "?" : n.toFixed(2));
const fmtCpu = (c: CpuUse): string => `cpu node ${fmtCore(c.node)}, workerd ${fmtCore(c.workerd)}, other ${fmtCore(c.other)}`;

interface Window {
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
async function runWindow(fleet: Fleet, hub: Hub, label: string, seconds: number): Promise<Window> {
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
    progress(`${label.padEnd(28)} ${fmtInt(rate).padStart(10)} readings/s  unacked ${String(fleet.outstanding).padStart(4)}  ${fmtCpu(cpu)}`);
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

interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

function latencyStats(samples: number[]): Latency {
  const s = Float64Array.from(samples).sort();
  const at = (q: number): number => (s.length === 0 ? NaN : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN));
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1] ?? NaN, mean: sum / s.length };
}

// ---------------------------------------------------------------- correctness

interface Verification {
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

async function getJson(hub: Hub, path: string, token: string): Promise<unknown> {
  const res = await fetch(`${hub.url}${path}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

function field(v: unknown, key: string): unknown {
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>)[key] : undefined;
}

/** The hub must hold exactly what it acked: sum of aggregate counts, per-device readings and lastSeq. */
async function verify(hub: Hub, fleet: Fleet, secret: string): Promise<Verification> {
  const group = fleet.opts.group;
  const token = await signToken(secret, operatorSubject(group));
  const agg = await getJson(hub, `/v1/groups/${encodeURIComponent(group)}/aggregates`, token);
  const buckets = field(agg, "buckets");
  if (!Array.isArray(buckets)) throw new Error("aggregates response has no buckets array");
  let aggregateCount = 0;
  for (const b of buckets) {
    const count = field(b, "count");
    if (typeof count !== "number") throw new Error("bucket without a numeric count");
    aggregateCount += count;
  }
  const truncated = field(agg, "truncated") === true;

  const dev = await getJson(hub, `/v1/groups/${encodeURIComponent(group)}/devices`, token);
  const devices = field(dev, "devices");
  if (!Array.isArray(devices)) throw new Error("devices response has no devices array");
  const expectedSeqs = fleet.lastSeqs();
  let deviceReadings = 0;
  let seqsMatch = devices.length === expectedSeqs.size;
  for (const d of devices) {
    const readings = field(d, "readings");
    deviceReadings += typeof readings === "number" ? readings : NaN;
    const id = field(d, "id");
    if (typeof id !== "string" || expectedSeqs.get(id) !== field(d, "lastSeq")) seqsMatch = false;
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

// ---------------------------------------------------------------- phases

interface CommitModeResult {
  groupCommitMs: number;
  saturation: Window;
  verification: Verification;
  profile?: ProfileSummary;
}

interface PacedResult {
  targetReadingsPerSec: number;
  achieved: Window;
  latencyMs: Latency;
}

async function measureCeiling(config: WranglerConfig): Promise<CeilingResult> {
  const frames: Uint8Array[] = [];
  const devices: string[] = [];
  const now = Date.now();
  for (let d = 0; d < DEVICES; d++) {
    const source = new ReadingSource(d + 1);
    for (let seq = 1; seq <= Math.max(4, Math.ceil(2000 / DEVICES)); seq++) {
      // Exactly what DeviceClient puts on the wire.
      frames.push(encodeCbor({ type: "batch", seq, readings: source.batch(BATCH, now) }, 64 + BATCH * 24));
      devices.push(`dev-${d}`);
    }
  }
  const input: CeilingInput = {
    frames,
    devices,
    readingsPerFrame: READINGS_PER_BATCH,
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
  cleanups.push(() => worker.terminate().then(() => undefined));
  return new Promise<CeilingResult>((resolve, reject) => {
    worker.once("message", (m: CeilingResult) => resolve(m));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`ceiling worker exited with ${code}`)));
  });
}

let hubCount = 0;

async function withHub<T>(
  entry: string,
  config: WranglerConfig,
  secret: string,
  vars: Record<string, string>,
  fn: (hub: Hub) => Promise<T>,
): Promise<T> {
  const hub = await startHub({
    persistDir: join(workDir ?? tmpdir(), `state-${++hubCount}`),
    entry,
    config,
    secret,
    vars,
    inspector: PROFILE,
    onLog: (l) => process.stderr.write(`[workerd] ${l}\n`),
  });
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    await hub.dispose();
  };
  cleanups.push(dispose);
  try {
    return await fn(hub);
  } finally {
    await dispose();
  }
}

async function withFleet<T>(hub: Hub, secret: string, group: string, fn: (fleet: Fleet) => Promise<T>): Promise<T> {
  const fleet = new Fleet({ url: hub.url, group, secret, devices: DEVICES, batchSize: BATCH, maxInFlight: IN_FLIGHT });
  cleanups.push(() => fleet.close());
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

async function profileWindow(fleet: Fleet, hub: Hub, label: string): Promise<ProfileSummary> {
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
    progress(`${label}: profiling hub and load generator for ${PROFILE_S} s`);
    fleet.saturate();
    const w = await runWindow(fleet, hub, `${label} profiling`, PROFILE_S);
    await fleet.drain();
    const nodeProfile: CpuProfile = (await self.post("Profiler.stop")).profile;
    const hubProfile = await inspector.stopProfiling();
    if (PROFILE_OUT !== undefined) {
      await mkdir(PROFILE_OUT, { recursive: true });
      const slug = label.replace(/\W+/g, "-");
      await writeFile(join(PROFILE_OUT, `hub-${slug}.cpuprofile`), JSON.stringify(hubProfile));
      await writeFile(join(PROFILE_OUT, `load-${slug}.cpuprofile`), JSON.stringify(nodeProfile));
      progress(`wrote ${PROFILE_OUT}/hub-${slug}.cpuprofile and load-${slug}.cpuprofile`);
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

async function saturate(fleet: Fleet, hub: Hub, label: string): Promise<{ window: Window; profile?: ProfileSummary }> {
  fleet.saturate();
  if (WARMUP_S > 0) {
    progress(`${label}: warm-up ${WARMUP_S} s`);
    await runWindow(fleet, hub, `${label} warm-up`, WARMUP_S);
  }
  progress(`${label}: measuring saturation for ${DURATION_S} s`);
  const window = await runWindow(fleet, hub, `${label} saturation`, DURATION_S);
  const profile = PROFILE ? await profileWindow(fleet, hub, label) : undefined;
  await fleet.drain();
  return profile ? { window, profile } : { window };
}

// ---------------------------------------------------------------- main

interface Result {
  date: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; kernel: string; node: string; workerd: string; miniflare: string };
  config: {
    durationS: number;
    warmupS: number;
    devices: number;
    readingsPerBatch: number;
    inFlightPerDevice: number;
    groupCommitMs: number;
    groupCommitReadings: number;
    /** The per-device rate limit in force: "off" unless --rate-limit. */
    peerRateLimit: string;
  };
  /** `otherCores`: CPU other processes used meanwhile (best-of-rounds keeps the figures usable anyway). */
  ceiling: CeilingResult & { otherCores: number | null };
  groupCommit: CommitModeResult & { paced: PacedResult };
  perMessage: CommitModeResult;
  ratios: {
    groupCommitOverPerMessage: number;
    groupCommitOverCeiling: number;
    perMessageOverCeiling: number;
    /** Hub CPU per reading at group-commit saturation over the Node ceiling's: what the runtime, sockets and SQLite add. */
    hubCpuOverCeiling: number | null;
  };
  /** `otherCores`: CPU other processes used during the window the figure comes from. */
  targets: {
    saturationReadingsPerSec: { target: number; measured: number; met: boolean; otherCores: number | null };
    p99AckMsAtHalfLoad: { target: number; measured: number; met: boolean; otherCores: number | null };
  };
  ok: boolean;
}

function packageVersion(name: string): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8"));
    const v = field(pkg, "version");
    return typeof v === "string" ? v : "?";
  } catch {
    return "?";
  }
}

async function main(): Promise<Result> {
  const config = readWranglerConfig();
  const secret = randomBytes(32).toString("base64url");
  const groupCommitMs = Number(config.vars.GROUP_COMMIT_MS ?? "4");
  // One device here sends ~200,000 readings/s, far above any sane per-device
  // policy; the question is what the group can take, so the limit is off
  // unless asked for (a hub without the limit ignores the var).
  const baseVars: Record<string, string> = KEEP_RATE_LIMIT ? {} : { PEER_READINGS_PER_SEC: "0" };

  // Every temp file of the run lives under this one directory, removed last.
  const work = await mkdtemp(join(tmpdir(), "hub-bench-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  workDir = work;
  progress(`bundling the Worker (wrangler deploy --dry-run)`);
  const entry = await bundleWorker(join(work, "bundle"));

  progress(`CPU ceiling: decode + validate + collapse in Node, ${CEILING_STAGE_S} s per stage`);
  const before = { node: process.cpuUsage(), machine: machineCpuSeconds(), wall: performance.now() };
  const ceilingResult = await measureCeiling(config);
  const ceiling = { ...ceilingResult, otherCores: otherCoresSince(before) };
  progress(
    `CPU ceiling: decode ${fmtInt(ceiling.decode.readingsPerSec)}/s, +validate ${fmtInt(ceiling.decodeValidate.readingsPerSec)}/s, +collapse ${fmtInt(ceiling.full.readingsPerSec)}/s`,
  );

  progress(`hub 1: group commit on (GROUP_COMMIT_MS=${groupCommitMs}), ${DEVICES} devices x ${BATCH} readings/batch`);
  const gc = await withHub(entry, config, secret, baseVars, (hub) =>
    withFleet(hub, secret, "bench-group-commit", async (fleet) => {
      const { window: saturation, profile } = await saturate(fleet, hub, "group commit");
      const half = saturation.readingsPerSec / 2;
      progress(`group commit: paced at half load, ${fmtInt(half)} readings/s, ${PACED_LEAD_IN_S} s lead-in + ${DURATION_S} s`);
      fleet.paced(half);
      await runWindow(fleet, hub, "half load lead-in", PACED_LEAD_IN_S);
      fleet.latencies = [];
      fleet.recordLatency = true;
      const achieved = await runWindow(fleet, hub, "half load", DURATION_S);
      await fleet.drain();
      fleet.recordLatency = false;
      const latencyMs = latencyStats(fleet.latencies);
      progress(`half load: ack p50 ${fmtMs(latencyMs.p50)} ms, p99 ${fmtMs(latencyMs.p99)} ms, max ${fmtMs(latencyMs.max)} ms`);
      const verification = await verify(hub, fleet, secret);
      progress(`verify: acked ${fmtInt(verification.ackedReadings)}, aggregates ${fmtInt(verification.aggregateCount)} -> ${verification.ok ? "OK" : "MISMATCH"}`);
      const paced = { targetReadingsPerSec: half, achieved, latencyMs };
      return profile ? { groupCommitMs, saturation, verification, paced, profile } : { groupCommitMs, saturation, verification, paced };
    }),
  );

  progress(`hub 2: group commit off (GROUP_COMMIT_MS=0, one commit per message)`);
  const pm = await withHub(entry, config, secret, { ...baseVars, GROUP_COMMIT_MS: "0" }, (hub) =>
    withFleet(hub, secret, "bench-per-message", async (fleet) => {
      const { window: saturation, profile } = await saturate(fleet, hub, "per message");
      const verification = await verify(hub, fleet, secret);
      progress(`verify: acked ${fmtInt(verification.ackedReadings)}, aggregates ${fmtInt(verification.aggregateCount)} -> ${verification.ok ? "OK" : "MISMATCH"}`);
      return profile ? { groupCommitMs: 0, saturation, verification, profile } : { groupCommitMs: 0, saturation, verification };
    }),
  );

  const gcRate = gc.saturation.readingsPerSec;
  const p99 = gc.paced.latencyMs.p99;
  return {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model.trim() ?? "?",
      memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
      kernel: release(),
      node: process.version,
      workerd: packageVersion("workerd"),
      miniflare: packageVersion("miniflare"),
    },
    config: {
      durationS: DURATION_S,
      warmupS: WARMUP_S,
      devices: DEVICES,
      readingsPerBatch: READINGS_PER_BATCH,
      inFlightPerDevice: IN_FLIGHT,
      groupCommitMs,
      groupCommitReadings: Number(config.vars.GROUP_COMMIT_READINGS ?? "50000"),
      peerRateLimit: KEEP_RATE_LIMIT ? (config.vars.PEER_READINGS_PER_SEC ?? "hub default") : "off",
    },
    ceiling,
    groupCommit: gc,
    perMessage: pm,
    ratios: {
      groupCommitOverPerMessage: gcRate / pm.saturation.readingsPerSec,
      groupCommitOverCeiling: gcRate / ceiling.full.readingsPerSec,
      perMessageOverCeiling: pm.saturation.readingsPerSec / ceiling.full.readingsPerSec,
      hubCpuOverCeiling: gc.saturation.hubNsPerReading === null ? null : gc.saturation.hubNsPerReading / ceiling.full.nsPerReading,
    },
    targets: {
      saturationReadingsPerSec: {
        target: TARGET_READINGS_PER_S,
        measured: gcRate,
        met: gcRate >= TARGET_READINGS_PER_S,
        otherCores: gc.saturation.cpu.other,
      },
      p99AckMsAtHalfLoad: { target: TARGET_P99_MS, measured: p99, met: p99 <= TARGET_P99_MS, otherCores: gc.paced.achieved.cpu.other },
    },
    ok: gc.verification.ok && pm.verification.ok,
  };
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  "))
    .join("\n");
}

/** Above this many cores used by other processes, a window's figures are flagged as disturbed. */
const DISTURBED_CORES = 0.25;

function disturbedNote(w: Window): string {
  const other = w.cpu.other ?? 0;
  return other > DISTURBED_CORES ? `, disturbed: other processes used ${fmtCore(other)} cores` : "";
}

function summary(r: Result): string {
  const gc = r.groupCommit;
  const pm = r.perMessage;
  const lat = gc.paced.latencyMs;
  const ns = (n: number | null): string => (n === null || !Number.isFinite(n) ? "?" : fmtInt(n));
  const row = (label: string, w: Window): string[] => [
    label,
    fmtInt(w.readingsPerSec),
    fmtInt(w.medianPerSec),
    fmtInt(w.batches / w.seconds),
    `${ns(w.hubNsPerReading)} / ${ns(w.loadNsPerReading)}`,
    `${fmtCore(w.cpu.node)} / ${fmtCore(w.cpu.workerd)} / ${fmtCore(w.cpu.other)}`,
  ];
  const windows: [string, Window][] = [
    ["group commit saturation", gc.saturation],
    ["half load", gc.paced.achieved],
    ["per-message saturation", pm.saturation],
  ];
  const disturbed = windows
    .filter(([, w]) => (w.cpu.other ?? 0) > DISTURBED_CORES)
    .map(([l, w]) => `${l} (${fmtCore(w.cpu.other)} cores)`);
  if ((r.ceiling.otherCores ?? 0) > DISTURBED_CORES) disturbed.unshift(`the CPU ceiling (${fmtCore(r.ceiling.otherCores)} cores)`);
  const mark = (met: boolean): string => (met ? "met" : "NOT met");
  const verify = (v: Verification): string =>
    v.ok
      ? `OK (${fmtInt(v.aggregateCount)} readings acked = sum of counts over ${fmtInt(v.buckets)} buckets; ${(v.sqliteBytes / 2 ** 20).toFixed(1)} MiB of SQLite on disk)`
      : `FAILED: acked ${fmtInt(v.ackedReadings)}, aggregates ${fmtInt(v.aggregateCount)}, device rows ${fmtInt(v.deviceReadings)}, seqs ${v.seqsMatch ? "ok" : "differ"}, rejected ${v.rejected}, dropped ${v.dropped}${v.rejects.length > 0 ? `; first: ${v.rejects[0] ?? ""}` : ""}`;
  const ceilingNs = r.ceiling.full.nsPerReading;
  return `
Ingest benchmark, ${r.date}
${r.machine.cpus} x ${r.machine.cpuModel}, Node ${r.machine.node}, workerd ${r.machine.workerd}
${r.config.devices} devices in one group, ${r.config.readingsPerBatch} readings/batch, ${r.config.inFlightPerDevice} in flight/device, ${r.config.durationS} s windows, per-device rate limit ${r.config.peerRateLimit}

${table([
  ["", "readings/s", "median 1 s", "batches/s", "CPU ns/reading hub / load", "cores node / workerd / other"],
  row(`saturation, group commit (${gc.groupCommitMs} ms)`, gc.saturation),
  row("saturation, one commit per message", pm.saturation),
  row("half load, paced", gc.paced.achieved),
])}

${table([
  ["CPU ceiling in Node (one core, no I/O)", "readings/s", "ns/reading"],
  ["decode", fmtInt(r.ceiling.decode.readingsPerSec), fmtInt(r.ceiling.decode.nsPerReading)],
  ["decode + validate", fmtInt(r.ceiling.decodeValidate.readingsPerSec), fmtInt(r.ceiling.decodeValidate.nsPerReading)],
  ["decode + validate + collapse", fmtInt(r.ceiling.full.readingsPerSec), fmtInt(ceilingNs)],
])}

Ack latency at half load (${fmtInt(lat.count)} batches): p50 ${fmtMs(lat.p50)} ms, p90 ${fmtMs(lat.p90)} ms, p99 ${fmtMs(lat.p99)} ms, max ${fmtMs(lat.max)} ms

Ratios
  group commit / one commit per message, readings/s   ${fmtX(r.ratios.groupCommitOverPerMessage)}
  group commit saturation / CPU ceiling, readings/s   ${fmtX(r.ratios.groupCommitOverCeiling)}
  hub CPU per reading / CPU ceiling per reading       ${r.ratios.hubCpuOverCeiling === null ? "?" : fmtX(r.ratios.hubCpuOverCeiling)}

Targets
  >= ${fmtInt(TARGET_READINGS_PER_S)} readings/s at saturation: ${mark(r.targets.saturationReadingsPerSec.met)} (${fmtInt(r.targets.saturationReadingsPerSec.measured)})${disturbedNote(gc.saturation)}
  p99 ack <= ${TARGET_P99_MS} ms at half load: ${mark(r.targets.p99AckMsAtHalfLoad.met)} (${fmtMs(lat.p99)} ms)${disturbedNote(gc.paced.achieved)}

Correctness (aggregates vs acked readings)
  group commit:           ${verify(gc.verification)}
  one commit per message: ${verify(pm.verification)}
${
  disturbed.length === 0
    ? ""
    : `
Note: other processes used CPU during ${disturbed.join(", ")};
readings/s there is lower than on a quiet machine. CPU ns/reading and the ratios are less affected.
`
}${profileText("group commit", gc.profile)}${profileText("one commit per message", pm.profile)}`;
}

function profileText(label: string, p: ProfileSummary | undefined): string {
  if (!p) return "";
  const list = (fns: HotFunction[]): string =>
    fns
      .slice(0, 15)
      .map((f) => `    ${(f.self * 100).toFixed(1).padStart(5)}%  ${f.name}`)
      .join("\n");
  return `
Profile, ${label}, saturated (${fmtInt(p.readingsPerSec)} readings/s while profiling; ${fmtCpu(p.cpu)})
  hub isolate, self time:
${list(p.hub)}
  load generator (this process), self time:
${list(p.loadGenerator)}
`;
}

let code = 0;
try {
  const result = await main();
  if (stopCode !== null) throw new Error("stopped");
  if (JSON_OUT) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(summary(result));
  if (!result.ok) {
    process.stderr.write("bench FAILED: the hub's aggregates do not match the readings it acked\n");
    code = 1;
  }
} catch (err) {
  // After a signal, failures are the cleanup pulling the hub away: not worth printing.
  if (stopCode === null) process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  code = 1;
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
process.exit(stopCode ?? code);

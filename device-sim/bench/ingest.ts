/**
 * `npm run bench:ingest`: ingest throughput and ack latency of one device
 * group, measured end to end against the real Worker on workerd.
 *
 *   npm run bench:ingest                      about 1 minute, human-readable summary
 *   npm run bench:ingest -- --duration 20     longer measurement windows
 *   npm run bench:ingest -- --json            the result as JSON on stdout
 *
 * One run measures, side by side:
 *   1. the CPU ceiling: decode + validate + collapse in Node, no sockets or SQLite,
 *      for compact (`cbatch`, what DeviceClient sends) and v1 `batch` frames;
 *   2. saturation with group commit (wrangler.jsonc's GROUP_COMMIT_MS);
 *   3. ack latency at half of that rate, paced;
 *   4. saturation with group commit off (GROUP_COMMIT_MS=0: one commit per message);
 *   5. saturation with group commit, the devices sending v1 `batch` frames;
 *   6. bytes per reading on the wire by frame type (and JSON as a reference);
 * then checks that each hub's aggregates hold exactly the readings it acked.
 * Progress goes to stderr; only 127.0.0.1 is contacted; temp dirs and the
 * workerd process are removed on exit. docs/benchmarks.md has the figures.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { orExit } from "../../lib/options.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { bundleWorker, machineCpuSeconds, readWranglerConfig } from "./hub.ts";
import { fmtInt, fmtMs } from "./ingest-format.ts";
import { CEILING_STAGE_S, PACED_LEAD_IN_S, latencyStats, measureCeiling, otherCoresSince, runWindow, saturate, verify, withFleet, withHub, type BenchRun } from "./ingest-measure.ts";
import { USAGE, parseIngestOptions, type IngestOptions } from "./ingest-options.ts";
import { TARGET_P99_MS, TARGET_READINGS_PER_S, summary, type Result } from "./ingest-report.ts";
import { wireBytesPerReading } from "./wire-bytes.ts";

const parsed = orExit(() => parseIngestOptions(process.argv.slice(2)), USAGE);
if (parsed === null) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const opts: IngestOptions = parsed;
const { durationS: DURATION_S, warmupS: WARMUP_S, devices: DEVICES, batch: BATCH } = opts;

const t0 = performance.now();
const run: BenchRun = {
  opts,
  progress(line: string): void {
    const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[${s}s] ${line}\n`);
  },
  cleanups: [],
  workDir: null,
};
const { progress, cleanups } = run;

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
    if (run.workDir !== null) rmSync(run.workDir, { recursive: true, force: true });
    void cleanup().finally(() => process.exit(130));
  });
}
// The bench stops by itself even if the hub hangs.
const watchdogMs = (120 + 5 * DURATION_S + 3 * WARMUP_S) * 1000;
const watchdog = setTimeout(() => {
  stopCode = 3;
  process.stderr.write(`bench did not finish within ${watchdogMs / 1000} s; aborting\n`);
  void cleanup().finally(() => process.exit(3));
}, watchdogMs);
watchdog.unref();

function packageVersion(name: string): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8"));
    const v = typeof pkg === "object" && pkg !== null && "version" in pkg ? pkg.version : undefined;
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
  // Off means every rate limit: readings, and the work budgets (docs/protocol.md, "Work budget").
  const baseVars: Record<string, string> = opts.keepRateLimit ? {} : { PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0" };

  // Every temp file of the run lives under this one directory, removed last.
  const work = await mkdtemp(join(tmpdir(), "hub-bench-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  run.workDir = work;
  progress(`bundling the Worker (wrangler deploy --dry-run)`);
  const entry = await bundleWorker(join(work, "bundle"));

  progress(`CPU ceiling: decode + validate + collapse in Node, ${CEILING_STAGE_S} s per stage`);
  const before = { node: process.cpuUsage(), machine: machineCpuSeconds(), wall: performance.now() };
  const ceilingResult = await measureCeiling(run, config);
  const ceiling = { ...ceilingResult, otherCores: otherCoresSince(before) };
  progress(
    `CPU ceiling: decode ${fmtInt(ceiling.decode.readingsPerSec)}/s, +validate ${fmtInt(ceiling.decodeValidate.readingsPerSec)}/s, +collapse ${fmtInt(ceiling.full.readingsPerSec)}/s`,
  );
  progress(`CPU ceiling, v1 batch frames`);
  const beforeV1 = { node: process.cpuUsage(), machine: machineCpuSeconds(), wall: performance.now() };
  const ceilingV1Result = await measureCeiling(run, config, "batch");
  const ceilingV1 = { ...ceilingV1Result, otherCores: otherCoresSince(beforeV1) };
  progress(`CPU ceiling, v1 batch: +collapse ${fmtInt(ceilingV1.full.readingsPerSec)}/s`);

  progress(`hub 1: group commit on (GROUP_COMMIT_MS=${groupCommitMs}), ${DEVICES} devices x ${BATCH} readings/batch`);
  const gc = await withHub(run, entry, config, secret, baseVars, (hub) =>
    withFleet(run, hub, secret, "bench-group-commit", async (fleet) => {
      const { window: saturation, profile } = await saturate(run, fleet, hub, "group commit");
      const half = saturation.readingsPerSec / 2;
      progress(`group commit: paced at half load, ${fmtInt(half)} readings/s, ${PACED_LEAD_IN_S} s lead-in + ${DURATION_S} s`);
      fleet.paced(half);
      await runWindow(run, fleet, hub, "half load lead-in", PACED_LEAD_IN_S);
      fleet.latencies = [];
      fleet.recordLatency = true;
      const achieved = await runWindow(run, fleet, hub, "half load", DURATION_S);
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
  const pm = await withHub(run, entry, config, secret, { ...baseVars, GROUP_COMMIT_MS: "0" }, (hub) =>
    withFleet(run, hub, secret, "bench-per-message", async (fleet) => {
      const { window: saturation, profile } = await saturate(run, fleet, hub, "per message");
      const verification = await verify(hub, fleet, secret);
      progress(`verify: acked ${fmtInt(verification.ackedReadings)}, aggregates ${fmtInt(verification.aggregateCount)} -> ${verification.ok ? "OK" : "MISMATCH"}`);
      return profile ? { groupCommitMs: 0, saturation, verification, profile } : { groupCommitMs: 0, saturation, verification };
    }),
  );

  progress(`hub 3: group commit on, devices sending v1 batch frames`);
  const v1 = await withHub(run, entry, config, secret, baseVars, (hub) =>
    withFleet(
      run,
      hub,
      secret,
      "bench-v1-batch",
      async (fleet) => {
        const { window: saturation, profile } = await saturate(run, fleet, hub, "v1 batch");
        const verification = await verify(hub, fleet, secret);
        progress(`verify: acked ${fmtInt(verification.ackedReadings)}, aggregates ${fmtInt(verification.aggregateCount)} -> ${verification.ok ? "OK" : "MISMATCH"}`);
        return profile ? { groupCommitMs, saturation, verification, profile } : { groupCommitMs, saturation, verification };
      },
      "batch",
    ),
  );
  const bytes = wireBytesPerReading(opts.readingsPerBatch);

  const gcRate = gc.saturation.readingsPerSec;
  const perFrame = (w: typeof gc.saturation, c: typeof ceiling) => ({
    saturationReadingsPerSec: w.readingsPerSec,
    hubNsPerReading: w.hubNsPerReading,
    ceilingNsPerReading: c.full.nsPerReading,
    hubOverCeiling: w.hubNsPerReading === null ? null : w.hubNsPerReading / c.full.nsPerReading,
  });
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
      readingsPerBatch: opts.readingsPerBatch,
      inFlightPerDevice: opts.inFlight,
      groupCommitMs,
      groupCommitReadings: Number(config.vars.GROUP_COMMIT_READINGS ?? "50000"),
      peerRateLimit: opts.keepRateLimit ? (config.vars.PEER_READINGS_PER_SEC ?? "hub default") : "off",
    },
    ceiling,
    groupCommit: gc,
    perMessage: pm,
    frames: {
      bytesPerReading: bytes,
      cbatch: perFrame(gc.saturation, ceiling),
      batch: { ...perFrame(v1.saturation, ceilingV1), ceiling: ceilingV1, run: v1 },
    },
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
    ok: gc.verification.ok && pm.verification.ok && v1.verification.ok,
  };
}

let code = 0;
try {
  const result = await main();
  if (stopCode !== null) throw new Error("stopped");
  if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
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

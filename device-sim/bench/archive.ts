/**
 * `npm run bench:archive`: what the raw archive (docs/archive.md) costs.
 * Measured in one run, against the Worker bundled as `wrangler deploy`
 * would bundle it, on workerd with SQLite and R2 on disk (./hub.ts):
 *
 *   1. ingest at saturation (10 simulator devices, max rate, one group)
 *      with capture off (ARCHIVE_CAPTURE=0) and on, alternating off/on
 *      `--rounds` times on two hubs after a warm-up of each, so both see
 *      the same machine load;
 *      the ratio on/off (goal >= 0.8);
 *   2. one busy period flushed: a hub whose flush period is
 *      `--period` seconds (an hour in production) takes the same load for
 *      `--duration` seconds inside one period; the time from the period's
 *      end until the last Parquet part is in R2, the parts and readings;
 *   3. Parquet bytes per reading of those parts (the simulator's signals:
 *      temp, humidity, pressure, power), goal <= 4; the wire's for comparison.
 *
 *   npm run bench:archive [-- --duration 8 --rounds 2 --period 30 --json]
 *
 * Only 127.0.0.1 is contacted; workerd and temp dirs are removed at the end.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parquetMetadata } from "hyparquet";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import { sleep } from "../../harness/wait.ts";
import { Simulation, simConfig } from "../engine.ts";
import { fleetFromOptions } from "../fleet.ts";
import { bundleWorker, processCpuSeconds, readWranglerConfig, startHub, type Hub, type LocalBucket } from "./hub.ts";
import { wireBytesPerReading } from "./wire-bytes.ts";

const USAGE = "usage: npm run bench:archive -- [--duration S (8)] [--rounds N (2)] [--period S (30)] [--json]\n";
const values = parseCli(USAGE, {
  options: {
    duration: { type: "string", default: "8" },
    rounds: { type: "string", default: "2" },
    period: { type: "string", default: "30" },
    json: { type: "boolean", default: false },
    help: HELP_FLAG,
  },
});
const DURATION_MS = orExit(() => numberOption("duration", values.duration, { min: 1, max: 600, integer: false }), USAGE) * 1000;
const ROUNDS = orExit(() => numberOption("rounds", values.rounds, { min: 1, max: 20 }), USAGE);
const PERIOD_MS = orExit(() => numberOption("period", values.period, { min: 5, max: 3600 }), USAGE) * 1000;
if (DURATION_MS >= PERIOD_MS - 2000) {
  process.stderr.write(`--duration must be at least 2 s shorter than --period\n${USAGE}`);
  process.exit(2);
}
const secret = `bench-${Math.random().toString(36).slice(2)}`;
const progress = (s: string) => process.stderr.write(`bench:archive: ${s}\n`);
const METRICS = ["temp", "humidity", "pressure", "power"];

/** Saturates one group of `hub` for `ms`; returns acked readings/s, workerd CPU µs per acked reading (null if unknown), and the group. */
async function saturate(hub: Hub, ms: number): Promise<{ rate: number; acked: number; cpuUs: number | null; group: string }> {
  const cpu0 = processCpuSeconds(hub.workerdPid);
  const prefix = `a${Math.random().toString(36).slice(2, 8)}`;
  const fleet = fleetFromOptions({ groups: 1, prefix, devices: 10, metrics: METRICS, rate: Infinity });
  const s = (await new Simulation(simConfig({ url: hub.url, secret, fleet }, { durationMs: ms, drainTimeoutMs: 30_000, policy: { batchMs: 100, batchReadings: 100 } })).run()).summary;
  const cpu1 = processCpuSeconds(hub.workerdPid);
  const cpuUs = cpu0 === null || cpu1 === null ? null : ((cpu1 - cpu0) * 1e6) / Math.max(1, s.ackedReadings);
  return { rate: s.readingsPerSecond, acked: s.ackedReadings, cpuUs, group: `${prefix}-1` };
}

/** The group's Parquet parts in R2: count, bytes, rows, and the latest upload time. */
async function parts(bucket: LocalBucket, group: string): Promise<{ parts: number; bytes: number; rows: number; lastUpload: number }> {
  let cursor: string | undefined;
  const out = { parts: 0, bytes: 0, rows: 0, lastUpload: 0 };
  do {
    const page = await bucket.list({ prefix: `groups/${group}/readings/`, cursor });
    for (const o of page.objects) {
      const body = await bucket.get(o.key);
      if (!body) continue;
      out.parts++;
      out.bytes += o.size;
      out.rows += Number(parquetMetadata(await body.arrayBuffer()).num_rows);
      out.lastUpload = Math.max(out.lastUpload, o.uploaded.getTime());
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return out;
}

const work = await mkdtemp(join(tmpdir(), "hub-bench-archive-"));
const hubs: Hub[] = [];
try {
  const entry = await bundleWorker(join(work, "bundle"));
  const config = readWranglerConfig();
  const hub = (vars: Record<string, string>) => startHub({ entry, config, secret, vars: { PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0", ...vars }, onLog: () => undefined }).then((h) => (hubs.push(h), h));
  // Both keep an hour's flush period: only capture differs while they ingest.
  const off = await hub({ ARCHIVE_CAPTURE: "0" });
  const on = await hub({ ARCHIVE_CAPTURE: "1" });
  // A short warm-up on each (JIT, SQLite pages), not counted.
  progress("warm-up: 3 s on each hub");
  for (const h of [off, on]) await saturate(h, 3000);
  const rates = { off: [] as number[], on: [] as number[] };
  const cpuUs = { off: [] as number[], on: [] as number[] };
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [name, h] of [["off", off], ["on", on]] as const) {
      progress(`1/2 round ${r}/${ROUNDS}: capture ${name}, ${DURATION_MS / 1000} s at saturation`);
      const { rate, cpuUs: us } = await saturate(h, DURATION_MS);
      rates[name].push(rate);
      if (us !== null) cpuUs[name].push(us);
      progress(`    ${rate} readings/s${us === null ? "" : `, workerd ${us.toFixed(2)} µs CPU per reading`}`);
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? NaN : s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
  };

  const flusher = await hub({ ARCHIVE_CAPTURE: "1", ARCHIVE_FLUSH_MS: String(PERIOD_MS) });
  // Start just after a period begins so the whole load falls in one period.
  const wait = PERIOD_MS - (Date.now() % PERIOD_MS) + 200;
  progress(`2/2 busy period: waiting ${(wait / 1000).toFixed(1)} s for a period to begin, then ${DURATION_MS / 1000} s at saturation`);
  await sleep(wait);
  const busy = await saturate(flusher, DURATION_MS);
  const periodEnd = Math.ceil(Date.now() / PERIOD_MS) * PERIOD_MS;
  progress(`    ${busy.acked} readings acked; the period closes in ${((periodEnd - Date.now()) / 1000).toFixed(1)} s, then the alarm flushes`);
  const bucket = await flusher.archive();
  const deadline = periodEnd + 120_000;
  let p = await parts(bucket, busy.group);
  while (p.rows < busy.acked && Date.now() < deadline) {
    await sleep(500);
    p = await parts(bucket, busy.group);
  }
  if (p.rows !== busy.acked) throw new Error(`archive holds ${p.rows} of ${busy.acked} acked readings after 2 minutes`);
  const flushMs = p.lastUpload - periodEnd;
  const wire = wireBytesPerReading(100);

  const result = {
    date: new Date().toISOString(),
    cpu: `${cpus()[0]?.model ?? "unknown"} x ${cpus().length}`,
    ingest: {
      captureOff: Math.round(mean(rates.off)),
      captureOn: Math.round(mean(rates.on)),
      ratio: +(mean(rates.on) / Math.max(1, mean(rates.off))).toFixed(3),
      medianRatio: +(median(rates.on) / Math.max(1, median(rates.off))).toFixed(3),
      rounds: rates,
      // Less sensitive to a busy machine than readings/s: what each reading costs the hub's process.
      cpuUsPerReading: { off: +median(cpuUs.off).toFixed(2), on: +median(cpuUs.on).toFixed(2), ratio: +(median(cpuUs.off) / median(cpuUs.on)).toFixed(3) },
    },
    busyPeriod: { readings: busy.acked, parts: p.parts, flushMs, flushReadingsPerS: Math.round(busy.acked / Math.max(0.001, flushMs / 1000)) },
    parquet: { bytes: p.bytes, bytesPerReading: +(p.bytes / Math.max(1, p.rows)).toFixed(2) },
    wireBytesPerReading: wire,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(`
Raw archive (${result.cpu}; ${ROUNDS} rounds of ${DURATION_MS / 1000} s, 10 devices, one group, ${METRICS.join("/")})
  ingest, capture off       ${result.ingest.captureOff} readings/s
  ingest, capture on        ${result.ingest.captureOn} readings/s
  ratio on/off              ${result.ingest.ratio}x of the means, ${result.ingest.medianRatio}x of the medians  (goal: >= 0.8)
  workerd CPU per reading   ${result.ingest.cpuUsPerReading.off} µs off, ${result.ingest.cpuUsPerReading.on} µs on (medians): capture on runs at ${result.ingest.cpuUsPerReading.ratio}x the CPU-bound rate
  busy period flushed       ${busy.acked} readings -> ${p.parts} parts in ${flushMs} ms after the period closed (${result.busyPeriod.flushReadingsPerS} readings/s)
  Parquet                   ${result.parquet.bytesPerReading} bytes/reading  (goal: <= 4)
  wire, for comparison      cbatch ${wire.cbatchFloat64.toFixed(2)} (float64), ${wire.cbatchFloat32.toFixed(2)} (float32), v1 batch ${wire.batch.toFixed(2)}, JSON ${wire.json.toFixed(2)} bytes/reading
`);
  }
} finally {
  for (const h of hubs) await h.dispose().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
}

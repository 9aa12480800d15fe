/**
 * `npm run bench:fanout`: how long one live summary takes to reach 10, 100
 * and 1,000 dashboard sockets of one group, and what that fan-out costs the
 * group's ingest rate, measured side by side in one run against the real
 * Worker on workerd (Miniflare's API, SQLite on disk).
 *
 *   npm run bench:fanout                 about a minute
 *   npm run bench:fanout -- --json       the result as JSON on stdout
 *
 * Only 127.0.0.1 is contacted; the workerd process and temp dirs are removed
 * at the end. docs/benchmarks.md has the figures.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "../../harness/wait.ts";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import WebSocket from "ws";
import { DeviceClient } from "../../client/index.ts";
import { Simulation, simConfig } from "../engine.ts";
import { fleetFromOptions } from "../fleet.ts";
import { deviceSubject, operatorSubject, signToken } from "../../schema/token.ts";
import { spawn } from "node:child_process";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { bundleWorker, processCpuSeconds, readWranglerConfig, startHub } from "./hub.ts";

const USAGE = "usage: npm run bench:fanout -- [--rounds N] [--duration S] [--json]\n";
const values = parseCli(USAGE, {
  options: {
    json: { type: "boolean", default: false },
    rounds: { type: "string", default: "5" },
    duration: { type: "string", default: "6" },
    help: HELP_FLAG,
  },
});
const ROUNDS = orExit(() => numberOption("rounds", values.rounds, { min: 1, max: 1000 }), USAGE);
const DURATION_S = orExit(() => numberOption("duration", values.duration, { min: 1, max: 3600, integer: false }), USAGE);
const progress = (s: string) => process.stderr.write(`fanout: ${s}\n`);
const secret = `bench-${Math.random().toString(36).slice(2)}`;

/**
 * A dashboard: acks every frame and notes when a frame carrying `watch`
 * arrives. It reads the seq and looks for the value in the text rather than
 * parsing each frame: 1,000 of these share this process, and parsing made
 * the last socket's time measure this process's queue more than the hub.
 */
class Dashboard {
  readonly ws: WebSocket;
  seenAt: number | null = null;
  watch = "";
  ready: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ready = new Promise((resolve, reject) => {
      this.ws.once("error", reject);
      this.ws.on("message", (data: Buffer) => {
        const at = performance.now();
        const text = data.toString();
        const seq = Number(/"seq":(\d+)/.exec(text)?.[1]);
        this.ws.send(`{"type":"ack","seq":${seq},"delta":true}`);
        if (text.startsWith('{"type":"snapshot"')) resolve();
        if (this.seenAt === null && this.watch && text.includes(`"probe":{"value":${this.watch},`)) this.seenAt = at;
      });
    });
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0;
}

const work = await mkdtemp(join(tmpdir(), "hub-fanout-"));
const entry = await bundleWorker(join(work, "bundle"));
const hub = await startHub({
  entry,
  config: readWranglerConfig(),
  secret,
  // Room for the largest fan-out, and no per-device limit on the load.
  vars: { MAX_DASHBOARD_SOCKETS: "2000", PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0" },
  onLog: () => undefined,
});
progress(`hub on ${hub.url}`);

interface FanoutRow {
  sockets: number;
  commitToFirstMs: number;
  commitToLastMs: number;
  spreadMs: number;
}
const rows: FanoutRow[] = [];
let ingestAlone: { rate: number; cpuPerMillion: number };
let ingestWatched: { rate: number; cpuPerMillion: number; frames: number };

async function openDashboards(group: string, n: number): Promise<Dashboard[]> {
  const token = await signToken(secret, operatorSubject(group));
  const url = `${hub.url.replace("http", "ws")}/v1/groups/${group}/live?token=${token}`;
  const out: Dashboard[] = [];
  for (let i = 0; i < n; i += 100) {
    const chunk = Array.from({ length: Math.min(100, n - i) }, () => new Dashboard(url));
    await Promise.all(chunk.map((d) => d.ready));
    out.push(...chunk);
  }
  return out;
}

/** Ingest at saturation into `group`, with workerd's CPU seconds per million readings. */
async function ingestRate(group: string): Promise<{ rate: number; cpuPerMillion: number }> {
  const cpu0 = processCpuSeconds(hub.workerdPid);
  const fleet = { ...fleetFromOptions({ groups: 1, prefix: "x", devices: 10, metrics: ["temp", "humidity", "pressure", "power"], rate: Infinity }), groups: [group] };
  const sim = new Simulation(simConfig({ url: hub.url, secret, fleet }, { durationMs: DURATION_S * 1000, drainTimeoutMs: 10_000, connectRate: 1000 }));
  const r = await sim.run();
  const cpu1 = processCpuSeconds(hub.workerdPid);
  const cpu = cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : Number.NaN;
  return { rate: r.summary.readingsPerSecond, cpuPerMillion: +((cpu * 1e6) / Math.max(1, r.summary.ackedReadings)).toFixed(3) };
}

/** 1,000 dashboards in a child process (own core), acking like the page. */
async function watchers(group: string, n: number): Promise<{ stop(): number }> {
  const token = await signToken(secret, operatorSubject(group));
  const child = spawn(process.execPath, [join(ROOT, "device-sim/bench/dashboards.ts"), `${hub.url.replace("http", "ws")}/v1/groups/${group}/live?token=${token}`, String(n)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let frames = 0;
  await new Promise<void>((resolve) => {
    child.stdout.on("data", (c: Buffer) => {
      const text = c.toString();
      if (text.includes("ready")) resolve();
      const m = /frames (\d+)\s*$/.exec(text.trim());
      if (m) frames = Number(m[1]);
    });
  });
  return {
    stop() {
      child.kill("SIGTERM");
      return frames;
    },
  };
}

try {
  for (const n of [10, 100, 1000]) {
    const group = `fanout-${n}`;
    const dashboards = await openDashboards(group, n);
    const token = await signToken(secret, deviceSubject(group, "probe-device"));
    const device = new DeviceClient({ url: hub.url, group, device: "probe-device", token }).start();
    await new Promise<void>((r) => device.once("hello", () => r()));
    const samples: FanoutRow[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      // Let the previous summary cycle finish so this round starts a fresh one.
      await sleep(1200);
      const value = round * 1000 + n;
      for (const d of dashboards) {
        d.watch = String(value);
        d.seenAt = null;
      }
      let committedAt = 0;
      const acked = new Promise<void>((r) => device.once("ack", () => ((committedAt = performance.now()), r())));
      device.send([[Date.now(), "probe", value]]);
      await acked;
      const deadline = Date.now() + 5000;
      while (dashboards.some((d) => d.seenAt === null) && Date.now() < deadline) await sleep(5);
      const seen = dashboards.map((d) => d.seenAt).filter((t): t is number => t !== null);
      if (seen.length !== n) throw new Error(`only ${seen.length}/${n} dashboards saw round ${round}`);
      samples.push({
        sockets: n,
        commitToFirstMs: Math.min(...seen) - committedAt,
        commitToLastMs: Math.max(...seen) - committedAt,
        spreadMs: Math.max(...seen) - Math.min(...seen),
      });
    }
    const med = (k: keyof FanoutRow) => quantile(samples.map((s) => s[k]), 0.5);
    const row = { sockets: n, commitToFirstMs: med("commitToFirstMs"), commitToLastMs: med("commitToLastMs"), spreadMs: med("spreadMs") };
    rows.push(row);
    progress(`${n} sockets: commit -> first ${row.commitToFirstMs.toFixed(1)} ms, -> last ${row.commitToLastMs.toFixed(1)} ms (spread ${row.spreadMs.toFixed(1)} ms), median of ${ROUNDS}`);
    await device.close();
    for (const d of dashboards) d.ws.terminate();
  }
  progress(`ingest at saturation with no dashboard (${DURATION_S} s)...`);
  ingestAlone = await ingestRate("fanout-alone");
  progress(`ingest at saturation with 1,000 dashboards watching from another process (${DURATION_S} s)...`);
  const w = await watchers("fanout-watched", 1000);
  const watched = await ingestRate("fanout-watched");
  ingestWatched = { ...watched, frames: w.stop() };
} finally {
  await hub.dispose();
  await rm(work, { recursive: true, force: true });
}

const result = {
  date: new Date().toISOString(),
  summaryIntervalMs: 500,
  fanout: rows.map((r) => ({ ...r, commitToFirstMs: +r.commitToFirstMs.toFixed(1), commitToLastMs: +r.commitToLastMs.toFixed(1), spreadMs: +r.spreadMs.toFixed(1) })),
  ingest: {
    noDashboards: ingestAlone,
    with1000Dashboards: ingestWatched,
    rateRatio: +(ingestWatched.rate / Math.max(1, ingestAlone.rate)).toFixed(3),
    cpuPerReadingRatio: +(ingestWatched.cpuPerMillion / Math.max(1e-9, ingestAlone.cpuPerMillion)).toFixed(3),
  },
};
if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  process.stdout.write("\nLive summary fan-out (median of rounds; includes the <= 500 ms coalescing wait)\n");
  process.stdout.write("  sockets   commit->first   commit->last   spread\n");
  for (const r of result.fanout) {
    process.stdout.write(`  ${String(r.sockets).padStart(7)}   ${r.commitToFirstMs.toFixed(1).padStart(10)} ms  ${r.commitToLastMs.toFixed(1).padStart(10)} ms  ${r.spreadMs.toFixed(1).padStart(6)} ms\n`);
  }
  process.stdout.write(
    `\nIngest at saturation (one group, 10 devices):\n` +
      `  no dashboards           ${ingestAlone.rate} readings/s, workerd ${ingestAlone.cpuPerMillion} CPU-s per million readings\n` +
      `  1,000 dashboards        ${ingestWatched.rate} readings/s, workerd ${ingestWatched.cpuPerMillion} CPU-s per million readings (${ingestWatched.frames} frames delivered)\n` +
      `  ratio                   rate ${result.ingest.rateRatio}, CPU per reading ${result.ingest.cpuPerReadingRatio}\n`,
  );
}

/**
 * The README's first simulator example against `wrangler dev` launched as
 * `npm start` launches it (harness/wrangler-dev.ts), with wrangler's local
 * observability on (wrangler's default) and off (the project's default),
 * side by side: ack latency, reconnects, --verify, and the CPU seconds of
 * each process of the hub.
 *
 *   npx node device-sim/bench/dev-hub.ts [--duration 60] [--modes on,off]
 *
 * Figures in docs/benchmarks.md, "The simulator against npm start".
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import { descendants } from "../../harness/procs.ts";
import { startHub } from "../../harness/wrangler-dev.ts";
import { Simulation, simConfig } from "../engine.ts";
import { fleetFromOptions } from "../fleet.ts";
import { processCpuSeconds } from "./hub.ts";

const USAGE =
  "usage: npx node device-sim/bench/dev-hub.ts [--duration SECONDS (60)] [--modes on,off]\n" +
  "Runs the README's 600-device simulator example against wrangler dev with local observability on and off.\n";
const values = parseCli(USAGE, { options: { duration: { type: "string", default: "60" }, modes: { type: "string", default: "on,off" }, help: HELP_FLAG } });
const DURATION_S = orExit(() => numberOption("duration", values.duration, { min: 1, max: 3600, integer: false }), USAGE);
const SECRET = "bench-dev-hub-secret-0123456789abcdef";

/** Every process under `pid` and `pid` itself (Linux /proc), named by what it is in a wrangler dev tree. */
function tree(pid: number): { pid: number; name: string }[] {
  const out: { pid: number; name: string }[] = [];
  for (const p of [pid, ...descendants(pid).map((d) => d.pid)]) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").join(" ");
    } catch {
      continue;
    }
    const name = cmd.includes("workerd") ? (cmd.includes("--inspector-addr") ? "workerd (Worker)" : "workerd (proxy)") : cmd.includes("esbuild") ? "esbuild" : "wrangler (node)";
    out.push({ pid: p, name });
  }
  return out;
}

function cpuByName(pid: number): Map<string, { pids: Set<number>; seconds: number }> {
  const m = new Map<string, { pids: Set<number>; seconds: number }>();
  for (const p of tree(pid)) {
    const e = m.get(p.name) ?? { pids: new Set<number>(), seconds: 0 };
    e.pids.add(p.pid);
    e.seconds += processCpuSeconds(p.pid) ?? 0;
    m.set(p.name, e);
  }
  return m;
}

async function runMode(observability: boolean): Promise<void> {
  const state = await mkdtemp(join(tmpdir(), "bench-dev-hub-"));
  const hub = await startHub({ persistTo: state, logLevel: "warn", vars: { HUB_SECRET: SECRET }, observability });
  try {
    const pid = hub.child.pid ?? 0;
    const before = cpuByName(pid);
    const fleet = fleetFromOptions({ groups: 3, prefix: `devhub-${observability ? "on" : "off"}-${Date.now().toString(36)}`, devices: 200, metrics: ["temp", "humidity", "pressure"], rate: 5 });
    const sim = new Simulation(simConfig({ url: hub.url, secret: SECRET, fleet }, { durationMs: DURATION_S * 1000, verify: true, preflight: true }));
    const r = await sim.run();
    const after = cpuByName(pid);
    const s = r.summary;
    const logErrors = (hub.output().match(/tail session was canceled/g) ?? []).length;
    console.log(`\nwrangler dev, local observability ${observability ? "ON (wrangler's default)" : "OFF (harness/wrangler-dev.ts)"}`);
    console.log(`  acked ${s.ackedReadings} of ${s.generatedReadings} readings in ${s.ackedBatches} batches; ack p50 ${s.ackLatencyMs.p50} ms, p99 ${s.ackLatencyMs.p99} ms, max ${s.ackLatencyMs.max} ms`);
    console.log(`  reconnects ${s.reconnects}, connect errors ${s.connectErrors}, closes ${JSON.stringify(s.closesByCode)}, unacked at end ${s.unacked.batches} batches`);
    console.log(`  verify: ${r.verify ? (r.verify.ok ? "EXACT MATCH" : `${r.verify.differences.length} differences`) : "not run"}; exit ${r.exitCode}${r.reason ? ` (${r.reason})` : ""}`);
    let total = 0;
    for (const [name, a] of after) {
      const b = before.get(name);
      // A runtime restarted by wrangler has a new pid: count it whole.
      const restarted = b !== undefined && [...a.pids].some((p) => !b.pids.has(p));
      const used = a.seconds - (b && !restarted ? b.seconds : 0);
      total += used;
      console.log(`  CPU ${name.padEnd(17)} ${used.toFixed(1)} s${restarted ? " (restarted during the run)" : ""}`);
    }
    console.log(`  CPU hub total       ${total.toFixed(1)} s = ${((total * 1e6) / Math.max(1, s.ackedBatches)).toFixed(0)} us per acked batch; "tail session was canceled" log errors: ${logErrors}`);
  } finally {
    await hub.stop();
    await rm(state, { recursive: true, force: true });
  }
}

console.log(`CPU: ${cpus()[0]?.model ?? "unknown"} x ${cpus().length}; README example: 3 groups x 200 devices, temp/humidity/pressure at 5/s, ${DURATION_S} s`);
for (const m of (values.modes ?? "").split(",")) await runMode(m.trim() === "on");

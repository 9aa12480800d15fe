/**
 * `npm run bench:sim`: can one simulator process load the hub without being
 * the bottleneck? Measured side by side in one run:
 *
 *   1. the simulator's own ceiling: 10 devices at `--rate max` against a null
 *      hub (./sink.ts, its own process) that only acks;
 *   2. the same load against one real group (the Worker on workerd, SQLite
 *      on disk): the hub's single-group saturation;
 *   3. 10,000 concurrent device sockets (1 sample/s each) held by one
 *      simulator process against the null hub.
 *
 * Reports the ratio of (1) to (2); the goal is at least 2. Only 127.0.0.1 is
 * contacted; child processes and temp dirs are removed at the end.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import { Simulation, simConfig, type SimConfig } from "../engine.ts";
import { fleetFromOptions } from "../fleet.ts";
import type { Summary } from "../report.ts";
import { freePort } from "../../harness/ports.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { bundleWorker, readWranglerConfig, startHub } from "./hub.ts";

const USAGE = "usage: npm run bench:sim -- [--duration S] [--sockets N] [--json]\n";
const values = parseCli(USAGE, {
  options: {
    duration: { type: "string", default: "8" },
    sockets: { type: "string", default: "10000" },
    json: { type: "boolean", default: false },
    help: HELP_FLAG,
  },
});
const DURATION = orExit(() => numberOption("duration", values.duration, { min: 1, max: 3600, integer: false }), USAGE) * 1000;
const SOCKETS = orExit(() => numberOption("sockets", values.sockets, { min: 1, max: 100_000 }), USAGE);
const secret = `bench-${Math.random().toString(36).slice(2)}`;
const progress = (s: string) => process.stderr.write(`bench:sim: ${s}\n`);

function config(url: string, devices: number, groups: number, rate: number, durationMs: number): SimConfig {
  const fleet = fleetFromOptions({ groups, prefix: `b${Math.random().toString(36).slice(2, 6)}`, devices, metrics: ["temp", "humidity", "pressure", "power"], rate });
  return simConfig({ url, secret, fleet }, { durationMs, drainTimeoutMs: 15_000, policy: { batchMs: rate === Infinity ? 100 : 1000, batchReadings: 100 } });
}

async function withSink<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, "device-sim/bench/sink.ts"), String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`sink exited ${code}`)));
    child.stdout.on("data", (c: Buffer) => c.toString().includes("ready") && resolve());
  });
  try {
    return await fn(`http://127.0.0.1:${port}`);
  } finally {
    child.removeAllListeners("exit");
    child.kill("SIGTERM");
  }
}

const pick = (s: Summary) => ({
  readingsPerSecond: s.readingsPerSecond,
  ackedReadings: s.ackedReadings,
  devices: s.devices,
  ackLatencyMs: s.ackLatencyMs,
  reconnects: s.reconnects,
  connectErrors: s.connectErrors,
});

progress(`1/3 simulator ceiling: 10 devices at max rate against the null hub, ${DURATION / 1000} s`);
const ceiling = await withSink(async (url) => (await new Simulation(config(url, 10, 1, Infinity, DURATION)).run()).summary);
progress(`    ${ceiling.readingsPerSecond} readings/s`);

progress(`2/3 hub saturation: the same load against one group on workerd, ${DURATION / 1000} s`);
const work = await mkdtemp(join(tmpdir(), "hub-bench-sim-"));
let saturation: Summary;
try {
  const entry = await bundleWorker(join(work, "bundle"));
  const hub = await startHub({ entry, config: readWranglerConfig(), secret, vars: { PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0" }, onLog: () => undefined });
  try {
    saturation = (await new Simulation(config(hub.url, 10, 1, Infinity, DURATION)).run()).summary;
  } finally {
    await hub.dispose();
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
progress(`    ${saturation.readingsPerSecond} readings/s`);

const groups = Math.max(1, Math.round(SOCKETS / 1000));
progress(`3/3 ${SOCKETS} concurrent sockets (${groups} groups), 1 sample/s each, against the null hub, 20 s`);
const many = await withSink(async (url) => (await new Simulation(config(url, Math.round(SOCKETS / groups), groups, 1, 20_000)).run()).summary);
progress(`    ${many.devices} devices, ${many.reconnects} reconnects, ack p99 ${many.ackLatencyMs.p99} ms`);

const result = {
  date: new Date().toISOString(),
  simulatorCeiling: pick(ceiling),
  hubSingleGroupSaturation: pick(saturation),
  ratio: +(ceiling.readingsPerSecond / Math.max(1, saturation.readingsPerSecond)).toFixed(2),
  concurrentSockets: pick(many),
};
if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
else {
  process.stdout.write(`
Simulator capacity (one process)
  ceiling against a null hub     ${result.simulatorCeiling.readingsPerSecond} readings/s (10 sockets, ack p50 ${ceiling.ackLatencyMs.p50} ms)
  one hub group at saturation    ${result.hubSingleGroupSaturation.readingsPerSecond} readings/s (same load)
  ratio                          ${result.ratio}x  (goal: >= 2)
  concurrent sockets             ${many.devices} held for 20 s, ${many.reconnects} reconnects, ${many.connectErrors} connect errors,
                                 ack p50 ${many.ackLatencyMs.p50} ms, p99 ${many.ackLatencyMs.p99} ms
`);
}

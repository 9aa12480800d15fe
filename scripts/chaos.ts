/**
 * `npm run chaos`: crash the hub's runtime with SIGKILL at random moments
 * while simulated devices stream, restart it on the same local state, and
 * prove with `--verify` that no acknowledged reading was lost or counted
 * twice, in the minute buckets and in their hour and day rollups.
 *
 *   npm run chaos                                   100,000 readings, at least 5 kills
 *   npm run chaos -- --readings 20000 --kills 2     the short version CI runs
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../lib/options.ts";
import { Simulation, simConfig } from "../device-sim/engine.ts";
import { fleetFromOptions } from "../device-sim/fleet.ts";
import { sleep, waitFor } from "../harness/wait.ts";
import { startHub, type HubProcess } from "../harness/wrangler-dev.ts";

const USAGE = "usage: npm run chaos [-- --readings N] [-- --kills K] [-- --json]\n";
const values = parseCli(USAGE, {
  options: {
    readings: { type: "string", default: "100000" },
    kills: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
    help: HELP_FLAG,
  },
});
const readings = orExit(() => numberOption("readings", values.readings, { min: 1000 }), USAGE);
const kills = orExit(() => numberOption("kills", values.kills, { min: 1 }), USAGE);

const secret = `chaos-${Math.random().toString(36).slice(2)}`;
const stateDir = mkdtempSync(join(tmpdir(), "hub-chaos-"));
const log = (s: string) => process.stderr.write(`chaos: ${s}\n`);
let hub: HubProcess = await startHub({ persistTo: stateDir, vars: { HUB_SECRET: secret }, crashable: true });
const port = hub.port;
log(`hub on ${hub.url}, state in ${stateDir}`);

// Two groups of four devices, two metrics each: about 3,200 readings/s, so the
// run spans the kills instead of finishing between two of them.
const fleet = fleetFromOptions({ groups: 2, prefix: `chaos-${Date.now().toString(36)}`, devices: 4, metrics: ["temp", "humidity"], rate: 200 });
const sim = new Simulation(
  simConfig(
    { url: hub.url, secret, fleet },
    // Generation stops below, once both the kills and the readings are done.
    // Commands too (two per device per second): one delivered before a kill
    // and answered after it must still run exactly once (issue #15).
    {
      seed: 7,
      maxInFlight: 16,
      bufferBatches: 5000,
      verify: true,
      drainTimeoutMs: 60_000,
      connectRate: 100,
      downlink: { commandRate: 2, dropFraction: 0, ttlMs: 300_000 },
    },
  ),
);

const running = sim.run();
let killed = 0;
const killer = (async () => {
  while (killed < kills) {
    // A random moment 0.5 to 3 s after the hub came back.
    await sleep(500 + Math.random() * 2500);
    await hub.crash();
    killed++;
    log(`kill ${killed}: SIGKILL to wrangler and workerd at ${sim.stats.ackedReadings} acked readings; restarting`);
    hub = await startHub({ persistTo: stateDir, vars: { HUB_SECRET: secret }, port, crashable: true });
  }
  await waitFor(() => sim.stats.generatedReadings >= readings, `${readings} generated readings`, Infinity, 100);
  sim.requestStop();
})();

const result = await running;
await killer;
await hub.stop();
rmSync(stateDir, { recursive: true, force: true });

const v = result.verify;
const outcome = {
  kills: killed,
  readingsGenerated: result.summary.generatedReadings,
  readingsAcked: result.summary.ackedReadings,
  reconnects: result.summary.reconnects,
  lost: v?.lost ?? null,
  countedTwice: v?.extra ?? null,
  differences: v?.differences.length ?? null,
  commands: result.summary.commands ?? null,
  ok: v?.ok === true && killed >= kills && result.summary.unacked.batches === 0 && result.summary.commands?.ok === true,
};
if (values.json) process.stdout.write(`${JSON.stringify(outcome)}\n`);
else {
  process.stdout.write(result.text);
  process.stdout.write(
    `\nChaos: ${killed} SIGKILLs of the hub runtime; ${outcome.readingsAcked} readings acked; lost ${outcome.lost}, counted twice ${outcome.countedTwice}; ` +
      `commands ${outcome.commands?.queued ?? 0}, ran twice ${outcome.commands?.ranTwice ?? "?"}, not final ${outcome.commands?.unfinished ?? "?"}: ${outcome.ok ? "PASS" : "FAIL"}\n`,
  );
}
process.exit(outcome.ok ? 0 : 1);

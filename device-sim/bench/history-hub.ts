/**
 * bench:history's end-to-end part: ingest readings/s through the whole hub
 * (device sockets, frames decoded and validated, the group commit, acks),
 * on two hubs side by side in workerd: the Worker as it ships, and the same
 * bundle with the group's store built without rollups (minute buckets only),
 * the baseline the ratio asks for. Nothing in the Worker can turn
 * rollups off: the baseline is this bench's copy of the bundle with that one
 * constructor call changed, and the bench refuses to run if the call is not
 * found exactly once.
 */
import { cp, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { verify } from "./ingest-measure.ts";
import { bundleWorker, processCpuSeconds, readWranglerConfig, startHub, type Hub } from "./hub.ts";
import { Fleet } from "./load.ts";

/** A fleet shape: how many readings per series each commit carries decides what rollups cost. */
export interface HubShape {
  name: string;
  devices: number;
  metrics: readonly string[];
  /** Readings per metric in a batch. */
  ticks: number;
  inFlight: number;
}

const METRICS = ["temp", "humidity", "pressure", "co2", "battery"] as const;

export const HUB_SHAPES: readonly HubShape[] = [
  // A reading per metric and batch, one batch in flight: every commit holds about one reading per
  // series, so rollups triple the rows the commit writes (the worst case, as in the store part).
  { name: "1,000 devices x 5 metrics, one reading per metric a batch, one batch in flight", devices: 1000, metrics: METRICS, ticks: 1, inFlight: 1 },
  // Devices that batch (DeviceClient's default policy sends up to 100 readings a batch): the rows per
  // commit stay one per series and resolution while the readings per series grow.
  { name: "10 devices x 5 metrics, 100-reading batches, 32 in flight", devices: 10, metrics: METRICS, ticks: 20, inFlight: 32 },
];

/** The text the shipped bundle builds the group's store with, and the baseline's. */
const STORE_CALL = "new Store(ctx.storage)";
const STORE_CALL_PLAIN = "new Store(ctx.storage, false)";

export interface HubRound {
  readingsPerSec: number;
  /** workerd CPU µs per acked reading (null where /proc is missing). */
  cpuUsPerReading: number | null;
}

export interface HubShapeResult {
  shape: string;
  rounds: { roll: HubRound; plain: HubRound }[];
  /** Without ÷ with rollups, by the sum over rounds: readings/s, and CPU per reading (with ÷ without). */
  ratio: number;
  cpuRatio: number | null;
  /** Each hub holds exactly what it acked (aggregates, per-device readings, lastSeq). */
  verified: boolean;
}

/** `bundleWorker`'s output, and a copy of it whose group store writes minute buckets only. */
async function bundles(dir: string): Promise<{ roll: string; plain: string }> {
  const roll = await bundleWorker(join(dir, "roll"));
  const plainDir = join(dir, "plain");
  await cp(dirname(roll), plainDir, { recursive: true });
  const plain = join(plainDir, "index.js");
  const text = await readFile(plain, "utf8");
  const found = text.split(STORE_CALL).length - 1;
  if (found !== 1) throw new Error(`the bundle builds its store ${found} times as \`${STORE_CALL}\`; expected once (worker/group/GroupHub.ts changed: update ${import.meta.filename})`);
  await writeFile(plain, text.replace(STORE_CALL, STORE_CALL_PLAIN));
  return { roll, plain };
}

/** One saturated window: every device keeps its in-flight window full for `ms`, then drains. */
async function saturated(hub: Hub, fleet: Fleet, ms: number): Promise<HubRound> {
  fleet.resetWindow();
  const cpu0 = processCpuSeconds(hub.workerdPid);
  const t0 = performance.now();
  fleet.saturate();
  await new Promise((r) => setTimeout(r, ms));
  await fleet.drain();
  const seconds = (performance.now() - t0) / 1000;
  const cpu1 = processCpuSeconds(hub.workerdPid);
  const readings = Math.max(1, fleet.window.readings);
  return {
    readingsPerSec: Math.round(readings / seconds),
    cpuUsPerReading: cpu0 === null || cpu1 === null ? null : Number((((cpu1 - cpu0) * 1e6) / readings).toFixed(3)),
  };
}

/**
 * Runs every shape on both hubs, alternating which goes first each round
 * so that both see the same machine load; `log` gets progress lines.
 */
export async function measureHubs(dir: string, opts: { rounds: number; seconds: number; log: (s: string) => void; shapes?: readonly HubShape[] }): Promise<HubShapeResult[]> {
  const { roll, plain } = await bundles(dir);
  const config = readWranglerConfig();
  const secret = `bench-${Math.random().toString(36).slice(2)}`;
  // The budgets would cap one token's rate: this measures what the group can take.
  const vars = { PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0" };
  const hubs: Hub[] = [];
  const fleets: Fleet[] = [];
  try {
    for (const entry of [roll, plain]) hubs.push(await startHub({ entry, config, secret, vars, onLog: () => undefined }));
    const [rollHub, plainHub] = hubs as [Hub, Hub];
    const results: HubShapeResult[] = [];
    for (const [i, shape] of (opts.shapes ?? HUB_SHAPES).entries()) {
      const fleetOn = async (hub: Hub): Promise<Fleet> => {
        const fleet = new Fleet({ url: hub.url, group: `hub-shape-${i + 1}`, secret, devices: shape.devices, batchSize: shape.ticks * shape.metrics.length, maxInFlight: shape.inFlight, metrics: shape.metrics });
        fleets.push(fleet);
        await fleet.connect();
        return fleet;
      };
      const on = { roll: { hub: rollHub, fleet: await fleetOn(rollHub) }, plain: { hub: plainHub, fleet: await fleetOn(plainHub) } };
      // A warm-up window each (JIT, series created, statements compiled), not counted.
      for (const v of [on.roll, on.plain]) await saturated(v.hub, v.fleet, 1000);
      const rounds: HubShapeResult["rounds"] = [];
      for (let r = 0; r < opts.rounds; r++) {
        const round = {} as HubShapeResult["rounds"][number];
        for (const name of r % 2 === 0 ? (["roll", "plain"] as const) : (["plain", "roll"] as const)) round[name] = await saturated(on[name].hub, on[name].fleet, opts.seconds * 1000);
        rounds.push(round);
        opts.log(`hub ingest (${shape.name}) round ${r + 1}/${opts.rounds}: ${round.roll.readingsPerSec.toLocaleString("en")} readings/s with rollups, ${round.plain.readingsPerSec.toLocaleString("en")} without`);
      }
      const checks = await Promise.all([verify(on.roll.hub, on.roll.fleet, secret), verify(on.plain.hub, on.plain.fleet, secret)]);
      // Sums over the rounds (null if a round's CPU time is unknown).
      const sum = (xs: (number | null)[]): number | null => (xs.includes(null) ? null : xs.reduce<number>((a, x) => a + (x ?? 0), 0));
      const rate = { roll: sum(rounds.map((x) => x.roll.readingsPerSec)) ?? 0, plain: sum(rounds.map((x) => x.plain.readingsPerSec)) ?? 0 };
      const cpu = { roll: sum(rounds.map((x) => x.roll.cpuUsPerReading)), plain: sum(rounds.map((x) => x.plain.cpuUsPerReading)) };
      results.push({
        shape: shape.name,
        rounds,
        ratio: Number((rate.roll / Math.max(1, rate.plain)).toFixed(2)),
        cpuRatio: cpu.roll === null || cpu.plain === null || cpu.roll === 0 ? null : Number((cpu.plain / cpu.roll).toFixed(2)),
        verified: checks.every((c) => c.ok),
      });
      for (const f of fleets.splice(0)) await f.close();
    }
    return results;
  } finally {
    for (const f of fleets.splice(0)) await f.close().catch(() => undefined);
    for (const h of hubs) await h.dispose().catch(() => undefined);
  }
}

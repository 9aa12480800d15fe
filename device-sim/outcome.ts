/**
 * How a run ends: which batches the hub applied (asked over REST when the
 * sockets could not tell), what the hub held before the run, and the exit
 * code with its one-line reason. See docs/simulator.md, "Exit codes".
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Expected } from "./expected.ts";
import type { HubRest } from "./hub-rest.ts";
import type { SimDevice } from "./sim-device.ts";
import type { Stats } from "./stats.ts";
import type { VerifyResult } from "./verify.ts";
import type { CommandCheck } from "./downlink.ts";

/** Exit codes of `npm run sim` (2, bad options, is the CLI's own). */
export const EXIT = {
  ok: 0,
  /** --verify found differences, or acked work was left unacked at the end (with --verify, without --state). */
  differences: 1,
  badOptions: 2,
  /** The preflight failed: the hub is not reachable, or rejects the simulator's tokens. */
  hubUnreachable: 3,
  /** Nothing was acked, or --verify could not read the hub. */
  failed: 4,
} as const;

export interface Outcome {
  exitCode: number;
  /** One line saying why the run failed; null when it did not. */
  reason: string | null;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Settles batches that are still unacked after the sockets closed but that
 * the hub applied (their acks were lost with a socket): the hub's `lastSeq`
 * per device says which. Returns how many batches it settled.
 */
export async function settleByLastSeq(hub: HubRest, devices: readonly SimDevice[]): Promise<number> {
  let settled = 0;
  for (let pass = 0; pass < 2; pass++) {
    const byGroup = new Map<string, SimDevice[]>();
    for (const d of devices) {
      if (d.client.unackedBatches().length === 0) continue;
      const list = byGroup.get(d.group) ?? [];
      list.push(d);
      byGroup.set(d.group, list);
    }
    if (byGroup.size === 0) break;
    // A second look after a moment: a batch that was still on its way
    // through the runtime when a socket was cut may commit just after the
    // first read. Once the sockets are closed, nothing else can arrive.
    if (pass === 1) await sleep(1000);
    for (const [group, list] of byGroup) {
      const seqs = await hub.lastSeqs(group);
      for (const d of list) settled += d.client.settleThrough(seqs.get(d.device) ?? 0);
    }
  }
  return settled;
}

/**
 * Adds to `expected` what the hub already holds for this run's devices, so
 * `--verify` compares only what this run added: a replay into a group used
 * before, or a reused `--prefix`, must not read as differences.
 */
export async function addBaseline(hub: HubRest, devicesByGroup: Map<string, Set<string>>, expected: Expected): Promise<number> {
  let readings = 0;
  for (const [group, devices] of devicesByGroup) {
    for (const b of await hub.buckets(group, devices)) {
      expected.addRow([group, b.device, b.metric, b.start, b.count, b.sum, b.min, b.max]);
      readings += b.count;
    }
  }
  return readings;
}

/** Why nothing was acked, in a few words: the first thing a user must fix. */
function nothingAcked(s: Stats): string {
  const rejected = Object.entries(s.errors);
  if (rejected.length > 0) return `the hub rejected every batch (${rejected.map(([k, n]) => `${k}=${n}`).join(", ")})`;
  if (s.connectErrors > 0) return `${s.connectErrors} connect errors${s.lastConnectError ? `, last: ${s.lastConnectError}` : ""}`;
  return "no device got an ack before the run ended; the hub is overloaded or not answering";
}

/** The exit code and reason, most important first. */
export function decide(input: {
  stats: Stats;
  verify: VerifyResult | undefined;
  verifyRequested: boolean;
  verifyError: string | null;
  unackedBatches: number;
  keepsState: boolean;
  /** With --downlink and --verify: what became of the commands this run queued. */
  commands?: CommandCheck | null;
}): Outcome {
  const { stats, verify: v, commands: c } = input;
  if (v && !v.ok) return { exitCode: EXIT.differences, reason: `--verify found ${v.differences.length} differences (lost ${v.lost}, extra ${v.extra})` };
  if (c && !c.ok) {
    return { exitCode: EXIT.differences, reason: `--verify: ${c.ranTwice.length} commands ran more than once, ${c.unfinished.length} did not reach a final status (or succeeded without running)` };
  }
  if (input.verifyRequested && !v) return { exitCode: EXIT.failed, reason: `--verify could not run: ${input.verifyError ?? "unknown reason"}` };
  if (stats.generatedReadings > 0 && stats.ackedReadings === 0) return { exitCode: EXIT.failed, reason: `nothing was acked: ${nothingAcked(stats)}` };
  if (v && input.unackedBatches > 0 && !input.keepsState) {
    return { exitCode: EXIT.differences, reason: `${input.unackedBatches} batches were never acked nor applied by the hub (raise --drain-timeout, or keep them with --state)` };
  }
  return { exitCode: EXIT.ok, reason: null };
}

/**
 * The simulator's state file (`--state FILE`): per device the last seq it
 * used and the batches the hub had not acked when the run stopped, plus
 * what the hub should hold so far. A stopped and resumed run continues above
 * lastSeq, resends what was unacked, and `--verify` still adds up.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { DeviceClient } from "../client/index.ts";
import type { Reading } from "../schema/protocol.ts";
import type { AggRow } from "./expected.ts";

export interface DeviceState {
  lastSeq: number;
  unacked: { seq: number; readings: Reading[] }[];
  /** Batches generated but never sent (no seq yet). */
  unsent: Reading[][];
}

export interface SimState {
  version: 1;
  /** Group prefix of the run, so a resumed run addresses the same groups. */
  prefix: string;
  devices: Record<string, DeviceState>;
  expected: AggRow[];
}

export function stateKey(group: string, device: string): string {
  return `${group}/${device}`;
}

export class StateError extends Error {}

export function loadState(path: string): SimState | null {
  if (!existsSync(path)) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new StateError(`state file ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (
    typeof raw !== "object" ||
    raw === null ||
    !("version" in raw) ||
    raw.version !== 1 ||
    !("devices" in raw) ||
    typeof raw.devices !== "object" ||
    !("expected" in raw) ||
    !Array.isArray(raw.expected) ||
    !("prefix" in raw) ||
    typeof raw.prefix !== "string"
  ) {
    throw new StateError(`state file ${path} is not a simulator state file (version 1)`);
  }
  // The file is ours (written by saveState below); its shape was checked at the top level.
  return raw as SimState;
}

/** Writes atomically (temp file, then rename), so a crash mid-write never leaves half a state. */
export function saveState(path: string, state: SimState): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(state));
  renameSync(tmp, path);
}

/**
 * The state to save after a run: each client's seq, unacked and unsent
 * batches. Devices of the `previous` state that did not take part this time
 * keep their entries.
 */
export function stateOf(clients: ReadonlyMap<string, DeviceClient>, previous: SimState | null, prefix: string, expected: AggRow[]): SimState {
  const devices: SimState["devices"] = {};
  for (const [key, c] of clients) {
    devices[key] = {
      lastSeq: c.lastAssignedSeq,
      unacked: c.unackedBatches().map((b) => ({ seq: b.seq, readings: b.readings as Reading[] })),
      unsent: c.unsentBatches().map((b) => b as Reading[]),
    };
  }
  for (const [key, s] of Object.entries(previous?.devices ?? {})) devices[key] ??= s;
  return { version: 1, prefix, devices, expected };
}

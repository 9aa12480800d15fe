/**
 * Fleets: groups x device kinds. A kind says how many devices of it each
 * group has, which metrics they report and how often. Built from command
 * line options, or read from a fleet file (JSON) for mixed kinds:
 *
 *   {
 *     "groups": ["plant-a", "plant-b"],            // or a count: 3
 *     "kinds": [
 *       { "name": "thermo", "count": 50, "metrics": ["temp", "humidity"], "rate": "1/s" },
 *       { "name": "meter", "count": 5, "metrics": ["power"], "rate": "10/s",
 *         "signals": { "power": { "base": 5, "amplitude": 2, "noise": 0.1 } } }
 *     ]
 *   }
 */
import { readFileSync } from "node:fs";
import { ID_PATTERN, METRIC_PATTERN } from "../schema/protocol.ts";
import { presetFor, type SignalSpec } from "./signal.ts";
import { parseRate } from "./units.ts";

export interface DeviceKind {
  name: string;
  /** Devices of this kind in each group. */
  count: number;
  metrics: string[];
  /** Samples per second per device (each sample is one reading per metric); Infinity for "max". */
  rate: number;
  signals: Record<string, SignalSpec>;
}

export interface Fleet {
  groups: string[];
  kinds: DeviceKind[];
}

export interface FleetDevice {
  group: string;
  device: string;
  kind: DeviceKind;
}

export class FleetError extends Error {}

export function fleetFromOptions(o: { groups: number; prefix: string; devices: number; metrics: string[]; rate: number }): Fleet {
  const groups = Array.from({ length: o.groups }, (_, i) => `${o.prefix}-${i + 1}`);
  const signals = Object.fromEntries(o.metrics.map((m) => [m, presetFor(m)]));
  return { groups, kinds: [{ name: "dev", count: o.devices, metrics: o.metrics, rate: o.rate, signals }] };
}

function fail(msg: string): never {
  throw new FleetError(`fleet file: ${msg}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads and checks a fleet file; errors name the offending field. */
export function readFleetFile(path: string, prefix: string): Fleet {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    fail(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(raw)) fail("must be a JSON object");
  let groups: string[];
  if (typeof raw.groups === "number" && Number.isInteger(raw.groups) && raw.groups > 0) {
    groups = Array.from({ length: raw.groups }, (_, i) => `${prefix}-${i + 1}`);
  } else if (Array.isArray(raw.groups) && raw.groups.length > 0 && raw.groups.every((g) => typeof g === "string" && ID_PATTERN.test(g))) {
    groups = raw.groups as string[];
  } else {
    fail("'groups' must be a positive integer or a non-empty array of group ids");
  }
  if (!Array.isArray(raw.kinds) || raw.kinds.length === 0) fail("'kinds' must be a non-empty array");
  const kinds = raw.kinds.map((k: unknown, i: number): DeviceKind => {
    if (!isObject(k)) fail(`kinds[${i}] must be an object`);
    const name = k.name;
    if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,40}$/.test(name)) fail(`kinds[${i}].name must be a short id`);
    const count = k.count;
    if (typeof count !== "number" || !Number.isInteger(count) || count < 1) fail(`kinds[${i}].count must be a positive integer`);
    const metrics = k.metrics;
    if (!Array.isArray(metrics) || metrics.length === 0 || !metrics.every((m) => typeof m === "string" && METRIC_PATTERN.test(m))) {
      fail(`kinds[${i}].metrics must be a non-empty array of metric names`);
    }
    const rate = k.rate === "max" ? Infinity : typeof k.rate === "string" ? parseRate(k.rate) : typeof k.rate === "number" ? k.rate : null;
    if (rate === null || !(rate > 0)) fail(`kinds[${i}].rate must be like "5/s", "10/min" or "max"`);
    const signals: Record<string, SignalSpec> = {};
    const given = k.signals === undefined ? {} : k.signals;
    if (!isObject(given)) fail(`kinds[${i}].signals must be an object of metric -> signal settings`);
    for (const m of metrics as string[]) {
      const over = given[m];
      if (over !== undefined && !isObject(over)) fail(`kinds[${i}].signals.${m} must be an object`);
      const spec: SignalSpec = { ...presetFor(m) };
      for (const [key, value] of Object.entries(over ?? {})) {
        if (!(key in spec)) fail(`kinds[${i}].signals.${m}.${key} is not a signal setting (${Object.keys(spec).join(", ")})`);
        if (typeof value !== "number" || !Number.isFinite(value)) fail(`kinds[${i}].signals.${m}.${key} must be a number`);
        spec[key as keyof SignalSpec] = value;
      }
      signals[m] = spec;
    }
    return { name, count, metrics: metrics as string[], rate, signals };
  });
  return { groups, kinds };
}

/** Every device of the fleet, in a stable order. */
export function fleetDevices(f: Fleet): FleetDevice[] {
  const out: FleetDevice[] = [];
  for (const group of f.groups) {
    for (const kind of f.kinds) {
      const width = String(kind.count).length;
      for (let n = 1; n <= kind.count; n++) out.push({ group, device: `${kind.name}-${String(n).padStart(width, "0")}`, kind });
    }
  }
  return out;
}

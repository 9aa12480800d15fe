/**
 * `--verify`: reads the hub's aggregates over REST and compares them, bucket
 * by bucket, with what the simulator generated and had acknowledged: the
 * minute buckets, and the hour and day buckets against the same
 * expectations rolled up (docs/history.md), so exactly-once is checked at
 * every resolution.
 */
import { RESOLUTION_MS, type AggregateBucket, type Resolution } from "../schema/api.ts";
import { Expected } from "./expected.ts";
import type { HubRest } from "./hub-rest.ts";

export interface Difference {
  group: string;
  device: string;
  metric: string;
  start: number;
  /** Absent for minute buckets. */
  resolution?: "hour" | "day";
  field: "count" | "sum" | "min" | "max" | "missing" | "unexpected";
  expected: number | null;
  actual: number | null;
}

export interface VerifyResult {
  ok: boolean;
  bucketsCompared: number;
  readingsExpected: number;
  readingsFound: number;
  /** Acknowledged readings the hub does not hold (summed over buckets where it holds fewer). */
  lost: number;
  /** Readings the hub holds beyond what was acknowledged (double counts or strays). */
  extra: number;
  differences: Difference[];
}

/** Relative tolerance for sums: the hub and the simulator add the same values in different orders. */
const SUM_TOLERANCE = 1e-9;

/**
 * Compares the hub's buckets of every device in `expected` with it. Throws
 * `HubError` when the hub cannot be read.
 */
export async function verify(hub: HubRest, expected: Expected): Promise<VerifyResult> {
  const r: VerifyResult = { ok: true, bucketsCompared: 0, readingsExpected: expected.readings, readingsFound: 0, lost: 0, extra: 0, differences: [] };
  await compare(r, hub, expected, "minute");
  // Coarser buckets only add differences: lost and extra readings are counted once, at minutes.
  for (const res of ["hour", "day"] as const) await compare(r, hub, rollUp(expected, res), res);
  r.ok = r.differences.length === 0;
  return r;
}

/** The expectations in buckets of `res`, merged by the hub's rule (counts and sums add, min and max widen). */
function rollUp(expected: Expected, res: Resolution): Expected {
  const out = new Expected();
  const len = RESOLUTION_MS[res];
  for (const [group, device, metric, start, count, sum, min, max] of expected.rows()) out.addRow([group, device, metric, Math.floor(start / len) * len, count, sum, min, max]);
  return out;
}

async function compare(r: VerifyResult, hub: HubRest, expected: Expected, res: Resolution): Promise<void> {
  const seen = new Set<string>();
  const tag = res === "minute" ? {} : { resolution: res };
  for (const [group, devices] of expected.devicesByGroup()) {
    // Only this run's devices: others may share the group.
    for (const b of await hub.buckets(group, devices, res)) {
      const key = `${group}\u0000${b.device}\u0000${b.metric}\u0000${b.start}`;
      seen.add(key);
      if (res === "minute") {
        r.bucketsCompared++;
        r.readingsFound += b.count;
      }
      const e = expected.get(group, b.device, b.metric, b.start);
      const where = { group, device: b.device, metric: b.metric, start: b.start, ...tag };
      if (!e) {
        r.extra += res === "minute" ? b.count : 0;
        r.differences.push({ ...where, field: "unexpected", expected: null, actual: b.count });
        continue;
      }
      compareBucket(r, res, where, e, b);
    }
  }
  for (const [group, device, metric, start, count] of expected.rows()) {
    if (seen.has(`${group}\u0000${device}\u0000${metric}\u0000${start}`)) continue;
    if (res === "minute") r.lost += count;
    r.differences.push({ group, device, metric, start, ...tag, field: "missing", expected: count, actual: null });
  }
}

function compareBucket(r: VerifyResult, res: Resolution, where: Omit<Difference, "field" | "expected" | "actual">, e: { count: number; sum: number; min: number; max: number }, b: AggregateBucket): void {
  if (e.count !== b.count) {
    if (res === "minute" && b.count < e.count) r.lost += e.count - b.count;
    else if (res === "minute") r.extra += b.count - e.count;
    r.differences.push({ ...where, field: "count", expected: e.count, actual: b.count });
  }
  if (Math.abs(e.sum - b.sum) > SUM_TOLERANCE * Math.max(1, Math.abs(e.sum))) {
    r.differences.push({ ...where, field: "sum", expected: e.sum, actual: b.sum });
  }
  if (e.min !== b.min) r.differences.push({ ...where, field: "min", expected: e.min, actual: b.min });
  if (e.max !== b.max) r.differences.push({ ...where, field: "max", expected: e.max, actual: b.max });
}

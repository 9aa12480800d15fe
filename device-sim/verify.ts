/**
 * `--verify`: reads the hub's aggregates over REST and compares them, bucket
 * by bucket, with what the simulator generated and had acknowledged.
 */
import type { Expected } from "./expected.ts";
import type { HubRest } from "./hub-rest.ts";

export interface Difference {
  group: string;
  device: string;
  metric: string;
  start: number;
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
  const seen = new Set<string>();
  for (const [group, devices] of expected.devicesByGroup()) {
    // Only this run's devices: others may share the group.
    for (const b of await hub.buckets(group, devices)) {
      const key = `${group}\u0000${b.device}\u0000${b.metric}\u0000${b.start}`;
      seen.add(key);
      r.bucketsCompared++;
      r.readingsFound += b.count;
      const e = expected.get(group, b.device, b.metric, b.start);
      const where = { group, device: b.device, metric: b.metric, start: b.start };
      if (!e) {
        r.extra += b.count;
        r.differences.push({ ...where, field: "unexpected", expected: null, actual: b.count });
        continue;
      }
      if (e.count !== b.count) {
        if (b.count < e.count) r.lost += e.count - b.count;
        else r.extra += b.count - e.count;
        r.differences.push({ ...where, field: "count", expected: e.count, actual: b.count });
      }
      if (Math.abs(e.sum - b.sum) > SUM_TOLERANCE * Math.max(1, Math.abs(e.sum))) {
        r.differences.push({ ...where, field: "sum", expected: e.sum, actual: b.sum });
      }
      if (e.min !== b.min) r.differences.push({ ...where, field: "min", expected: e.min, actual: b.min });
      if (e.max !== b.max) r.differences.push({ ...where, field: "max", expected: e.max, actual: b.max });
    }
  }
  for (const [group, device, metric, start, count] of expected.rows()) {
    if (seen.has(`${group}\u0000${device}\u0000${metric}\u0000${start}`)) continue;
    r.lost += count;
    r.differences.push({ group, device, metric, start, field: "missing", expected: count, actual: null });
  }
  r.ok = r.differences.length === 0;
  return r;
}

/**
 * What the hub should hold: per (group, device, metric, minute bucket) the
 * count, sum, min and max of every reading the hub acknowledged. Built from
 * acks only, so readings that were rejected, dropped from a full buffer or
 * never acked are not expected.
 */
import { BUCKET_MS, type Reading } from "../schema/protocol.ts";

export interface Agg {
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** Flat form for state files and reports: [group, device, metric, start, count, sum, min, max]. */
export type AggRow = [string, string, string, number, number, number, number, number];

export class Expected {
  /** key `group\u0000device` -> metric -> bucket start -> aggregate */
  private readonly byDevice = new Map<string, Map<string, Map<number, Agg>>>();
  readings = 0;

  private metrics(group: string, device: string): Map<string, Map<number, Agg>> {
    const key = `${group}\u0000${device}`;
    let m = this.byDevice.get(key);
    if (!m) {
      m = new Map();
      this.byDevice.set(key, m);
    }
    return m;
  }

  add(group: string, device: string, readings: readonly Reading[]): void {
    const metrics = this.metrics(group, device);
    let lastMetric = "";
    let buckets: Map<number, Agg> | undefined;
    for (const [ts, metric, value] of readings) {
      if (metric !== lastMetric || !buckets) {
        buckets = metrics.get(metric);
        if (!buckets) {
          buckets = new Map();
          metrics.set(metric, buckets);
        }
        lastMetric = metric;
      }
      const start = Math.floor(ts / BUCKET_MS) * BUCKET_MS;
      const a = buckets.get(start);
      if (a) {
        a.count++;
        a.sum += value;
        if (value < a.min) a.min = value;
        if (value > a.max) a.max = value;
      } else {
        buckets.set(start, { count: 1, sum: value, min: value, max: value });
      }
    }
    this.readings += readings.length;
  }

  addRow(r: AggRow): void {
    const [group, device, metric, start, count, sum, min, max] = r;
    const metrics = this.metrics(group, device);
    let buckets = metrics.get(metric);
    if (!buckets) {
      buckets = new Map();
      metrics.set(metric, buckets);
    }
    const a = buckets.get(start);
    if (a) {
      a.count += count;
      a.sum += sum;
      a.min = Math.min(a.min, min);
      a.max = Math.max(a.max, max);
    } else {
      buckets.set(start, { count, sum, min, max });
    }
    this.readings += count;
  }

  rows(): AggRow[] {
    const out: AggRow[] = [];
    for (const [key, metrics] of this.byDevice) {
      const [group = "", device = ""] = key.split("\u0000");
      for (const [metric, buckets] of metrics) {
        for (const [start, a] of buckets) out.push([group, device, metric, start, a.count, a.sum, a.min, a.max]);
      }
    }
    return out;
  }

  /** Devices with expectations, per group. */
  devicesByGroup(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const key of this.byDevice.keys()) {
      const [group = "", device = ""] = key.split("\u0000");
      let s = out.get(group);
      if (!s) out.set(group, (s = new Set()));
      s.add(device);
    }
    return out;
  }

  get(group: string, device: string, metric: string, start: number): Agg | undefined {
    return this.byDevice.get(`${group}\u0000${device}`)?.get(metric)?.get(start);
  }
}

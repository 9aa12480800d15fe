/**
 * Collapses batches into per-(device, metric, minute) partial aggregates, so
 * a group commit touches SQLite once per row it changes rather than once per
 * reading. Nested maps avoid building a string key per reading.
 */
import { BUCKET_MS, type GatewayReading, type Reading } from "../../schema/protocol.ts";

export interface PartialAggregate {
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTs: number;
  lastTs: number;
  last: number;
}

export interface DeviceDelta {
  lastSeq: number;
  readings: number;
  batches: number;
}

export interface Collapsed {
  devices: Map<string, DeviceDelta>;
  /** Gateways whose batches are in this commit; `lastSeq` here is the gateway's. */
  gateways: Map<string, DeviceDelta>;
  /** device -> metric -> bucket start -> aggregate */
  aggregates: Map<string, Map<string, Map<number, PartialAggregate>>>;
  readings: number;
  rows: number;
}

export function emptyCollapsed(): Collapsed {
  return { devices: new Map(), gateways: new Map(), aggregates: new Map(), readings: 0, rows: 0 };
}

/** Counts one batch for the peer (device or gateway) whose seq it carries. */
function countBatch(c: Collapsed, peers: Map<string, DeviceDelta>, id: string, seq: number, readings: number): void {
  let d = peers.get(id);
  if (!d) {
    d = { lastSeq: seq, readings: 0, batches: 0 };
    peers.set(id, d);
  }
  if (seq > d.lastSeq) d.lastSeq = seq;
  d.readings += readings;
  d.batches += 1;
  c.readings += readings;
}

/** Adds one validated batch. Readings are applied in array order, so on equal timestamps the later one wins `last`. */
export function addBatch(c: Collapsed, device: string, seq: number, readings: readonly Reading[]): void {
  countBatch(c, c.devices, device, seq, readings.length);

  let metrics = c.aggregates.get(device);
  if (!metrics) {
    metrics = new Map();
    c.aggregates.set(device, metrics);
  }
  // A batch interleaves a few metrics, mostly within one minute. For each
  // metric seen in this batch keep its bucket map and the bucket it touched
  // last, and find them by comparing the metric's text (cheap for short
  // names) rather than hashing the metric and the bucket start into maps
  // for every reading (docs/benchmarks.md). The result is the same.
  const slots: Slot[] = [];
  for (let i = 0; i < readings.length; i++) {
    const [ts, metric, value] = readings[i] as Reading;
    let slot: Slot | undefined;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[k] as Slot;
      if (s.metric === metric) {
        slot = s;
        break;
      }
    }
    if (!slot) {
      let buckets = metrics.get(metric);
      if (!buckets) {
        buckets = new Map();
        metrics.set(metric, buckets);
      }
      slot = { metric, buckets, start: NaN, agg: undefined };
      // Past a handful of metrics, scanning would cost more than the lookups it saves.
      if (slots.length < MAX_SLOTS) slots.push(slot);
    }
    const start = Math.floor(ts / BUCKET_MS) * BUCKET_MS;
    let a = start === slot.start ? slot.agg : slot.buckets.get(start);
    slot.start = start;
    if (!a) {
      a = { count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, last: value };
      slot.buckets.set(start, a);
      slot.agg = a;
      c.rows++;
      continue;
    }
    slot.agg = a;
    a.count++;
    a.sum += value;
    if (value < a.min) a.min = value;
    if (value > a.max) a.max = value;
    if (ts < a.firstTs) a.firstTs = ts;
    if (ts >= a.lastTs) {
      a.lastTs = ts;
      a.last = value;
    }
  }
}

/** A metric of the batch being added, and the bucket it touched last. */
interface Slot {
  metric: string;
  buckets: Map<number, PartialAggregate>;
  start: number;
  agg: PartialAggregate | undefined;
}
const MAX_SLOTS = 8;

/**
 * Adds one validated gateway batch. Its seq advances the gateway's lastSeq;
 * each reading counts for its own device, whose lastSeq stays as it is (0
 * for a device only ever heard through gateways), so a device that also
 * connects natively keeps its own exactly-once sequence.
 */
export function addGatewayBatch(c: Collapsed, gateway: string, seq: number, readings: readonly GatewayReading[]): void {
  countBatch(c, c.gateways, gateway, seq, readings.length);

  // Readings usually come in runs of one device; look the device up once per run.
  const seen = new Set<string>();
  let lastDevice = "";
  let delta: DeviceDelta | undefined;
  let metrics: Map<string, Map<number, PartialAggregate>> | undefined;
  for (const [ts, metric, value, device] of readings) {
    if (device !== lastDevice || !metrics || !delta) {
      delta = c.devices.get(device);
      if (!delta) {
        delta = { lastSeq: 0, readings: 0, batches: 0 };
        c.devices.set(device, delta);
      }
      if (!seen.has(device)) {
        seen.add(device);
        delta.batches += 1;
      }
      metrics = c.aggregates.get(device);
      if (!metrics) {
        metrics = new Map();
        c.aggregates.set(device, metrics);
      }
      lastDevice = device;
    }
    delta.readings++;
    let buckets = metrics.get(metric);
    if (!buckets) {
      buckets = new Map();
      metrics.set(metric, buckets);
    }
    const start = Math.floor(ts / BUCKET_MS) * BUCKET_MS;
    const a = buckets.get(start);
    if (!a) {
      buckets.set(start, { count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, last: value });
      c.rows++;
      continue;
    }
    a.count++;
    a.sum += value;
    if (value < a.min) a.min = value;
    if (value > a.max) a.max = value;
    if (ts < a.firstTs) a.firstTs = ts;
    if (ts >= a.lastTs) {
      a.lastTs = ts;
      a.last = value;
    }
  }
}

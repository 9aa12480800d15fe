/**
 * Collapses batches into per-(device, metric, minute) partial aggregates, so
 * a group commit touches SQLite once per row it changes rather than once per
 * reading. Device and gateway batches take the same path: a gateway batch is
 * runs of readings of one device each, and every run is merged by the one
 * rule below. A compact batch (`cbatch`) is merged series by series
 * straight from its columns, without an array per reading. Nested maps avoid
 * building a string key per reading.
 */
import { compactCount } from "../../../schema/cbatch.ts";
import { BUCKET_MS, type CompactBatchFrame, type CompactSeries, type GatewayReading, type Reading } from "../../../schema/protocol.ts";
import { byKind, type ByKind, type Peer } from "../peer.ts";

export interface PartialAggregate {
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTs: number;
  lastTs: number;
  last: number;
}

/** What one commit adds to a device's or gateway's row. */
export interface PeerDelta {
  lastSeq: number;
  readings: number;
  batches: number;
}

/**
 * A device batch's readings, a gateway batch's (each naming its device), or
 * a validated compact batch, kept as columns (from a gateway, each series
 * names its device).
 */
export type PeerReadings = readonly Reading[] | readonly GatewayReading[] | CompactBatchFrame;

/** How many readings a batch carries. */
export function readingCount(r: PeerReadings): number {
  return "series" in r ? compactCount(r) : r.length;
}

export interface Collapsed {
  /**
   * Per kind, per id. A gateway's `lastSeq` is its own seq; the devices it
   * speaks for get readings and batches but keep their lastSeq (0 for a
   * device only ever heard through gateways), so a device that also connects
   * natively keeps its own exactly-once sequence.
   */
  peers: ByKind<Map<string, PeerDelta>>;
  /** device -> metric -> bucket start -> aggregate */
  aggregates: Map<string, Map<string, Map<number, PartialAggregate>>>;
  readings: number;
  rows: number;
}

export function emptyCollapsed(): Collapsed {
  return { peers: byKind(() => new Map<string, PeerDelta>()), aggregates: new Map(), readings: 0, rows: 0 };
}

function delta(peers: Map<string, PeerDelta>, id: string): PeerDelta {
  let d = peers.get(id);
  if (!d) {
    d = { lastSeq: 0, readings: 0, batches: 0 };
    peers.set(id, d);
  }
  return d;
}

/**
 * Adds one validated batch of a peer. Readings are applied in the order
 * sent (a compact batch's series by series), so on equal timestamps the
 * later one wins `last`.
 */
export function addBatch(c: Collapsed, peer: Peer, seq: number, readings: PeerReadings): void {
  const n = readingCount(readings);
  const own = delta(c.peers[peer.kind], peer.id);
  if (seq > own.lastSeq) own.lastSeq = seq;
  own.readings += n;
  own.batches += 1;
  c.readings += n;
  if ("series" in readings) {
    addCompact(c, peer, readings);
    return;
  }
  if (peer.kind === "device") {
    addRun(c, peer.id, readings, 0, readings.length);
    return;
  }
  // Gateway readings usually come in runs of one device.
  const devices = c.peers.device;
  const seen = new Set<string>();
  for (let from = 0; from < readings.length; ) {
    const device = (readings[from] as GatewayReading)[3];
    let to = from + 1;
    while (to < readings.length && (readings[to] as GatewayReading)[3] === device) to++;
    const d = delta(devices, device);
    d.readings += to - from;
    if (!seen.has(device)) {
      seen.add(device);
      d.batches += 1;
    }
    addRun(c, device, readings, from, to);
    from = to;
  }
}

/** A compact batch: each series is one device's readings of one metric. */
function addCompact(c: Collapsed, peer: Peer, b: CompactBatchFrame): void {
  if (peer.kind === "device") {
    for (const s of b.series) addSeries(c, peer.id, s, b.t0);
    return;
  }
  const devices = c.peers.device;
  const seen = new Set<string>();
  for (const s of b.series) {
    // validatePeerFrame refuses a gateway series without its device.
    const device = s.device ?? peer.id;
    const d = delta(devices, device);
    d.readings += s.dt.length;
    if (!seen.has(device)) {
      seen.add(device);
      d.batches += 1;
    }
    addSeries(c, device, s, b.t0);
  }
}

/** Merges one series into its device's aggregates, keeping the bucket it touched last. */
function addSeries(c: Collapsed, device: string, s: CompactSeries, t0: number): void {
  const buckets = bucketsOf(deviceMetrics(c, device), s.metric);
  const { dt, values } = s;
  let ts = t0;
  let start = NaN;
  let a: PartialAggregate | undefined;
  for (let k = 0; k < dt.length; k++) {
    ts += dt[k] as number;
    const value = values[k] as number;
    const bucket = Math.floor(ts / BUCKET_MS) * BUCKET_MS;
    if (a === undefined || bucket !== start) {
      start = bucket;
      a = buckets.get(bucket);
      if (a === undefined) {
        a = fresh(ts, value);
        buckets.set(bucket, a);
        c.rows++;
        continue;
      }
    }
    fold(a, ts, value);
  }
}

/** The aggregate of a bucket's first reading. */
function fresh(ts: number, value: number): PartialAggregate {
  return { count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, last: value };
}

/** The one merge rule: a later reading at an equal timestamp wins `last`. */
function fold(a: PartialAggregate, ts: number, value: number): void {
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

/**
 * Merges partial aggregate `b` into `a` by the same rule, `b` counting as
 * the later arrival: it wins `last` on an equal last timestamp. Rollups
 * (hour and day buckets) are built from minute partials with it.
 */
export function mergePartial(a: PartialAggregate, b: PartialAggregate): void {
  a.count += b.count;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  if (b.firstTs < a.firstTs) a.firstTs = b.firstTs;
  if (b.lastTs >= a.lastTs) {
    a.lastTs = b.lastTs;
    a.last = b.last;
  }
}

function deviceMetrics(c: Collapsed, device: string): Map<string, Map<number, PartialAggregate>> {
  let metrics = c.aggregates.get(device);
  if (!metrics) {
    metrics = new Map();
    c.aggregates.set(device, metrics);
  }
  return metrics;
}

function bucketsOf(metrics: Map<string, Map<number, PartialAggregate>>, metric: string): Map<number, PartialAggregate> {
  let buckets = metrics.get(metric);
  if (!buckets) {
    buckets = new Map();
    metrics.set(metric, buckets);
  }
  return buckets;
}

/** Merges readings [from, to) of one device into its aggregates. */
function addRun(c: Collapsed, device: string, readings: readonly Reading[] | readonly GatewayReading[], from: number, to: number): void {
  const metrics = deviceMetrics(c, device);
  // A batch interleaves a few metrics, mostly within one minute. For each
  // metric seen in this run keep its bucket map and the bucket it touched
  // last, and find them by comparing the metric's text (cheap for short
  // names) rather than hashing the metric and the bucket start into maps
  // for every reading (docs/benchmarks.md). The result is the same.
  const slots: Slot[] = [];
  for (let i = from; i < to; i++) {
    const r = readings[i] as Reading;
    const ts = r[0];
    const metric = r[1];
    const value = r[2];
    let slot: Slot | undefined;
    for (let k = 0; k < slots.length; k++) {
      const s = slots[k] as Slot;
      if (s.metric === metric) {
        slot = s;
        break;
      }
    }
    if (!slot) {
      slot = { metric, buckets: bucketsOf(metrics, metric), start: NaN, agg: undefined };
      // Past a handful of metrics, scanning would cost more than the lookups it saves.
      if (slots.length < MAX_SLOTS) slots.push(slot);
    }
    const start = Math.floor(ts / BUCKET_MS) * BUCKET_MS;
    let a = start === slot.start ? slot.agg : slot.buckets.get(start);
    slot.start = start;
    if (!a) {
      a = fresh(ts, value);
      slot.buckets.set(start, a);
      slot.agg = a;
      c.rows++;
      continue;
    }
    slot.agg = a;
    fold(a, ts, value);
  }
}

/** A metric of the run being added, and the bucket it touched last. */
interface Slot {
  metric: string;
  buckets: Map<number, PartialAggregate>;
  start: number;
  agg: PartialAggregate | undefined;
}
const MAX_SLOTS = 8;

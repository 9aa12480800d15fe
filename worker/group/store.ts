/**
 * The group's SQLite, through Drizzle. All writes of a group commit happen
 * in one `transactionSync`, so a batch's aggregates and its device's (or
 * gateway's) lastSeq are durable together or not at all.
 */
import { and, asc, eq, gte, lt, sql, type SQL } from "drizzle-orm";
import { drizzle, type DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import migrations from "../../schema/migrations/migrations.js";
import type { AggregateBucket } from "../../schema/api.ts";
import { BUCKET_MS } from "../../schema/protocol.ts";
import { aggregates, devices, gateways } from "../../schema/tables.ts";
import type { AggregateQuery } from "../http/params.ts";
import type { Collapsed } from "./collapse.ts";

/** Device rows per multi-row upsert: 6 bound parameters each, and a Durable Object query takes at most 100. */
const DEVICE_CHUNK = 16;
const AGGREGATE_CHUNK = 10;

/** Most buckets one aggregates request returns; `truncated` says when more matched. */
export const MAX_BUCKETS = 50_000;

export interface DeviceSummary {
  id: string;
  lastSeq: number;
  lastSeen: number;
  readings: number;
}

export type Bucket = AggregateBucket;

/** A device or gateway row of placeholders; both first and last seen are the commit's `now`. */
function peerRow(id: string, seq: string, readings: string, batches: string) {
  return {
    id: sql.placeholder(id),
    lastSeq: sql.placeholder(seq),
    lastSeen: sql.placeholder("now"),
    firstSeen: sql.placeholder("now"),
    readings: sql.placeholder(readings),
    batches: sql.placeholder(batches),
  };
}

/** How a commit's counters merge into an existing device or gateway row (`excluded.*` is the new one). */
function mergePeer(t: typeof devices | typeof gateways) {
  return {
    lastSeq: sql`max(${t.lastSeq}, excluded.last_seq)`,
    lastSeen: sql`excluded.last_seen`,
    readings: sql`${t.readings} + excluded.readings`,
    batches: sql`${t.batches} + excluded.batches`,
  };
}

export class Store {
  /** Shared with the other stores of the object (alert-store.ts). */
  readonly db: DrizzleSqliteDODatabase;
  // Prepared once per object: the ingest path runs these statements for every
  // collapsed row, and building the upsert through the query builder each
  // time cost more than executing it (see docs/benchmarks.md). The runtime
  // caches the compiled SQLite statement by text.
  private readonly upsertAggregate;
  private readonly upsertDevice;
  private readonly upsertDevices;
  private readonly upsertAggregates;
  private readonly selectLastSeq;
  private readonly upsertGateway;
  private readonly selectGatewayLastSeq;

  constructor(storage: DurableObjectStorage) {
    this.db = drizzle(storage, { logger: false });
    // In an upsert's SET, bare columns are the existing row and `excluded.*`
    // the new one; all right-hand sides see the old row.
    const mergeAggregate = {
      count: sql`${aggregates.count} + excluded.count`,
      sum: sql`${aggregates.sum} + excluded.sum`,
      min: sql`min(${aggregates.min}, excluded.min)`,
      max: sql`max(${aggregates.max}, excluded.max)`,
      firstTs: sql`min(${aggregates.firstTs}, excluded.first_ts)`,
      last: sql`CASE WHEN excluded.last_ts >= ${aggregates.lastTs} THEN excluded.last ELSE ${aggregates.last} END`,
      lastTs: sql`max(${aggregates.lastTs}, excluded.last_ts)`,
    };
    const aggregateRow = (i: number | "") => ({
      device: sql.placeholder(`device${i}`),
      metric: sql.placeholder(`metric${i}`),
      start: sql.placeholder(`start${i}`),
      count: sql.placeholder(`count${i}`),
      sum: sql.placeholder(`sum${i}`),
      min: sql.placeholder(`min${i}`),
      max: sql.placeholder(`max${i}`),
      firstTs: sql.placeholder(`firstTs${i}`),
      lastTs: sql.placeholder(`lastTs${i}`),
      last: sql.placeholder(`last${i}`),
    });
    const target = [aggregates.device, aggregates.metric, aggregates.start];
    this.upsertAggregate = this.db.insert(aggregates).values(aggregateRow("")).onConflictDoUpdate({ target, set: mergeAggregate }).prepare();
    // AGGREGATE_CHUNK rows per statement (10 values each, within the 100
    // bound parameters a Durable Object query takes): a commit that touches
    // many series (gateway batches, large fleets) runs a tenth of the statements.
    this.upsertAggregates = this.db
      .insert(aggregates)
      .values(Array.from({ length: AGGREGATE_CHUNK }, (_, i) => aggregateRow(i)))
      .onConflictDoUpdate({ target, set: mergeAggregate })
      .prepare();
    this.upsertDevice = this.db
      .insert(devices)
      .values(peerRow("id", "lastSeq", "readings", "batches"))
      .onConflictDoUpdate({ target: devices.id, set: mergePeer(devices) })
      .prepare();
    // Gateway batches touch many devices per commit; one statement per
    // DEVICE_CHUNK rows costs less than one per row.
    this.upsertDevices = this.db
      .insert(devices)
      .values(Array.from({ length: DEVICE_CHUNK }, (_, i) => peerRow(`id${i}`, `s${i}`, `r${i}`, `b${i}`)))
      .onConflictDoUpdate({ target: devices.id, set: mergePeer(devices) })
      .prepare();
    this.selectLastSeq = this.db
      .select({ lastSeq: devices.lastSeq })
      .from(devices)
      .where(eq(devices.id, sql.placeholder("id")))
      .prepare();
    this.upsertGateway = this.db
      .insert(gateways)
      .values(peerRow("id", "lastSeq", "readings", "batches"))
      .onConflictDoUpdate({ target: gateways.id, set: mergePeer(gateways) })
      .prepare();
    this.selectGatewayLastSeq = this.db
      .select({ lastSeq: gateways.lastSeq })
      .from(gateways)
      .where(eq(gateways.id, sql.placeholder("id")))
      .prepare();
  }

  /** Applies the drizzle-kit migrations that this database has not seen yet. */
  async migrate(): Promise<void> {
    await migrate(this.db, migrations);
  }

  lastSeq(device: string): number {
    return this.selectLastSeq.get({ id: device })?.lastSeq ?? 0;
  }

  /** Records a connect: creates the device row if it is new, otherwise marks it seen. */
  touchDevice(device: string, now: number): void {
    this.upsertDevice.run({ id: device, lastSeq: 0, now, readings: 0, batches: 0 });
  }

  gatewayLastSeq(gateway: string): number {
    return this.selectGatewayLastSeq.get({ id: gateway })?.lastSeq ?? 0;
  }

  /** Records a gateway's connect, like {@link touchDevice}. */
  touchGateway(gateway: string, now: number): void {
    this.upsertGateway.run({ id: gateway, lastSeq: 0, now, readings: 0, batches: 0 });
  }

  /**
   * Commits one group commit's worth of collapsed batches in a single
   * transaction, together with whatever `also` writes (alerts, counters).
   */
  commit(c: Collapsed, now: number, also?: () => void): void {
    this.db.transaction(() => {
      also?.();
      const rows = [...c.devices];
      const full = rows.length - (rows.length % DEVICE_CHUNK);
      for (let base = 0; base < full; base += DEVICE_CHUNK) {
        const params: Record<string, string | number> = { now };
        for (let i = 0; i < DEVICE_CHUNK; i++) {
          const [id, d] = rows[base + i] ?? ["", { lastSeq: 0, readings: 0, batches: 0 }];
          params[`id${i}`] = id;
          params[`s${i}`] = d.lastSeq;
          params[`r${i}`] = d.readings;
          params[`b${i}`] = d.batches;
        }
        this.upsertDevices.run(params);
      }
      for (let k = full; k < rows.length; k++) {
        const [id, d] = rows[k] ?? ["", { lastSeq: 0, readings: 0, batches: 0 }];
        this.upsertDevice.run({ id, lastSeq: d.lastSeq, now, readings: d.readings, batches: d.batches });
      }
      for (const [id, g] of c.gateways) {
        this.upsertGateway.run({ id, lastSeq: g.lastSeq, now, readings: g.readings, batches: g.batches });
      }
      const chunk: Record<string, string | number> = {};
      let n = 0;
      for (const [device, metrics] of c.aggregates) {
        for (const [metric, buckets] of metrics) {
          for (const [start, a] of buckets) {
            chunk[`device${n}`] = device;
            chunk[`metric${n}`] = metric;
            chunk[`start${n}`] = start;
            chunk[`count${n}`] = a.count;
            chunk[`sum${n}`] = a.sum;
            chunk[`min${n}`] = a.min;
            chunk[`max${n}`] = a.max;
            chunk[`firstTs${n}`] = a.firstTs;
            chunk[`lastTs${n}`] = a.lastTs;
            chunk[`last${n}`] = a.last;
            if (++n === AGGREGATE_CHUNK) {
              this.upsertAggregates.run(chunk);
              n = 0;
            }
          }
        }
      }
      for (let i = 0; i < n; i++) {
        this.upsertAggregate.run({
          device: chunk[`device${i}`],
          metric: chunk[`metric${i}`],
          start: chunk[`start${i}`],
          count: chunk[`count${i}`],
          sum: chunk[`sum${i}`],
          min: chunk[`min${i}`],
          max: chunk[`max${i}`],
          firstTs: chunk[`firstTs${i}`],
          lastTs: chunk[`lastTs${i}`],
          last: chunk[`last${i}`],
        });
      }
    });
  }

  listDevices(): DeviceSummary[] {
    return this.db
      .select({ id: devices.id, lastSeq: devices.lastSeq, lastSeen: devices.lastSeen, readings: devices.readings })
      .from(devices)
      .orderBy(asc(devices.id))
      .all();
  }

  /**
   * Buckets matching the filter, sorted by device, metric, start. `from`
   * selects buckets that end after it (a bucket overlapping `from` is
   * included); `to` selects buckets that start before it.
   */
  queryAggregates(q: AggregateQuery): { buckets: Bucket[]; truncated: boolean } {
    const where: SQL[] = [];
    if (q.device !== undefined) where.push(eq(aggregates.device, q.device));
    if (q.metric !== undefined) where.push(eq(aggregates.metric, q.metric));
    if (q.from !== undefined) where.push(gte(aggregates.start, Math.floor(q.from / BUCKET_MS) * BUCKET_MS));
    if (q.to !== undefined) where.push(lt(aggregates.start, q.to));
    const rows = this.db
      .select({
        device: aggregates.device,
        metric: aggregates.metric,
        start: aggregates.start,
        count: aggregates.count,
        sum: aggregates.sum,
        min: aggregates.min,
        max: aggregates.max,
        last: aggregates.last,
      })
      .from(aggregates)
      .where(and(...where))
      .orderBy(asc(aggregates.device), asc(aggregates.metric), asc(aggregates.start))
      .limit(MAX_BUCKETS + 1)
      .all();
    const truncated = rows.length > MAX_BUCKETS;
    if (truncated) rows.length = MAX_BUCKETS;
    return { buckets: rows, truncated };
  }
}

/**
 * The group's SQLite, through Drizzle. All writes of a group commit happen
 * in one `transactionSync`, so a batch's aggregates and its device's (or
 * gateway's) lastSeq are durable together or not at all.
 */
import { and, asc, eq, gte, lt, sql, type SQL } from "drizzle-orm";
import { drizzle, type DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import migrations from "../../../schema/migrations/migrations.js";
import type { AggregateBucket } from "../../../schema/api.ts";
import { BUCKET_MS } from "../../../schema/protocol.ts";
import { aggregates, devices, gateways } from "../../../schema/tables.ts";
import { PEER_KINDS, type ByKind, type Peer } from "../peer.ts";
import type { Collapsed, PeerDelta } from "./collapse.ts";

/** Peer rows per multi-row upsert: 6 bound parameters each, and a Durable Object query takes at most 100. */
const PEER_CHUNK = 16;
const AGGREGATE_CHUNK = 10;
const NO_DELTA: PeerDelta = { lastSeq: 0, readings: 0, batches: 0 };
const AGGREGATE_FIELDS = ["device", "metric", "start", "count", "sum", "min", "max", "firstTs", "lastTs", "last"] as const;

/** Filter of `queryAggregates`; every field optional (the REST route's query, already validated). */
export interface AggregateFilter {
  device?: string;
  metric?: string;
  from?: number;
  to?: number;
}

/** Most buckets one aggregates request returns; `truncated` says when more matched. */
export const MAX_BUCKETS = 50_000;

export interface DeviceSummary {
  id: string;
  lastSeq: number;
  lastSeen: number;
  readings: number;
}

export type Bucket = AggregateBucket;

/** An aggregate row of placeholders, suffixed with `i` (one row of a multi-row upsert). */
function aggregateRow(i: number | "") {
  const row: Record<string, ReturnType<typeof sql.placeholder>> = {};
  for (const field of AGGREGATE_FIELDS) row[field] = sql.placeholder(`${field}${i}`);
  return row as Record<(typeof AGGREGATE_FIELDS)[number], ReturnType<typeof sql.placeholder>>;
}

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

/** The statements of one peer table; devices and gateways have the same columns. */
function peerStatements(db: DrizzleSqliteDODatabase, t: typeof devices | typeof gateways) {
  return {
    upsertOne: db
      .insert(t)
      .values(peerRow("id", "lastSeq", "readings", "batches"))
      .onConflictDoUpdate({ target: t.id, set: mergePeer(t) })
      .prepare(),
    // A commit of gateway batches touches many devices; one statement per
    // PEER_CHUNK rows costs less than one per row.
    upsertChunk: db
      .insert(t)
      .values(Array.from({ length: PEER_CHUNK }, (_, i) => peerRow(`id${i}`, `s${i}`, `r${i}`, `b${i}`)))
      .onConflictDoUpdate({ target: t.id, set: mergePeer(t) })
      .prepare(),
    selectLastSeq: db
      .select({ lastSeq: t.lastSeq })
      .from(t)
      .where(eq(t.id, sql.placeholder("id")))
      .prepare(),
  };
}

type PeerStatements = ReturnType<typeof peerStatements>;

export class Store {
  /** Shared with the other stages' stores (alerts, live). */
  readonly db: DrizzleSqliteDODatabase;
  // Prepared once per object: the ingest path runs these statements for every
  // collapsed row, and building the upsert through the query builder each
  // time cost more than executing it (see docs/benchmarks.md). The runtime
  // caches the compiled SQLite statement by text.
  private readonly upsertAggregate;
  private readonly upsertAggregates;
  private readonly peers: ByKind<PeerStatements>;

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
    this.peers = { device: peerStatements(this.db, devices), gateway: peerStatements(this.db, gateways) };
  }

  /** Applies the drizzle-kit migrations that this database has not seen yet. */
  async migrate(): Promise<void> {
    await migrate(this.db, migrations);
  }

  /** Highest seq applied for a device or gateway (0 if none). */
  lastSeq(peer: Peer): number {
    return this.peers[peer.kind].selectLastSeq.get({ id: peer.id })?.lastSeq ?? 0;
  }

  /** Records a connect: creates the peer's row if it is new, otherwise marks it seen. */
  touch(peer: Peer, now: number): void {
    this.peers[peer.kind].upsertOne.run({ id: peer.id, lastSeq: 0, now, readings: 0, batches: 0 });
  }

  /**
   * Commits one group commit's worth of collapsed batches in a single
   * transaction, together with whatever `also` writes (alerts, counters).
   */
  commit(c: Collapsed, now: number, also?: () => void): void {
    this.db.transaction(() => {
      also?.();
      for (const kind of PEER_KINDS) this.upsertPeers(this.peers[kind], c.peers[kind], now);
      this.upsertAggregatesOf(c);
    });
  }

  private upsertPeers(st: PeerStatements, deltas: Map<string, PeerDelta>, now: number): void {
    const rows = [...deltas];
    const full = rows.length - (rows.length % PEER_CHUNK);
    for (let base = 0; base < full; base += PEER_CHUNK) {
      const params: Record<string, string | number> = { now };
      for (let i = 0; i < PEER_CHUNK; i++) {
        const [id, d] = rows[base + i] ?? ["", NO_DELTA];
        params[`id${i}`] = id;
        params[`s${i}`] = d.lastSeq;
        params[`r${i}`] = d.readings;
        params[`b${i}`] = d.batches;
      }
      st.upsertChunk.run(params);
    }
    for (let k = full; k < rows.length; k++) {
      const [id, d] = rows[k] ?? ["", NO_DELTA];
      st.upsertOne.run({ id, lastSeq: d.lastSeq, now, readings: d.readings, batches: d.batches });
    }
  }

  private upsertAggregatesOf(c: Collapsed): void {
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
    // The remainder, one row a statement, under the single-row parameter names.
    for (let i = 0; i < n; i++) {
      const row: Record<string, string | number | undefined> = {};
      for (const field of AGGREGATE_FIELDS) row[field] = chunk[`${field}${i}`];
      this.upsertAggregate.run(row);
    }
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
  queryAggregates(q: AggregateFilter): { buckets: Bucket[]; truncated: boolean } {
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

/**
 * Writes a commit's partial aggregates into the minute, hour and day bucket
 * tables, inside the caller's transaction: exactly-once holds at every
 * resolution because all three commit with the batch and its peer's
 * lastSeq (docs/history.md). One merge rule for all three: the upsert below,
 * the SQL twin of `mergePartial` (ingest/collapse.ts).
 *
 * In memory: series ids by (device, metric), a cache of the `series` table.
 * It is dropped with `forget()` when a transaction rolls back (ids it
 * inserted are gone) and rebuilt from SQLite on use after a wake.
 */
import { and, eq, sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTIONS, RESOLUTION_MS, type Resolution } from "../../../schema/api.ts";
import { dayBuckets, hourBuckets, minuteBuckets, series, type BucketTable } from "../../../schema/tables.ts";
import { mergePartial, type Collapsed, type PartialAggregate } from "../ingest/collapse.ts";

/** device -> metric -> bucket start (ms) -> aggregate, as collapse builds it. */
export type SeriesAggregates = Collapsed["aggregates"];

/** Each resolution's table. */
export const BUCKET_TABLES: Readonly<Record<Resolution, BucketTable>> = { minute: minuteBuckets, hour: hourBuckets, day: dayBuckets };

const FIELDS = ["series", "bucket", "count", "sum", "min", "max", "firstOff", "lastOff", "last"] as const;
/** Rows per multi-row upsert: 9 bound parameters each, and a Durable Object query takes at most 100. */
const CHUNK = 11;

function bucketRow(i: number | "") {
  const row: Record<string, ReturnType<typeof sql.placeholder>> = {};
  for (const f of FIELDS) row[f] = sql.placeholder(`${f}${i}`);
  return row as Record<(typeof FIELDS)[number], ReturnType<typeof sql.placeholder>>;
}

/** The upsert statements of one bucket table. */
function bucketStatements(db: DrizzleSqliteDODatabase, t: BucketTable) {
  // In an upsert's SET, bare columns are the existing row and `excluded.*`
  // the new one; all right-hand sides see the old row. Offsets compare like
  // timestamps: both rows are of the same bucket.
  const set = {
    count: sql`${t.count} + excluded.count`,
    sum: sql`${t.sum} + excluded.sum`,
    min: sql`min(${t.min}, excluded.min)`,
    max: sql`max(${t.max}, excluded.max)`,
    firstOff: sql`min(${t.firstOff}, excluded.first_off)`,
    last: sql`CASE WHEN excluded.last_off >= ${t.lastOff} THEN excluded.last ELSE ${t.last} END`,
    lastOff: sql`max(${t.lastOff}, excluded.last_off)`,
  };
  const target = [t.series, t.bucket];
  return {
    one: db.insert(t).values(bucketRow("")).onConflictDoUpdate({ target, set }).prepare(),
    chunk: db
      .insert(t)
      .values(Array.from({ length: CHUNK }, (_, i) => bucketRow(i)))
      .onConflictDoUpdate({ target, set })
      .prepare(),
  };
}

type BucketStatements = ReturnType<typeof bucketStatements>;

/** Rows of one table waiting for a full chunk. */
class RowBuffer {
  private readonly params: Record<string, number> = {};
  private n = 0;
  private readonly st: BucketStatements;

  constructor(st: BucketStatements) {
    this.st = st;
  }

  add(id: number, bucket: number, start: number, a: PartialAggregate): void {
    const i = this.n;
    const p = this.params;
    p[`series${i}`] = id;
    p[`bucket${i}`] = bucket;
    p[`count${i}`] = a.count;
    p[`sum${i}`] = a.sum;
    p[`min${i}`] = a.min;
    p[`max${i}`] = a.max;
    p[`firstOff${i}`] = a.firstTs - start;
    p[`lastOff${i}`] = a.lastTs - start;
    p[`last${i}`] = a.last;
    if (++this.n === CHUNK) {
      this.st.chunk.run(p);
      this.n = 0;
    }
  }

  /** The remainder, one row a statement, under the single-row parameter names. */
  flush(): void {
    for (let i = 0; i < this.n; i++) {
      const row: Record<string, number | undefined> = {};
      for (const f of FIELDS) row[f] = this.params[`${f}${i}`];
      this.st.one.run(row);
    }
    this.n = 0;
  }
}

export class BucketWriter {
  private readonly statements: Record<Resolution, BucketStatements>;
  private readonly selectId;
  private readonly insertId;
  private ids = new Map<string, Map<string, number>>();
  private readonly rollups: boolean;

  /** `rollups: false` writes minute buckets only: bench:history's baseline, never the hub's. */
  constructor(db: DrizzleSqliteDODatabase, rollups = true) {
    this.rollups = rollups;
    this.statements = { minute: bucketStatements(db, minuteBuckets), hour: bucketStatements(db, hourBuckets), day: bucketStatements(db, dayBuckets) };
    this.selectId = db
      .select({ id: series.id })
      .from(series)
      .where(and(eq(series.device, sql.placeholder("device")), eq(series.metric, sql.placeholder("metric"))))
      .prepare();
    this.insertId = db
      .insert(series)
      .values({ device: sql.placeholder("device"), metric: sql.placeholder("metric") })
      .returning({ id: series.id })
      .prepare();
  }

  /** The series id of (device, metric), created if new (inside the caller's transaction). */
  seriesId(device: string, metric: string): number {
    let metrics = this.ids.get(device);
    if (!metrics) this.ids.set(device, (metrics = new Map()));
    let id = metrics.get(metric);
    if (id === undefined) {
      id = this.selectId.get({ device, metric })?.id ?? this.insertId.get({ device, metric })?.id;
      if (id === undefined) throw new Error(`no series id for ${device}/${metric}`);
      metrics.set(metric, id);
    }
    return id;
  }

  /** The transaction this writer wrote in rolled back: ids it created may not exist. */
  forget(): void {
    this.ids = new Map();
  }

  /**
   * Upserts minute partials (keyed by minute start) into all three
   * resolutions; must run inside a transaction. The hour and day partials
   * are merged here first, so each is one upsert per commit.
   */
  write(aggregates: SeriesAggregates): void {
    const buffers = {
      minute: new RowBuffer(this.statements.minute),
      hour: new RowBuffer(this.statements.hour),
      day: new RowBuffer(this.statements.day),
    };
    const coarse = { hour: new Map<number, PartialAggregate>(), day: new Map<number, PartialAggregate>() };
    for (const [device, metrics] of aggregates) {
      for (const [metric, buckets] of metrics) {
        const id = this.seriesId(device, metric);
        for (const [start, a] of buckets) {
          buffers.minute.add(id, start / RESOLUTION_MS.minute, start, a);
          if (!this.rollups) continue;
          for (const r of ["hour", "day"] as const) {
            const s = Math.floor(start / RESOLUTION_MS[r]) * RESOLUTION_MS[r];
            const into = coarse[r].get(s);
            if (into) mergePartial(into, a);
            else coarse[r].set(s, { ...a });
          }
        }
        for (const r of ["hour", "day"] as const) {
          for (const [s, a] of coarse[r]) buffers[r].add(id, s / RESOLUTION_MS[r], s, a);
          coarse[r].clear();
        }
      }
    }
    for (const r of RESOLUTIONS) buffers[r].flush();
  }
}

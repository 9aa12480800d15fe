/**
 * Reads of the bucket tables: `GET /v1/groups/{group}/aggregates` at a
 * resolution, and `auto`, which picks the finest resolution retained over
 * the whole range with at most `maxPoints` buckets per series.
 *
 * While the backfill still moves rows of the pre-history `aggregates` table
 * (backfill.ts), their buckets are merged into the answer by the same rule,
 * so a migrated group shows all its data at every moment.
 */
import { and, asc, eq, gte, lt, sql, type SQL } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { SQLiteColumn, SQLiteSelect } from "drizzle-orm/sqlite-core";
import { RESOLUTIONS, RESOLUTION_MS, type AggregateBucket, type AggregateQuery, type AggregatesResponse, type Resolution, type Retention } from "../../../schema/api.ts";
import { aggregates, BUCKET_TABLES, minutePacks, series } from "../../../schema/tables.ts";
import { oldestBucket } from "./oldest.ts";
import { unpackHour } from "./pack.ts";
import { bucketFields } from "./writer.ts";

/** Most buckets one aggregates request returns; `truncated` says when more matched. */
export const MAX_BUCKETS = 50_000;

/** The keep time of each resolution, by name. */
export function keepOf(r: Retention, res: Resolution): number | null {
  return res === "minute" ? r.minuteMs : res === "hour" ? r.hourMs : r.dayMs;
}

/** The request's device and metric filter, on `on`'s columns (the series table's, or the legacy table's own). */
function seriesFilter(q: AggregateQuery, on: { device: SQLiteColumn; metric: SQLiteColumn } = series): SQL[] {
  const where: SQL[] = [];
  if (q.device !== undefined) where.push(eq(on.device, q.device));
  if (q.metric !== undefined) where.push(eq(on.metric, q.metric));
  return where;
}

/**
 * A select joined to `series`, narrowed to `where` in the answer's order
 * (device, metric, then `key`), one row past MAX_BUCKETS so the caller
 * sees it was truncated.
 */
function inAnswerOrder<T extends SQLiteSelect>(select: T, key: SQLiteColumn, where: SQL[]): T {
  return select.where(and(...where)).orderBy(asc(series.device), asc(series.metric), asc(key)).limit(MAX_BUCKETS + 1);
}

/** A bucket with its last reading's timestamp, so legacy rows can merge into it. */
interface TimedBucket extends AggregateBucket {
  lastTs: number;
}

export class BucketQueries {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /** Buckets matching the filter, sorted by device, metric, start. */
  query(q: AggregateQuery, retention: Retention, now: number): AggregatesResponse {
    const resolution = q.resolution === "auto" ? this.pick(q, retention, now) : q.resolution;
    let rows = this.select(q, resolution);
    // Packed hours of minutes; their minutes that arrived after packing are plain rows, the later arrivals.
    const packed = resolution === "minute" ? this.selectPacked(q) : [];
    if (packed.length > 0) rows = mergeLegacy(packed, rows, RESOLUTION_MS.minute);
    if (this.hasLegacy()) rows = mergeLegacy(rows, this.legacy(q), RESOLUTION_MS[resolution]);
    const truncated = rows.length > MAX_BUCKETS;
    if (truncated) rows.length = MAX_BUCKETS;
    return { resolution, buckets: rows.map(({ lastTs: _, ...b }) => b), truncated };
  }

  /**
   * The finest resolution retained from the range's start (the oldest day
   * bucket when `from` is absent) that gives at most `maxPoints` buckets per
   * series; day when none does.
   */
  pick(q: AggregateQuery, retention: Retention, now: number): Resolution {
    const to = q.to ?? now;
    const from = q.from ?? this.oldestDay(q) ?? to;
    for (const r of RESOLUTIONS) {
      const keep = keepOf(retention, r);
      const len = RESOLUTION_MS[r];
      const points = Math.ceil(to / len) - Math.floor(from / len);
      if ((keep === null || from >= now - keep) && points <= q.maxPoints) return r;
    }
    return "day";
  }

  private select(q: AggregateQuery, r: Resolution): TimedBucket[] {
    const t = BUCKET_TABLES[r];
    const len = RESOLUTION_MS[r];
    const where = seriesFilter(q);
    // `from` selects buckets that end after it, `to` buckets that start before it.
    if (q.from !== undefined) where.push(gte(t.bucket, Math.floor(q.from / len)));
    if (q.to !== undefined) where.push(lt(t.bucket, Math.ceil(q.to / len)));
    const f = bucketFields(t);
    const select = this.db
      .select({ device: series.device, metric: series.metric, bucket: t.bucket, count: f.count, sum: f.sum, min: f.min, max: f.max, last: f.last, lastOff: f.lastOff })
      .from(t)
      .innerJoin(series, eq(series.id, t.series));
    const rows = inAnswerOrder(select.$dynamic(), t.bucket, where).all();
    return rows.map(({ bucket, lastOff, ...b }) => ({ ...b, start: bucket * len, lastTs: bucket * len + lastOff }));
  }

  /** Minute buckets of packed parts of hours (packer.ts) matching the filter, sorted by device, metric, start. */
  private selectPacked(q: AggregateQuery): TimedBucket[] {
    const p = minutePacks;
    const where = seriesFilter(q);
    const from = q.from === undefined ? -Infinity : Math.floor(q.from / RESOLUTION_MS.minute);
    const to = q.to === undefined ? Infinity : Math.ceil(q.to / RESOLUTION_MS.minute);
    // A part lies within one hour, so one that reaches `from` starts at or after from's hour: a key range, then its end.
    if (q.from !== undefined) where.push(gte(p.firstMinute, Math.floor(from / 60) * 60), gte(p.lastMinute, from));
    if (q.to !== undefined) where.push(lt(p.firstMinute, to));
    const select = this.db
      .select({ device: series.device, metric: series.metric, first: p.firstMinute, data: p.data })
      .from(p)
      .innerJoin(series, eq(series.id, p.series));
    const packs = inAnswerOrder(select.$dynamic(), p.firstMinute, where).all();
    const out: TimedBucket[] = [];
    for (const { device, metric, first, data } of packs) {
      const hour = Math.floor(first / 60);
      for (const m of unpackHour(data)) {
        const bucket = hour * 60 + m.minute;
        if (bucket < from || bucket >= to) continue;
        const start = bucket * RESOLUTION_MS.minute;
        out.push({ device, metric, start, count: m.count, sum: m.sum, min: m.min, max: m.max, last: m.last, lastTs: start + m.lastOff });
      }
    }
    return out;
  }

  /** Oldest day bucket's start among the filter's series, or null. */
  private oldestDay(q: AggregateQuery): number | null {
    const oldest = oldestBucket(this.db, "day", seriesFilter(q));
    return oldest === null ? null : oldest * RESOLUTION_MS.day;
  }

  /** Whether rows of the pre-history table remain (the backfill is not done). */
  hasLegacy(): boolean {
    return this.db.select({ one: sql`1` }).from(aggregates).limit(1).get() !== undefined;
  }

  private legacy(q: AggregateQuery): TimedBucket[] {
    const where = seriesFilter(q, aggregates);
    if (q.from !== undefined) where.push(gte(aggregates.start, Math.floor(q.from / RESOLUTION_MS.minute) * RESOLUTION_MS.minute));
    if (q.to !== undefined) where.push(lt(aggregates.start, q.to));
    return this.db
      .select({
        device: aggregates.device,
        metric: aggregates.metric,
        start: aggregates.start,
        count: aggregates.count,
        sum: aggregates.sum,
        min: aggregates.min,
        max: aggregates.max,
        last: aggregates.last,
        lastTs: aggregates.lastTs,
      })
      .from(aggregates)
      .where(and(...where))
      .all();
  }
}

/** Merges legacy minute rows into buckets of length `len` (the one merge rule), sorted by device, metric, start. */
function mergeLegacy(rows: TimedBucket[], legacy: TimedBucket[], len: number): TimedBucket[] {
  if (legacy.length === 0) return rows;
  const key = (b: TimedBucket) => `${b.device}\u0000${b.metric}\u0000${b.start}`;
  const byKey = new Map(rows.map((b) => [key(b), b]));
  for (const l of legacy) {
    const b = { ...l, start: Math.floor(l.start / len) * len };
    const into = byKey.get(key(b));
    if (!into) {
      byKey.set(key(b), b);
      continue;
    }
    into.count += b.count;
    into.sum += b.sum;
    into.min = Math.min(into.min, b.min);
    into.max = Math.max(into.max, b.max);
    // As the backfill merges them (writer.ts: the moved row counts as the later one), so answers do not change when it ends.
    if (b.lastTs >= into.lastTs) {
      into.lastTs = b.lastTs;
      into.last = b.last;
    }
  }
  return [...byKey.values()].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.start - b.start));
}

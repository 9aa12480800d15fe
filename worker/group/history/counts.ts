/**
 * Bucket counts for `GET /v1/groups/{group}/storage` (docs/history.md,
 * "Storage budget"). The table `bucket_counts` holds one row per series
 * with its minute, hour and day buckets, kept by SQLite triggers on the
 * bucket and pack tables (migration 0013_bucket_counts): every statement
 * that inserts or deletes a bucket row (the commit's upserts, pruning,
 * packing, the backfill) adjusts it in the same transaction, so the route
 * sums one small row per series instead of counting tens of millions.
 *
 * A series written before the counters has NULL counts until the task
 * COUNT_TASK counts it, whole series by whole series in one transaction per
 * step (a series cannot change between its count and its row's update, and
 * an eviction loses at most the step under way, which the next wake redoes).
 */
import { asc, eq, isNull, sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { Resolution } from "../../../schema/api.ts";
import { bucketCounts, dayBuckets, hourBuckets, minuteBuckets, minutePacks } from "../../../schema/tables.ts";

/** The scheduler task that counts the series written before the counters. */
export const COUNT_TASK = "history.count";
/** A counting step stops after the series that takes it past this many rows (a series is counted whole). */
export const COUNT_STEP_ROWS = 50_000;
/** Series counted per step at most. */
const COUNT_STEP_SERIES = 200;

/** Buckets stored per resolution, and how many series are not counted yet (their buckets are left out). */
export interface BucketTotals {
  buckets: Record<Resolution, number>;
  uncountedSeries: number;
}

export class BucketCounts {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /** The group's totals: one pass over one row per series. */
  totals(): BucketTotals {
    const c = bucketCounts;
    const row = this.db
      .select({
        minute: sql<number>`coalesce(sum(${c.minute}), 0)`,
        hour: sql<number>`coalesce(sum(${c.hour}), 0)`,
        day: sql<number>`coalesce(sum(${c.day}), 0)`,
        uncounted: sql<number>`count(*) - count(${c.minute})`,
      })
      .from(c)
      .get();
    return { buckets: { minute: row?.minute ?? 0, hour: row?.hour ?? 0, day: row?.day ?? 0 }, uncountedSeries: row?.uncounted ?? 0 };
  }

  /** Whether some series still wait for COUNT_TASK. */
  pending(): boolean {
    return this.db.select({ one: sql`1` }).from(bucketCounts).where(isNull(bucketCounts.minute)).limit(1).get() !== undefined;
  }

  /** Task COUNT_TASK: counts uncounted series, whole, until about `maxRows` rows were read; true while some remain. */
  step(maxRows = COUNT_STEP_ROWS): boolean {
    return this.db.transaction(() => {
      const ids = this.db
        .select({ id: bucketCounts.series })
        .from(bucketCounts)
        .where(isNull(bucketCounts.minute))
        .orderBy(asc(bucketCounts.series))
        .limit(COUNT_STEP_SERIES + 1)
        .all();
      let rows = 0;
      let counted = 0;
      for (const { id } of ids.slice(0, COUNT_STEP_SERIES)) {
        const n = this.countSeries(id);
        this.db.update(bucketCounts).set(n).where(eq(bucketCounts.series, id)).run();
        counted++;
        rows += n.minute + n.hour + n.day;
        if (rows >= maxRows) break;
      }
      return counted < ids.length;
    });
  }

  /** One series' buckets, counted through the primary keys (series first). */
  private countSeries(id: number): Record<Resolution, number> {
    const count = (t: typeof minuteBuckets | typeof hourBuckets | typeof dayBuckets) => sql<number>`(SELECT count(*) FROM ${t} WHERE ${t.series} = ${id})`;
    const packed = sql<number>`(SELECT coalesce(sum(${minutePacks.buckets}), 0) FROM ${minutePacks} WHERE ${minutePacks.series} = ${id})`;
    const row = this.db
      .select({ minute: sql<number>`${count(minuteBuckets)} + ${packed}`, hour: count(hourBuckets), day: count(dayBuckets) })
      .from(sql`(SELECT 1)`)
      .get();
    return { minute: row?.minute ?? 0, hour: row?.hour ?? 0, day: row?.day ?? 0 };
  }
}

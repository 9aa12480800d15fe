/**
 * Migration in place (docs/history.md): a group written before the history
 * tables keeps its minute rows in the old `aggregates` table. This task
 * moves them, oldest key first, into the series and bucket tables (minute,
 * hour and day, through the commit path's own writer) and deletes them, one
 * chunk per transaction. An eviction between or during steps loses nothing:
 * a step commits whole or not at all, and the next one starts from whatever
 * rows are left. Queries merge the rows not yet moved (query.ts).
 */
import { and, asc, eq, lt, lte, or } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { aggregates } from "../../../schema/tables.ts";
import type { BucketWriter, SeriesAggregates } from "./writer.ts";

/** The scheduler task that moves old rows. */
export const BACKFILL_TASK = "history.backfill";
/** Old rows moved per step: three upserts each, a few milliseconds per hundred. */
export const BACKFILL_CHUNK = 500;

export class Backfill {
  private readonly db: DrizzleSqliteDODatabase;
  private readonly writer: BucketWriter;

  constructor(db: DrizzleSqliteDODatabase, writer: BucketWriter) {
    this.db = db;
    this.writer = writer;
  }

  /** Moves up to `chunk` old rows in one transaction; true while rows remain. */
  step(chunk = BACKFILL_CHUNK): boolean {
    const rows = this.db
      .select()
      .from(aggregates)
      .orderBy(asc(aggregates.device), asc(aggregates.metric), asc(aggregates.start))
      .limit(chunk)
      .all();
    const end = rows.at(-1);
    if (!end) return false;
    const moved: SeriesAggregates = new Map();
    for (const { device, metric, start, ...a } of rows) {
      let metrics = moved.get(device);
      if (!metrics) moved.set(device, (metrics = new Map()));
      let buckets = metrics.get(metric);
      if (!buckets) metrics.set(metric, (buckets = new Map()));
      buckets.set(start, a);
    }
    try {
      this.db.transaction(() => {
        this.writer.write(moved);
        // Every row up to the last one read, in key order: exactly the rows read.
        const a = aggregates;
        this.db
          .delete(a)
          .where(or(lt(a.device, end.device), and(eq(a.device, end.device), or(lt(a.metric, end.metric), and(eq(a.metric, end.metric), lte(a.start, end.start))))))
          .run();
      });
    } catch (err) {
      this.writer.forget();
      throw err;
    }
    return rows.length === chunk;
  }
}

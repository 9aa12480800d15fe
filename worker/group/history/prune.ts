/**
 * Pruning (docs/history.md): deletes buckets older than a cutoff, series by
 * series, in steps of at most a few thousand rows so that no step holds the
 * object for long (acks never wait on it). Each step is one transaction and
 * stores its cursor with it, so an eviction mid-pass loses nothing: the
 * next step deletes by the same cutoffs from where the last committed one
 * stopped. Deleting by cutoff is idempotent.
 */
import { and, asc, eq, gt, lt, sql, type SQL } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import { RESOLUTIONS, RESOLUTION_MS, type Resolution } from "../../../schema/api.ts";
import { BUCKET_TABLES, minutePacks, series, settings } from "../../../schema/tables.ts";
import type { BucketTally } from "./counts.ts";

/** Buckets older than these bucket indexes go (null: keep all of that resolution). */
export type Cutoffs = Record<Resolution, number | null>;

/** Where a pass stands: the last series done, and the cutoffs it deletes by. */
interface Cursor {
  series: number;
  cutoffs: Cutoffs;
}

/** Rows deleted per step at most (per series statement, and in total). */
export const PRUNE_STEP_ROWS = 4000;
/** Series visited per step at most (most have nothing to delete). */
const PRUNE_STEP_SERIES = 500;

/** The bucket index below which buckets of `r` older than `keepMs` before `now` lie. */
export function cutoffOf(r: Resolution, keepMs: number | null, now: number): number | null {
  return keepMs === null ? null : Math.floor((now - keepMs) / RESOLUTION_MS[r]);
}

export class Pruner {
  private readonly db: DrizzleSqliteDODatabase;
  private readonly tally: BucketTally;
  private readonly cursorKey: string;

  /**
   * `tally`: the bucket counts every delete adjusts (the writer's, `BucketWriter.tally`).
   * `cursorKey`: the settings row of this pruner's pass (retention and pressure passes keep their own).
   */
  constructor(db: DrizzleSqliteDODatabase, tally: BucketTally, cursorKey = "prune_cursor") {
    this.db = db;
    this.tally = tally;
    this.cursorKey = cursorKey;
  }

  /** Whether a pass is under way (its cursor is stored). */
  inProgress(): boolean {
    return this.readCursor() !== null;
  }

  /**
   * One step of a pass by `cutoffs` (a pass under way keeps its own until
   * it ends, unless `restart`). Returns how many buckets went and whether
   * the pass is done.
   */
  step(cutoffs: Cutoffs, restart = false, maxRows = PRUNE_STEP_ROWS): { deleted: number; done: boolean } {
    return this.db.transaction(() => {
      const cursor = (!restart && this.readCursor()) || { series: 0, cutoffs };
      const ids = this.db
        .select({ id: series.id })
        .from(series)
        .where(gt(series.id, cursor.series))
        .orderBy(asc(series.id))
        .limit(PRUNE_STEP_SERIES)
        .all();
      let deleted = 0;
      let last = cursor.series;
      for (const { id } of ids) {
        for (const r of RESOLUTIONS) {
          const cut = cursor.cutoffs[r];
          if (cut === null) continue;
          const rows = this.deleteBelow(r, id, cut, maxRows - deleted);
          this.tally.add(r, id, -rows);
          if (rows > 0) this.tally.deleted(r, id, cut - 1);
          deleted += rows;
          // Packed parts of hours go whole, once every minute of the part is below the cutoff.
          if (r === "minute") {
            const packs = this.deletePacksBelow(id, cut, maxRows - deleted);
            this.tally.add("minute", id, -packs.buckets);
            deleted += packs.rows;
          }
          if (deleted >= maxRows) break;
        }
        // A series with more to delete than this step allows is visited again.
        if (deleted >= maxRows) break;
        last = id;
      }
      // The oldest may have gone: recomputed once the pass is over (oldest.ts).
      if (deleted > 0) this.tally.oldest.deleted();
      const done = ids.length < PRUNE_STEP_SERIES && last === (ids.at(-1)?.id ?? cursor.series);
      if (done) this.reset();
      else this.writeCursor({ series: last, cutoffs: cursor.cutoffs });
      this.tally.flush();
      return { deleted, done };
    });
  }

  /** Deletes up to `max` of a series' oldest buckets of `r` below `cutoff`; returns how many. */
  private deleteBelow(r: Resolution, id: number, cutoff: number, max: number): number {
    const t = BUCKET_TABLES[r];
    return this.deleteOldest(t, t.series, t.bucket, sql<number>`1`, id, cutoff, max).rows;
  }

  /** Deletes up to `max` of a series' oldest packed parts whose last minute is below minute index `cutoff`; returns how many, and the minutes they held. */
  private deletePacksBelow(id: number, cutoff: number, max: number): { rows: number; buckets: number } {
    // Parts of a series do not overlap, so those ending below the cutoff are the first ones by key.
    const p = minutePacks;
    const gone = this.deleteOldest(p, p.series, p.firstMinute, p.buckets, id, cutoff, max, lt(p.lastMinute, cutoff));
    return { rows: gone.rows, buckets: gone.weight };
  }

  /**
   * Deletes up to `max` rows of `table` for series `id` whose `key` is below
   * `cutoff` (and that match `also`), oldest first; returns how many, and
   * the sum of `weight` over them.
   */
  private deleteOldest(
    table: SQLiteTable,
    seriesCol: SQLiteColumn,
    key: SQLiteColumn,
    weight: SQL<number> | SQLiteColumn,
    id: number,
    cutoff: number,
    max: number,
    also?: SQL,
  ): { rows: number; weight: number } {
    if (max <= 0) return { rows: 0, weight: 0 };
    // The `max`-th row's key bounds the delete (DELETE ... LIMIT is a
    // compile-time option of SQLite); the primary key (series, key) makes
    // both the seek and the range delete cheap.
    const bound = this.db
      .select({ key })
      .from(table)
      .where(and(eq(seriesCol, id), lt(key, cutoff), also))
      .orderBy(asc(key))
      .limit(1)
      .offset(max)
      .get();
    const gone = this.db
      .delete(table)
      .where(and(eq(seriesCol, id), lt(key, typeof bound?.key === "number" ? bound.key : cutoff), also))
      .returning({ w: sql<number>`${weight}` })
      .all();
    let w = 0;
    for (const g of gone) w += g.w;
    return { rows: gone.length, weight: w };
  }

  /** Ends a pass under way: the next step starts a new one by the cutoffs it is given. */
  reset(): void {
    this.db.delete(settings).where(eq(settings.key, this.cursorKey)).run();
  }

  private readCursor(): Cursor | null {
    const row = this.db.select().from(settings).where(eq(settings.key, this.cursorKey)).get();
    return row ? toCursor(JSON.parse(row.value)) : null;
  }

  private writeCursor(c: Cursor): void {
    const value = JSON.stringify(c);
    this.db.insert(settings).values({ key: this.cursorKey, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
  }
}

/** A stored cursor, checked (null if it is not one, which starts a new pass). */
function toCursor(v: unknown): Cursor | null {
  if (typeof v !== "object" || v === null || !("series" in v) || !("cutoffs" in v)) return null;
  const { series: id, cutoffs } = v;
  if (typeof id !== "number" || typeof cutoffs !== "object" || cutoffs === null) return null;
  const out: Partial<Cutoffs> = {};
  for (const r of RESOLUTIONS) {
    const c: unknown = (cutoffs as Record<string, unknown>)[r];
    if (c !== null && typeof c !== "number") return null;
    out[r] = c;
  }
  return { series: id, cutoffs: out as Cutoffs };
}

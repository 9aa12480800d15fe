/**
 * The oldest bucket per resolution for `GET /v1/groups/{group}/storage` and
 * the pressure step (docs/history.md, "Oldest buckets without seeks"), kept
 * in the `bucket_totals` row instead of one primary-key seek per series:
 *
 * - Writers lower it in their own transaction: a bucket written (new or
 *   updated) exists afterwards, so the oldest is min(oldest, bucket). The
 *   writer notes the lowest index per resolution as it adds rows (a compare
 *   per row) and writes one guarded UPDATE per transaction, which changes
 *   nothing unless that index is below the stored one.
 * - A delete may raise it, and only a scan can tell by how much: pruning
 *   that deleted any bucket (and packing that replaced a part starting at
 *   an hour's start, written before parts) marks it for recompute (the
 *   scan cursor `oldest_scan` set to 0). The task OLDEST_TASK then scans the
 *   series in id order, OLDEST_STEP_SERIES per step, one transaction each,
 *   keeping running minima (`scan_*`) that writers lower too; at the last
 *   series they become the stored values. A delete during the scan starts
 *   it over. Meanwhile the stored values are the last exact ones, lowered
 *   by writes since: a lower bound (the response's `oldestStale`).
 *
 * Nothing is kept in memory but the lowest indexes of the transaction under
 * way, dropped by `forget()`.
 */
import { and, gt, lte, sql, type SQL } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTIONS, type Resolution } from "../../../schema/api.ts";
import { BUCKET_TABLES, minutePacks, series } from "../../../schema/tables.ts";
import type { GroupDb } from "./writer.ts";

/** The scheduler task that recomputes the oldest buckets after pruning. */
export const OLDEST_TASK = "history.oldest";
/** Series scanned per recompute step (four primary-key seeks each: about 3 ms per step here). */
export const OLDEST_STEP_SERIES = 2000;


/** The oldest bucket index of `r` among the series matching `where` (one primary-key seek per series), or null. */
export function oldestBucket(db: DrizzleSqliteDODatabase, r: Resolution, where: SQL[]): number | null {
  const t = BUCKET_TABLES[r];
  const plain = sql<number | null>`(SELECT ${t.bucket} FROM ${t} WHERE ${t.series} = ${series.id} ORDER BY ${t.bucket} LIMIT 1)`;
  // Minutes may also be packed in parts (packer.ts): a part's first minute (its hour's start for a pack written before parts) stands for its oldest.
  const p = minutePacks;
  const packed = sql<number | null>`(SELECT ${p.firstMinute} FROM ${p} WHERE ${p.series} = ${series.id} ORDER BY ${p.firstMinute} LIMIT 1)`;
  // Two aggregates rather than min() of both per series: each correlated seek then runs once per series.
  const row = db
    .select({ plain: sql<number | null>`min(${plain})`, packed: r === "minute" ? sql<number | null>`min(${packed})` : sql<null>`NULL` })
    .from(series)
    .where(and(...where))
    .get();
  const found = [row?.plain, row?.packed].filter((b): b is number => typeof b === "number");
  return found.length === 0 ? null : Math.min(...found);
}

/** Per resolution: the stored value (a bucket index, null when none), and whether a recompute is under way. */
export interface OldestState {
  oldest: Record<Resolution, number | null>;
  stale: boolean;
}

/** `(oldest_x = min(oldest_x, ?) and, while scanning, scan_x = min(scan_x, ?))`, or no change when the parameter is NULL. */
function lowered(col: string, p: string): string {
  return `CASE WHEN ${p} IS NULL OR ${col} <= ${p} THEN ${col} ELSE ${p} END`;
}
const LOWER = (() => {
  const set: string[] = [];
  const when: string[] = [];
  for (const [i, r] of RESOLUTIONS.entries()) {
    const p = `?${i + 1}`;
    set.push(`oldest_${r} = ${lowered(`oldest_${r}`, p)}`, `scan_${r} = CASE WHEN oldest_scan IS NULL THEN NULL ELSE ${lowered(`scan_${r}`, p)} END`);
    when.push(`(${p} IS NOT NULL AND (oldest_${r} IS NULL OR oldest_${r} > ${p} OR (oldest_scan IS NOT NULL AND (scan_${r} IS NULL OR scan_${r} > ${p}))))`);
  }
  return `UPDATE bucket_totals SET ${set.join(", ")} WHERE id = 1 AND (${when.join(" OR ")})`;
})();

export class OldestBuckets {
  private readonly db: GroupDb;
  private readonly sql: SqlStorage;
  /** The lowest bucket index written per resolution in the transaction under way. */
  private low: Record<Resolution, number | null> = { minute: null, hour: null, day: null };

  constructor(db: GroupDb) {
    this.db = db;
    this.sql = db.$client.sql;
  }

  /** A bucket row about to be written (inside the caller's transaction). Runs per row on the commit path: one compare. */
  row(r: Resolution, bucket: number): void {
    const low = this.low[r];
    if (low === null || bucket < low) this.low[r] = bucket;
  }

  /** Writes the lowered values (inside the caller's transaction): one UPDATE that changes the row only when a bucket is older than the stored one. */
  flush(): void {
    const { minute, hour, day } = this.low;
    if (minute === null && hour === null && day === null) return;
    this.sql.exec(LOWER, minute, hour, day);
    this.low = { minute: null, hour: null, day: null };
  }

  /** The transaction rolled back. */
  forget(): void {
    this.low = { minute: null, hour: null, day: null };
  }

  /** Buckets were deleted (inside the deleting transaction): the oldest may have risen, so a recompute starts (over). */
  deleted(): void {
    this.sql.exec("UPDATE bucket_totals SET oldest_scan = 0, scan_minute = NULL, scan_hour = NULL, scan_day = NULL WHERE id = 1");
  }

  /** The stored values: one row. */
  read(): OldestState {
    const row = this.sql
      .exec<{ m: number | null; h: number | null; d: number | null; s: number | null }>("SELECT oldest_minute AS m, oldest_hour AS h, oldest_day AS d, oldest_scan AS s FROM bucket_totals WHERE id = 1")
      .toArray()[0];
    return { oldest: { minute: row?.m ?? null, hour: row?.h ?? null, day: row?.d ?? null }, stale: typeof row?.s === "number" };
  }

  /** Whether a recompute is under way. */
  stale(): boolean {
    return this.read().stale;
  }

  /** Task OLDEST_TASK: scans the next `maxSeries` series in one transaction; true while some remain. */
  step(maxSeries = OLDEST_STEP_SERIES): boolean {
    return this.db.transaction(() => {
      const from = this.sql.exec<{ s: number | null }>("SELECT oldest_scan AS s FROM bucket_totals WHERE id = 1").toArray()[0]?.s;
      if (typeof from !== "number") return false;
      // The step's last series: the `maxSeries`-th after the cursor, or the last one.
      const upTo = this.sql.exec<{ id: number }>("SELECT id FROM series WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?", from, maxSeries - 1).toArray()[0]?.id ?? null;
      const range = upTo === null ? [gt(series.id, from)] : [gt(series.id, from), lte(series.id, upTo)];
      this.sql.exec(
        `UPDATE bucket_totals SET ${RESOLUTIONS.map((r, i) => `scan_${r} = ${lowered(`scan_${r}`, `?${i + 1}`)}`).join(", ")}, oldest_scan = ?4 WHERE id = 1`,
        ...RESOLUTIONS.map((r) => oldestBucket(this.db, r, range)),
        upTo,
      );
      if (upTo !== null) return true;
      // Every series scanned: the running minima are exact.
      this.sql.exec("UPDATE bucket_totals SET oldest_minute = scan_minute, oldest_hour = scan_hour, oldest_day = scan_day, scan_minute = NULL, scan_hour = NULL, scan_day = NULL WHERE id = 1");
      return false;
    });
  }
}

/**
 * Bucket counts for `GET /v1/groups/{group}/storage` (docs/history.md,
 * "Bucket counts without scans"): the row `bucket_totals` holds the minute
 * (plain rows plus minutes in packs), hour and day buckets stored, and every
 * writer of bucket rows adjusts it in its own transaction (the commit's
 * writer, pruning, packing, the backfill through the writer), so the route
 * reads one row instead of counting tens of millions.
 *
 * The commit's upserts do not say whether they inserted or updated a row,
 * and asking SQLite per row (a trigger, RETURNING, a look-up before each
 * upsert) costs the commit path per reading. So the tally keeps, per series
 * and resolution, the highest bucket index known to exist as a plain row: a
 * bucket above it is new, the bucket at it exists (the common case: the
 * current minute, hour and day), and only a bucket below it (a late
 * reading) costs one primary-key look-up. Deletes forget the known index
 * when they may have removed it.
 *
 * A group written before the counters is counted by the task COUNT_TASK,
 * series by series in id order, one transaction a step; `counted_to` is the
 * last series counted (NULL once all are). Writes to series above it are
 * not tallied: the task counts them when it gets there, as they are then.
 *
 * In memory: the known highest indexes and `counted_to`, dropped by
 * `forget()` when a transaction rolls back and rebuilt from SQLite on use.
 */
import { getTableName } from "drizzle-orm";
import { RESOLUTIONS, type Resolution } from "../../../schema/api.ts";
import { BUCKET_TABLES } from "../../../schema/tables.ts";
import { OldestBuckets } from "./oldest.ts";
import type { GroupDb } from "./writer.ts";

/** The scheduler task that counts the buckets of a group written before the counters. */
export const COUNT_TASK = "history.count";
/** A counting step stops after the series that takes it past this many rows (a series is counted whole). */
export const COUNT_STEP_ROWS = 50_000;
/** Series counted per step at most. */
const COUNT_STEP_SERIES = 200;

/** Each resolution's table name, for the raw SQL below (from the tables' one definition). */
const TABLES = Object.fromEntries(RESOLUTIONS.map((r) => [r, getTableName(BUCKET_TABLES[r])])) as Readonly<Record<Resolution, string>>;

/** Buckets stored per resolution, and how many series are not counted yet (their buckets are left out). */
export interface BucketTotals {
  buckets: Record<Resolution, number>;
  uncountedSeries: number;
}

export class BucketTally {
  private readonly db: GroupDb;
  private readonly sql: SqlStorage;
  /** The oldest bucket per resolution, kept by the same writers (oldest.ts). */
  readonly oldest: OldestBuckets;
  /** Per resolution: series id -> highest bucket index known to exist as a plain row (-1: none). */
  private known: Record<Resolution, Map<number, number>> = { minute: new Map(), hour: new Map(), day: new Map() };
  private delta: Record<Resolution, number> = { minute: 0, hour: 0, day: 0 };
  /** The last series counted; null: all; undefined: not read since the last `forget()`. */
  private countedTo: number | null | undefined = undefined;

  constructor(db: GroupDb) {
    this.db = db;
    this.sql = db.$client.sql;
    this.oldest = new OldestBuckets(db);
  }

  /** A bucket row about to be upserted (inside the caller's transaction): tallied if it is new. Runs per row on the commit path. */
  row(r: Resolution, id: number, bucket: number): void {
    this.oldest.row(r, bucket);
    if (!this.tallied(id)) return;
    const known = this.known[r];
    const top = known.get(id) ?? this.loadTop(r, id);
    if (bucket > top) {
      known.set(id, bucket);
      this.delta[r]++;
    } else if (bucket < top && this.sql.exec(`SELECT 1 FROM ${TABLES[r]} WHERE series = ? AND bucket = ?`, id, bucket).toArray().length === 0) {
      this.delta[r]++;
    }
  }

  /**
   * Before a write of these series (inside its transaction): reads the
   * highest bucket of each one not known yet in one statement per
   * resolution, instead of one call per series in `row` (after a wake, a
   * commit of 5,000 series would otherwise make 15,000 calls into SQLite).
   */
  prepare(ids: readonly number[]): void {
    for (const r of RESOLUTIONS) {
      const known = this.known[r];
      const unknown = ids.filter((id) => !known.has(id) && this.tallied(id));
      if (unknown.length === 0) continue;
      const rows = this.sql.exec<{ id: number; top: number | null }>(
        `SELECT j.value AS id, (SELECT bucket FROM ${TABLES[r]} WHERE series = j.value ORDER BY bucket DESC LIMIT 1) AS top FROM json_each(?) AS j`,
        JSON.stringify(unknown),
      );
      for (const { id, top } of rows) known.set(id, top ?? -1);
    }
  }

  /** The highest plain bucket of a series, read once after a wake (or after a delete may have removed it). */
  private loadTop(r: Resolution, id: number): number {
    const top = this.sql.exec<{ b: number }>(`SELECT bucket AS b FROM ${TABLES[r]} WHERE series = ? ORDER BY bucket DESC LIMIT 1`, id).toArray()[0]?.b ?? -1;
    this.known[r].set(id, top);
    return top;
  }

  /** `n` buckets of series `id` added (negative: removed) by other means than `row` (deletes, packs). */
  add(r: Resolution, id: number, n: number): void {
    if (n !== 0 && this.tallied(id)) this.delta[r] += n;
  }

  /** Plain rows of series `id` at or below bucket index `upTo` may have been deleted: the known highest may be gone. */
  deleted(r: Resolution, id: number, upTo: number): void {
    const top = this.known[r].get(id);
    if (top !== undefined && top <= upTo) this.known[r].delete(id);
  }

  /** Writes the tallied changes into `bucket_totals` (inside the caller's transaction). */
  flush(): void {
    this.oldest.flush();
    const d = this.delta;
    if (d.minute === 0 && d.hour === 0 && d.day === 0) return;
    this.sql.exec("UPDATE bucket_totals SET minute = minute + ?, hour = hour + ?, day = day + ? WHERE id = 1", d.minute, d.hour, d.day);
    this.delta = { minute: 0, hour: 0, day: 0 };
  }

  /** A transaction that tallied rolled back, or changes are about to be tallied from a clean state: drops what memory holds. */
  forget(): void {
    this.known = { minute: new Map(), hour: new Map(), day: new Map() };
    this.delta = { minute: 0, hour: 0, day: 0 };
    this.countedTo = undefined;
    this.oldest.forget();
  }

  /** The group's totals: one row, and a range count of the series not counted yet. */
  totals(): BucketTotals {
    const row = this.sql.exec<{ minute: number; hour: number; day: number; counted_to: number | null }>("SELECT minute, hour, day, counted_to FROM bucket_totals WHERE id = 1").toArray()[0];
    const to = row?.counted_to ?? null;
    const uncountedSeries = to === null ? 0 : this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM series WHERE id > ?", to).one().n;
    return { buckets: { minute: row?.minute ?? 0, hour: row?.hour ?? 0, day: row?.day ?? 0 }, uncountedSeries };
  }

  /** Whether series written before the counters still wait for COUNT_TASK. */
  pending(): boolean {
    return this.readCountedTo() !== null;
  }

  /**
   * Task COUNT_TASK: counts whole series after `counted_to` until about
   * `maxRows` rows were read, in one transaction; true while some remain.
   */
  step(maxRows = COUNT_STEP_ROWS): boolean {
    const from = this.readCountedTo();
    if (from === null) return false;
    // Whatever happens below, `counted_to` is read again on next use.
    this.countedTo = undefined;
    return this.db.transaction(() => {
      const ids = this.sql.exec<{ id: number }>("SELECT id FROM series WHERE id > ? ORDER BY id LIMIT ?", from, COUNT_STEP_SERIES + 1).toArray();
      const sums: Record<Resolution, number> = { minute: 0, hour: 0, day: 0 };
      let rows = 0;
      let last = from;
      let counted = 0;
      for (const { id } of ids.slice(0, COUNT_STEP_SERIES)) {
        for (const r of RESOLUTIONS) {
          const n = this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${TABLES[r]} WHERE series = ?`, id).one().n;
          sums[r] += n;
          rows += n;
        }
        sums.minute += this.sql.exec<{ n: number }>("SELECT coalesce(sum(buckets), 0) AS n FROM minute_packs WHERE series = ?", id).one().n;
        last = id;
        counted++;
        if (rows >= maxRows) break;
      }
      const more = counted < ids.length;
      this.sql.exec(
        "UPDATE bucket_totals SET minute = minute + ?, hour = hour + ?, day = day + ?, counted_to = ? WHERE id = 1",
        sums.minute,
        sums.hour,
        sums.day,
        more ? last : null,
      );
      return more;
    });
  }

  private tallied(id: number): boolean {
    const to = this.readCountedTo();
    return to === null || id <= to;
  }

  private readCountedTo(): number | null {
    if (this.countedTo === undefined) {
      this.countedTo = this.sql.exec<{ c: number | null }>("SELECT counted_to AS c FROM bucket_totals WHERE id = 1").toArray()[0]?.c ?? null;
    }
    return this.countedTo;
  }
}

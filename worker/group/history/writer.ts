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
import { and, eq, getTableName, sql, type SQL } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTIONS, RESOLUTION_MS, type Resolution } from "../../../schema/api.ts";
import { dayBuckets, hourBuckets, minuteBuckets, series, type BucketTable } from "../../../schema/tables.ts";
import { mergePartial, type Collapsed, type PartialAggregate } from "../ingest/collapse.ts";
import { BucketTally } from "./counts.ts";
import { noteLateHours, packedSumOverflow } from "./late.ts";

/** device -> metric -> bucket start (ms) -> aggregate, as collapse builds it. */
export type SeriesAggregates = Collapsed["aggregates"];

/** The group's database with the storage it runs on (what `drizzle(ctx.storage)` returns). */
export type GroupDb = DrizzleSqliteDODatabase & { $client: DurableObjectStorage };

/**
 * A point row: a bucket whose min, max and last equal its sum and whose last
 * timestamp is its first (one reading, the common minute) is stored with
 * min 1, max 0, last 0 and last_off 0. SQLite's record format stores the
 * integers 0 and 1 in no bytes (serial types 8 and 9,
 * https://www.sqlite.org/fileformat2.html#record_format; a REAL column
 * stores an integral value as an integer), about 26 bytes less per row.
 * min > max marks it: no real bucket has that, so no row is ambiguous and
 * no migration was needed (old rows are read as they are). Read every
 * bucket through `bucketSql` or `bucketFields`, never the bare columns.
 */
export function bucketSql(row: string): { count: string; sum: string; min: string; max: string; last: string; firstOff: string; lastOff: string } {
  const c = (name: string) => `${row}.${name}`;
  const point = `${c("min")} > ${c("max")}`;
  const or = (name: string, instead: string) => `(CASE WHEN ${point} THEN ${c(instead)} ELSE ${c(name)} END)`;
  return { count: c("count"), sum: c("sum"), min: or("min", "sum"), max: or("max", "sum"), last: or("last", "sum"), firstOff: c("first_off"), lastOff: or("last_off", "first_off") };
}

/** `bucketSql` of a Drizzle bucket table, for its selects. */
export function bucketFields(t: BucketTable): { count: SQL<number>; sum: SQL<number>; min: SQL<number>; max: SQL<number>; last: SQL<number>; firstOff: SQL<number>; lastOff: SQL<number> } {
  const f = bucketSql(`"${getTableName(t)}"`);
  const field = (text: string) => sql<number>`${sql.raw(text)}`;
  return { count: field(f.count), sum: field(f.sum), min: field(f.min), max: field(f.max), last: field(f.last), firstOff: field(f.firstOff), lastOff: field(f.lastOff) };
}

/** Whether a partial is stored as a point row (see `bucketSql`). */
function isPoint(a: PartialAggregate): boolean {
  return a.firstTs === a.lastTs && a.min === a.sum && a.max === a.sum && a.last === a.sum;
}

const MINUTE = RESOLUTION_MS.minute;
const HOUR = RESOLUTION_MS.hour;
const DAY = RESOLUTION_MS.day;

const COLUMNS = "series, bucket, count, sum, min, max, first_off, last_off, last";

/**
 * The two shapes of a row's VALUES: every column bound, or a point row's
 * five (the mark and zeros are constants in the SQL text, so a point binds
 * 5 values instead of 9 and a statement takes 20 rows instead of 11: a
 * Durable Object query takes at most 100 bound parameters).
 */
const SHAPES = {
  full: { values: "(?, ?, ?, ?, ?, ?, ?, ?, ?)", params: 9 },
  point: { values: "(?, ?, ?, ?, 1, 0, ?, 0, 0)", params: 5 },
} as const;
type Shape = keyof typeof SHAPES;

/**
 * The upsert of `rows` rows of one shape into `table`. In an upsert's SET,
 * bare columns are the existing row and `excluded.*` the new one; all
 * right-hand sides see the old row. Offsets compare like timestamps: both
 * rows are of the same bucket. Both rows are read through `bucketSql`, and
 * the merged row is written whole (a merge of two rows is rarely a point).
 */
function upsertSql(table: string, shape: Shape, rows: number): string {
  const o = bucketSql(table);
  // A point's excluded row needs no reading through the mark: its min, max and last are its sum, its last offset its first.
  const n = shape === "point" ? { ...bucketSql("excluded"), min: "excluded.sum", max: "excluded.sum", last: "excluded.sum", lastOff: "excluded.first_off" } : bucketSql("excluded");
  const values = Array.from({ length: rows }, () => SHAPES[shape].values).join(", ");
  return `INSERT INTO ${table} (${COLUMNS}) VALUES ${values} ON CONFLICT (series, bucket) DO UPDATE SET
    count = ${o.count} + ${n.count},
    sum = ${finiteOrNull(`${o.sum} + ${n.sum}`)},
    min = min(${o.min}, ${n.min}),
    max = max(${o.max}, ${n.max}),
    first_off = min(${o.firstOff}, ${n.firstOff}),
    last = CASE WHEN ${n.lastOff} >= ${o.lastOff} THEN ${n.last} ELSE ${o.last} END,
    last_off = max(${o.lastOff}, ${n.lastOff})`;
}

/**
 * `x`, or NULL when it left the finite range (SQLite reads `1e999` as
 * +Infinity, and stores a NaN as NULL): the sum column is NOT NULL, so an
 * overflowing merge fails its statement, and `write` reports it as
 * `SumOverflow`. Nothing stored changes: the transaction rolls back.
 */
function finiteOrNull(x: string): string {
  return `CASE WHEN abs(${x}) < 1e999 THEN ${x} END`;
}

/**
 * A bucket's sum would leave the finite range of a double (values are
 * finite, but 1e308 + 1e308 is not): the batch is refused with `bad_value`
 * (docs/protocol.md) rather than storing ±Infinity, which a later merge of
 * the opposite sign would turn into NaN, a NULL no row may hold.
 */
export class SumOverflow extends Error {
  constructor(where: string) {
    super(`a ${where} bucket's sum would leave the finite range of a double (about ±1.8e308)`);
    this.name = "SumOverflow";
  }
}

/** The SQLite error of `finiteOrNull` in a bucket table, as `SumOverflow`; anything else as it is. */
function overflowOf(err: unknown): unknown {
  const m = err instanceof Error ? /NOT NULL constraint failed: (minute|hour|day)_buckets\.sum/.exec(err.message) : null;
  return m ? new SumOverflow(m[1] ?? "") : err;
}

/** Rows of one shape waiting for a full chunk, bound by position. */
class ShapeBuffer {
  private params: number[] = [];
  private readonly size: number;
  private readonly chunk: string;
  /** Statements of 2^k rows (k = 0, 1, 2, ...) below a chunk's, for the remainder. */
  private readonly powers: string[] = [];

  constructor(table: string, shape: Shape) {
    this.size = SHAPES[shape].params;
    const rows = Math.floor(100 / this.size);
    this.chunk = upsertSql(table, shape, rows);
    for (let n = 1; n < rows; n *= 2) this.powers.push(upsertSql(table, shape, n));
  }

  /** Takes one row's values; writes a chunk when it is full. */
  push(sql: SqlStorage, ...row: number[]): void {
    const p = this.params;
    for (const v of row) p.push(v);
    if (p.length + this.size > 100) {
      sql.exec(this.chunk, ...p);
      this.params = [];
    }
  }

  reset(): void {
    this.params = [];
  }

  /**
   * The remainder, in statements of 2^k rows, largest first: at most one
   * per power below a chunk (19 rows: 16, 2 and 1), where one row a
   * statement made a small commit's remainder most of its statements
   * (docs/benchmarks.md, "The ratio end to end"). Each text is compiled
   * once and cached by the runtime, which keeps up to 1 MiB of SQL text
   * (about 40 KB here: SQL_STATEMENT_CACHE_MAX_SIZE in
   * https://github.com/cloudflare/workerd/blob/main/src/workerd/api/sql.c++).
   */
  flush(sql: SqlStorage): void {
    const p = this.params;
    let i = 0;
    for (let k = this.powers.length - 1; k >= 0; k--) {
      const n = (1 << k) * this.size;
      if (p.length - i >= n) {
        sql.exec(this.powers[k] ?? "", ...p.slice(i, i + n));
        i += n;
      }
    }
    this.params = [];
  }
}

/**
 * One table's rows of a commit, bound by position with raw `sql.exec` (the
 * SQL text is built once and the runtime caches the compiled statement by
 * its text): the hot path of every commit builds no parameter names per
 * row, as a Drizzle prepared query with named placeholders would.
 */
class RowBuffer {
  private readonly full: ShapeBuffer;
  private readonly point: ShapeBuffer;
  private readonly resolution: Resolution;
  private readonly tally: BucketTally | null;

  /** `tally`: told of every row, to count the new ones (null: bench:history's baseline without counts). */
  constructor(t: BucketTable, resolution: Resolution, tally: BucketTally | null) {
    this.full = new ShapeBuffer(getTableName(t), "full");
    this.point = new ShapeBuffer(getTableName(t), "point");
    this.resolution = resolution;
    this.tally = tally;
  }

  add(sql: SqlStorage, id: number, bucket: number, start: number, a: PartialAggregate): void {
    // The commit's own partial already overflowed (the SQL merge checks the stored sum plus it).
    if (!Number.isFinite(a.sum)) throw new SumOverflow(this.resolution);
    this.tally?.row(this.resolution, id, bucket);
    const firstOff = a.firstTs - start;
    if (isPoint(a)) this.point.push(sql, id, bucket, a.count, a.sum, firstOff);
    else this.full.push(sql, id, bucket, a.count, a.sum, a.min, a.max, firstOff, a.lastTs - start, a.last);
  }

  flush(sql: SqlStorage): void {
    this.full.flush(sql);
    this.point.flush(sql);
  }

  reset(): void {
    this.full.reset();
    this.point.reset();
  }
}

export class BucketWriter {
  private readonly sql: SqlStorage;
  /** Per table; between commits they hold no rows (each write flushes). */
  private readonly buffers: Record<Resolution, RowBuffer>;
  private readonly selectId;
  private readonly insertId;
  private ids = new Map<string, Map<string, number>>();
  private readonly rollups: boolean;
  /** The bucket counts (counts.ts), shared with every other writer of bucket rows: pruning, packing. */
  readonly tally: BucketTally;
  private readonly counts: boolean;

  /**
   * `rollups: false` writes minute buckets only, `counts: false` leaves the
   * bucket counts alone: bench:history's baselines, never the hub's.
   */
  constructor(db: GroupDb, rollups = true, counts = true) {
    this.rollups = rollups;
    this.sql = db.$client.sql;
    this.tally = new BucketTally(db);
    this.counts = counts;
    const tally = counts ? this.tally : null;
    this.buffers = { minute: new RowBuffer(minuteBuckets, "minute", tally), hour: new RowBuffer(hourBuckets, "hour", tally), day: new RowBuffer(dayBuckets, "day", tally) };
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
    this.tally.forget();
  }

  /**
   * Upserts minute partials (keyed by minute start) into all three
   * resolutions; must run inside a transaction. The hour and day partials
   * are merged here first, so each is one upsert per commit. Throws
   * `SumOverflow` if a bucket's sum would not be finite.
   */
  write(aggregates: SeriesAggregates): void {
    try {
      this.writeAll(aggregates);
    } catch (err) {
      throw overflowOf(err);
    }
  }

  private writeAll(aggregates: SeriesAggregates): void {
    const sql = this.sql;
    const { minute, hour, day } = this.buffers;
    // A write that threw (its transaction rolled back) may have left rows behind.
    for (const r of RESOLUTIONS) this.buffers[r].reset();
    const coarse = { hour: new Map<number, PartialAggregate>(), day: new Map<number, PartialAggregate>() };
    if (this.counts) {
      const ids: number[] = [];
      for (const [device, metrics] of aggregates) for (const metric of metrics.keys()) ids.push(this.seriesId(device, metric));
      this.tally.prepare(ids);
    }
    for (const [device, metrics] of aggregates) {
      for (const [metric, buckets] of metrics) {
        const id = this.seriesId(device, metric);
        if (buckets.size === 1 || !this.rollups) {
          // The common case (one minute per series in a commit): its hour and day partials are the minute's own.
          for (const [start, a] of buckets) {
            minute.add(sql, id, start / MINUTE, start, a);
            if (!this.rollups) continue;
            const h = Math.floor(start / HOUR);
            const d = Math.floor(start / DAY);
            hour.add(sql, id, h, h * HOUR, a);
            day.add(sql, id, d, d * DAY, a);
          }
          continue;
        }
        for (const [start, a] of buckets) {
          minute.add(sql, id, start / MINUTE, start, a);
          for (const r of ["hour", "day"] as const) {
            const s = Math.floor(start / RESOLUTION_MS[r]) * RESOLUTION_MS[r];
            const into = coarse[r].get(s);
            if (into) mergePartial(into, a);
            else coarse[r].set(s, { ...a });
          }
        }
        for (const r of ["hour", "day"] as const) {
          for (const [s, a] of coarse[r]) this.buffers[r].add(sql, id, s / RESOLUTION_MS[r], s, a);
          coarse[r].clear();
        }
      }
    }
    for (const r of RESOLUTIONS) this.buffers[r].flush(sql);
    const late = noteLateHours(sql, aggregates, (device, metric) => this.seriesId(device, metric));
    if (late.length > 0 && packedSumOverflow(sql, late)) throw new SumOverflow("minute");
    this.tally.flush();
  }
}

/**
 * Packing (docs/history.md, "Packed hours"): minute buckets of hours that
 * closed more than PACK_AFTER_MS ago move from plain rows into packed parts
 * (pack.ts), each small enough to stay on its B-tree page, when the parts
 * take fewer bytes than the rows they replace (record.ts: counted value by
 * value, never assumed). Series by series, in steps of at most a few
 * thousand rows, each step one transaction that writes the parts, deletes
 * the rows they took and stores the pass's cursor: an eviction mid-pass
 * loses nothing and packs nothing twice.
 *
 * Incremental: a pass reads only the plain rows of hours closed since the
 * previous pass began (its `from`, the stored mark), so rows it declined to
 * pack are not read again. A plain row written later into an hour behind
 * the mark (a late reading, a device's backlog) is noted by the writer in
 * `pack_late` (late.ts), and the next pass looks
 * at that hour only, merging the row into its parts by the one merge rule
 * (the plain row counts as the later arrival). The commit path never reads
 * packs.
 */
import { and, asc, between, eq, gte, lt, sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTION_MS } from "../../../schema/api.ts";
import { minuteBuckets, minutePacks, packLate, series, settings } from "../../../schema/tables.ts";
import { mergePartial, type PartialAggregate } from "../ingest/collapse.ts";
import type { BucketTally } from "./counts.ts";
import { MAX_PART_BYTES, packParts, unpackHour, type PackedMinute } from "./pack.ts";
import { cellBytes, type Cell } from "./record.ts";
import { PACK_MARK_KEY, packMark } from "./late.ts";
import { bucketFields } from "./writer.ts";

/** Hours are packed once they closed this long ago: later readings of recent hours stay cheap plain rows. */
export const PACK_AFTER_MS = 2 * 3_600_000;
/** Plain rows read per step at most (a series' oversize old packs are re-split whole). */
const PACK_STEP_ROWS = 4000;
const PACK_STEP_SERIES = 500;
/** A pass under way: its JSON in `settings`. */
const CURSOR_KEY = "pack_cursor";

/** A pass: plain rows of minutes [from, before) series by series; `series`/`at` where to resume; `resplit` on the first pass after migration 0014. */
interface Pass {
  from: number;
  before: number;
  series: number;
  at: number | null;
  resplit: boolean;
}

/** A plain minute row as read: its fields (point rows read as full buckets) and its stored columns' cost. */
interface PlainRow {
  bucket: number;
  partial: PartialAggregate;
  bytes: number;
}

/** What a step did: plain rows read and packed. */
interface Work {
  read: number;
  packed: number;
}

/** How a packer splits and decides; the defaults are the hub's, others serve `bench:history`'s comparison with packs before parts. */
export interface PackOptions {
  /** Largest part's blob (Infinity: one row per hour, as before parts). */
  maxPartBytes: number;
  /** Pack only when the parts take fewer bytes than what they replace. */
  onlyWhenSmaller: boolean;
}

export class Packer {
  private readonly db: DrizzleSqliteDODatabase;
  private readonly tally: BucketTally;
  private readonly options: PackOptions;

  /** `tally`: the bucket counts that packing adjusts (the writer's, `BucketWriter.tally`). */
  constructor(db: DrizzleSqliteDODatabase, tally: BucketTally, options: PackOptions = { maxPartBytes: MAX_PART_BYTES, onlyWhenSmaller: true }) {
    this.db = db;
    this.tally = tally;
    this.options = options;
  }

  inProgress(): boolean {
    return this.readPass() !== null;
  }

  /** One step of a packing pass at `now`: plain rows `read`, `packed` of them moved into parts; `done` once every series and noted hour was visited. */
  step(now: number, maxRows = PACK_STEP_ROWS): { packed: number; read: number; done: boolean } {
    return this.db.transaction(() => {
      let pass = this.readPass();
      if (!pass) {
        const mark = this.readMark();
        // Minute index below which hours are closed long enough.
        const before = Math.max(Math.floor((now - PACK_AFTER_MS) / RESOLUTION_MS.hour) * 60, mark ?? 0);
        pass = { from: mark ?? 0, before, series: 0, at: null, resplit: mark === null };
        // From now on, minutes written below `before` are noted in pack_late (late.ts reads the mark).
        this.writeSetting(PACK_MARK_KEY, String(before));
      }
      const work: Work = { read: 0, packed: 0 };
      const lateDone = this.packLateHours(work, maxRows);
      let seriesDone = false;
      if (work.read < maxRows) {
        const ids = this.db.select({ id: series.id }).from(series).where(gte(series.id, pass.series)).orderBy(asc(series.id)).limit(PACK_STEP_SERIES).all();
        let stopped = false;
        for (const { id } of ids) {
          if (pass.at === null && pass.resplit) this.resplit(id, pass.before, work);
          const next = this.packRange(id, id === pass.series && pass.at !== null ? pass.at : pass.from, pass.before, work, maxRows);
          if (next !== null) {
            pass = { ...pass, series: id, at: next };
            stopped = true;
            break;
          }
          pass = { ...pass, series: id + 1, at: null };
          if (work.read >= maxRows) {
            stopped = true;
            break;
          }
        }
        seriesDone = !stopped && ids.length < PACK_STEP_SERIES;
      }
      const done = lateDone && seriesDone;
      if (done) this.db.delete(settings).where(eq(settings.key, CURSOR_KEY)).run();
      else this.writeSetting(CURSOR_KEY, JSON.stringify(pass));
      this.tally.flush();
      return { packed: work.packed, read: work.read, done };
    });
  }

  /** Packs plain rows of one series in minutes [from, before), until `maxRows` rows were read in the step; the minute to resume at, or null when done. */
  private packRange(id: number, from: number, before: number, work: Work, maxRows: number): number | null {
    if (from >= before) return null;
    const max = maxRows - work.read;
    if (max <= 0) return from;
    const rows = this.readPlain(id, from, before, max);
    work.read += rows.length;
    const byHour = new Map<number, PlainRow[]>();
    for (const r of rows) {
      const hour = Math.floor(r.bucket / 60);
      let list = byHour.get(hour);
      if (!list) byHour.set(hour, (list = []));
      list.push(r);
    }
    for (const [hour, plain] of byHour) work.packed += this.packHour(id, hour, plain);
    return rows.length < max ? null : (rows.at(-1)?.bucket ?? from) + 1;
  }

  /** Hours noted in `pack_late`, each packed from its plain rows and parts; true when none is left. */
  private packLateHours(work: Work, maxRows: number): boolean {
    for (;;) {
      if (work.read >= maxRows) return false;
      const noted = this.db.select().from(packLate).orderBy(asc(packLate.series), asc(packLate.hour)).limit(50).all();
      if (noted.length === 0) return true;
      for (const { series: id, hour } of noted) {
        const plain = this.readPlain(id, hour * 60, hour * 60 + 60, 60);
        work.read += plain.length;
        work.packed += this.packHour(id, hour, plain);
        this.db.delete(packLate).where(and(eq(packLate.series, id), eq(packLate.hour, hour))).run();
        if (work.read >= maxRows) return false;
      }
    }
  }

  /** Re-packs a series' parts over MAX_PART_BYTES (written before parts were bounded) below minute `before`. */
  private resplit(id: number, before: number, work: Work): void {
    const p = minutePacks;
    const oversize = this.db
      .select({ first: p.firstMinute })
      .from(p)
      .where(and(eq(p.series, id), lt(p.firstMinute, before), sql`length(${p.data}) > ${MAX_PART_BYTES}`))
      .all();
    for (const hour of new Set(oversize.map((o) => Math.floor(o.first / 60)))) work.packed += this.packHour(id, hour, []);
  }

  /** Up to `max` plain rows of a series in minutes [from, to), in order, with what each costs on its page. */
  private readPlain(id: number, from: number, to: number, max: number): PlainRow[] {
    const m = minuteBuckets;
    const rows = this.db
      .select({ bucket: m.bucket, ...bucketFields(m), raw: { min: m.min, max: m.max, lastOff: m.lastOff, last: m.last } })
      .from(m)
      .where(and(eq(m.series, id), gte(m.bucket, from), lt(m.bucket, to)))
      .orderBy(asc(m.bucket))
      .limit(max)
      .all();
    return rows.map((r) => {
      const start = r.bucket * RESOLUTION_MS.minute;
      const stored: Cell[] = [{ int: id }, { int: r.bucket }, { int: r.count }, { real: r.sum }, { real: r.raw.min }, { real: r.raw.max }, { int: r.firstOff }, { int: r.raw.lastOff }, { real: r.raw.last }];
      return { bucket: r.bucket, bytes: cellBytes(stored), partial: { count: r.count, sum: r.sum, min: r.min, max: r.max, firstTs: start + r.firstOff, lastTs: start + r.lastOff, last: r.last } };
    });
  }

  /**
   * Merges `plain` (rows of one hour, the later arrivals) into the hour's
   * parts and writes the result as new parts, if they take fewer bytes than
   * the parts and rows they replace; returns the plain rows packed (0 when
   * declined: everything stays as it is).
   */
  private packHour(id: number, hour: number, plain: PlainRow[]): number {
    const p = minutePacks;
    const inHour = and(eq(p.series, id), between(p.firstMinute, hour * 60, hour * 60 + 59));
    const existing = this.db.select().from(p).where(inHour).all();
    if (plain.length === 0 && existing.length === 0) return 0;
    const hourStart = hour * RESOLUTION_MS.hour;
    const minutes = new Map<number, PartialAggregate>();
    let before = 0;
    for (const part of existing) {
      before += partBytes(id, part.firstMinute, part.lastMinute, part.buckets, part.data.length);
      for (const pm of unpackHour(part.data)) {
        const start = hourStart + pm.minute * RESOLUTION_MS.minute;
        minutes.set(pm.minute, { count: pm.count, sum: pm.sum, min: pm.min, max: pm.max, firstTs: start + pm.firstOff, lastTs: start + pm.lastOff, last: pm.last });
      }
    }
    for (const r of plain) {
      before += r.bytes;
      const minute = r.bucket - hour * 60;
      const into = minutes.get(minute);
      if (into) mergePartial(into, { ...r.partial });
      else minutes.set(minute, { ...r.partial });
    }
    const list: PackedMinute[] = [...minutes].map(([minute, a]) => {
      const start = hourStart + minute * RESOLUTION_MS.minute;
      return { minute, count: a.count, sum: a.sum, min: a.min, max: a.max, firstOff: a.firstTs - start, lastOff: a.lastTs - start, last: a.last };
    });
    const parts = packParts(list, this.options.maxPartBytes).map((part) => {
      const first = hour * 60 + (part.minutes[0]?.minute ?? 0);
      const last = hour * 60 + (part.minutes.at(-1)?.minute ?? 59);
      return { series: id, firstMinute: first, lastMinute: last, buckets: part.minutes.length, data: part.data };
    });
    const after = parts.reduce((n, q) => n + partBytes(id, q.firstMinute, q.lastMinute, q.buckets, q.data.length), 0);
    if (this.options.onlyWhenSmaller && after >= before) return 0;
    if (existing.length > 0) this.db.delete(p).where(inHour).run();
    // A part written before parts starts at its hour's start, maybe before its first minute: the oldest may rise (oldest.ts).
    const firstBefore = Math.min(...existing.map((e) => e.firstMinute), ...plain.map((r) => r.bucket));
    if ((parts[0]?.firstMinute ?? Infinity) > firstBefore) this.tally.oldest.deleted();
    for (const part of parts) this.db.insert(p).values(part).run();
    // Exactly the rows read: they are consecutive, and a step that stopped inside this hour left its later minutes for the next.
    const first = plain[0];
    const lastRow = plain.at(-1);
    if (first && lastRow) {
      const m = minuteBuckets;
      this.db.delete(m).where(and(eq(m.series, id), between(m.bucket, first.bucket, lastRow.bucket))).run();
      this.tally.deleted("minute", id, lastRow.bucket);
    }
    // Minutes: the parts' ones, less those the old parts held and the plain rows taken.
    this.tally.add("minute", id, list.length - existing.reduce((n, e) => n + e.buckets, 0) - plain.length);
    return plain.length;
  }

  private readPass(): Pass | null {
    const row = this.db.select().from(settings).where(eq(settings.key, CURSOR_KEY)).get();
    return row ? toPass(row.value) : null;
  }

  private readMark(): number | null {
    return packMark(this.db.select().from(settings).where(eq(settings.key, PACK_MARK_KEY)).get()?.value);
  }

  private writeSetting(key: string, value: string): void {
    this.db.insert(settings).values({ key, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
  }
}

/** A part's bytes on the page (and in overflow pages, for one written before parts were bounded). */
function partBytes(id: number, first: number, last: number, buckets: number, blob: number): number {
  return cellBytes([{ int: id }, { int: first }, { int: last }, { int: buckets }, { blob }]);
}

/** A stored pass, checked (null if it is not one, e.g. the bare series id of a pass before migration 0014: a new pass starts). */
function toPass(text: string): Pass | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const { from, before, series: id, at, resplit } = v as Record<string, unknown>;
  if (typeof from !== "number" || typeof before !== "number" || typeof id !== "number" || typeof resplit !== "boolean") return null;
  if (at !== null && typeof at !== "number") return null;
  return { from, before, series: id, at, resplit };
}

/** Counts of the packs table: rows (parts) and the minute buckets they hold. */
export function packCounts(db: DrizzleSqliteDODatabase): { rows: number; buckets: number } {
  const r = db.select({ rows: sql<number>`count(*)`, buckets: sql<number>`coalesce(sum(${minutePacks.buckets}), 0)` }).from(minutePacks).get();
  return { rows: r?.rows ?? 0, buckets: r?.buckets ?? 0 };
}

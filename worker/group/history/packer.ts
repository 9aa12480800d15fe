/**
 * Packing (docs/history.md, "Packed hours"): minute buckets of hours that
 * closed more than PACK_AFTER_MS ago move from plain rows into one packed
 * row per (series, hour) (pack.ts). Series by series, in steps of at most a
 * few thousand rows, each step one transaction that writes the packs,
 * deletes the rows they took and stores the pass's cursor: an eviction
 * mid-pass loses nothing and packs nothing twice. A minute that arrives
 * after its hour was packed is a plain row again (the commit path never
 * reads packs); the next pass merges it into the pack by the one merge
 * rule, the plain row counting as the later arrival.
 */
import { and, asc, eq, gt, gte, lt, lte, sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTION_MS } from "../../../schema/api.ts";
import { minuteBuckets, minutePacks, series, settings } from "../../../schema/tables.ts";
import { mergePartial } from "../ingest/collapse.ts";
import { packHour, unpackHour, type PackedMinute } from "./pack.ts";
import { bucketFields } from "./writer.ts";

/** Hours are packed once they closed this long ago: later readings of recent hours stay cheap plain rows. */
export const PACK_AFTER_MS = 2 * 3_600_000;
/** Plain rows packed per step at most. */
const PACK_STEP_ROWS = 4000;
const PACK_STEP_SERIES = 500;
const CURSOR_KEY = "pack_cursor";

/** A packed minute as a partial aggregate at its absolute time, and back. */
function toPartial(hour: number, m: PackedMinute) {
  const start = hour * RESOLUTION_MS.hour + m.minute * RESOLUTION_MS.minute;
  return { count: m.count, sum: m.sum, min: m.min, max: m.max, firstTs: start + m.firstOff, lastTs: start + m.lastOff, last: m.last };
}

export class Packer {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  inProgress(): boolean {
    return this.db.select().from(settings).where(eq(settings.key, CURSOR_KEY)).get() !== undefined;
  }

  /** One step of a packing pass at `now`; `done` once every series was visited. */
  step(now: number, maxRows = PACK_STEP_ROWS): { packed: number; done: boolean } {
    // Minute index below which hours are closed long enough.
    const before = Math.floor((now - PACK_AFTER_MS) / RESOLUTION_MS.hour) * 60;
    return this.db.transaction(() => {
      const row = this.db.select().from(settings).where(eq(settings.key, CURSOR_KEY)).get();
      const from = row ? Number(row.value) || 0 : 0;
      const ids = this.db.select({ id: series.id }).from(series).where(gt(series.id, from)).orderBy(asc(series.id)).limit(PACK_STEP_SERIES).all();
      let packed = 0;
      let last = from;
      for (const { id } of ids) {
        packed += this.packSeries(id, before, maxRows - packed);
        if (packed >= maxRows) break;
        last = id;
      }
      const done = ids.length < PACK_STEP_SERIES && last === (ids.at(-1)?.id ?? from);
      if (done) this.db.delete(settings).where(eq(settings.key, CURSOR_KEY)).run();
      else {
        const value = String(last);
        this.db.insert(settings).values({ key: CURSOR_KEY, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
      }
      return { packed, done };
    });
  }

  /** Packs up to about `max` plain rows of one series below minute `before`, whole hours at a time; returns how many. */
  private packSeries(id: number, before: number, max: number): number {
    if (max <= 0) return 0;
    const m = minuteBuckets;
    const rows = this.db
      .select({ bucket: m.bucket, ...bucketFields(m) })
      .from(m)
      .where(and(eq(m.series, id), lt(m.bucket, before)))
      .orderBy(asc(m.bucket))
      .limit(max)
      .all();
    if (rows.length === 0) return 0;
    const byHour = new Map<number, typeof rows>();
    for (const r of rows) {
      const hour = Math.floor(r.bucket / 60);
      let list = byHour.get(hour);
      if (!list) byHour.set(hour, (list = []));
      list.push(r);
    }
    let packed = 0;
    for (const [hour, plain] of byHour) {
      const minutes = new Map<number, ReturnType<typeof toPartial>>();
      const existing = this.db
        .select({ data: minutePacks.data })
        .from(minutePacks)
        .where(and(eq(minutePacks.series, id), eq(minutePacks.hour, hour)))
        .get();
      if (existing) for (const pm of unpackHour(existing.data)) minutes.set(pm.minute, toPartial(hour, pm));
      for (const r of plain) {
        const start = r.bucket * RESOLUTION_MS.minute;
        const p = { count: r.count, sum: r.sum, min: r.min, max: r.max, firstTs: start + r.firstOff, lastTs: start + r.lastOff, last: r.last };
        const minute = r.bucket - hour * 60;
        const into = minutes.get(minute);
        if (into) mergePartial(into, p);
        else minutes.set(minute, p);
      }
      const list: PackedMinute[] = [...minutes].map(([minute, p]) => {
        const start = hour * RESOLUTION_MS.hour + minute * RESOLUTION_MS.minute;
        return { minute, count: p.count, sum: p.sum, min: p.min, max: p.max, firstOff: p.firstTs - start, lastOff: p.lastTs - start, last: p.last };
      });
      const data = packHour(list);
      this.db
        .insert(minutePacks)
        .values({ series: id, hour, buckets: list.length, data })
        .onConflictDoUpdate({ target: [minutePacks.series, minutePacks.hour], set: { buckets: list.length, data } })
        .run();
      // Exactly the rows read: a step that stopped inside this hour left its later minutes for the next.
      const upTo = plain.at(-1)?.bucket ?? hour * 60;
      this.db
        .delete(m)
        .where(and(eq(m.series, id), gte(m.bucket, hour * 60), lte(m.bucket, upTo)))
        .run();
      packed += plain.length;
    }
    return packed;
  }
}

/** Counts of the packs table: rows and the minute buckets they hold. */
export function packCounts(db: DrizzleSqliteDODatabase): { rows: number; buckets: number } {
  const r = db.select({ rows: sql<number>`count(*)`, buckets: sql<number>`coalesce(sum(${minutePacks.buckets}), 0)` }).from(minutePacks).get();
  return { rows: r?.rows ?? 0, buckets: r?.buckets ?? 0 };
}

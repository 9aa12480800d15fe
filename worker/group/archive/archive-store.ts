/**
 * SQLite of the archive stage: captured rows (`archive_rows`) and the
 * manifest of Parquet parts (`archive_parts`), schema/tables.ts.
 */
import { and, asc, between, count, eq, gte, lt, max, min, sum, type SQL } from "drizzle-orm";
import { archiveParts, archiveRows } from "../../../schema/tables.ts";
import type { GroupDb } from "../history/writer.ts";

export type CapturedRow = typeof archiveRows.$inferSelect;
export type PartRow = typeof archiveParts.$inferSelect;

/** Rows scanned per flush plan, at most: a plan also stops at the step's readings. */
const PLAN_SCAN = 10_000;
/** Captured rows per INSERT: 8 bound parameters each, and a Durable Object query takes at most 100. */
const CAPTURE_CHUNK = 12;

/**
 * The INSERT of `n` captured rows. Written as SQL text for the object's
 * SqlStorage rather than through Drizzle: it runs for every commit, and
 * Drizzle's per-call parameter mapping cost more than the insert itself
 * (`npm run bench:archive`). The runtime caches the compiled statement by
 * its text, so there are at most CAPTURE_CHUNK of them.
 */
const insertText = (n: number): string =>
  `INSERT INTO archive_rows (received, device, source, seq, readings, min_ts, max_ts, data) VALUES ${Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`;
const INSERTS = Array.from({ length: CAPTURE_CHUNK + 1 }, (_, n) => insertText(n));

export class ArchiveStore {
  private readonly db: GroupDb;
  private readonly sql: SqlStorage;

  constructor(db: GroupDb) {
    this.db = db;
    this.sql = db.$client.sql;
  }

  /** Adds captured rows (inside the commit's transaction), CAPTURE_CHUNK to a statement. */
  capture(rows: readonly Omit<CapturedRow, "id">[]): void {
    for (let base = 0; base < rows.length; base += CAPTURE_CHUNK) {
      const chunk = rows.slice(base, base + CAPTURE_CHUNK);
      const params: SqlStorageValue[] = [];
      for (const r of chunk) params.push(r.received, r.device, r.source, r.seq, r.readings, r.minTs, r.maxTs, archiveRows.data.mapToDriverValue(r.data) as ArrayBuffer);
      this.sql.exec(INSERTS[chunk.length] as string, ...params);
    }
  }

  /** Readings waiting in captured rows, and the earliest commit time among them. */
  backlog(): { readings: number; earliest: number | null } {
    const r = this.db.select({ n: sum(archiveRows.readings), at: min(archiveRows.received) }).from(archiveRows).get();
    return { readings: Number(r?.n ?? 0), earliest: r?.at ?? null };
  }

  /**
   * The next rows to flush: the longest run of the oldest rows committed
   * before `before` holding at most `maxReadings` (at least one row). Returns
   * their id range, or null when no row is due.
   */
  planRange(before: number, maxReadings: number): { first: number; last: number } | null {
    const rows = this.db
      .select({ id: archiveRows.id, received: archiveRows.received, readings: archiveRows.readings })
      .from(archiveRows)
      .orderBy(asc(archiveRows.id))
      .limit(PLAN_SCAN)
      .all();
    let n = 0;
    let last: number | null = null;
    for (const r of rows) {
      if (r.received >= before) break;
      if (last !== null && n + r.readings > maxReadings) break;
      n += r.readings;
      last = r.id;
    }
    const first = rows[0]?.id;
    return last === null || first === undefined ? null : { first, last };
  }

  rows(first: number, last: number): CapturedRow[] {
    return this.db.select().from(archiveRows).where(between(archiveRows.id, first, last)).orderBy(asc(archiveRows.id)).all();
  }

  /** Captured rows (of `device`, if given) that may hold readings in [from, to), in commit order. */
  rowsOverlapping(device: string | undefined, from: number | undefined, to: number | undefined): CapturedRow[] {
    const where: SQL[] = [];
    if (device !== undefined) where.push(eq(archiveRows.device, device));
    if (from !== undefined) where.push(gte(archiveRows.maxTs, from));
    if (to !== undefined) where.push(lt(archiveRows.minTs, to));
    return this.db.select().from(archiveRows).where(and(...where)).orderBy(asc(archiveRows.id)).all();
  }

  pendingParts(): PartRow[] {
    return this.db.select().from(archiveParts).where(eq(archiveParts.state, "pending")).orderBy(asc(archiveParts.hour), asc(archiveParts.part)).all();
  }

  /** The next part number of an hour (parts are numbered from 0, done or pending alike). */
  nextPart(hour: number): number {
    const r = this.db.select({ n: max(archiveParts.part) }).from(archiveParts).where(eq(archiveParts.hour, hour)).get();
    return r?.n === null || r?.n === undefined ? 0 : r.n + 1;
  }

  /** Records a flush's parts as pending, all at once. */
  planParts(parts: Omit<PartRow, "bytes" | "state">[]): void {
    this.db.transaction((tx) => {
      for (const p of parts) tx.insert(archiveParts).values({ ...p, state: "pending" }).run();
    });
  }

  /** After every part of a flush is in R2: drops its rows and marks its parts done, in one transaction. */
  complete(first: number, last: number, parts: readonly Pick<PartRow, "hour" | "part" | "bytes">[], also?: () => void): void {
    this.db.transaction((tx) => {
      tx.delete(archiveRows).where(between(archiveRows.id, first, last)).run();
      for (const p of parts) {
        tx.update(archiveParts).set({ state: "done", bytes: p.bytes }).where(and(eq(archiveParts.hour, p.hour), eq(archiveParts.part, p.part))).run();
      }
      also?.();
    });
  }

  /** Done parts with readings in hours [fromHour, toHour), oldest first. */
  doneParts(fromHour: number, toHour: number): PartRow[] {
    return this.db
      .select()
      .from(archiveParts)
      .where(and(eq(archiveParts.state, "done"), gte(archiveParts.hour, fromHour), lt(archiveParts.hour, toHour)))
      .orderBy(asc(archiveParts.hour), asc(archiveParts.part))
      .all();
  }

  /** Parts written so far and their bytes and readings (for stats). */
  totals(): { parts: number; bytes: number; readings: number } {
    const r = this.db
      .select({ parts: count(), bytes: sum(archiveParts.bytes), readings: sum(archiveParts.readings) })
      .from(archiveParts)
      .where(eq(archiveParts.state, "done"))
      .get();
    return { parts: r?.parts ?? 0, bytes: Number(r?.bytes ?? 0), readings: Number(r?.readings ?? 0) };
  }
}

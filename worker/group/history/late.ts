/**
 * Notes of hours that got minute buckets behind the packing pass
 * (packer.ts): a late reading or a device's backlog written below the
 * pass's mark (`pack_mark` in `settings`) notes its (series, hour) in
 * `pack_late`, in the commit's transaction, and the next pass looks at
 * those hours only instead of re-reading every plain row it left.
 *
 * Kept by the writer, not by a trigger on `minute_buckets`: a trigger's
 * lookup of the mark ran for every inserted row and cost the commit about
 * a tenth of its CPU (`bench:history`, docs/benchmarks.md); here it is one
 * read of the mark per commit and a comparison per minute bucket.
 */
import { RESOLUTION_MS } from "../../../schema/api.ts";
import { unpackHour, type PackedMinute } from "./pack.ts";

/** The settings key of the mark: the minute index below which the packing pass has passed. */
export const PACK_MARK_KEY = "pack_mark";
/** The mark as stored in `settings` (its row's value), or null when there is none (no pass yet) or it is not a minute index. */
export function packMark(value: string | undefined): number | null {
  const v = value === undefined ? NaN : Number(value);
  return Number.isSafeInteger(v) ? v : null;
}

/** Rows per statement: a Durable Object query takes at most 100 bound parameters. */
const CHUNK = 50;

/** Minute partials by device, metric and minute start (ms), as the writer takes them. */
type Minutes = ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<number, unknown>>>;

/** A minute bucket written behind the mark: its series id and minute index. */
export interface LateMinute {
  series: number;
  bucket: number;
}

/**
 * Notes the hours of `minutes` that lie below the mark (none before the
 * first pass set one); `seriesId` gives each (device, metric)'s id. Runs
 * inside the caller's transaction. Returns the minutes written behind the
 * mark, which a packed part may also hold.
 */
export function noteLateHours(sql: SqlStorage, minutes: Minutes, seriesId: (device: string, metric: string) => number): LateMinute[] {
  const mark = packMark(sql.exec<{ value: string }>("SELECT value FROM settings WHERE key = ?", PACK_MARK_KEY).toArray()[0]?.value);
  if (mark === null) return [];
  const before = mark * RESOLUTION_MS.minute;
  const notes = new Set<string>();
  const params: number[] = [];
  const late: LateMinute[] = [];
  for (const [device, metrics] of minutes) {
    for (const [metric, buckets] of metrics) {
      for (const start of buckets.keys()) {
        if (start >= before) continue;
        const id = seriesId(device, metric);
        late.push({ series: id, bucket: start / RESOLUTION_MS.minute });
        const hour = Math.floor(start / RESOLUTION_MS.hour);
        const key = `${id}:${hour}`;
        if (notes.has(key)) continue;
        notes.add(key);
        params.push(id, hour);
      }
    }
  }
  for (let i = 0; i < params.length; i += 2 * CHUNK) {
    const chunk = params.slice(i, i + 2 * CHUNK);
    const values = Array.from({ length: chunk.length / 2 }, () => "(?, ?)").join(", ");
    sql.exec(`INSERT OR IGNORE INTO pack_late (series, hour) VALUES ${values}`, ...chunk);
  }
  return late;
}

/**
 * The first of `late` whose minute's whole sum would leave the finite
 * range, or null. Such a minute is a plain row (the late readings, just
 * written) beside a packed part that holds its earlier readings: the
 * commit's upsert checked only the plain row, while queries and the next
 * packing pass add both (query.ts, packer.ts). Reads only parts that hold
 * a late minute, each once.
 */
export function packedSumOverflow(sql: SqlStorage, late: readonly LateMinute[]): LateMinute | null {
  const parts = new Map<string, PackedMinute[]>();
  for (const m of late) {
    // The part that may hold the minute: the last one starting at or before it (parts of a
    // series do not overlap), one primary-key seek; whether it reaches the minute is checked here,
    // since a filter on last_minute would make SQLite walk back through every older part.
    const row = sql
      .exec<{ first: number; last: number; data: ArrayBuffer }>(
        "SELECT first_minute AS first, last_minute AS last, data FROM minute_packs WHERE series = ? AND first_minute <= ? ORDER BY first_minute DESC LIMIT 1",
        m.series,
        m.bucket,
      )
      .toArray()[0];
    if (!row || row.last < m.bucket) continue;
    const partKey = `${m.series}@${row.first}`;
    let minutes = parts.get(partKey);
    if (!minutes) parts.set(partKey, (minutes = unpackHour(new Uint8Array(row.data))));
    const hour = Math.floor(row.first / 60);
    const packed = minutes.find((p) => hour * 60 + p.minute === m.bucket);
    if (!packed) continue;
    const plain = sql.exec<{ sum: number }>("SELECT sum FROM minute_buckets WHERE series = ? AND bucket = ?", m.series, m.bucket).toArray()[0];
    if (plain && !Number.isFinite(packed.sum + plain.sum)) return m;
  }
  return null;
}

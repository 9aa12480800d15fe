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

/** The settings key of the mark: the minute index below which the packing pass has passed. */
export const PACK_MARK_KEY = "pack_mark";
/** Rows per statement: a Durable Object query takes at most 100 bound parameters. */
const CHUNK = 50;

/** Minute partials by device, metric and minute start (ms), as the writer takes them. */
type Minutes = ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<number, unknown>>>;

/**
 * Notes the hours of `minutes` that lie below the mark (none before the
 * first pass set one); `seriesId` gives each (device, metric)'s id. Runs
 * inside the caller's transaction.
 */
export function noteLateHours(sql: SqlStorage, minutes: Minutes, seriesId: (device: string, metric: string) => number): void {
  const row = sql.exec<{ value: string }>("SELECT value FROM settings WHERE key = ?", PACK_MARK_KEY).toArray()[0];
  const mark = row ? Number(row.value) : NaN;
  if (!Number.isSafeInteger(mark)) return;
  const before = mark * RESOLUTION_MS.minute;
  const notes = new Set<string>();
  const params: number[] = [];
  for (const [device, metrics] of minutes) {
    for (const [metric, buckets] of metrics) {
      for (const start of buckets.keys()) {
        if (start >= before) continue;
        const id = seriesId(device, metric);
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
}

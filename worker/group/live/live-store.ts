/**
 * SQLite reads and writes of the live view: rejection counts, and the rows
 * the live state is rebuilt from. Written rarely compared with aggregates,
 * so plain query-builder calls are fine here.
 */
import { sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { deviceRejects, devices } from "../../../schema/tables.ts";
import { RESOLUTION_MS } from "../../../schema/api.ts";
import { bucketSql } from "../history/writer.ts";
import { OMITTED_NAMES_PER_DEVICE, type LiveBounds, type LiveSeed } from "./live-state.ts";

const HOUR_MS = RESOLUTION_MS.hour;

export class LiveStore {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /** Everything but who is online, which only the sockets know. */
  seed(bounds: Readonly<LiveBounds>): Omit<LiveSeed, "online"> {
    return { devices: this.deviceRows(), latest: this.latestValues(bounds.maxMetrics + OMITTED_NAMES_PER_DEVICE), rejects: this.rejects() };
  }

  /** Adds rejection counts (one commit's worth). */
  addRejects(counts: Map<string, Map<string, number>>, now: number): void {
    for (const [device, codes] of counts) {
      for (const [code, n] of codes) {
        this.db
          .insert(deviceRejects)
          .values({ device, code, count: n, lastAt: now })
          .onConflictDoUpdate({
            target: [deviceRejects.device, deviceRejects.code],
            set: { count: sql`${deviceRejects.count} + excluded.count`, lastAt: sql`excluded.last_at` },
          })
          .run();
      }
    }
  }

  private rejects(): { device: string; code: string; count: number; lastAt: number }[] {
    return this.db.select().from(deviceRejects).all();
  }

  /**
   * Latest value per (device, metric): the `last` of each series' newest
   * hour bucket (hours are kept longer than minutes and hold the same last
   * reading), plus rows of the pre-history `aggregates` table the backfill
   * has not moved yet (worker/group/history/backfill.ts). At most
   * `perDevice` metrics per device (by name), so a device with 400,000
   * metrics does not load them all; the live state keeps the first ones and
   * counts the rest.
   */
  private latestValues(perDevice: number): { device: string; metric: string; value: number; ts: number }[] {
    // SQLite returns the bare column `value` from the row holding max(ts):
    // https://www.sqlite.org/lang_select.html#bareagg
    const h = bucketSql("h");
    return this.db.all<{ device: string; metric: string; value: number; ts: number }>(sql`
      WITH candidates AS (
        SELECT s.device AS device, s.metric AS metric, ${sql.raw(h.last)} AS value, h.bucket * ${HOUR_MS} + ${sql.raw(h.lastOff)} AS ts
        FROM series s
        JOIN hour_buckets h ON h.series = s.id AND h.bucket = (SELECT max(bucket) FROM hour_buckets x WHERE x.series = s.id)
        UNION ALL
        SELECT a.device, a.metric, a.last, a.last_ts
        FROM aggregates a
        JOIN (SELECT device, metric, max(start) AS start FROM aggregates GROUP BY device, metric) m
          ON a.device = m.device AND a.metric = m.metric AND a.start = m.start),
      newest AS (SELECT device, metric, value, max(ts) AS ts FROM candidates GROUP BY device, metric)
      SELECT device, metric, value, ts FROM (
        SELECT device, metric, value, ts, row_number() OVER (PARTITION BY device ORDER BY metric) AS n FROM newest)
      WHERE n <= ${perDevice}
      ORDER BY device, metric`);
  }

  private deviceRows(): { id: string; lastSeen: number; lastSeq: number; readings: number }[] {
    return this.db
      .select({ id: devices.id, lastSeen: devices.lastSeen, lastSeq: devices.lastSeq, readings: devices.readings })
      .from(devices)
      .all();
  }
}

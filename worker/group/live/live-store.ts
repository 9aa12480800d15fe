/**
 * SQLite reads and writes of the live view: rejection counts, and the rows
 * the live state is rebuilt from. Written rarely compared with aggregates,
 * so plain query-builder calls are fine here.
 */
import { sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { deviceRejects, devices } from "../../../schema/tables.ts";
import { OMITTED_NAMES_PER_DEVICE, type LiveBounds, type LiveSeed } from "./live-state.ts";

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
   * bucket, at most `perDevice` metrics per device (by name), so a device
   * with 400,000 metrics does not load them all; the live state keeps the
   * first ones and counts the rest.
   */
  private latestValues(perDevice: number): { device: string; metric: string; value: number; ts: number }[] {
    return this.db.all<{ device: string; metric: string; value: number; ts: number }>(sql`
      SELECT device, metric, value, ts FROM (
        SELECT a.device AS device, a.metric AS metric, a.last AS value, a.last_ts AS ts,
          row_number() OVER (PARTITION BY a.device ORDER BY a.metric) AS n
        FROM aggregates a
        JOIN (SELECT device, metric, max(start) AS start FROM aggregates GROUP BY device, metric) m
          ON a.device = m.device AND a.metric = m.metric AND a.start = m.start)
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

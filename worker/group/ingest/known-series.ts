/**
 * The group's known series and gateways' devices, from its SQLite, for the
 * cardinality budgets (cardinality.ts).
 */
import { eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { aggregates, gatewayDevices, series } from "../../../schema/tables.ts";
import type { KnownSeries } from "./cardinality.ts";

/** Rows per insert: 3 bound parameters each, and a Durable Object query takes at most 100. */
const CHUNK = 33;

export class StoredSeries implements KnownSeries {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /**
   * Read once per wake: the `series` table (issue #13), and the keys of
   * minute rows written before it that its backfill has not moved yet.
   */
  series(): Iterable<readonly [string, string]> {
    const stored = this.db.select({ device: series.device, metric: series.metric }).from(series);
    const old = this.db.selectDistinct({ device: aggregates.device, metric: aggregates.metric }).from(aggregates);
    return stored
      .union(old)
      .all()
      .map((r) => [r.device, r.metric] as const);
  }

  gatewayDevices(gateway: string): Iterable<string> {
    return this.db
      .select({ device: gatewayDevices.device })
      .from(gatewayDevices)
      .where(eq(gatewayDevices.gateway, gateway))
      .all()
      .map((r) => r.device);
  }

  addGatewayDevices(pairs: readonly (readonly [string, string])[], now: number): void {
    for (let i = 0; i < pairs.length; i += CHUNK) {
      const rows = pairs.slice(i, i + CHUNK).map(([gateway, device]) => ({ gateway, device, firstSeen: now }));
      this.db.insert(gatewayDevices).values(rows).onConflictDoNothing().run();
    }
  }
}


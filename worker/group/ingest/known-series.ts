/**
 * The group's known series and gateways' devices, from its SQLite, for the
 * cardinality budgets (cardinality.ts).
 */
import { eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { aggregates, gatewayDevices } from "../../../schema/tables.ts";
import type { KnownSeries } from "./cardinality.ts";

/** Rows per insert: 3 bound parameters each, and a Durable Object query takes at most 100. */
const CHUNK = 33;

export class StoredSeries implements KnownSeries {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /**
   * Read once per wake. The distinct (device, metric) keys of the aggregates'
   * primary key index: a scan of the index, so its cost grows with the
   * stored buckets until series get a table of their own (issue #13).
   */
  series(): Iterable<readonly [string, string]> {
    return this.db
      .selectDistinct({ device: aggregates.device, metric: aggregates.metric })
      .from(aggregates)
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


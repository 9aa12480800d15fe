/**
 * The group's storage budget (docs/history.md, "Storage budget"): the
 * database size (`ctx.storage.sql.databaseSize`, which shrinks as rows are
 * deleted) against MAX_GROUP_BYTES. From 90 % of it on the group is under
 * pressure until it is back below 80 %: the prune task deletes the oldest
 * buckets of the finest resolution that has any (an hour of minutes, a day
 * of hours or a month of days at a time), and the group's `storage` alert
 * is active. At the budget itself batches are refused (`storage_full`), so
 * the database never grows into the platform's limit and a commit never
 * fails for lack of space.
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { readIntVars } from "../../../schema/limits.ts";
import { RESOLUTIONS, RESOLUTION_MS, type Resolution, type Retention, type StorageResponse } from "../../../schema/api.ts";
import type { BucketTally } from "./counts.ts";
import { keepOf } from "./query.ts";
import { Pruner, type Cutoffs } from "./prune.ts";

/** The budget, as a wrangler.jsonc var. */
export interface BudgetLimits {
  /** Bytes the group's database may hold (MAX_GROUP_BYTES). */
  maxGroupBytes: number;
}

/** 6 GB: the defaults' steady state (about 4.4 GB, docs/history.md) with room, well under the 10 GB platform limit. */
export const DEFAULT_BUDGET: Readonly<BudgetLimits> = { maxGroupBytes: 6_000_000_000 };

export function readBudget(env: Readonly<Record<string, unknown>>): BudgetLimits {
  return readIntVars<BudgetLimits>(env, DEFAULT_BUDGET, { maxGroupBytes: "MAX_GROUP_BYTES" }, 1);
}

/** Under pressure from this share of the budget on ... */
const HIGH = 0.9;
/** ... until below this share. */
const LOW = 0.8;
/** Buckets of the oldest a pressure pass deletes, per series: an hour of minutes, a day of hours, a month of days. */
const PRESSURE_SPAN: Readonly<Record<Resolution, number>> = { minute: 60, hour: 24, day: 30 };
const PRESSURE_CURSOR = "pressure_cursor";
const NONE: Cutoffs = { minute: null, hour: null, day: null };

export class Budget {
  private readonly size: () => number;
  readonly limits: BudgetLimits;
  private readonly pruner: Pruner;
  private readonly tally: BucketTally;

  /** `tally`: the bucket counts (the writer's, `BucketWriter.tally`), which pruning adjusts and the report reads. */
  constructor(db: DrizzleSqliteDODatabase, size: () => number, limits: BudgetLimits, tally: BucketTally) {
    this.size = size;
    this.limits = limits;
    this.pruner = new Pruner(db, tally, PRESSURE_CURSOR);
    this.tally = tally;
  }

  bytes(): number {
    return this.size();
  }

  /** At or over the budget: batches must be refused. `b`: the size if just read (each read is a query). */
  full(b = this.size()): boolean {
    return b >= this.limits.maxGroupBytes;
  }

  /** Whether pruning under pressure should run: over 90 %, or over 80 % while a pressure pass is under way or `pressed`. */
  pressed(wasPressed: boolean, b = this.size()): boolean {
    return b >= HIGH * this.limits.maxGroupBytes || (b >= LOW * this.limits.maxGroupBytes && (wasPressed || this.pruner.inProgress()));
  }

  /**
   * One step of pruning under pressure: the oldest buckets of the finest
   * resolution that has any. False when there is nothing left to prune.
   */
  pressureStep(): boolean {
    // A pass under way keeps its own cutoffs.
    if (this.pruner.inProgress()) {
      this.pruner.step(NONE);
      return true;
    }
    // After a pass (or any pruning) the stored oldest is only a lower bound; a cutoff from it might delete
    // nothing, pass after pass. The recompute comes first, a step of it per call (oldest.ts); the call
    // that ends it also prunes (two bounded steps), so a small group needs no extra alarm per pass.
    if (this.tally.oldest.stale() && this.tally.oldest.step()) return true;
    const { oldest } = this.tally.oldest.read();
    for (const r of RESOLUTIONS) {
      const o = oldest[r];
      if (o === null) continue;
      // The oldest bucket is below this cutoff (a packed part too: it lies within one hour), so the pass deletes it.
      this.pruner.step({ ...NONE, [r]: o + PRESSURE_SPAN[r] });
      return true;
    }
    return false;
  }

  /**
   * `GET /v1/groups/{group}/storage`, in time independent of the number of
   * buckets or series: the counts (counts.ts) and the oldest (oldest.ts)
   * are one row, the size O(1).
   */
  report(retention: Retention): StorageResponse {
    const { buckets, uncountedSeries } = this.tally.totals();
    const { oldest, stale } = this.tally.oldest.read();
    const resolutions = {} as StorageResponse["resolutions"];
    for (const r of RESOLUTIONS) {
      const o = oldest[r];
      resolutions[r] = { buckets: buckets[r], oldest: o === null ? null : o * RESOLUTION_MS[r], keepMs: keepOf(retention, r) };
    }
    return { bytes: this.size(), budgetBytes: this.limits.maxGroupBytes, resolutions, uncountedSeries, oldestStale: stale };
  }
}

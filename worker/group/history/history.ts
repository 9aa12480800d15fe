/**
 * The history stage (docs/history.md): queries over minute, hour and day
 * buckets, the group's retention and storage budget, and the timed work on
 * them (pruning past the retention or under storage pressure; backfill of a
 * group written before the history tables). Bucket writes themselves happen
 * in the group commit's transaction (writer.ts, called by ingest/store.ts).
 *
 * In memory: the retention, re-read from SQLite on first use after a wake.
 * Whether the group is under storage pressure is a settings row.
 */
import { eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTIONS, Retention, type AggregateQuery, type AggregatesResponse, type StorageResponse } from "../../../schema/api.ts";
import { settings } from "../../../schema/tables.ts";
import type { TaskRequester } from "../scheduler.ts";
import { Backfill, BACKFILL_TASK } from "./backfill.ts";
import { Budget, type BudgetLimits } from "./budget.ts";
import { COUNT_TASK, type BucketTally } from "./counts.ts";
import { OLDEST_TASK } from "./oldest.ts";
import { Packer } from "./packer.ts";
import { cutoffOf, Pruner, type Cutoffs } from "./prune.ts";
import { BucketQueries, keepOf } from "./query.ts";
import type { BucketWriter } from "./writer.ts";

/** What the history stage needs from its host. */
export interface HistoryHost {
  /** Schedules the backfill and pruning tasks. */
  readonly scheduler: TaskRequester;
  /** The database's size, bytes (`ctx.storage.sql.databaseSize`). */
  databaseSize(): number;
  /** Raises (`on`) or clears the group's `storage` alert, with the size and the budget. */
  storageAlert(on: boolean, bytes: number, budget: number, now: number): void;
}

/** Retention when the group never set one (the arithmetic is in docs/history.md). */
export const DEFAULT_RETENTION: Readonly<Retention> = { minuteMs: 3 * 86_400_000, hourMs: 365 * 86_400_000, dayMs: null };

const RETENTION_KEY = "retention";
/** The scheduler task that deletes buckets past their retention. */
export const PRUNE_TASK = "history.prune";
/** A full pruning pass runs at least this often. */
export const PRUNE_EVERY_MS = 3_600_000;
/** How long a peer refused with `storage_full` should wait, and how often a full group retries pruning. */
export const FULL_RETRY_MS = 10_000;
const PRESSURE_KEY = "storage_pressure";

export class History {
  private readonly db: DrizzleSqliteDODatabase;
  private readonly host: HistoryHost;
  private readonly queries: BucketQueries;
  private readonly backfill: Backfill;
  private readonly pruner: Pruner;
  private readonly packer: Packer;
  private readonly budget: Budget;
  private readonly tally: BucketTally;
  private cachedRetention: Retention | null = null;

  constructor(db: DrizzleSqliteDODatabase, writer: BucketWriter, host: HistoryHost, limits: BudgetLimits) {
    this.db = db;
    this.host = host;
    this.queries = new BucketQueries(db);
    this.backfill = new Backfill(db, writer);
    this.tally = writer.tally;
    this.pruner = new Pruner(db, this.tally);
    this.packer = new Packer(db, this.tally);
    this.budget = new Budget(db, () => host.databaseSize(), limits, this.tally);
  }

  /** After the migrations, on every wake: resumes the backfill if old rows remain. */
  wake(now: number): void {
    if (this.queries.hasLegacy()) this.host.scheduler.request(BACKFILL_TASK, now);
    if (this.tally.pending()) this.host.scheduler.request(COUNT_TASK, now);
    if (this.tally.oldest.stale()) this.host.scheduler.request(OLDEST_TASK, now);
    // Keeps an earlier due time: this only makes sure a pass is never more than an hour away.
    this.host.scheduler.request(PRUNE_TASK, this.pruner.inProgress() || this.packer.inProgress() ? now : now + PRUNE_EVERY_MS);
  }

  /** Task BACKFILL_TASK: one chunk; runs again at once while rows remain. */
  backfillStep(now: number): number | null {
    return this.backfill.step() ? now : null;
  }

  /** Task COUNT_TASK: counts a few series written before the bucket counters; runs again at once while some remain. */
  countStep(now: number): number | null {
    return this.tally.step() ? now : null;
  }

  /**
   * Task OLDEST_TASK: a step of recomputing the oldest buckets after
   * pruning; runs again at once while series remain. Not while a retention
   * pass is under way (each of its steps that deletes starts the recompute
   * over): the pass asks for it when it ends. Nor under storage pressure,
   * whose steps run it themselves before each pass (budget.ts).
   */
  oldestStep(now: number): number | null {
    if (this.pruner.inProgress() || this.underPressure()) return null;
    return this.tally.oldest.step() ? now : null;
  }

  /**
   * Before a commit with readings (the ingest host's `storageFull`): null,
   * or FULL_RETRY_MS when the group is at its budget. Near it, asks for
   * pruning now.
   */
  storageFull(now: number): number | null {
    // Runs before every commit: one read of the size for both checks.
    const bytes = this.budget.bytes();
    if (this.budget.full(bytes)) {
      this.host.scheduler.request(PRUNE_TASK, now);
      return FULL_RETRY_MS;
    }
    if (this.budget.pressed(false, bytes)) this.host.scheduler.request(PRUNE_TASK, now);
    return null;
  }

  /** `GET /v1/groups/{group}/storage`. */
  storage(): StorageResponse {
    return this.budget.report(this.retention());
  }

  /**
   * Task PRUNE_TASK. Under storage pressure: one step of pruning the oldest
   * buckets (again at once; every FULL_RETRY_MS when nothing is left), with
   * the `storage` alert raised. Otherwise one step of a pass by the
   * retention; the next pass an hour after one ends.
   */
  pruneStep(now: number): number | null {
    const next = this.pruneOrPress(now);
    if (!this.pruner.inProgress() && this.tally.oldest.stale()) this.host.scheduler.request(OLDEST_TASK, now);
    return next;
  }

  private pruneOrPress(now: number): number | null {
    const was = this.underPressure();
    const pressed = this.budget.pressed(was);
    if (pressed !== was) {
      if (pressed) this.db.insert(settings).values({ key: PRESSURE_KEY, value: "1" }).onConflictDoNothing().run();
      else this.db.delete(settings).where(eq(settings.key, PRESSURE_KEY)).run();
      this.host.storageAlert(pressed, this.budget.bytes(), this.budget.limits.maxGroupBytes, now);
    }
    if (pressed) return this.budget.pressureStep() ? now : now + FULL_RETRY_MS;
    // After each retention pass, a packing pass of closed hours (packer.ts); the next pair an hour later.
    if (this.packer.inProgress()) return this.packer.step(now).done ? now + PRUNE_EVERY_MS : now;
    const r = this.retention();
    const cutoffs = Object.fromEntries(RESOLUTIONS.map((res) => [res, cutoffOf(res, keepOf(r, res), now)])) as Cutoffs;
    if (!this.pruner.step(cutoffs).done) return now;
    return this.packer.step(now).done ? now + PRUNE_EVERY_MS : now;
  }

  private underPressure(): boolean {
    return this.db.select().from(settings).where(eq(settings.key, PRESSURE_KEY)).get() !== undefined;
  }

  /** Sets the retention; a pruning pass by it starts at once (the alarm fires now). */
  putRetention(r: Retention, now: number): Retention {
    const value = JSON.stringify(r);
    this.db.transaction(() => {
      this.db.insert(settings).values({ key: RETENTION_KEY, value }).onConflictDoUpdate({ target: settings.key, set: { value } }).run();
      this.pruner.reset();
    });
    this.cachedRetention = r;
    this.host.scheduler.request(PRUNE_TASK, now);
    return r;
  }

  query(q: AggregateQuery, now: number): AggregatesResponse {
    return this.queries.query(q, this.retention(), now);
  }

  /** The group's retention (the defaults until an operator sets one). */
  retention(): Retention {
    if (this.cachedRetention) return this.cachedRetention;
    const row = this.db.select().from(settings).where(eq(settings.key, RETENTION_KEY)).get();
    let r: Retention = DEFAULT_RETENTION;
    if (row) {
      const parsed = Retention.safeParse(JSON.parse(row.value) as unknown);
      if (parsed.success) r = parsed.data;
    }
    return (this.cachedRetention = r);
  }
}

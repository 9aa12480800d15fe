/**
 * The history stage (docs/history.md): queries over minute, hour and day
 * buckets, the group's retention, and the timed work on them (pruning past
 * the retention; backfill of a group written before the history tables).
 * Bucket writes themselves happen
 * in the group commit's transaction (writer.ts, called by ingest/store.ts).
 *
 * In memory: the retention, re-read from SQLite on first use after a wake.
 */
import { eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RESOLUTIONS, Retention, type AggregateQuery, type AggregatesResponse } from "../../../schema/api.ts";
import { settings } from "../../../schema/tables.ts";
import type { TaskRequester } from "../scheduler.ts";
import { Backfill, BACKFILL_TASK } from "./backfill.ts";
import { cutoffOf, Pruner, type Cutoffs } from "./prune.ts";
import { BucketQueries, keepOf } from "./query.ts";
import type { BucketWriter } from "./writer.ts";

/** What the history stage needs from its host. */
export interface HistoryHost {
  /** Schedules the backfill (and pruning) tasks. */
  readonly scheduler: TaskRequester;
}

/** Retention when the group never set one (the arithmetic is in docs/history.md). */
export const DEFAULT_RETENTION: Readonly<Retention> = { minuteMs: 3 * 86_400_000, hourMs: 365 * 86_400_000, dayMs: null };

const RETENTION_KEY = "retention";
/** The scheduler task that deletes buckets past their retention. */
export const PRUNE_TASK = "history.prune";
/** A full pruning pass runs at least this often. */
export const PRUNE_EVERY_MS = 3_600_000;

export class History {
  private readonly db: DrizzleSqliteDODatabase;
  private readonly host: HistoryHost;
  private readonly queries: BucketQueries;
  private readonly backfill: Backfill;
  private readonly pruner: Pruner;
  private cachedRetention: Retention | null = null;

  constructor(db: DrizzleSqliteDODatabase, writer: BucketWriter, host: HistoryHost) {
    this.db = db;
    this.host = host;
    this.queries = new BucketQueries(db);
    this.backfill = new Backfill(db, writer);
    this.pruner = new Pruner(db);
  }

  /** After the migrations, on every wake: resumes the backfill if old rows remain. */
  wake(now: number): void {
    if (this.queries.hasLegacy()) this.host.scheduler.request(BACKFILL_TASK, now);
    // Keeps an earlier due time: this only makes sure a pass is never more than an hour away.
    this.host.scheduler.request(PRUNE_TASK, this.pruner.inProgress() ? now : now + PRUNE_EVERY_MS);
  }

  /** Task BACKFILL_TASK: one chunk; runs again at once while rows remain. */
  backfillStep(now: number): number | null {
    return this.backfill.step() ? now : null;
  }

  /** Task PRUNE_TASK: one step of a pass by the retention; the next pass an hour after one ends. */
  pruneStep(now: number): number | null {
    const r = this.retention();
    const cutoffs = Object.fromEntries(RESOLUTIONS.map((res) => [res, cutoffOf(res, keepOf(r, res), now)])) as Cutoffs;
    return this.pruner.step(cutoffs).done ? now + PRUNE_EVERY_MS : now;
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

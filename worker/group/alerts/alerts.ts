/**
 * The alerts stage: rules, threshold alerts evaluated inside the group
 * commit, and offline alerts checked by alarm. Rules and active alerts are
 * rebuilt from SQLite on first use after a wake.
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { readIntVars } from "../../../schema/limits.ts";
import type { Alert, RulesDoc } from "../../../schema/rules.ts";
import type { TaskRequester } from "../scheduler.ts";
import type { DeviceReadings } from "../ingest/commit.ts";
import { AlertStore } from "./alert-store.ts";
import { Alerting, type FlapLimits } from "./alerting.ts";

/** What the alerts stage needs from its host. */
export interface AlertsHost {
  /** The group's id, for logs. */
  name(): string;
  /** Schedules the offline check (task OFFLINE_TASK), which also wakes a hibernating group. */
  readonly scheduler: TaskRequester;
}

/** Alerts of the whole group (device ""), at most one active of each kind. */
export type GroupAlertKind = "archive" | "storage";

/** The scheduler task that checks for offline devices. */
export const OFFLINE_TASK = "alerts.offline";

/** Alert budgets, as wrangler.jsonc vars (docs/protocol.md, "Rules and alerts"). */
export interface AlertLimits extends FlapLimits {
  /** Alert rows kept; past it the oldest cleared ones are pruned (ALERT_MAX_ROWS; 0: keep all). */
  maxRows: number;
}

export const DEFAULT_ALERT_LIMITS: Readonly<AlertLimits> = { minIntervalMs: 10_000, burst: 4, maxRows: 10_000 };

const ALERT_VARS: Readonly<Record<keyof AlertLimits, string>> = {
  minIntervalMs: "ALERT_MIN_INTERVAL_MS",
  burst: "ALERT_CHANGE_BURST",
  maxRows: "ALERT_MAX_ROWS",
};

/** Alert limits from env vars; a var that is set but not a non-negative integer throws, as limits do. */
export function readAlertLimits(env: Readonly<Record<string, unknown>>): AlertLimits {
  return readIntVars<AlertLimits>(env, DEFAULT_ALERT_LIMITS, ALERT_VARS);
}

export class Alerts {
  private readonly store: AlertStore;
  private readonly alerting: Alerting;
  private readonly host: AlertsHost;
  private readonly limits: AlertLimits;
  private loaded = false;
  private alarmChecked = false;

  constructor(db: DrizzleSqliteDODatabase, host: AlertsHost, limits: AlertLimits = DEFAULT_ALERT_LIMITS) {
    this.store = new AlertStore(db);
    this.host = host;
    this.limits = limits;
    this.alerting = new Alerting(limits);
  }

  /** Loads rules and active alerts from SQLite, once per wake. */
  private ensureLoaded(): Alerting {
    if (!this.loaded) {
      this.alerting.load(this.store.readRules(), this.store.activeAlerts());
      this.loaded = true;
    }
    return this.alerting;
  }

  /** Inside the commit transaction: evaluates the applied readings; returns alerts raised or cleared. */
  evaluate(batches: readonly DeviceReadings[], now: number): Alert[] {
    const alerting = this.ensureLoaded();
    const changes: Alert[] = [];
    for (const b of batches) changes.push(...alerting.evaluate(b.device, b.readings, now, this.store));
    // Raised alerts add rows: keep the table within its cap, in the same transaction.
    if (changes.some((a) => a.clearedAt === null && a.raisedAt === now && !a.flapping)) this.store.prune(this.limits.maxRows);
    return changes;
  }

  /** After a commit: arms the offline alarm once per wake when offline alerts are on. */
  afterCommit(now: number): void {
    const after = this.alerting.doc.offlineAfterMs;
    if (after > 0 && !this.alarmChecked) {
      this.alarmChecked = true;
      this.host.scheduler.request(OFFLINE_TASK, now + after);
    }
  }

  /** After a failed commit: in-memory rule state may not match SQLite any more. */
  afterFailure(): void {
    this.loaded = false;
  }

  rules(): RulesDoc {
    return this.ensureLoaded().doc;
  }

  putRules(doc: RulesDoc, now: number): RulesDoc {
    this.store.writeRules(doc, now);
    this.loaded = false;
    this.alarmChecked = false;
    if (doc.offlineAfterMs > 0) this.host.scheduler.request(OFFLINE_TASK, now + doc.offlineAfterMs);
    return this.ensureLoaded().doc;
  }

  list(activeOnly: boolean, limit: number): Alert[] {
    return this.store.listAlerts(activeOnly, limit);
  }

  /**
   * A group-level condition holds (`archive`: the raw archive's backlog
   * reached its cap; `storage`: the database neared its budget): raises the
   * group's one alert of that kind unless it is active, with `value` and
   * `threshold` in the condition's unit. Returns the alert raised, or null.
   */
  raiseGroup(kind: GroupAlertKind, value: number, threshold: number, now: number): Alert | null {
    if (this.store.activeAlerts().some((a) => a.kind === kind)) return null;
    const a = this.store.insertAlert({ kind, ruleId: null, device: "", metric: null, op: null, threshold, value, raisedAt: now, clearedAt: null });
    this.store.prune(this.limits.maxRows);
    return a;
  }

  /**
   * A batch of `sender` (a device or gateway id) was refused past a
   * cardinality budget (`code`): raises a `budget` alert, unless one for the
   * same sender and code is active. Null when none was raised.
   */
  raiseBudget(sender: string, code: string, limit: number, value: number, now: number): Alert | null {
    if (this.store.activeAlerts().some((a) => a.kind === "budget" && a.device === sender && a.metric === code)) return null;
    const a = this.store.insertAlert({ kind: "budget", ruleId: null, device: sender, metric: code, op: null, threshold: limit, value, raisedAt: now, clearedAt: null });
    this.store.prune(this.limits.maxRows);
    return a;
  }

  /** The condition is over: clears the group's alert of that kind, if active. */
  clearGroup(kind: GroupAlertKind, now: number): Alert | null {
    const a = this.store.activeAlerts().find((x) => x.kind === kind);
    if (!a) return null;
    this.store.clearAlert(a.id, now);
    return { ...a, clearedAt: now };
  }

  /** The offline check (task OFFLINE_TASK): the alerts it raised, and when to check next (null: no device to watch). */
  checkOffline(now: number): { raised: Alert[]; next: number | null } {
    const alerting = this.ensureLoaded();
    const devices = this.store.lastSeenAll();
    const raised = alerting.checkOffline(devices, now, this.store);
    const next = alerting.nextOfflineCheck(devices);
    return { raised, next: next === null ? null : Math.max(next, now + 1000) };
  }
}

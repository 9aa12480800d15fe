/**
 * The alerts stage: rules, threshold alerts evaluated inside the group
 * commit, offline alerts checked by alarm, and the group-level and budget
 * alerts other stages raise. Rules and active alerts are rebuilt from
 * SQLite on first use after a wake; a budget alert's last refusal time is
 * in the object's KV (`alerts.budget:{id}`), so its clearing survives
 * hibernation and eviction too.
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { readIntVars } from "../../../schema/limits.ts";
import type { Alert, RulesDoc } from "../../../schema/rules.ts";
import type { Peer } from "../peer.ts";
import type { TaskRequester } from "../scheduler.ts";
import type { DeviceReadings } from "../ingest/commit.ts";
import { AlertStore } from "./alert-store.ts";
import { Alerting, type FlapLimits } from "./alerting.ts";

/** What the alerts stage needs from its host. */
export interface AlertsHost {
  /** The group's id, for logs. */
  name(): string;
  /** Schedules the offline check (OFFLINE_TASK) and the budget alerts' clearing (BUDGET_TASK); either also wakes a hibernating group. */
  readonly scheduler: TaskRequester;
}

/** Alerts of the whole group (device ""), at most one active of each kind. */
export type GroupAlertKind = "archive" | "storage";

/** The scheduler task that checks for offline devices. */
export const OFFLINE_TASK = "alerts.offline";
/** The scheduler task that clears budget alerts whose sender has gone quiet. */
export const BUDGET_TASK = "alerts.budget";

/** KV key of a budget alert's last refusal (absent: none since it was raised). */
const LAST_REFUSAL = "alerts.budget:";

/** Alert budgets, as wrangler.jsonc vars (docs/protocol.md, "Rules and alerts"). */
export interface AlertLimits extends FlapLimits {
  /** Alert rows kept; past it the oldest cleared ones are pruned (ALERT_MAX_ROWS; 0: keep all). */
  maxRows: number;
  /** A `budget` alert clears once its sender (kind and id) went this long without another refusal of that code (BUDGET_ALERT_CLEAR_MS). */
  budgetClearMs: number;
}

export const DEFAULT_ALERT_LIMITS: Readonly<AlertLimits> = { minIntervalMs: 10_000, burst: 4, maxRows: 10_000, budgetClearMs: 600_000 };

const ALERT_VARS: Readonly<Record<keyof AlertLimits, string>> = {
  minIntervalMs: "ALERT_MIN_INTERVAL_MS",
  burst: "ALERT_CHANGE_BURST",
  maxRows: "ALERT_MAX_ROWS",
  budgetClearMs: "BUDGET_ALERT_CLEAR_MS",
};

/** Alert limits from env vars; a var that is set but not a non-negative integer throws, as limits do. */
export function readAlertLimits(env: Readonly<Record<string, unknown>>): AlertLimits {
  return readIntVars<AlertLimits>(env, DEFAULT_ALERT_LIMITS, ALERT_VARS);
}

export class Alerts {
  private readonly store: AlertStore;
  private readonly kv: SyncKvStorage;
  private readonly alerting: Alerting;
  private readonly host: AlertsHost;
  private readonly limits: AlertLimits;
  private loaded = false;
  private alarmChecked = false;

  constructor(storage: { db: DrizzleSqliteDODatabase; kv: SyncKvStorage }, host: AlertsHost, limits: AlertLimits = DEFAULT_ALERT_LIMITS) {
    this.store = new AlertStore(storage.db);
    this.kv = storage.kv;
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
   * A batch of `sender` (a device or a gateway) was refused past a
   * cardinality budget (`code`): raises a `budget` alert, unless one for the
   * same sender (kind and id: a device and a gateway may share an id) and
   * code is active, in which case this refusal pushes its clearing back
   * (BUDGET_TASK clears it `budgetClearMs` after the last refusal). Null
   * when none was raised.
   */
  raiseBudget(sender: Peer, code: string, limit: number, value: number, now: number): Alert | null {
    const active = this.store.activeAlerts().find((a) => a.kind === "budget" && a.device === sender.id && a.peerKind === sender.kind && a.metric === code);
    if (active) {
      // Refusals come as fast as a misbehaving sender sends: write only when the time moved.
      if (this.kv.get<unknown>(LAST_REFUSAL + active.id) !== now) this.kv.put(LAST_REFUSAL + active.id, now);
      return null;
    }
    const a = this.store.insertAlert({ kind: "budget", ruleId: null, device: sender.id, peerKind: sender.kind, metric: code, op: null, threshold: limit, value, raisedAt: now, clearedAt: null });
    this.store.prune(this.limits.maxRows);
    this.host.scheduler.request(BUDGET_TASK, now + this.limits.budgetClearMs);
    return a;
  }

  /**
   * The budget check (task BUDGET_TASK): clears each `budget` alert whose
   * sender has had no batch refused for that code in `budgetClearMs`.
   * Returns the alerts cleared, and when to check next (null: none left).
   */
  clearQuietBudgets(now: number): { cleared: Alert[]; next: number | null } {
    const cleared: Alert[] = [];
    let next: number | null = null;
    for (const a of this.store.activeAlerts()) {
      if (a.kind !== "budget") continue;
      const last = this.kv.get<unknown>(LAST_REFUSAL + a.id);
      const due = (typeof last === "number" ? Math.max(last, a.raisedAt) : a.raisedAt) + this.limits.budgetClearMs;
      if (due > now) {
        next = next === null ? due : Math.min(next, due);
        continue;
      }
      this.store.clearAlert(a.id, now);
      this.kv.delete(LAST_REFUSAL + a.id);
      cleared.push({ ...a, clearedAt: now });
    }
    return { cleared, next };
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

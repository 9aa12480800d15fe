/**
 * SQLite for rules, settings and alerts, through Drizzle.
 * These are written rarely compared with aggregates, so plain query-builder
 * calls are fine here (no prepared statements).
 */
import { and, desc, eq, isNotNull, isNull, lte } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { RULE_OPS, type Alert, type Rule, type RuleOp, type RulesDoc } from "../../../schema/rules.ts";
import { alerts, devices, rules, settings } from "../../../schema/tables.ts";
import type { AlertWriter } from "./alerting.ts";

const OFFLINE_KEY = "offline_after_ms";

function toOp(s: string | null): RuleOp | null {
  return s !== null && (RULE_OPS as readonly string[]).includes(s) ? (s as RuleOp) : null;
}

function toAlert(r: typeof alerts.$inferSelect): Alert {
  const a: Alert = {
    id: r.id,
    kind: r.kind === "offline" || r.kind === "archive" || r.kind === "budget" || r.kind === "storage" ? r.kind : "threshold",
    ruleId: r.ruleId,
    device: r.device,
    // Null (threshold and offline alerts, and budget alerts older than the column) is a device's; the group's own alerts name no peer.
    ...(r.device === "" ? {} : { peerKind: r.peerKind === "gateway" ? "gateway" : "device" }),
    metric: r.metric,
    op: toOp(r.op),
    threshold: r.threshold,
    value: r.value,
    raisedAt: r.raisedAt,
    clearedAt: r.clearedAt,
  };
  if (r.flapping !== 0) a.flapping = true;
  return a;
}

export class AlertStore implements AlertWriter {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  readRules(): RulesDoc {
    const rows = this.db.select().from(rules).orderBy(rules.id).all();
    const out: Rule[] = [];
    for (const r of rows) {
      const op = toOp(r.op);
      if (!op) continue;
      const rule: Rule = { id: r.id, metric: r.metric, op, threshold: r.threshold, forMs: r.forMs };
      if (r.device !== null) rule.device = r.device;
      if (r.hysteresis !== null) rule.hysteresis = r.hysteresis;
      if (r.minIntervalMs !== null) rule.minIntervalMs = r.minIntervalMs;
      out.push(rule);
    }
    const offline = this.db.select().from(settings).where(eq(settings.key, OFFLINE_KEY)).get();
    return { rules: out, offlineAfterMs: offline ? Number(offline.value) : 0 };
  }

  /**
   * Replaces the rules. Active threshold alerts of rules that are gone or
   * changed are cleared, since the condition they reported no longer exists,
   * and offline alerts when offline alerting is turned off. Alerts no rule
   * raised (archive, storage, budget) are left to the stage that raised them.
   */
  writeRules(doc: RulesDoc, now: number): void {
    const old = new Map(this.readRules().rules.map((r) => [r.id, JSON.stringify(r)]));
    this.db.transaction(() => {
      this.db.delete(rules).run();
      for (const r of doc.rules) {
        this.db.insert(rules).values({ id: r.id, metric: r.metric, op: r.op, threshold: r.threshold, device: r.device ?? null, forMs: r.forMs, hysteresis: r.hysteresis ?? null, minIntervalMs: r.minIntervalMs ?? null }).run();
      }
      this.db
        .insert(settings)
        .values({ key: OFFLINE_KEY, value: String(doc.offlineAfterMs) })
        .onConflictDoUpdate({ target: settings.key, set: { value: String(doc.offlineAfterMs) } })
        .run();
      const kept = new Set(doc.rules.filter((r) => old.get(r.id) === JSON.stringify(r)).map((r) => r.id));
      for (const a of this.activeAlerts()) {
        const stale = a.kind === "threshold" ? !kept.has(a.ruleId ?? "") : a.kind === "offline" && doc.offlineAfterMs === 0;
        if (stale) this.clearAlert(a.id, now);
      }
    });
  }

  activeAlerts(): Alert[] {
    return this.db.select().from(alerts).where(isNull(alerts.clearedAt)).orderBy(desc(alerts.raisedAt), desc(alerts.id)).all().map(toAlert);
  }

  listAlerts(activeOnly: boolean, limit: number): Alert[] {
    const q = this.db.select().from(alerts);
    const rows = (activeOnly ? q.where(isNull(alerts.clearedAt)) : q).orderBy(desc(alerts.raisedAt), desc(alerts.id)).limit(limit).all();
    return rows.map(toAlert);
  }

  insertAlert(a: Omit<Alert, "id">): Alert {
    const row = this.db
      .insert(alerts)
      .values({
        kind: a.kind,
        ruleId: a.ruleId,
        device: a.device,
        metric: a.metric,
        op: a.op,
        threshold: a.threshold,
        value: a.value,
        raisedAt: a.raisedAt,
        clearedAt: a.clearedAt,
        peerKind: a.peerKind ?? null,
      })
      .returning()
      .get();
    return toAlert(row);
  }

  markFlapping(id: number): void {
    this.db.update(alerts).set({ flapping: 1 }).where(eq(alerts.id, id)).run();
  }

  /**
   * Keeps at most `maxRows` alerts: deletes the oldest cleared ones beyond
   * it (active alerts stay whatever their number). Returns how many went.
   */
  prune(maxRows: number): number {
    if (maxRows <= 0) return 0;
    const cutoff = this.db.select({ id: alerts.id }).from(alerts).orderBy(desc(alerts.id)).limit(1).offset(maxRows).get();
    if (!cutoff) return 0;
    const gone = this.db.delete(alerts).where(and(lte(alerts.id, cutoff.id), isNotNull(alerts.clearedAt))).returning({ id: alerts.id }).all();
    return gone.length;
  }

  clearAlert(id: number, at: number): void {
    this.db.update(alerts).set({ clearedAt: at }).where(and(eq(alerts.id, id), isNull(alerts.clearedAt))).run();
  }

  lastSeenAll(): { id: string; lastSeen: number }[] {
    return this.db.select({ id: devices.id, lastSeen: devices.lastSeen }).from(devices).all();
  }
}

/**
 * Threshold and offline alerts, evaluated on ingest inside the group
 * commit's transaction, so an alert is stored together with the readings
 * that raised it.
 *
 * In-memory state: the rules (reloaded from SQLite on wake), the active
 * alerts (reloaded from SQLite), and for each (rule, device) the timestamp
 * since which the condition has held. That last one is lost on eviction or
 * hibernation: a `forMs` hold then restarts from the next reading.
 *
 * Flapping (issue #12): a device whose value alternates around a threshold
 * would raise and clear an alert on every reading, a write each. Each
 * (rule, device) has a bucket of changes in hub time: `burst` changes at
 * once, then one per `minIntervalMs`. Raising always happens (a real
 * alarm must never wait) and takes a change if one is left; a clear due
 * while the bucket is empty is held back: the alert stays active and is
 * marked `flapping` (one write). A raise needs a clear before it, so one
 * (rule, device) costs at most about 2 x (burst + hub time / minIntervalMs)
 * + 1 alert writes, whatever its readings. The buckets are in memory;
 * after a wake they start full.
 */
import type { Reading } from "../../../schema/protocol.ts";
import { clearThreshold, ruleHolds, type Alert, type Rule, type RulesDoc } from "../../../schema/rules.ts";

/** Writes alerts; called inside the commit transaction. */
export interface AlertWriter {
  insertAlert(a: Omit<Alert, "id">): Alert;
  clearAlert(id: number, at: number): void;
  markFlapping(id: number): void;
}

/** How often one alert may change, in hub time. */
export interface FlapLimits {
  /** Least time between changes once the burst is spent, for rules without their own `minIntervalMs` (0: no limit). */
  minIntervalMs: number;
  /** Changes allowed back to back, so one raise and its clear are never held back. */
  burst: number;
}

/** Without limits: every change happens (pure tests of the rules themselves). */
export const NO_FLAP_LIMITS: Readonly<FlapLimits> = { minIntervalMs: 0, burst: 1 };

interface ChangeBucket {
  tokens: number;
  at: number;
}

const OFFLINE = "\u0000offline";

function key(ruleId: string, device: string): string {
  return `${ruleId}\u0000${device}`;
}

export class Alerting {
  doc: RulesDoc = { rules: [], offlineAfterMs: 0 };
  private byMetric = new Map<string, Rule[]>();
  private readonly since = new Map<string, number>();
  private readonly active = new Map<string, Alert>();
  private readonly changes = new Map<string, ChangeBucket>();
  private readonly flap: FlapLimits;

  constructor(flap: FlapLimits = NO_FLAP_LIMITS) {
    this.flap = flap;
  }

  /** Takes one change from the (rule, device) bucket at hub time `now`; false when the change must wait. */
  private mayChange(k: string, rule: Rule, now: number): boolean {
    const interval = rule.minIntervalMs ?? this.flap.minIntervalMs;
    if (interval <= 0) return true;
    const burst = Math.max(1, this.flap.burst);
    let b = this.changes.get(k);
    if (!b) {
      b = { tokens: burst, at: now };
      this.changes.set(k, b);
    }
    b.tokens = Math.min(burst, b.tokens + Math.max(0, now - b.at) / interval);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  load(doc: RulesDoc, active: Alert[]): void {
    this.doc = doc;
    this.byMetric = new Map();
    for (const r of doc.rules) {
      const list = this.byMetric.get(r.metric) ?? [];
      list.push(r);
      this.byMetric.set(r.metric, list);
    }
    this.since.clear();
    this.active.clear();
    this.changes.clear();
    for (const a of active) this.active.set(a.kind === "offline" ? key(OFFLINE, a.device) : key(a.ruleId ?? "", a.device), a);
  }

  get hasRules(): boolean {
    return this.byMetric.size > 0;
  }

  activeAlerts(): Alert[] {
    return [...this.active.values()].sort((a, b) => b.raisedAt - a.raisedAt);
  }

  /**
   * Evaluates one applied batch, reading by reading, and returns the alerts
   * it raised or cleared (already written through `w`).
   */
  evaluate(device: string, readings: Iterable<Reading>, now: number, w: AlertWriter): Alert[] {
    const changes: Alert[] = [];
    const offline = this.active.get(key(OFFLINE, device));
    if (offline) {
      w.clearAlert(offline.id, now);
      this.active.delete(key(OFFLINE, device));
      changes.push({ ...offline, clearedAt: now });
    }
    if (this.byMetric.size === 0) return changes;
    for (const [ts, metric, value] of readings) {
      const list = this.byMetric.get(metric);
      if (!list) continue;
      for (const rule of list) {
        if (rule.device !== undefined && rule.device !== device) continue;
        const k = key(rule.id, device);
        const current = this.active.get(k);
        if (!ruleHolds(rule.op, value, rule.threshold)) {
          this.since.delete(k);
          // Between the threshold and the clear threshold (hysteresis) an active alert stays.
          if (current && !ruleHolds(rule.op, value, clearThreshold(rule))) {
            if (this.mayChange(k, rule, now)) {
              w.clearAlert(current.id, now);
              this.active.delete(k);
              changes.push({ ...current, clearedAt: now });
            } else if (!current.flapping) {
              w.markFlapping(current.id);
              current.flapping = true;
              changes.push({ ...current });
            }
          }
          continue;
        }
        if (current) continue;
        let start = this.since.get(k);
        if (start === undefined) {
          start = ts;
          this.since.set(k, ts);
        }
        if (ts - start >= rule.forMs) {
          this.mayChange(k, rule, now);
          const alert = w.insertAlert({
            kind: "threshold",
            ruleId: rule.id,
            device,
            metric,
            op: rule.op,
            threshold: rule.threshold,
            value,
            raisedAt: now,
            clearedAt: null,
          });
          this.active.set(k, alert);
          this.since.delete(k);
          changes.push(alert);
        }
      }
    }
    return changes;
  }

  /** Raises offline alerts for silent devices; returns them. */
  checkOffline(devices: { id: string; lastSeen: number }[], now: number, w: AlertWriter): Alert[] {
    const after = this.doc.offlineAfterMs;
    if (after <= 0) return [];
    const raised: Alert[] = [];
    for (const d of devices) {
      if (now - d.lastSeen < after || this.active.has(key(OFFLINE, d.id))) continue;
      const alert = w.insertAlert({
        kind: "offline",
        ruleId: null,
        device: d.id,
        metric: null,
        op: null,
        threshold: after,
        value: now - d.lastSeen,
        raisedAt: now,
        clearedAt: null,
      });
      this.active.set(key(OFFLINE, d.id), alert);
      raised.push(alert);
    }
    return raised;
  }

  /** When the next offline check is due, or null if no device can go silent unnoticed. */
  nextOfflineCheck(devices: { id: string; lastSeen: number }[]): number | null {
    const after = this.doc.offlineAfterMs;
    if (after <= 0) return null;
    let next: number | null = null;
    for (const d of devices) {
      if (this.active.has(key(OFFLINE, d.id))) continue;
      const due = d.lastSeen + after;
      if (next === null || due < next) next = due;
    }
    return next;
  }
}

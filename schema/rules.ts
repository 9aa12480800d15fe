/**
 * Alert rules (docs/protocol.md, "Rules and alerts"): types and the
 * validator for the body of PUT /v1/groups/{group}/rules.
 */
import { ID_PATTERN, METRIC_PATTERN, type PeerKind } from "./protocol.ts";

export const RULE_OPS = [">", ">=", "<", "<=", "==", "!="] as const;
export type RuleOp = (typeof RULE_OPS)[number];

export interface Rule {
  id: string;
  metric: string;
  op: RuleOp;
  threshold: number;
  /** Only this device; absent means every device of the group. */
  device?: string;
  /** How long the condition must hold (by reading timestamps) before the alert is raised. */
  forMs: number;
  /**
   * How far back past the threshold a value must go to clear the alert:
   * the op is checked against threshold - hysteresis (`>`, `>=`) or
   * threshold + hysteresis (`<`, `<=`), and the alert clears when that
   * fails (`> 50` with 5 clears at 45 or below). Absent: 0.
   */
  hysteresis?: number;
  /**
   * Least hub time between two changes (raise or clear) of one alert once
   * its burst is spent; absent: the group's ALERT_MIN_INTERVAL_MS. Hub
   * time, since a device chooses its readings' timestamps.
   */
  minIntervalMs?: number;
}

export interface RulesDoc {
  rules: Rule[];
  /** Silence after which a device raises an offline alert; 0 turns offline alerts off. */
  offlineAfterMs: number;
}

export const MAX_RULES = 100;
export const MIN_OFFLINE_AFTER_MS = 10_000;
/** Longest `forMs` / `offlineAfterMs`: 7 days, the hub's timestamp window. */
export const MAX_RULE_MS = 7 * 24 * 3600_000;

export type RulesResult = { ok: true; doc: RulesDoc } | { ok: false; message: string };

function isOp(v: unknown): v is RuleOp {
  return typeof v === "string" && (RULE_OPS as readonly string[]).includes(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function msField(v: unknown, name: string, min: number): number | string {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > MAX_RULE_MS) {
    return `${name} must be an integer number of milliseconds from 0 to ${MAX_RULE_MS}`;
  }
  if (v !== 0 && v < min) return `${name} must be 0 (off) or at least ${min}`;
  return v;
}

/** Ops with a direction, for which a rule may carry `hysteresis`. */
const ORDERED_OPS: readonly RuleOp[] = [">", ">=", "<", "<="];

/** The value past which an active alert of `rule` clears: the threshold moved back by the hysteresis. */
export function clearThreshold(rule: Pick<Rule, "op" | "threshold" | "hysteresis">): number {
  const h = rule.hysteresis ?? 0;
  return rule.op === ">" || rule.op === ">=" ? rule.threshold - h : rule.op === "<" || rule.op === "<=" ? rule.threshold + h : rule.threshold;
}

/** Checks a decoded JSON body; the message names the offending field. */
export function validateRules(body: unknown): RulesResult {
  if (!isObject(body)) return { ok: false, message: "body must be a JSON object {rules, offlineAfterMs}" };
  if (!Array.isArray(body.rules)) return { ok: false, message: "rules must be an array" };
  if (body.rules.length > MAX_RULES) return { ok: false, message: `at most ${MAX_RULES} rules` };
  const offline = body.offlineAfterMs === undefined ? 0 : msField(body.offlineAfterMs, "offlineAfterMs", MIN_OFFLINE_AFTER_MS);
  if (typeof offline === "string") return { ok: false, message: offline };
  const rules: Rule[] = [];
  const ids = new Set<string>();
  for (let i = 0; i < body.rules.length; i++) {
    const r: unknown = body.rules[i];
    const at = `rules[${i}]`;
    if (!isObject(r)) return { ok: false, message: `${at} must be an object` };
    if (typeof r.id !== "string" || !ID_PATTERN.test(r.id)) return { ok: false, message: `${at}.id must match [A-Za-z0-9_.-]{1,64}` };
    if (ids.has(r.id)) return { ok: false, message: `${at}.id '${r.id}' is used twice` };
    ids.add(r.id);
    if (typeof r.metric !== "string" || !METRIC_PATTERN.test(r.metric)) {
      return { ok: false, message: `${at}.metric must match [A-Za-z0-9_.:-]{1,64}` };
    }
    if (!isOp(r.op)) return { ok: false, message: `${at}.op must be one of ${RULE_OPS.join(" ")}` };
    if (typeof r.threshold !== "number" || !Number.isFinite(r.threshold)) {
      return { ok: false, message: `${at}.threshold must be a finite number` };
    }
    if (r.device !== undefined && r.device !== null && (typeof r.device !== "string" || !ID_PATTERN.test(r.device))) {
      return { ok: false, message: `${at}.device must match [A-Za-z0-9_.-]{1,64}` };
    }
    const forMs = r.forMs === undefined ? 0 : msField(r.forMs, `${at}.forMs`, 0);
    if (typeof forMs === "string") return { ok: false, message: forMs };
    const rule: Rule = { id: r.id, metric: r.metric, op: r.op, threshold: r.threshold, forMs };
    if (typeof r.device === "string") rule.device = r.device;
    if (r.hysteresis !== undefined && r.hysteresis !== null) {
      if (typeof r.hysteresis !== "number" || !Number.isFinite(r.hysteresis) || r.hysteresis < 0) {
        return { ok: false, message: `${at}.hysteresis must be a finite number >= 0` };
      }
      if (!ORDERED_OPS.includes(r.op) && r.hysteresis !== 0) return { ok: false, message: `${at}.hysteresis applies to ${ORDERED_OPS.join(" ")} only` };
      rule.hysteresis = r.hysteresis;
    }
    if (r.minIntervalMs !== undefined && r.minIntervalMs !== null) {
      const min = msField(r.minIntervalMs, `${at}.minIntervalMs`, 0);
      if (typeof min === "string") return { ok: false, message: min };
      rule.minIntervalMs = min;
    }
    rules.push(rule);
  }
  return { ok: true, doc: { rules, offlineAfterMs: offline } };
}

/** Whether `value op threshold` holds. */
export function ruleHolds(op: RuleOp, value: number, threshold: number): boolean {
  switch (op) {
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
    case "==":
      return value === threshold;
    case "!=":
      return value !== threshold;
  }
}

/** An alert as the REST API and the live socket carry it. */
export interface Alert {
  id: number;
  /**
   * `archive`: the group's raw archive backlog is full (docs/archive.md); device is "" and value the backlog in readings.
   * `budget`: a batch was refused past a cardinality budget; device is the id of the device or gateway that sent it
   * (`peerKind` says which), metric the error code (`too_many_metrics`, `too_many_devices`, `too_many_series`),
   * threshold the limit, value what the batch would have reached. One stays active per sender (kind and id) and code.
   * `storage`: the group's database neared its budget (docs/history.md); device is "", value the bytes and threshold the budget.
   */
  kind: "threshold" | "offline" | "archive" | "budget" | "storage";
  ruleId: string | null;
  /** The id of the peer the alert is about, "" for the group's own alerts (`archive`, `storage`). */
  device: string;
  /**
   * Whose id `device` is: "gateway" only for a gateway's `budget` alert; "device" for every other alert about a
   * peer; absent for the group's own alerts (device ""). Added after `device`, which keeps carrying the id.
   */
  peerKind?: PeerKind;
  metric: string | null;
  op: RuleOp | null;
  threshold: number | null;
  /** The reading that raised it (threshold alerts), or the silence in ms (offline alerts). */
  value: number | null;
  raisedAt: number;
  clearedAt: number | null;
  /**
   * Present (true) once a change of this alert was held back because it
   * came too soon after the last one: the device's value is flapping
   * around the threshold. The alert keeps its state until a change is due.
   */
  flapping?: true;
}

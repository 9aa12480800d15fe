/**
 * What the dashboard reads from the hub (docs/protocol.md: "HTTP routes",
 * "Live socket (dashboards)", "Rules and alerts"), and the checks that turn
 * parsed JSON (`unknown`) into these types. Parsers are lenient the way the
 * protocol asks: unknown fields are ignored, a malformed entry is skipped
 * rather than breaking the page. Rules are checked by the same validator
 * the hub uses (schema/rules.ts).
 */
import type { AggregateBucket, RatesResponse } from "../../../schema/api.ts";
import type { PeerKind } from "../../../schema/protocol.ts";
import { validateRules, type RulesDoc } from "../../../schema/rules.ts";

export { RULE_OPS, validateRules, type Rule, type RuleOp } from "../../../schema/rules.ts";
export type RuleSet = RulesDoc;

export interface Totals {
  devices: number;
  online: number;
  readingsPerSec: number;
  batchesPerSec: number;
  /** Rejected batches by error code since the group's Durable Object started. */
  rejected: Record<string, number>;
}

export interface Latest {
  value: number;
  ts: number;
}

export interface Rejections {
  count: number;
  lastCode: string | null;
  lastAt: number | null;
}

/** One device as a live frame or a REST answer describes it; absent fields are unknown. */
export interface DevicePatch {
  id: string;
  online?: boolean;
  lastSeen?: number | null;
  lastSeq?: number;
  readings?: number;
  readingsPerSec?: number;
  /** By metric name; a Map, because a metric may be called `__proto__` or `constructor`. */
  latest?: Map<string, Latest>;
  rejected?: Rejections | null;
  /** Metrics the hub's live view left out for this device (its bound, LIVE_MAX_METRICS). */
  metricsOmitted?: number;
}

export interface Alert {
  id: string;
  kind: string;
  ruleId: string | null;
  device: string | null;
  /** Whose id `device` is; "gateway" only for a gateway's budget alert (absent from older hubs: a device's). */
  peerKind?: PeerKind;
  metric: string | null;
  op: string | null;
  threshold: number | null;
  value: number | null;
  raisedAt: number;
  clearedAt: number | null;
  /** The hub held a change of this alert back: the value flaps around the threshold. */
  flapping?: true;
}

export type Bucket = AggregateBucket;

export interface SnapshotFrame {
  type: "snapshot";
  seq: number;
  at: number;
  totals: Totals | null;
  devices: DevicePatch[];
  alerts: Alert[];
  rules: RuleSet | null;
  /** Devices the hub's live view does not list (its bound, LIVE_MAX_DEVICES). */
  omittedDevices: number;
}

/**
 * A `summary` (changed devices, whole rows) or a `delta` (changed devices,
 * `latest` holding only the values that changed): both apply as patches.
 */
export interface SummaryFrame {
  type: "summary" | "delta";
  seq: number;
  at: number;
  totals: Totals | null;
  devices: DevicePatch[];
  alerts: Alert[];
  omittedDevices: number;
}

export type LiveFrame = SnapshotFrame | SummaryFrame;

type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function numOrNull(v: unknown): number | null {
  return num(v) ?? null;
}

function strOrNull(v: unknown): string | null {
  return str(v) ?? null;
}

function counts(v: unknown): Record<string, number> {
  if (!isObj(v)) return {};
  const out: [string, number][] = [];
  for (const [k, n] of Object.entries(v)) {
    const c = num(n);
    if (c !== undefined) out.push([k, c]);
  }
  // fromEntries defines own properties: a key "__proto__" stays a key, not a prototype.
  return Object.fromEntries(out);
}

export function parseTotals(v: unknown): Totals | null {
  if (!isObj(v)) return null;
  return {
    devices: num(v.devices) ?? 0,
    online: num(v.online) ?? 0,
    readingsPerSec: num(v.readingsPerSec) ?? 0,
    batchesPerSec: num(v.batchesPerSec) ?? 0,
    rejected: counts(v.rejected),
  };
}

function parseLatest(v: unknown): Map<string, Latest> | undefined {
  if (!isObj(v)) return undefined;
  // JSON.parse makes "__proto__" an own key; Object.entries sees it, and a Map keeps it as any other name.
  const out = new Map<string, Latest>();
  for (const [metric, l] of Object.entries(v)) {
    if (!isObj(l)) continue;
    const value = num(l.value);
    const ts = num(l.ts);
    if (value !== undefined && ts !== undefined) out.set(metric, { value, ts });
  }
  return out;
}

function parseRejections(v: unknown): Rejections | null | undefined {
  if (v === null) return null;
  if (!isObj(v)) return undefined;
  return { count: num(v.count) ?? 0, lastCode: strOrNull(v.lastCode), lastAt: numOrNull(v.lastAt) };
}

/** A device entry from a live frame or from `GET /devices`; null when it has no id. */
export function parseDevice(v: unknown): DevicePatch | null {
  if (!isObj(v)) return null;
  const id = str(v.id);
  if (id === undefined || id === "") return null;
  const d: DevicePatch = { id };
  if (typeof v.online === "boolean") d.online = v.online;
  if (v.lastSeen === null) d.lastSeen = null;
  else if (num(v.lastSeen) !== undefined) d.lastSeen = num(v.lastSeen);
  if (num(v.lastSeq) !== undefined) d.lastSeq = num(v.lastSeq);
  if (num(v.readings) !== undefined) d.readings = num(v.readings);
  if (num(v.readingsPerSec) !== undefined) d.readingsPerSec = num(v.readingsPerSec);
  const latest = parseLatest(v.latest);
  if (latest) d.latest = latest;
  const rejected = parseRejections(v.rejected);
  if (rejected !== undefined) d.rejected = rejected;
  if (num(v.metricsOmitted) !== undefined) d.metricsOmitted = num(v.metricsOmitted);
  return d;
}

export function parseAlert(v: unknown): Alert | null {
  if (!isObj(v)) return null;
  const id = typeof v.id === "number" || typeof v.id === "string" ? String(v.id) : undefined;
  const raisedAt = num(v.raisedAt);
  if (id === undefined || raisedAt === undefined) return null;
  return {
    id,
    kind: str(v.kind) ?? "threshold",
    ruleId: strOrNull(v.ruleId),
    device: strOrNull(v.device),
    ...(v.peerKind === "device" || v.peerKind === "gateway" ? { peerKind: v.peerKind } : {}),
    metric: strOrNull(v.metric),
    op: strOrNull(v.op),
    threshold: numOrNull(v.threshold),
    value: numOrNull(v.value),
    raisedAt,
    clearedAt: numOrNull(v.clearedAt),
    ...(v.flapping === true ? { flapping: true as const } : {}),
  };
}

export function parseRuleSet(v: unknown): RuleSet | null {
  const checked = validateRules(v);
  return checked.ok ? checked.doc : null;
}

export function parseBucket(v: unknown): Bucket | null {
  if (!isObj(v)) return null;
  const device = str(v.device);
  const metric = str(v.metric);
  const start = num(v.start);
  const count = num(v.count);
  const sum = num(v.sum);
  const min = num(v.min);
  const max = num(v.max);
  const last = num(v.last);
  if (device === undefined || metric === undefined || start === undefined || count === undefined) return null;
  if (sum === undefined || min === undefined || max === undefined || last === undefined) return null;
  return { device, metric, start, count, sum, min, max, last };
}

function list<T>(v: unknown, parse: (x: unknown) => T | null): T[] {
  if (!Array.isArray(v)) return [];
  const out: T[] = [];
  for (const x of v) {
    const p = parse(x);
    if (p !== null) out.push(p);
  }
  return out;
}

export function parseDevices(v: unknown): DevicePatch[] | null {
  return isObj(v) && Array.isArray(v.devices) ? list(v.devices, parseDevice) : null;
}

export function parseBuckets(v: unknown): { buckets: Bucket[]; truncated: boolean } | null {
  if (!isObj(v) || !Array.isArray(v.buckets)) return null;
  return { buckets: list(v.buckets, parseBucket), truncated: v.truncated === true };
}

export function parseAlerts(v: unknown): Alert[] | null {
  return isObj(v) && Array.isArray(v.alerts) ? list(v.alerts, parseAlert) : null;
}

/** `GET /rates`; null unless every field has its type and the slots are whole numbers. */
export function parseRates(v: unknown): RatesResponse | null {
  if (!isObj(v)) return null;
  const stepMs = num(v.stepMs);
  const from = num(v.from);
  const at = num(v.at);
  if (stepMs === undefined || stepMs <= 0 || from === undefined || at === undefined || !Array.isArray(v.readings)) return null;
  const readings: number[] = [];
  for (const r of v.readings as unknown[]) {
    const n = num(r);
    if (n === undefined || n < 0) return null;
    readings.push(n);
  }
  return { stepMs, from, at, readings };
}

/** A text frame from the live socket; null for anything that is not a snapshot or summary. */
export function parseLiveFrame(text: string): LiveFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(v)) return null;
  const seq = num(v.seq);
  if (seq === undefined) return null;
  const at = num(v.at) ?? Date.now();
  const totals = parseTotals(v.totals);
  const devices = list(v.devices, parseDevice);
  const alerts = list(v.alerts, parseAlert);
  const omittedDevices = (isObj(v.omitted) ? num(v.omitted.devices) : undefined) ?? 0;
  if (v.type === "snapshot") return { type: "snapshot", seq, at, totals, devices, alerts, rules: parseRuleSet(v.rules), omittedDevices };
  if (v.type === "summary" || v.type === "delta") return { type: v.type, seq, at, totals, devices, alerts, omittedDevices };
  return null;
}

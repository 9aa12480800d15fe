/**
 * The state of one group as the page knows it: devices, totals, alerts,
 * rules, the connection status, and short histories for the charts. Live
 * frames and REST polls both feed it; views subscribe and redraw on the
 * next animation frame, so a burst of updates costs one render.
 */
import type { RatesResponse } from "../../schema/api.ts";
import type { Alert, DevicePatch, Latest, Rejections, RuleSet, Totals } from "./hub/types.ts";

/** Readings/s history and sparklines cover this long. */
export const HISTORY_MS = 15 * 60_000;
/** A device whose last rejection is this recent is flagged. */
export const RECENT_REJECTION_MS = 5 * 60_000;
/** No frame for this long while live means nothing flows: rates are 0 (they are 10 s averages). */
const IDLE_AFTER_MS = 12_000;
/** Sparkline points closer than this to the previous one replace it. */
const SPARK_STEP_MS = 2_000;
const SPARK_MAX_POINTS = 600;
/**
 * The chart takes no live readings/s samples this long after a snapshot: the
 * hub's 10-second rate restarts from 0 when it rebuilds its live state for a
 * first dashboard, and its stored history already covers that time.
 */
const RATE_SETTLE_MS = 10_000;

export type ConnState =
  | { state: "connecting" }
  | { state: "live" }
  | { state: "reconnecting"; inMs: number }
  | { state: "polling"; reason: string }
  | { state: "signin"; message: string }
  | { state: "error"; message: string };

export type Change = "devices" | "totals" | "alerts" | "rules" | "status";

/** A time series of (ms, value) points, oldest first, bounded in length. */
export class Series {
  readonly ts: number[] = [];
  readonly v: number[] = [];

  push(ts: number, value: number): void {
    const n = this.ts.length;
    const lastTs = n > 0 ? (this.ts[n - 1] ?? 0) : -Infinity;
    if (ts < lastTs) return;
    if (n > 1 && ts - (this.ts[n - 2] ?? 0) < SPARK_STEP_MS) {
      this.ts[n - 1] = ts;
      this.v[n - 1] = value;
    } else {
      this.ts.push(ts);
      this.v.push(value);
    }
    if (this.ts.length > SPARK_MAX_POINTS) {
      const drop = this.ts.length - SPARK_MAX_POINTS + 50;
      this.ts.splice(0, drop);
      this.v.splice(0, drop);
    }
  }

  /** Replaces everything up to the last of `points` (sorted, authoritative) with them; later points stay. */
  replaceHead(points: readonly [number, number][]): void {
    const last = points[points.length - 1];
    if (!last) return;
    let keep = 0;
    while (keep < this.ts.length && (this.ts[keep] ?? 0) <= last[0]) keep++;
    this.ts.splice(0, keep, ...points.map((p) => p[0]));
    this.v.splice(0, keep, ...points.map((p) => p[1]));
  }

  /** Puts older points (a REST backfill) in front of what is there. */
  prepend(points: [number, number][]): void {
    const first = this.ts[0] ?? Infinity;
    const older = points.filter(([t]) => t < first).sort((a, b) => a[0] - b[0]);
    this.ts.unshift(...older.map((p) => p[0]));
    this.v.unshift(...older.map((p) => p[1]));
  }
}

export interface DeviceState {
  id: string;
  online: boolean;
  lastSeen: number | null;
  lastSeq: number;
  readings: number;
  readingsPerSec: number;
  latest: Map<string, Latest>;
  rejected: Rejections | null;
  /** Metrics the hub's live view left out for this device (0: none). */
  metricsOmitted: number;
  spark: Map<string, Series>;
  /** Bumped on every change, so a row can tell whether to redraw. */
  version: number;
}

function emptyTotals(): Totals {
  return { devices: 0, online: 0, readingsPerSec: 0, batchesPerSec: 0, rejected: {} };
}

export class GroupStore {
  readonly group: string;
  readonly devices = new Map<string, DeviceState>();
  readonly metrics = new Set<string>();
  readonly alerts = new Map<string, Alert>();
  totals: Totals = emptyTotals();
  /** Devices the hub's live view does not list (its bound); 0 when it lists all. */
  omittedDevices = 0;
  rules: RuleSet | null = null;
  /** null until known; false when the hub has no alerts/rules routes yet. */
  alertsAvailable: boolean | null = null;
  status: ConnState = { state: "connecting" };
  /** Client time of the last frame or poll applied. */
  lastUpdate = 0;
  /** Whether the current data comes from the live socket (rates are exact) or from polling. */
  source: "live" | "poll" | "none" = "none";
  readonly rateHistory = new Series();
  private snapshotAt = 0;
  /** Readings/s of the hub's last complete 10-second slot (GET /rates). */
  private hubRate: number | null = null;
  /** Bumped whenever an alert is added or changes (views compare it to skip work). */
  alertsVersion = 0;
  private activeByDevice: { version: number; map: Map<string, number> } | null = null;
  private readonly listeners = new Set<(changes: ReadonlySet<Change>) => void>();
  private readonly sampleListeners = new Set<(device: string, metric: string, l: Latest) => void>();
  private prevPoll: { at: number; readings: Map<string, number>; seqs: Map<string, number> } | null = null;

  constructor(group: string) {
    this.group = group;
  }

  subscribe(fn: (changes: ReadonlySet<Change>) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every new latest value of every device (drill-down charts append these). */
  onSample(fn: (device: string, metric: string, l: Latest) => void): () => void {
    this.sampleListeners.add(fn);
    return () => this.sampleListeners.delete(fn);
  }

  emit(...changes: Change[]): void {
    const set = new Set(changes);
    for (const fn of this.listeners) fn(set);
  }

  setStatus(status: ConnState): void {
    this.status = status;
    this.emit("status");
  }

  /** Live rates are 10-second averages pushed only while data flows: a long silence means 0. */
  isIdle(now = Date.now()): boolean {
    return this.source === "live" && now - this.lastUpdate > IDLE_AFTER_MS;
  }

  currentTotals(now = Date.now()): Totals {
    if (this.isIdle(now)) return { ...this.totals, readingsPerSec: 0, batchesPerSec: 0 };
    // Just after a snapshot the hub's 10-s rate may still be climbing from 0
    // (see RATE_SETTLE_MS); its last stored 10-s slot is the better figure then.
    if (this.source === "live" && now - this.snapshotAt < RATE_SETTLE_MS && this.hubRate !== null) {
      return { ...this.totals, readingsPerSec: Math.max(this.totals.readingsPerSec, this.hubRate) };
    }
    return this.totals;
  }

  deviceRate(d: DeviceState, now = Date.now()): number {
    return this.isIdle(now) ? 0 : d.readingsPerSec;
  }

  /** Adds a point to the readings/s chart; called once a second. */
  sampleRate(now = Date.now()): void {
    if (this.source === "none") return;
    if (this.source === "live" && now - this.snapshotAt < RATE_SETTLE_MS) return;
    this.rateHistory.push(now, this.currentTotals(now).readingsPerSec);
  }

  /**
   * The hub's readings/s history (GET /rates): each complete 10-second slot
   * becomes a point at its end, in the page's clock (the hub's may differ).
   * The slot still filling is left to the live samples.
   */
  setRateHistory(r: RatesResponse, now = Date.now()): void {
    const skew = now - r.at;
    const points: [number, number][] = [];
    r.readings.forEach((n, i) => {
      const end = r.from + (i + 1) * r.stepMs;
      if (end <= r.at) points.push([end + skew, n / (r.stepMs / 1000)]);
    });
    this.rateHistory.replaceHead(points);
    this.hubRate = points[points.length - 1]?.[1] ?? null;
    this.emit("totals");
  }

  applySnapshot(f: { totals: Totals | null; devices: DevicePatch[]; alerts: Alert[]; rules: RuleSet | null; omittedDevices: number }): void {
    this.omittedDevices = f.omittedDevices;
    const ids = new Set(f.devices.map((d) => d.id));
    for (const id of this.devices.keys()) if (!ids.has(id)) this.devices.delete(id);
    this.applyDevices(f.devices);
    this.totals = f.totals ?? this.totalsFromDevices(0, 0);
    this.putAlerts(f.alerts);
    if (f.rules) this.rules = f.rules;
    this.source = "live";
    this.prevPoll = null;
    this.lastUpdate = this.snapshotAt = Date.now();
    this.emit("devices", "totals", "alerts", ...(f.rules ? (["rules"] as const) : []));
  }

  /** A `summary` or `delta` frame: both are patches (a delta's `latest` holds only changed values). */
  applySummary(f: { totals: Totals | null; devices: DevicePatch[]; alerts: Alert[]; omittedDevices: number }): void {
    this.omittedDevices = f.omittedDevices;
    this.applyDevices(f.devices);
    if (f.totals) this.totals = f.totals;
    this.putAlerts(f.alerts);
    this.source = "live";
    this.lastUpdate = Date.now();
    this.emit("devices", "totals", ...(f.alerts.length > 0 ? (["alerts"] as const) : []));
  }

  /**
   * A REST poll (the fallback while the live socket is unavailable):
   * `GET /devices`, and the newest value per device and metric from recent
   * aggregate buckets. Rates come from the difference to the previous poll.
   */
  applyPoll(devices: DevicePatch[], latest: Map<string, Map<string, Latest>> | null): void {
    const now = Date.now();
    const prev = this.prevPoll;
    const dt = prev ? (now - prev.at) / 1000 : 0;
    let readingsRate = 0;
    let batchRate = 0;
    const readings = new Map<string, number>();
    const seqs = new Map<string, number>();
    const patches = devices.map((d): DevicePatch => {
      const p: DevicePatch = { ...d };
      const l = latest?.get(d.id);
      if (l) p.latest = l;
      if (d.readings !== undefined) readings.set(d.id, d.readings);
      if (d.lastSeq !== undefined) seqs.set(d.id, d.lastSeq);
      if (prev && dt > 0) {
        const r = Math.max(0, (d.readings ?? 0) - (prev.readings.get(d.id) ?? d.readings ?? 0)) / dt;
        p.readingsPerSec = r;
        readingsRate += r;
        batchRate += Math.max(0, (d.lastSeq ?? 0) - (prev.seqs.get(d.id) ?? d.lastSeq ?? 0)) / dt;
      }
      return p;
    });
    const ids = new Set(devices.map((d) => d.id));
    for (const id of this.devices.keys()) if (!ids.has(id)) this.devices.delete(id);
    this.applyDevices(patches);
    this.totals = this.totalsFromDevices(readingsRate, batchRate);
    this.prevPoll = { at: now, readings, seqs };
    this.source = "poll";
    this.lastUpdate = now;
    this.emit("devices", "totals");
  }

  private putAlerts(alerts: Alert[]): void {
    if (alerts.length === 0) return;
    for (const a of alerts) this.alerts.set(a.id, a);
    this.alertsVersion++;
  }

  setAlerts(alerts: Alert[]): void {
    this.putAlerts(alerts);
    this.alertsAvailable = true;
    this.emit("alerts");
  }

  setRules(rules: RuleSet | null, available: boolean): void {
    if (rules) this.rules = rules;
    this.alertsAvailable = available;
    this.alertsVersion++;
    this.emit("rules", "alerts");
  }

  /** Active alerts first (newest raised first), then cleared ones (newest cleared first). */
  alertList(): Alert[] {
    return [...this.alerts.values()].sort((a, b) => {
      const aa = a.clearedAt === null ? 1 : 0;
      const ba = b.clearedAt === null ? 1 : 0;
      if (aa !== ba) return ba - aa;
      return (b.clearedAt ?? b.raisedAt) - (a.clearedAt ?? a.raisedAt) || Number(b.id) - Number(a.id);
    });
  }

  /** Active alerts per device (cached until the alerts change). */
  activeAlertsByDevice(): Map<string, number> {
    if (this.activeByDevice?.version === this.alertsVersion) return this.activeByDevice.map;
    const out = new Map<string, number>();
    for (const a of this.alerts.values()) {
      // A gateway's alert is not about the device of the same id.
      if (a.clearedAt === null && a.device !== null && a.peerKind !== "gateway") out.set(a.device, (out.get(a.device) ?? 0) + 1);
    }
    this.activeByDevice = { version: this.alertsVersion, map: out };
    return out;
  }

  hasRecentRejection(d: DeviceState, now = Date.now()): boolean {
    const r = d.rejected;
    if (!r || r.count === 0) return false;
    return r.lastAt === null || now - r.lastAt < RECENT_REJECTION_MS;
  }

  /** One-minute averages from REST in front of the live sparkline points. */
  backfillSpark(device: string, metric: string, points: [number, number][]): void {
    const d = this.devices.get(device);
    if (!d) return;
    let s = d.spark.get(metric);
    if (!s) d.spark.set(metric, (s = new Series()));
    s.prepend(points);
    this.metrics.add(metric);
    d.version++;
  }

  private totalsFromDevices(readingsPerSec: number, batchesPerSec: number): Totals {
    let online = 0;
    for (const d of this.devices.values()) if (d.online) online++;
    return { devices: this.devices.size, online, readingsPerSec, batchesPerSec, rejected: this.totals.rejected };
  }

  private applyDevices(patches: DevicePatch[]): void {
    for (const p of patches) {
      let d = this.devices.get(p.id);
      if (!d) {
        d = {
          id: p.id,
          online: false,
          lastSeen: null,
          lastSeq: 0,
          readings: 0,
          readingsPerSec: 0,
          latest: new Map(),
          rejected: null,
          metricsOmitted: 0,
          spark: new Map(),
          version: 0,
        };
        this.devices.set(p.id, d);
      }
      if (p.online !== undefined) d.online = p.online;
      if (p.lastSeen !== undefined) d.lastSeen = p.lastSeen;
      if (p.lastSeq !== undefined) d.lastSeq = p.lastSeq;
      if (p.readings !== undefined) d.readings = p.readings;
      if (p.readingsPerSec !== undefined) d.readingsPerSec = p.readingsPerSec;
      if (p.rejected !== undefined) d.rejected = p.rejected;
      if (p.metricsOmitted !== undefined) d.metricsOmitted = p.metricsOmitted;
      if (p.latest) {
        for (const [metric, l] of p.latest) {
          const before = d.latest.get(metric);
          if (before && before.ts === l.ts && before.value === l.value) continue;
          d.latest.set(metric, l);
          this.metrics.add(metric);
          let s = d.spark.get(metric);
          if (!s) d.spark.set(metric, (s = new Series()));
          s.push(l.ts, l.value);
          for (const fn of this.sampleListeners) fn(d.id, metric, l);
        }
      }
      d.version++;
    }
  }
}

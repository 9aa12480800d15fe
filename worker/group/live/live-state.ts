/**
 * What the live view shows about a group: per device online state, rates,
 * latest values and rejections, and group totals.
 *
 * Bounded whatever devices send (issue #12, finding 2: one device's 400,000
 * metrics made a 39 MB snapshot): at most `maxDevices` devices are shown and
 * at most `maxMetrics` latest values per device are kept; what is left out
 * is counted (docs/protocol.md, "Bounds of the live view").
 *
 * In memory only. It may be lost at any time (hibernation, eviction) and is
 * rebuilt from SQLite by `load()` the next time a dashboard needs it; rates
 * restart from zero, which is true after hibernation anyway (the group was idle).
 */
import type { Collapsed } from "../ingest/collapse.ts";
import type { Peer } from "../peer.ts";

/** Default seconds of history behind readingsPerSec / batchesPerSec. */
export const RATE_WINDOW_S = 10;

export interface LatestValue {
  value: number;
  ts: number;
}

/** How much of a group the live view shows (LIVE_MAX_DEVICES, LIVE_MAX_METRICS). */
export interface LiveBounds {
  /** Devices shown; more are counted in `omitted.devices` and the totals, not listed. */
  maxDevices: number;
  /** Latest values kept per device; more metrics are counted in `metricsOmitted`. */
  maxMetrics: number;
}

export const DEFAULT_LIVE_BOUNDS: Readonly<LiveBounds> = { maxDevices: 2000, maxMetrics: 32 };

/**
 * Left-out metric names are remembered (to count each once) up to this many
 * per device and OMITTED_NAMES_PER_GROUP in all; past either, counts are
 * lower bounds. Keeps a flood of new names from growing memory.
 */
export const OMITTED_NAMES_PER_DEVICE = 1000;
const OMITTED_NAMES_PER_GROUP = 20_000;

export interface DeviceLiveJson {
  id: string;
  online: boolean;
  lastSeen: number;
  lastSeq: number;
  readings: number;
  readingsPerSec: number;
  latest: Record<string, LatestValue>;
  rejected: { count: number; lastCode: string | null; lastAt: number | null };
  /** Metrics of this device not kept in `latest` (absent when none). */
  metricsOmitted?: number;
}

export interface TotalsJson {
  devices: number;
  online: number;
  readingsPerSec: number;
  batchesPerSec: number;
  rejected: Record<string, number>;
}

/** Counts per second over a sliding window of whole seconds. */
class Rate {
  private readonly slots: Float64Array;
  private second = 0;

  constructor(windowS: number) {
    this.slots = new Float64Array(windowS);
  }

  add(n: number, now: number): void {
    this.roll(now);
    const i = this.second % this.slots.length;
    this.slots[i] = (this.slots[i] ?? 0) + n;
  }

  perSecond(now: number): number {
    this.roll(now);
    let sum = 0;
    for (const v of this.slots) sum += v;
    return Math.round((sum / this.slots.length) * 10) / 10;
  }

  private roll(now: number): void {
    const s = Math.floor(now / 1000);
    if (this.second === 0) this.second = s;
    const gap = s - this.second;
    if (gap <= 0) return;
    const n = this.slots.length;
    for (let i = 1; i <= Math.min(gap, n); i++) this.slots[(this.second + i) % n] = 0;
    this.second = s;
  }
}

interface LiveDevice {
  id: string;
  online: boolean;
  lastSeen: number;
  lastSeq: number;
  readings: number;
  /** Kept latest values, each with the epoch of its last change. */
  latest: Map<string, LatestEntry>;
  /** Names of metrics left out of `latest` (see OMITTED_NAMES_PER_DEVICE). */
  omitted: Set<string> | null;
  rate: Rate;
  rejected: { count: number; lastCode: string | null; lastAt: number | null };
  /** Epoch of the last change (see LiveState.epoch). */
  changed: number;
  /** Within the first `maxDevices` devices: listed in frames. */
  shown: boolean;
}

interface LatestEntry extends LatestValue {
  changed: number;
}

/** Rows the state is rebuilt from. */
export interface LiveSeed {
  devices: { id: string; lastSeen: number; lastSeq: number; readings: number }[];
  latest: { device: string; metric: string; value: number; ts: number }[];
  rejects: { device: string; code: string; count: number; lastAt: number }[];
  online: Set<string>;
}

export class LiveState {
  private readonly devices = new Map<string, LiveDevice>();
  /** Seconds behind each rate (injectable so tests need not wait 10 s for a rate to drain). */
  private readonly windowS: number;
  readonly bounds: Readonly<LiveBounds>;
  private shownDevices = 0;
  private omittedNames = 0;
  private readingRate: Rate;
  private batchRate: Rate;
  private readonly rejectedTotals: Record<string, number> = {};
  loaded = false;
  /**
   * Summary epoch. Changes are stamped with the current epoch; each summary
   * tick ends the epoch, so "changed since epoch e" is a cheap filter.
   */
  epoch = 1;
  /** Epoch of the last change to the totals that no device row shows (a gateway's rejection). */
  totalsChanged = 0;

  constructor(windowS = RATE_WINDOW_S, bounds: Readonly<LiveBounds> = DEFAULT_LIVE_BOUNDS) {
    this.windowS = Math.max(1, windowS);
    this.bounds = bounds;
    this.readingRate = new Rate(this.windowS);
    this.batchRate = new Rate(this.windowS);
  }

  /** Forgets everything (no dashboard is watching); `load` rebuilds it. */
  reset(): void {
    this.devices.clear();
    this.shownDevices = 0;
    this.omittedNames = 0;
    this.readingRate = new Rate(this.windowS);
    this.batchRate = new Rate(this.windowS);
    for (const k of Object.keys(this.rejectedTotals)) delete this.rejectedTotals[k];
    this.loaded = false;
  }

  load(seed: LiveSeed): void {
    for (const d of seed.devices) {
      const live = this.device(d.id);
      live.lastSeen = Math.max(live.lastSeen, d.lastSeen);
      live.lastSeq = Math.max(live.lastSeq, d.lastSeq);
      live.readings = Math.max(live.readings, d.readings);
      live.online = seed.online.has(d.id);
    }
    for (const l of seed.latest) this.setLatest(this.device(l.device), l.metric, l.value, l.ts);
    for (const r of seed.rejects) {
      const live = this.device(r.device);
      live.rejected.count += r.count;
      if (live.rejected.lastAt === null || r.lastAt >= live.rejected.lastAt) {
        live.rejected.lastAt = r.lastAt;
        live.rejected.lastCode = r.code;
      }
    }
    this.loaded = true;
  }

  private device(id: string): LiveDevice {
    let d = this.devices.get(id);
    if (!d) {
      d = {
        id,
        online: false,
        lastSeen: 0,
        lastSeq: 0,
        readings: 0,
        latest: new Map(),
        omitted: null,
        rate: new Rate(this.windowS),
        rejected: { count: 0, lastCode: null, lastAt: null },
        changed: this.epoch,
        shown: this.shownDevices < this.bounds.maxDevices,
      };
      if (d.shown) this.shownDevices++;
      // Only the totals (devices, omitted.devices) show a device beyond the bound.
      else this.totalsChanged = this.epoch;
      this.devices.set(id, d);
    }
    return d;
  }

  /** After a group commit. Returns true if anything changed. */
  applyCommit(c: Collapsed, now: number): boolean {
    let readings = 0;
    let batches = 0;
    for (const [id, delta] of c.peers.device) {
      const d = this.device(id);
      d.lastSeen = now;
      d.lastSeq = Math.max(d.lastSeq, delta.lastSeq);
      d.readings += delta.readings;
      d.rate.add(delta.readings, now);
      d.changed = this.epoch;
      readings += delta.readings;
      batches += delta.batches;
      // A device not shown keeps no latest values: nobody sees them. Its
      // readings still move the group's totals.
      if (!d.shown) this.totalsChanged = this.epoch;
      const metrics = c.aggregates.get(id);
      if (!metrics || !d.shown) continue;
      for (const [metric, buckets] of metrics) {
        let value = 0;
        let ts = -Infinity;
        for (const a of buckets.values()) {
          if (a.lastTs >= ts) {
            value = a.last;
            ts = a.lastTs;
          }
        }
        if (ts !== -Infinity) this.setLatest(d, metric, value, ts);
      }
    }
    this.readingRate.add(readings, now);
    this.batchRate.add(batches, now);
    return c.peers.device.size > 0;
  }

  /** Keeps the newest value of a metric, or counts it as left out once the device holds `maxMetrics`. */
  private setLatest(d: LiveDevice, metric: string, value: number, ts: number): void {
    if (!d.shown) return;
    const cur = d.latest.get(metric);
    if (cur) {
      if (ts < cur.ts) return;
      cur.value = value;
      cur.ts = ts;
      cur.changed = this.epoch;
    } else if (d.latest.size < this.bounds.maxMetrics) {
      d.latest.set(metric, { value, ts, changed: this.epoch });
    } else {
      const omitted = (d.omitted ??= new Set());
      if (omitted.has(metric) || omitted.size >= OMITTED_NAMES_PER_DEVICE || this.omittedNames >= OMITTED_NAMES_PER_GROUP) return;
      omitted.add(metric);
      this.omittedNames++;
    }
    d.changed = this.epoch;
  }

  /**
   * A rejected frame: counted in the totals, and on the device's row when a
   * device sent it. A gateway is not a device and gets no row.
   */
  reject(peer: Peer, code: string, now: number): void {
    this.rejectedTotals[code] = (this.rejectedTotals[code] ?? 0) + 1;
    this.totalsChanged = this.epoch;
    if (peer.kind !== "device") return;
    const d = this.device(peer.id);
    d.rejected.count++;
    d.rejected.lastCode = code;
    d.rejected.lastAt = now;
    d.changed = this.epoch;
  }

  setOnline(device: string, online: boolean, now: number): void {
    const d = this.device(device);
    if (d.online === online) return;
    d.online = online;
    if (online) d.lastSeen = Math.max(d.lastSeen, now);
    d.changed = this.epoch;
  }

  /** Devices not listed in frames (beyond `maxDevices`). */
  omittedDevices(): number {
    return this.devices.size - this.shownDevices;
  }

  totals(now: number): TotalsJson {
    let online = 0;
    for (const d of this.devices.values()) if (d.online) online++;
    return {
      devices: this.devices.size,
      online,
      readingsPerSec: this.readingRate.perSecond(now),
      batchesPerSec: this.batchRate.perSecond(now),
      rejected: { ...this.rejectedTotals },
    };
  }

  /**
   * Shown devices changed after epoch `since` (0: all), as JSON. With
   * `onlyChangedLatest`, `latest` holds only the values changed after
   * `since` (a delta frame); otherwise all kept values.
   */
  changedSince(since: number, now: number, onlyChangedLatest = false): DeviceLiveJson[] {
    const out: DeviceLiveJson[] = [];
    for (const d of this.devices.values()) {
      if (d.changed <= since || !d.shown) continue;
      // fromEntries defines own properties, so a metric named "__proto__" stays a key.
      const latest: [string, LatestValue][] = [];
      for (const [metric, l] of d.latest) if (!onlyChangedLatest || l.changed > since) latest.push([metric, { value: l.value, ts: l.ts }]);
      const row: DeviceLiveJson = {
        id: d.id,
        online: d.online,
        lastSeen: d.lastSeen,
        lastSeq: d.lastSeq,
        readings: d.readings,
        readingsPerSec: d.rate.perSecond(now),
        latest: Object.fromEntries(latest),
        rejected: { ...d.rejected },
      };
      if (d.omitted) row.metricsOmitted = d.omitted.size;
      out.push(row);
    }
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }

  /** Marks devices whose rate is still decaying as changed, so dashboards see it fall to zero. */
  touchActive(now: number): boolean {
    let any = false;
    for (const d of this.devices.values()) {
      if (d.shown && d.rate.perSecond(now) > 0) {
        d.changed = this.epoch;
        any = true;
      }
    }
    // Devices not shown still count in the group's rates.
    if (this.readingRate.perSecond(now) > 0 || this.batchRate.perSecond(now) > 0) {
      this.totalsChanged = this.epoch;
      any = true;
    }
    return any;
  }
}

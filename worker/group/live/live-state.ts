/**
 * What the live view shows about a group: per device online state, rates,
 * latest values and rejections, and group totals.
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

export interface DeviceLiveJson {
  id: string;
  online: boolean;
  lastSeen: number;
  lastSeq: number;
  readings: number;
  readingsPerSec: number;
  latest: Record<string, LatestValue>;
  rejected: { count: number; lastCode: string | null; lastAt: number | null };
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
  latest: Map<string, LatestValue>;
  rate: Rate;
  rejected: { count: number; lastCode: string | null; lastAt: number | null };
  /** Epoch of the last change (see LiveState.epoch). */
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

  constructor(windowS = RATE_WINDOW_S) {
    this.windowS = Math.max(1, windowS);
    this.readingRate = new Rate(this.windowS);
    this.batchRate = new Rate(this.windowS);
  }

  /** Forgets everything (no dashboard is watching); `load` rebuilds it. */
  reset(): void {
    this.devices.clear();
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
    for (const l of seed.latest) {
      const live = this.device(l.device);
      const cur = live.latest.get(l.metric);
      if (!cur || l.ts >= cur.ts) live.latest.set(l.metric, { value: l.value, ts: l.ts });
    }
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
        rate: new Rate(this.windowS),
        rejected: { count: 0, lastCode: null, lastAt: null },
        changed: this.epoch,
      };
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
      const metrics = c.aggregates.get(id);
      if (!metrics) continue;
      for (const [metric, buckets] of metrics) {
        let best: LatestValue | undefined = d.latest.get(metric);
        for (const a of buckets.values()) {
          if (!best || a.lastTs >= best.ts) best = { value: a.last, ts: a.lastTs };
        }
        if (best) d.latest.set(metric, best);
      }
    }
    this.readingRate.add(readings, now);
    this.batchRate.add(batches, now);
    return c.peers.device.size > 0;
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

  /** Devices changed after epoch `since` (0: all), as JSON. */
  changedSince(since: number, now: number): DeviceLiveJson[] {
    const out: DeviceLiveJson[] = [];
    for (const d of this.devices.values()) {
      if (d.changed <= since) continue;
      out.push({
        id: d.id,
        online: d.online,
        lastSeen: d.lastSeen,
        lastSeq: d.lastSeq,
        readings: d.readings,
        readingsPerSec: d.rate.perSecond(now),
        latest: Object.fromEntries(d.latest),
        rejected: { ...d.rejected },
      });
    }
    out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return out;
  }

  /** Marks devices whose rate is still decaying as changed, so dashboards see it fall to zero. */
  touchActive(now: number): boolean {
    let any = false;
    for (const d of this.devices.values()) {
      if (d.rate.perSecond(now) > 0) {
        d.changed = this.epoch;
        any = true;
      }
    }
    return any;
  }
}

/**
 * Cardinality budgets (issue #12 finding 2): distinct metrics per device,
 * devices per gateway, and (device, metric) series per group. A batch that
 * would take any of them past its limit is refused whole with that budget's
 * own code, before it is queued, so nothing of it is applied.
 *
 * What the hub already knows comes from a narrow `KnownSeries` (the group's
 * stored series, and the devices each gateway wrote for), read once per wake
 * and then kept in memory, together with what pending batches add. Counting
 * series rows or aggregate keys is the store's business, so a storage
 * rewrite only swaps the KnownSeries behind this class.
 */
import type { Limits } from "../../../schema/limits.ts";
import { ErrorCode, type GatewayReading, type Reading } from "../../../schema/protocol.ts";
import type { Peer } from "../peer.ts";
import type { PeerReadings } from "./collapse.ts";

export type CardinalityLimits = Pick<Limits, "maxMetricsPerDevice" | "maxDevicesPerGateway" | "maxSeriesPerGroup">;

/** Where the hub's known series and gateways' devices are stored. */
export interface KnownSeries {
  /** Every (device, metric) series the group has stored. */
  series(): Iterable<readonly [device: string, metric: string]>;
  /** The devices a gateway has written readings for. */
  gatewayDevices(gateway: string): Iterable<string>;
  /** Records devices gateways wrote for the first time; runs inside the commit's transaction. */
  addGatewayDevices(pairs: readonly (readonly [gateway: string, device: string])[], now: number): void;
}

export type BudgetCode = typeof ErrorCode.TooManyMetrics | typeof ErrorCode.TooManyDevices | typeof ErrorCode.TooManySeries;

/** Why a batch was refused: its code, and the message for its error frame. */
export interface OverBudget {
  code: BudgetCode;
  message: string;
  /** The budget's limit, and the count the batch would have reached. */
  limit: number;
  value: number;
}

export class Cardinality {
  private readonly limits: CardinalityLimits;
  private readonly known: KnownSeries;
  /** device -> metrics, stored or pending; null until first needed. */
  private metrics: Map<string, Set<string>> | null = null;
  private seriesCount = 0;
  private readonly gateways = new Map<string, Set<string>>();
  /** (gateway, device) pairs of pending batches, written with the next commit. */
  private newGatewayDevices: [string, string][] = [];
  /** The pairs the last `inCommit` recorded: pending again if its transaction rolls back. */
  private recording: [string, string][] = [];

  constructor(limits: CardinalityLimits, known: KnownSeries) {
    this.limits = limits;
    this.known = known;
  }

  /**
   * Admits a batch (not a duplicate): null and its new series and devices
   * counted from now on, or why it is refused (nothing counted).
   */
  admit(peer: Peer, readings: PeerReadings): OverBudget | null {
    const known = this.loaded();
    const fresh = new Map<string, Set<string>>();
    const devices = new Set<string>();
    // The sets of the device seen last, so runs of one device look it up once.
    let device0 = "";
    let known0: Set<string> | undefined;
    let fresh0: Set<string> | undefined;
    forEachSeries(peer, readings, (device, metric) => {
      if (device !== device0) {
        device0 = device;
        devices.add(device);
        known0 = known.get(device);
        fresh0 = fresh.get(device);
      }
      if (known0?.has(metric) || fresh0?.has(metric)) return;
      if (!fresh0) fresh.set(device, (fresh0 = new Set()));
      fresh0.add(metric);
    });
    const refusal = this.check(peer, fresh, devices);
    if (refusal) return refusal;
    for (const [device, metrics] of fresh) {
      let set = known.get(device);
      if (!set) known.set(device, (set = new Set()));
      for (const m of metrics) set.add(m);
      this.seriesCount += metrics.size;
    }
    if (peer.kind === "gateway") {
      const mine = this.devicesOf(peer.id);
      for (const device of devices) {
        if (mine.has(device)) continue;
        mine.add(device);
        this.newGatewayDevices.push([peer.id, device]);
      }
    }
    return null;
  }

  /**
   * Inside a commit's transaction: records the gateways' new devices of the
   * batches it applies (`batches`: after a failed group commit, its batches
   * are retried in parts, commit.ts, and each part records only its own).
   */
  inCommit(now: number, batches: readonly { device: string; source: Peer }[]): void {
    this.recording = [];
    if (this.newGatewayDevices.length === 0) return;
    const applied = new Set<string>();
    for (const b of batches) if (b.source.kind === "gateway") applied.add(pairKey(b.source.id, b.device));
    const due: [string, string][] = [];
    const later: [string, string][] = [];
    for (const pair of this.newGatewayDevices) (applied.has(pairKey(...pair)) ? due : later).push(pair);
    if (due.length > 0) this.known.addGatewayDevices(due, now);
    this.newGatewayDevices = later;
    this.recording = due;
  }

  /**
   * A commit failed: what pending batches added is unknown now, so read it
   * all again when next needed. While its batches are `retrying` in parts,
   * the gateways' new devices are kept for the parts to record.
   */
  forget(retrying = false): void {
    this.metrics = null;
    this.seriesCount = 0;
    this.gateways.clear();
    // The pairs the rolled-back transaction recorded are pending again.
    this.newGatewayDevices = retrying ? [...this.newGatewayDevices, ...this.recording] : [];
    this.recording = [];
  }

  private check(peer: Peer, fresh: Map<string, Set<string>>, devices: Set<string>): OverBudget | null {
    const { maxMetricsPerDevice, maxDevicesPerGateway, maxSeriesPerGroup } = this.limits;
    const known = this.loaded();
    if (maxMetricsPerDevice > 0) {
      for (const [device, metrics] of fresh) {
        const n = (known.get(device)?.size ?? 0) + metrics.size;
        if (n > maxMetricsPerDevice) {
          const message = `device ${device} would have ${n} distinct metrics, above MAX_METRICS_PER_DEVICE (${maxMetricsPerDevice})`;
          return { code: ErrorCode.TooManyMetrics, message, limit: maxMetricsPerDevice, value: n };
        }
      }
    }
    if (peer.kind === "gateway" && maxDevicesPerGateway > 0) {
      const mine = this.devicesOf(peer.id);
      let n = mine.size;
      for (const device of devices) if (!mine.has(device)) n++;
      if (n > maxDevicesPerGateway) {
        const message = `gateway ${peer.id} would write for ${n} distinct devices, above MAX_DEVICES_PER_GATEWAY (${maxDevicesPerGateway})`;
        return { code: ErrorCode.TooManyDevices, message, limit: maxDevicesPerGateway, value: n };
      }
    }
    if (maxSeriesPerGroup > 0) {
      let added = 0;
      for (const metrics of fresh.values()) added += metrics.size;
      if (added > 0 && this.seriesCount + added > maxSeriesPerGroup) {
        const n = this.seriesCount + added;
        return { code: ErrorCode.TooManySeries, message: `the group would have ${n} series, above MAX_SERIES_PER_GROUP (${maxSeriesPerGroup})`, limit: maxSeriesPerGroup, value: n };
      }
    }
    return null;
  }

  private loaded(): Map<string, Set<string>> {
    if (this.metrics) return this.metrics;
    const m = new Map<string, Set<string>>();
    let n = 0;
    for (const [device, metric] of this.known.series()) {
      let set = m.get(device);
      if (!set) m.set(device, (set = new Set()));
      if (!set.has(metric)) n++;
      set.add(metric);
    }
    this.seriesCount = n;
    return (this.metrics = m);
  }

  private devicesOf(gateway: string): Set<string> {
    let set = this.gateways.get(gateway);
    if (!set) this.gateways.set(gateway, (set = new Set(this.known.gatewayDevices(gateway))));
    return set;
  }
}

function pairKey(gateway: string, device: string): string {
  return `${gateway}\u0000${device}`;
}

/** Metrics a device batch's walk remembers, so a few metrics taking turns cost no set lookups. */
const RECENT = 8;

/**
 * Calls `fn` with each (device, metric) of a batch: once per series of a
 * compact batch; for a v1 batch once per reading, except a device's metric
 * among its last RECENT distinct ones (a device's readings usually cycle
 * through a few metrics) or a gateway's reading of the same device and
 * metric as the one before. Plain loops, not a generator: this runs for
 * every reading applied. Repeats may still reach `fn`; it must not care.
 */
function forEachSeries(peer: Peer, readings: PeerReadings, fn: (device: string, metric: string) => void): void {
  if ("series" in readings) {
    for (const s of readings.series) fn(s.device ?? peer.id, s.metric);
    return;
  }
  if (peer.kind === "gateway") {
    let lastDevice = "";
    let lastMetric = "";
    for (const [, metric, , device] of readings as readonly GatewayReading[]) {
      if (metric === lastMetric && device === lastDevice) continue;
      lastDevice = device;
      lastMetric = metric;
      fn(device, metric);
    }
    return;
  }
  const recent: string[] = [];
  let next = 0;
  outer: for (const r of readings as readonly Reading[]) {
    const metric = r[1];
    for (let k = 0; k < recent.length; k++) if (recent[k] === metric) continue outer;
    recent[next] = metric;
    next = (next + 1) % RECENT;
    fn(peer.id, metric);
  }
}

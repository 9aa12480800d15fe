/**
 * The live stage: what dashboards see of a group (docs/protocol.md, "Live
 * socket"). It keeps the live state only while dashboards watch: without
 * them the commit path skips it, and it is rebuilt from SQLite when one
 * connects. Rejection counts wait here for the next group commit.
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { RatesResponse } from "../../../schema/api.ts";
import { readIntVars } from "../../../schema/limits.ts";
import type { Alert, RulesDoc } from "../../../schema/rules.ts";
import type { Collapsed } from "../ingest/collapse.ts";
import type { OutOfStep } from "../connections/attachment.ts";
import type { Peer } from "../peer.ts";
import { DEFAULT_FANOUT_TIMING, LiveFanout, type FanoutTiming } from "./fanout.ts";
import { DEFAULT_LIVE_BOUNDS, LiveState, RATE_WINDOW_S, type LiveBounds } from "./live-state.ts";
import { LiveStore } from "./live-store.ts";
import { RateHistory } from "./rate-history.ts";

/** What the live stage needs from its host. */
export interface LiveHost {
  /** The group's id, for logs. */
  name(): string;
  /** Open dashboard sockets (restored ones included). */
  dashboards(): WebSocket[];
  /** Devices with a socket of their own. */
  onlineDevices(): Set<string>;
  /** A dashboard socket's out-of-step mark, kept in its attachment (null: none). */
  outOfStep(ws: WebSocket): OutOfStep | null;
  /** Keeps (null: clears) a dashboard socket's out-of-step mark in its attachment. */
  setOutOfStep(ws: WebSocket, mark: OutOfStep | null): void;
}

/** Live-view intervals (injectable so tests need not sleep through production ones) and bounds. */
export interface LiveConfig extends FanoutTiming, LiveBounds {
  /** Seconds of history behind the readings/s and batches/s rates. */
  rateWindowS: number;
}

export const DEFAULT_LIVE_CONFIG: Readonly<LiveConfig> = { ...DEFAULT_FANOUT_TIMING, ...DEFAULT_LIVE_BOUNDS, rateWindowS: RATE_WINDOW_S };

export class Live {
  private readonly state: LiveState;
  private readonly fanout: LiveFanout<WebSocket>;
  private readonly store: LiveStore;
  private readonly rates: RateHistory;
  private readonly host: LiveHost;
  /** Rejections of devices waiting for the next group commit: device -> code -> count. */
  private rejects = new Map<string, Map<string, number>>();
  /** The counts the last `inCommit` wrote: pending again if its transaction rolls back. */
  private committing: Map<string, Map<string, number>> | null = null;

  constructor(storage: { db: DrizzleSqliteDODatabase; kv: SyncKvStorage }, host: LiveHost, config: LiveConfig = DEFAULT_LIVE_CONFIG) {
    this.host = host;
    this.store = new LiveStore(storage.db);
    this.rates = new RateHistory(storage.kv);
    this.state = new LiveState(config.rateWindowS, config);
    this.fanout = new LiveFanout(host, this.state, config);
  }

  /** True when rejection counts wait for a commit. */
  hasPendingWork(): boolean {
    return this.rejects.size > 0;
  }

  /** Inside the commit transaction: the readings/s history and pending rejection counts. */
  inCommit(c: Collapsed, now: number): void {
    this.committing = null;
    this.rates.add(c.readings, now);
    if (this.rejects.size === 0) return;
    this.store.addRejects(this.rejects, now);
    this.committing = this.rejects;
    this.rejects = new Map();
  }

  /**
   * A commit's transaction rolled back: the rates are read back from
   * storage, and while its batches are `retrying` in parts (commit.ts) its
   * rejection counts are pending again. Once the failed flush is over the
   * last counts written were committed (a rollback restored its own).
   */
  afterFailure(retrying: boolean): void {
    this.rates.forget();
    const back = this.committing;
    this.committing = null;
    if (!back || !retrying) return;
    for (const [device, codes] of back) {
      let mine = this.rejects.get(device);
      if (!mine) this.rejects.set(device, (mine = new Map()));
      for (const [code, n] of codes) mine.set(code, (mine.get(code) ?? 0) + n);
    }
  }

  /** After a commit: live state and alert changes to dashboards. */
  afterCommit(c: Collapsed, alerts: readonly Alert[], now: number): void {
    const wasLoaded = this.state.loaded;
    if (!this.watched()) return;
    // A state loaded just now already holds this commit (it is in SQLite).
    if (wasLoaded) this.state.applyCommit(c, now);
    this.noteAlerts(alerts);
    this.fanout.markDirty();
  }

  /** Alerts raised or cleared: shown with the next summaries. */
  noteAlerts(alerts: readonly Alert[]): void {
    for (const a of alerts) this.fanout.noteAlert(a);
  }

  /** A rejected frame. Counted per device in SQLite (a gateway is not a device), and in the live totals for both. */
  rejected(peer: Peer, code: string, now: number): void {
    if (peer.kind === "device") {
      let codes = this.rejects.get(peer.id);
      if (!codes) this.rejects.set(peer.id, (codes = new Map()));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    if (!this.watched()) return;
    this.state.reject(peer, code, now);
    this.fanout.markDirty();
  }

  setOnline(device: string, online: boolean, now: number): void {
    if (!this.watched()) return;
    this.state.setOnline(device, online, now);
    this.fanout.markDirty();
  }

  /** Something besides data changed (rules): dashboards get a summary soon. */
  markDirty(): void {
    this.fanout.markDirty();
  }

  /** The readings/s history (the dashboard's chart). */
  rateHistory(now: number): RatesResponse {
    return this.rates.series(now);
  }

  /** Sends a newly accepted dashboard socket its snapshot. */
  welcome(ws: WebSocket, extras: { alerts: Alert[]; rules: RulesDoc }, now: number): void {
    // The first dashboard loads the live state the snapshot is built from.
    this.fanout.recount();
    this.watched();
    this.fanout.sendSnapshot(ws, { group: this.host.name(), ...extras }, now);
  }

  onMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    this.fanout.onMessage(ws, message);
  }

  onClose(ws: WebSocket): void {
    this.fanout.onClose(ws);
  }

  /** Whether dashboards watch; loads the live state when they do, drops it when they stopped. */
  private watched(): boolean {
    if (this.fanout.count() === 0) {
      if (this.state.loaded) this.state.reset();
      return false;
    }
    if (!this.state.loaded) this.state.load({ ...this.store.seed(this.state.bounds), online: this.host.onlineDevices() });
    return true;
  }
}

/** Env vars that override the live config (timing unset in production and small in the worker tests). */
const CONFIG_VARS: Readonly<Record<keyof LiveConfig, string>> = {
  summaryIntervalMs: "LIVE_SUMMARY_MS",
  ackTimeoutMs: "LIVE_ACK_TIMEOUT_MS",
  markAfterMs: "LIVE_ACK_MARK_MS",
  rateWindowS: "LIVE_RATE_WINDOW_S",
  maxDevices: "LIVE_MAX_DEVICES",
  maxMetrics: "LIVE_MAX_METRICS",
};

/** The live config from env vars; a var that is set but not a positive integer throws, as limits do. */
export function readLiveConfig(env: Readonly<Record<string, unknown>>): LiveConfig {
  return readIntVars<LiveConfig>(env, DEFAULT_LIVE_CONFIG, CONFIG_VARS, 1);
}

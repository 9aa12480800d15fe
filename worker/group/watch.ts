/**
 * The operator side of a group: live state, dashboard fan-out, rules and
 * alerts. GroupHub calls into it from its entry points and from the group
 * commit; everything here is rebuilt from SQLite on first use after a wake.
 */
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { Reading } from "../../schema/protocol.ts";
import type { Alert, RulesDoc } from "../../schema/rules.ts";
import { log } from "../log.ts";
import { AlertStore } from "./alert-store.ts";
import { Alerting } from "./alerting.ts";
import type { Collapsed } from "./collapse.ts";
import { LiveFanout, LIVE_TAG } from "./live-sockets.ts";
import { LiveState } from "./live-state.ts";
import type { LiveSession } from "./sessions.ts";


export class Watch {
  readonly live = new LiveState();
  readonly fanout: LiveFanout;
  readonly alerting = new Alerting();
  readonly store: AlertStore;
  private readonly ctx: DurableObjectState;
  private readonly group: () => string;
  private readonly online: () => Set<string>;
  private rulesLoaded = false;
  /** Rejections waiting for the next group commit: device -> code -> count. */
  private rejects = new Map<string, Map<string, number>>();
  private alarmChecked = false;

  constructor(ctx: DurableObjectState, db: DrizzleSqliteDODatabase, group: () => string, online: () => Set<string>) {
    this.ctx = ctx;
    this.group = group;
    this.online = online;
    this.store = new AlertStore(db);
    this.fanout = new LiveFanout(ctx, this.live, group);
  }

  /** Loads rules and active alerts from SQLite, once per wake. */
  private ensureRules(): void {
    if (this.rulesLoaded) return;
    this.alerting.load(this.store.readRules(), this.store.activeAlerts());
    this.rulesLoaded = true;
  }

  /**
   * The live state is kept only while dashboards watch: without them the
   * commit path skips it, and it is rebuilt from SQLite when one connects.
   */
  private liveActive(): boolean {
    if (this.fanout.count() === 0) {
      if (this.live.loaded) this.live.reset();
      return false;
    }
    if (!this.live.loaded) {
      this.live.load({
        devices: this.store.lastSeenAllFull(),
        latest: this.store.latestValues(),
        rejects: this.store.rejects(),
        online: this.online(),
      });
    }
    return true;
  }

  /** Inside the commit transaction: rule evaluation and pending rejection counts. */
  inCommit(batches: { device: string; readings: readonly Reading[] }[], now: number): Alert[] {
    const changes: Alert[] = [];
    if (this.rejects.size > 0) {
      this.store.addRejects(this.rejects, now);
      this.rejects = new Map();
    }
    this.ensureRules();
    for (const b of batches) changes.push(...this.alerting.evaluate(b.device, b.readings, now, this.store));
    return changes;
  }

  /** After the commit: live state, alerts to dashboards, the offline alarm. */
  afterCommit(c: Collapsed, alerts: Alert[], now: number): void {
    const wasLoaded = this.live.loaded;
    if (this.liveActive()) {
      // A state loaded just now already holds this commit (it is in SQLite).
      if (wasLoaded) this.live.applyCommit(c, now);
      for (const a of alerts) this.fanout.noteAlert(a);
      this.fanout.markDirty();
    }
    if (this.alerting.doc.offlineAfterMs > 0 && !this.alarmChecked) {
      this.alarmChecked = true;
      void this.ensureAlarm(now + this.alerting.doc.offlineAfterMs);
    }
  }

  /** After a failed commit: in-memory rule state may not match SQLite any more. */
  afterFailure(): void {
    this.rulesLoaded = false;
  }

  reject(device: string, code: string, now: number): void {
    let codes = this.rejects.get(device);
    if (!codes) this.rejects.set(device, (codes = new Map()));
    codes.set(code, (codes.get(code) ?? 0) + 1);
    if (this.liveActive()) {
      this.live.reject(device, code, now);
      this.fanout.markDirty();
    }
  }

  /** True when rejection counts wait for a commit (the caller schedules one). */
  get hasPendingRejects(): boolean {
    return this.rejects.size > 0;
  }

  setOnline(device: string, online: boolean, now: number): void {
    if (!this.liveActive()) return;
    this.live.setOnline(device, online, now);
    this.fanout.markDirty();
  }

  /** Accepts a dashboard socket and sends its snapshot. */
  acceptLive(ws: WebSocket, group: string, now: number): void {
    this.ensureRules();
    this.ctx.acceptWebSocket(ws, [LIVE_TAG]);
    this.liveActive();
    const session: LiveSession = { k: "live", g: group, t: now };
    ws.serializeAttachment(session);
    const recent = this.store.listAlerts(false, 50);
    this.fanout.sendSnapshot(ws, { group, alerts: recent, rules: this.alerting.doc }, now);
  }

  getRules(): RulesDoc {
    this.ensureRules();
    return this.alerting.doc;
  }

  putRules(doc: RulesDoc, now: number): RulesDoc {
    this.store.writeRules(doc, now);
    this.rulesLoaded = false;
    this.ensureRules();
    this.alarmChecked = false;
    if (doc.offlineAfterMs > 0) void this.ensureAlarm(now + doc.offlineAfterMs);
    this.fanout.markDirty();
    return this.alerting.doc;
  }

  /** The offline check. Returns alerts raised. */
  alarm(now: number): Alert[] {
    this.ensureRules();
    const devices = this.store.lastSeenAll();
    const raised = this.alerting.checkOffline(devices, now, this.store);
    for (const a of raised) this.fanout.noteAlert(a);
    const next = this.alerting.nextOfflineCheck(devices);
    if (next !== null) void this.ctx.storage.setAlarm(Math.max(next, now + 1000));
    return raised;
  }

  private async ensureAlarm(at: number): Promise<void> {
    try {
      const current = await this.ctx.storage.getAlarm();
      if (current === null || current > at) await this.ctx.storage.setAlarm(at);
    } catch (err) {
      log.error("watch.ensureAlarm", err, { group: this.group() });
    }
  }
}

/**
 * One open group: the live socket (docs/protocol.md, "Live socket"), with
 * acks, keep-alive and reconnects with jittered backoff, and a REST polling
 * fallback that keeps the page useful while the socket is unavailable (a
 * hub without the live route, a proxy that drops WebSockets). A refused
 * token, on the socket or on REST, ends in the sign-in message.
 */
import { fetchAggregates, fetchAlerts, fetchDevices, fetchRates, fetchRules, HubError, isAuthError, liveUrl } from "./api.ts";
import { parseLiveFrame, type Latest } from "./hub/types.ts";
import { GroupStore, HISTORY_MS } from "./store.ts";
import { getToken } from "./token.ts";

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const PING_EVERY_MS = 30_000;
const POLL_EVERY_MS = 3_000;
/** The polling fallback reads latest values from aggregates this often (every Nth poll). */
const POLL_LATEST_EVERY = 2;

export interface SessionEvents {
  /** The token was refused: show the sign-in message. */
  onSignIn(message: string): void;
}

export class GroupSession {
  readonly store: GroupStore;
  private readonly events: SessionEvents;
  private ws: WebSocket | null = null;
  private stopped = false;
  private attempt = 0;
  private reconnectTimer: number | undefined;
  private pingTimer: number | undefined;
  private pollTimer: number | undefined;
  private sampleTimer: number | undefined;
  private polls = 0;
  private polling = false;
  private readonly backfilled = new Set<string>();
  private readonly abort = new AbortController();

  constructor(group: string, events: SessionEvents) {
    this.store = new GroupStore(group);
    this.events = events;
  }

  get group(): string {
    return this.store.group;
  }

  start(): this {
    // The readings/s history grows whichever view is showing.
    this.sampleTimer = window.setInterval(() => this.store.sampleRate(), 1000);
    this.connect();
    void this.loadAlertsAndRules();
    return this;
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    window.clearTimeout(this.reconnectTimer);
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pollTimer);
    window.clearInterval(this.sampleTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
  }

  /** Sparkline history for `metric`: one-minute averages of the last 15 minutes, fetched once. */
  async backfill(metric: string): Promise<void> {
    if (this.backfilled.has(metric) || this.stopped) return;
    this.backfilled.add(metric);
    try {
      const { buckets } = await fetchAggregates(this.group, { metric, from: Date.now() - HISTORY_MS }, this.abort.signal);
      const byDevice = new Map<string, [number, number][]>();
      for (const b of buckets) {
        if (b.count === 0) continue;
        let pts = byDevice.get(b.device);
        if (!pts) byDevice.set(b.device, (pts = []));
        pts.push([b.start + 30_000, b.sum / b.count]);
      }
      for (const [device, pts] of byDevice) this.store.backfillSpark(device, metric, pts);
      this.store.emit("devices");
    } catch (err) {
      this.backfilled.delete(metric);
      this.handleRestError(err);
    }
  }

  private connect(): void {
    if (this.stopped) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(liveUrl(this.group));
    } catch {
      this.onSocketClosed(false);
      return;
    }
    this.ws = ws;
    let gotFrame = false;
    ws.onopen = () => {
      window.clearInterval(this.pingTimer);
      this.pingTimer = window.setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send("ping");
      }, PING_EVERY_MS);
    };
    ws.onmessage = (ev: MessageEvent<unknown>) => {
      if (typeof ev.data !== "string" || ev.data === "pong") return;
      const frame = parseLiveFrame(ev.data);
      if (!frame) return;
      if (frame.type === "snapshot") {
        gotFrame = true;
        this.attempt = 0;
        this.stopPolling();
        this.store.applySnapshot(frame);
        if (frame.rules) this.store.alertsAvailable = true;
        this.store.setStatus({ state: "live" });
        // After a reload or a reconnect the chart starts from the hub's history.
        void this.loadRates();
      } else {
        this.store.applySummary(frame);
        if (this.store.status.state !== "live") this.store.setStatus({ state: "live" });
      }
      // Flow control: the hub sends the next frame only after this ack; `delta`
      // asks for frames with only the latest values that changed.
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", seq: frame.seq, delta: true }));
    };
    ws.onclose = () => {
      window.clearInterval(this.pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.onSocketClosed(gotFrame);
    };
  }

  private onSocketClosed(gotFrame: boolean): void {
    if (this.stopped) return;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.reconnectTimer = window.setTimeout(() => this.connect(), delay);
    if (gotFrame) {
      this.store.setStatus({ state: "reconnecting", inMs: delay });
    } else if (!this.polling) {
      // Refused before the first frame: a bad token, or no live socket on this
      // hub. REST tells which; if REST works, poll it until the socket is back.
      this.startPolling();
    }
  }

  private startPolling(): void {
    if (this.polling || this.stopped) return;
    this.polling = true;
    this.polls = 0;
    void this.loadRates();
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    window.clearTimeout(this.pollTimer);
  }

  private async poll(): Promise<void> {
    if (!this.polling || this.stopped) return;
    try {
      const withLatest = this.polls % POLL_LATEST_EVERY === 0;
      const [devices, latest] = await Promise.all([
        fetchDevices(this.group, this.abort.signal),
        withLatest ? this.recentLatest() : Promise.resolve(null),
      ]);
      if (!this.polling || this.stopped) return;
      this.polls++;
      this.store.applyPoll(devices, latest);
      this.store.setStatus({ state: "polling", reason: "live updates unavailable; refreshing every few seconds" });
    } catch (err) {
      if (this.handleRestError(err)) return;
    }
    if (this.polling && !this.stopped) this.pollTimer = window.setTimeout(() => void this.poll(), POLL_EVERY_MS);
  }

  /** Newest value per device and metric, from the `last` of the most recent buckets. */
  private async recentLatest(): Promise<Map<string, Map<string, Latest>>> {
    const now = Date.now();
    const { buckets } = await fetchAggregates(this.group, { from: now - 2 * 60_000 }, this.abort.signal);
    const out = new Map<string, Map<string, Latest>>();
    const starts = new Map<string, number>();
    for (const b of buckets) {
      const key = `${b.device}\u0000${b.metric}`;
      if ((starts.get(key) ?? -1) > b.start) continue;
      starts.set(key, b.start);
      let rec = out.get(b.device);
      if (!rec) out.set(b.device, (rec = new Map()));
      rec.set(b.metric, { value: b.last, ts: Math.min(now, b.start + 59_999) });
    }
    return out;
  }

  /** The readings/s chart's last 15 minutes from the hub. A hub without the route (404) leaves the chart to live samples. */
  private async loadRates(): Promise<void> {
    try {
      const rates = await fetchRates(this.group, this.abort.signal);
      if (!this.stopped) this.store.setRateHistory(rates);
    } catch (err) {
      this.handleRestError(err);
    }
  }

  private async loadAlertsAndRules(): Promise<void> {
    const [alerts, rules] = await Promise.allSettled([
      fetchAlerts(this.group, 200, this.abort.signal),
      fetchRules(this.group, this.abort.signal),
    ]);
    if (this.stopped) return;
    if (alerts.status === "fulfilled") this.store.setAlerts(alerts.value);
    else this.handleRestError(alerts.reason);
    if (rules.status === "fulfilled") this.store.setRules(rules.value, true);
    else if (!this.handleRestError(rules.reason) && this.store.alertsAvailable !== true) {
      this.store.setRules(null, false);
    }
  }

  /** Re-reads the rules (after the rules editor saved them). */
  async reloadRules(): Promise<void> {
    try {
      this.store.setRules(await fetchRules(this.group, this.abort.signal), true);
    } catch (err) {
      this.handleRestError(err);
    }
  }

  /** True when the error ended the session (refused token). */
  handleRestError(err: unknown): boolean {
    if (this.stopped) return true;
    if (isAuthError(err)) {
      this.stop();
      const message =
        getToken() === null ? "This dashboard needs an operator token." : `The hub refused this token for group "${this.group}".`;
      this.store.setStatus({ state: "signin", message });
      this.events.onSignIn(message);
      return true;
    }
    if (err instanceof HubError && err.status === 404) return false;
    if (err instanceof DOMException && err.name === "AbortError") return false;
    if (this.polling) {
      const message = err instanceof Error ? err.message : String(err);
      this.store.setStatus({ state: "error", message: `Cannot reach the hub: ${message}` });
    }
    return false;
  }
}

/**
 * Dashboard sockets of a group (docs/protocol.md, "Live socket"): a
 * snapshot on connect, then coalesced summaries at most every 500 ms while
 * something changes, and nothing while the group is idle, so it can
 * hibernate.
 *
 * Flow control is by acknowledgement: a socket gets a new frame only after
 * it acked the previous one, by that frame's exact seq. A slow dashboard therefore skips summaries and
 * later receives one frame with everything that changed meanwhile; the hub
 * never queues a backlog for it. (The runtime does not expose a hibernatable
 * socket's send buffer, so the hub cannot watch bufferedAmount.)
 *
 * Per-socket state here is in memory and may be lost on hibernation; a
 * socket without state is treated as up to date with nothing acked pending,
 * and gets a full summary at the next change.
 */
import type { Alert, RulesDoc } from "../../../schema/rules.ts";
import { CloseCode } from "../../../schema/protocol.ts";
import { log } from "../../log.ts";
import type { LiveState } from "./live-state.ts";

/** The part of a dashboard socket fan-out uses. */
export interface DashboardSocket {
  send(data: string): void;
  close(code: number, reason: string): void;
}

/** What fan-out needs from its host. */
export interface FanoutHost<S extends DashboardSocket = DashboardSocket> {
  /** The group's id, for logs. */
  name(): string;
  /** Open dashboard sockets (restored ones included). */
  dashboards(): S[];
}

/** Fan-out intervals; injectable so tests need not wait for production ones. */
export interface FanoutTiming {
  /** Summaries go out at most this often while something changes. */
  summaryIntervalMs: number;
  /** A socket that leaves a frame unacked this long is closed with 4008. */
  ackTimeoutMs: number;
}

export const DEFAULT_FANOUT_TIMING: Readonly<FanoutTiming> = { summaryIntervalMs: 500, ackTimeoutMs: 60_000 };

interface SocketState {
  /** The epoch this socket has every change through (0: nothing yet). */
  lastEpoch: number;
  /** Seq of the frame awaiting an ack, or null. */
  awaiting: number | null;
  awaitingSince: number;
}

/** Everything the snapshot needs that is not live state. */
export interface SnapshotExtras {
  group: string;
  alerts: Alert[];
  rules: RulesDoc;
}

export class LiveFanout<S extends DashboardSocket = DashboardSocket> {
  private readonly host: FanoutHost<S>;
  private readonly state: LiveState;
  private readonly timing: FanoutTiming;
  private readonly clock: () => number;
  private readonly sockets = new Map<S, SocketState>();
  private readonly alertLog: { epoch: number; alert: Alert }[] = [];
  private seq = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(host: FanoutHost<S>, state: LiveState, timing: FanoutTiming = DEFAULT_FANOUT_TIMING, clock: () => number = Date.now) {
    this.host = host;
    this.state = state;
    this.timing = timing;
    this.clock = clock;
  }

  private socketState(ws: S): SocketState {
    let s = this.sockets.get(ws);
    if (!s) {
      s = { lastEpoch: 0, awaiting: null, awaitingSince: 0 };
      this.sockets.set(ws, s);
    }
    return s;
  }

  /** Open dashboard sockets (restored ones included). */
  count(): number {
    return this.host.dashboards().length;
  }

  /** Sends the snapshot to a newly accepted socket. */
  sendSnapshot(ws: S, extras: SnapshotExtras, now: number): void {
    const epoch = this.state.epoch;
    // Changes from here on belong to a later epoch than this snapshot covers.
    this.state.epoch++;
    const seq = ++this.seq;
    const frame = {
      type: "snapshot",
      v: 1,
      group: extras.group,
      seq,
      at: now,
      totals: this.state.totals(now),
      devices: this.state.changedSince(0, now),
      alerts: extras.alerts,
      rules: extras.rules,
    };
    ws.send(JSON.stringify(frame));
    this.sockets.set(ws, { lastEpoch: epoch, awaiting: seq, awaitingSince: now });
  }

  /** Records an alert change for the next summaries. */
  noteAlert(alert: Alert): void {
    this.alertLog.push({ epoch: this.state.epoch, alert });
    if (this.alertLog.length > 500) this.alertLog.splice(0, this.alertLog.length - 500);
    this.markDirty();
  }

  /** Something changed: make sure a summary goes out within the interval. */
  markDirty(): void {
    if (this.timer !== undefined || this.count() === 0) return;
    this.timer = setTimeout(() => this.tick(), this.timing.summaryIntervalMs);
  }

  /** A text frame from a dashboard: an ack, or the socket is closed. */
  onMessage(ws: S, message: string | ArrayBuffer): void {
    if (typeof message !== "string") {
      ws.close(CloseCode.UnsupportedData, "dashboard frames are JSON text");
      return;
    }
    let seq: unknown;
    try {
      const parsed: unknown = JSON.parse(message);
      if (typeof parsed !== "object" || parsed === null || !("type" in parsed) || parsed.type !== "ack" || !("seq" in parsed)) {
        throw new Error("not an ack");
      }
      seq = parsed.seq;
    } catch {
      ws.close(CloseCode.InvalidPayload, 'expected {"type":"ack","seq":N}');
      return;
    }
    const s = this.socketState(ws);
    // Only the awaited seq releases the next frame. Accepting any seq at or
    // above it let a socket ack blindly (say 2^31) without reading and get a
    // new summary per ack, queuing bytes without bound (issue #12). Other
    // acks (duplicates, or acks of frames sent before a wake reset the
    // counter) are ignored: a legitimate dashboard acks what it received.
    if (typeof seq === "number" && s.awaiting !== null && seq === s.awaiting) {
      s.awaiting = null;
      // It may have skipped summaries while it was behind: catch it up.
      if (s.lastEpoch < this.state.epoch - 1 || this.alertLog.some((a) => a.epoch > s.lastEpoch)) this.markDirty();
    }
  }

  onClose(ws: S): void {
    this.sockets.delete(ws);
  }

  /** Builds and sends summaries. Never throws (it runs from a timer). */
  tick(): void {
    this.timer = undefined;
    try {
      this.send(this.clock());
    } catch (err) {
      log.error("live.tick", err, { group: this.host.name() });
    }
  }

  /** One round of summaries at `now`: how many went out, and how many sockets wait for their ack. */
  send(now: number): { sent: number; waiting: number } {
    const epoch = this.state.epoch;
    this.state.epoch++;
    const totals = this.state.totals(now);
    const frames = new Map<number, { devices: unknown[]; alerts: Alert[] } | null>();
    let sent = 0;
    let waiting = 0;
    for (const ws of this.host.dashboards()) {
      const s = this.socketState(ws);
      if (s.awaiting !== null) {
        if (now - s.awaitingSince > this.timing.ackTimeoutMs) {
          ws.close(CloseCode.TooSlow, "dashboard did not ack summaries");
          this.sockets.delete(ws);
        } else {
          waiting++;
        }
        continue;
      }
      // Most sockets are up to date and share one delta.
      let delta = frames.get(s.lastEpoch);
      if (delta === undefined) {
        const devices = this.state.changedSince(s.lastEpoch, now);
        const alerts = this.alertLog.filter((a) => a.epoch > s.lastEpoch).map((a) => a.alert);
        const quiet = devices.length === 0 && alerts.length === 0 && this.state.totalsChanged <= s.lastEpoch;
        delta = quiet ? null : { devices, alerts };
        frames.set(s.lastEpoch, delta);
      }
      if (delta === null) continue;
      const seq = ++this.seq;
      try {
        ws.send(JSON.stringify({ type: "summary", seq, at: now, totals, ...delta }));
      } catch {
        continue; // closing
      }
      s.lastEpoch = epoch;
      s.awaiting = seq;
      s.awaitingSince = now;
      sent++;
    }
    // Keep ticking while rates decay to zero; then stop, so an idle group
    // sends nothing and can hibernate. A socket that was waiting for its ack
    // is caught up when the ack arrives (onMessage).
    if (this.state.touchActive(now)) this.markDirty();
    return { sent, waiting };
  }
}

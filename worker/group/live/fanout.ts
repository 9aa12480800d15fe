/**
 * Dashboard sockets of a group (docs/protocol.md, "Live socket"): a
 * snapshot on connect, then coalesced summaries at most every 500 ms while
 * something changes, and nothing while the group is idle, so it can
 * hibernate.
 *
 * Each tick encodes its frames once for all sockets, not once per socket
 * (issue #16: per-socket JSON made 1,000 dashboards cost the group a fifth
 * of its ingest rate). Every frame of a tick carries the tick's seq, so
 * sockets that are up to date share one string; sockets that fell behind
 * share one catch-up frame covering the oldest of them. A dashboard that
 * asks for deltas (`"delta": true` in its acks) gets `delta` frames whose
 * devices carry only the latest values that changed; others get `summary`
 * frames with whole device rows, as before.
 *
 * Flow control is by acknowledgement: a socket gets a new frame only after
 * it acked the previous one, by that frame's exact seq. A slow dashboard therefore skips summaries and
 * later receives one frame with everything that changed meanwhile; the hub
 * never queues a backlog for it. (The runtime does not expose a hibernatable
 * socket's send buffer, so the hub cannot watch bufferedAmount.)
 *
 * Per-socket state here is in memory and may be lost on hibernation; a
 * socket without state is treated as up to date with nothing acked pending,
 * and gets a full summary at the next change (and deltas again after its
 * next ack asks for them). Except a socket out of step: one that acked a
 * seq other than the one it owes (a blind ack), or left a frame unacked for
 * `markAfterMs` (a silent socket, which does not read), is marked in its
 * attachment (connections/attachment.ts, `OutOfStep`) with the frame it
 * owes and when that was sent, so after a wake it still gets nothing until
 * it acks that frame, and its ack timeout runs from the original send. An
 * honest socket acks its frame within milliseconds, so marks cost it no
 * attachment writes in the normal case.
 *
 * Summaries tick only while something changes, so the silent case is
 * checked by a timer of its own: armed when frames go out, it fires at the
 * earliest `awaitingSince + markAfterMs` of the sockets awaiting unmarked,
 * marks those due and closes (4008) those past their ack timeout; it is
 * armed again only while unmarked sockets await. `markAfterMs` (default
 * 5 s) stays well below the idle time after which the runtime hibernates an
 * object, currently 10 s
 * (https://developers.cloudflare.com/durable-objects/concepts/durable-object-lifecycle/),
 * so the mark is written before the in-memory state can be lost, and a
 * quiet group hibernates at most one timer later than it would have.
 */
import type { Alert, RulesDoc } from "../../../schema/rules.ts";
import { CloseCode } from "../../../schema/protocol.ts";
import type { OutOfStep } from "../connections/attachment.ts";
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
  /** The out-of-step mark kept with a socket (null: none); asked once per socket per wake. */
  outOfStep(ws: S): OutOfStep | null;
  /** Keeps (null: clears) a socket's out-of-step mark with the socket, so it outlives hibernation. */
  setOutOfStep(ws: S, mark: OutOfStep | null): void;
}

/** Fan-out intervals; injectable so tests need not wait for production ones. */
export interface FanoutTiming {
  /** Summaries go out at most this often while something changes. */
  summaryIntervalMs: number;
  /** A socket that leaves a frame unacked this long is closed with 4008. */
  ackTimeoutMs: number;
  /**
   * A socket that leaves a frame unacked this long is marked out of step in
   * its attachment, so a wake does not forget the frame it owes. Keep it
   * below the runtime's idle time before hibernation (10 s, header comment).
   */
  markAfterMs: number;
}

export const DEFAULT_FANOUT_TIMING: Readonly<FanoutTiming> = { summaryIntervalMs: 500, ackTimeoutMs: 60_000, markAfterMs: 5000 };

interface SocketState {
  /** The epoch this socket has every change through (0: nothing yet). */
  lastEpoch: number;
  /** Seq of the frame awaiting an ack, or null. */
  awaiting: number | null;
  awaitingSince: number;
  /** The dashboard asked for `delta` frames. */
  delta: boolean;
  /** Its out-of-step mark is stored with the socket. */
  marked: boolean;
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
  /** The epoch of the last tick: sockets at or past it are up to date. */
  private lastTickEpoch = 0;
  /** Open dashboard sockets, counted when needed (null: count again). */
  private dashboardCount: number | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The check of unacked frames (`check`), armed while sockets await unmarked. */
  private checkTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(host: FanoutHost<S>, state: LiveState, timing: FanoutTiming = DEFAULT_FANOUT_TIMING, clock: () => number = Date.now) {
    this.host = host;
    this.state = state;
    this.timing = timing;
    this.clock = clock;
  }

  private socketState(ws: S): SocketState {
    let s = this.sockets.get(ws);
    if (!s) {
      // After a wake: a socket that was out of step still owes its frame.
      const mark = this.host.outOfStep(ws);
      s = mark
        ? { lastEpoch: 0, awaiting: mark.seq, awaitingSince: mark.since, delta: false, marked: true }
        : { lastEpoch: 0, awaiting: null, awaitingSince: 0, delta: false, marked: false };
      // New frames never reuse a seq a restored socket still owes.
      if (mark) this.seq = Math.max(this.seq, mark.seq);
      this.sockets.set(ws, s);
    }
    return s;
  }

  /**
   * Open dashboard sockets (restored ones included). Cached: the commit path
   * asks on every commit, and listing 1,000 sockets there cost more than the
   * commit itself.
   */
  count(): number {
    return (this.dashboardCount ??= this.host.dashboards().length);
  }

  /** A dashboard socket was accepted or closed: count again when asked. */
  recount(): void {
    this.dashboardCount = null;
  }

  /** Sends the snapshot to a newly accepted socket. */
  sendSnapshot(ws: S, extras: SnapshotExtras, now: number): void {
    const epoch = this.state.epoch;
    // Changes from here on belong to a later epoch than this snapshot covers.
    this.state.epoch++;
    this.recount();
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
      ...this.omitted(),
    };
    ws.send(JSON.stringify(frame));
    this.sockets.set(ws, { lastEpoch: epoch, awaiting: seq, awaitingSince: now, delta: false, marked: false });
    this.armCheck(now + this.timing.markAfterMs, now);
  }

  /** What the bounds left out, as a frame field (absent when nothing was). */
  private omitted(): { omitted?: { devices: number } } {
    const devices = this.state.omittedDevices();
    return devices > 0 ? { omitted: { devices } } : {};
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
    let delta: boolean;
    try {
      const parsed: unknown = JSON.parse(message);
      if (typeof parsed !== "object" || parsed === null || !("type" in parsed) || parsed.type !== "ack" || !("seq" in parsed)) {
        throw new Error("not an ack");
      }
      seq = parsed.seq;
      delta = "delta" in parsed && parsed.delta === true;
    } catch {
      ws.close(CloseCode.InvalidPayload, 'expected {"type":"ack","seq":N}');
      return;
    }
    const s = this.socketState(ws);
    if (delta) s.delta = true;
    // Only the awaited seq releases the next frame. Accepting any seq at or
    // above it let a socket ack blindly (say 2^31) without reading and get a
    // new summary per ack, queuing bytes without bound (issue #12). Other
    // acks (duplicates, or acks of frames sent before a wake reset the
    // counter) are ignored: a legitimate dashboard acks what it received.
    if (s.awaiting === null) return;
    if (seq !== s.awaiting) {
      // Out of step: remember what it owes with the socket (once), so a
      // wake from hibernation does not forget it and send another frame.
      if (!s.marked) this.markOutOfStep(ws, s, s.awaiting);
      return;
    }
    s.awaiting = null;
    if (s.marked) {
      s.marked = false;
      this.host.setOutOfStep(ws, null);
    }
    // It may have skipped summaries while it was behind: catch it up.
    if (s.lastEpoch < this.state.epoch - 1 || this.alertLog.some((a) => a.epoch > s.lastEpoch)) this.markDirty();
  }

  onClose(ws: S): void {
    this.sockets.delete(ws);
    this.recount();
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
    const prevTick = this.lastTickEpoch;
    this.lastTickEpoch = epoch;
    const sockets = this.host.dashboards();
    this.dashboardCount = sockets.length;
    // Who is due, and where the oldest behind socket of each kind starts.
    const due: [S, SocketState][] = [];
    const behindSince = { summary: Infinity, delta: Infinity };
    let waiting = 0;
    for (const ws of sockets) {
      const s = this.socketState(ws);
      if (s.awaiting !== null) {
        if (!this.closeIfTimedOut(ws, s, now)) waiting++;
        continue;
      }
      due.push([ws, s]);
      const kind = s.delta ? "delta" : "summary";
      if (s.lastEpoch < prevTick) behindSince[kind] = Math.min(behindSince[kind], s.lastEpoch);
    }
    if (due.length === 0) return this.finish(now, 0, waiting);

    // One seq for the whole tick: frames differ only by content, and each
    // socket still acks the exact seq it was sent.
    const seq = ++this.seq;
    const totals = this.state.totals(now);
    const omitted = this.omitted();
    // Each frame of the tick encoded once: by kind and start epoch, null when nothing changed.
    const frames = new Map<string, string | null>();
    let sent = 0;
    for (const [ws, s] of due) {
      const kind = s.delta ? "delta" : "summary";
      // Sockets behind share the catch-up frame of the oldest among them
      // (values in it are absolute, so a newer socket applies it safely).
      const since = s.lastEpoch < prevTick ? behindSince[kind] : s.lastEpoch;
      const key = `${kind}:${since}`;
      let text = frames.get(key);
      if (text === undefined) {
        text = this.encode(kind, seq, since, now, totals, omitted);
        frames.set(key, text);
      }
      if (text === null) continue;
      try {
        ws.send(text);
      } catch {
        continue; // closing
      }
      s.lastEpoch = epoch;
      s.awaiting = seq;
      s.awaitingSince = now;
      sent++;
    }
    if (sent > 0) this.armCheck(now + this.timing.markAfterMs, now);
    return this.finish(now, sent, waiting);
  }

  /**
   * The check of unacked frames at `now` (header comment): closes sockets
   * past their ack timeout, marks out of step those that left a frame
   * unacked for `markAfterMs`, and arms itself again for the earliest
   * socket still awaiting unmarked. How many it marked and closed.
   */
  check(now: number): { marked: number; closed: number } {
    let marked = 0;
    let closed = 0;
    let next = Infinity;
    for (const ws of this.host.dashboards()) {
      const s = this.socketState(ws);
      if (s.awaiting === null) continue;
      if (this.closeIfTimedOut(ws, s, now)) {
        closed++;
      } else if (!s.marked) {
        const due = s.awaitingSince + this.timing.markAfterMs;
        if (due > now) {
          next = Math.min(next, due);
        } else {
          this.markOutOfStep(ws, s, s.awaiting);
          marked++;
        }
      }
    }
    if (next !== Infinity) this.armCheck(next, now);
    return { marked, closed };
  }

  /** Keeps with the socket that it owes the ack of `seq`, sent at `awaitingSince`, so a wake does not forget it. */
  private markOutOfStep(ws: S, s: SocketState, seq: number): void {
    s.marked = true;
    this.host.setOutOfStep(ws, { seq, since: s.awaitingSince });
  }

  /** Closes (4008) a socket whose awaited frame is past the ack timeout; whether it did. */
  private closeIfTimedOut(ws: S, s: SocketState, now: number): boolean {
    if (s.awaiting === null || now - s.awaitingSince <= this.timing.ackTimeoutMs) return false;
    ws.close(CloseCode.TooSlow, "dashboard did not ack summaries");
    this.sockets.delete(ws);
    this.recount();
    return true;
  }

  /** Makes sure the check runs by `at` (one timer: an earlier one already armed stays). */
  private armCheck(at: number, now: number): void {
    if (this.checkTimer !== undefined) return;
    this.checkTimer = setTimeout(() => {
      this.checkTimer = undefined;
      try {
        this.check(this.clock());
      } catch (err) {
        log.error("live.check", err, { group: this.host.name() });
      }
    }, Math.max(0, at - now));
  }

  /** The frame of changes after `since`, as JSON text; null when nothing changed. */
  private encode(
    kind: "summary" | "delta",
    seq: number,
    since: number,
    now: number,
    totals: ReturnType<LiveState["totals"]>,
    omitted: { omitted?: { devices: number } },
  ): string | null {
    const devices = this.state.changedSince(since, now, kind === "delta");
    const alerts = this.alertLog.filter((a) => a.epoch > since).map((a) => a.alert);
    if (devices.length === 0 && alerts.length === 0 && this.state.totalsChanged <= since) return null;
    return JSON.stringify({ type: kind, seq, at: now, totals, devices, alerts, ...omitted });
  }

  private finish(now: number, sent: number, waiting: number): { sent: number; waiting: number } {
    // Keep ticking while rates decay to zero; then stop, so an idle group
    // sends nothing and can hibernate. A socket that was waiting for its ack
    // is caught up when the ack arrives (onMessage).
    if (this.state.touchActive(now)) this.markDirty();
    return { sent, waiting };
  }
}

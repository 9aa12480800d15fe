/**
 * The rate limit on work (issue #12 finding 3). The readings throttle
 * (throttle.ts) counts readings a peer gets applied; this one counts what a
 * frame costs the hub before anything is known about it: its bytes plus a
 * fixed overhead per frame, charged before decoding, so duplicates, invalid
 * and refused frames pay like valid ones. Two token buckets:
 *
 * - per peer: over it, the frame is dropped unread and the peer is told once
 *   (`rate_limited` without `seq`); its socket is then out of step (a dropped
 *   frame's seq is unknown, so a later one must not be applied before it) and
 *   drops every further frame until the peer reconnects and resumes from
 *   `hello`. A peer that keeps sending (past its retry time, more frames than
 *   it could have had in flight, or a whole burst into debt) is closed with
 *   4029; while in debt it cannot reconnect (429).
 * - per group: frames the peers' own budgets let through are shed once the
 *   group's budget is spent (`overloaded`), so a bounded number of tokens can
 *   never make the object too busy to answer operators' REST calls.
 *
 * Buckets live in memory and start full after a wake, like the readings
 * throttle's: that only ever lets a peer send more, never loses a batch.
 */
import type { Limits } from "../../../schema/limits.ts";
import { ErrorCode } from "../../../schema/protocol.ts";

export type WorkLimits = Pick<Limits, "peerWorkBytesPerSec" | "peerWorkBurstBytes" | "frameOverheadBytes" | "groupWorkBytesPerSec" | "groupWorkBurstBytes">;

/** What to do with one frame, decided before it is decoded. */
export type WorkVerdict =
  | { kind: "ok" }
  /** Drop it unread; the peer was told already. */
  | { kind: "drop" }
  /** Drop it unread and tell the peer (an error frame without `seq`). */
  | { kind: "refuse"; code: typeof ErrorCode.RateLimited | typeof ErrorCode.Overloaded; retryAfterMs: number }
  /** Drop it and close the socket (4029). */
  | { kind: "close" };

interface Bucket {
  tokens: number;
  at: number;
}

interface PeerWork extends Bucket {
  /** Set when a frame of this socket was dropped: 0, or when the peer may resume (after reconnecting). */
  resumeAt: number;
  /** Frames dropped since the refusal. */
  dropped: number;
}

/**
 * Frames a socket may still send after its refusal before it is closed: what
 * a client had in flight when it read the error (DeviceClient keeps at most
 * 32 batches in flight by default). Each dropped frame still costs the
 * runtime an event, so a sender that is not listening is cut off soon.
 */
const DROPS_BEFORE_CLOSE = 64;

/** Least wait announced, so a peer never spins on tiny retries. */
const MIN_RETRY_MS = 50;

export class WorkBudget {
  private readonly peers = new Map<string, PeerWork>();
  private readonly group: Bucket;
  private readonly limits: WorkLimits;

  constructor(limits: WorkLimits, now: number) {
    this.limits = limits;
    this.group = { tokens: limits.groupWorkBurstBytes, at: now };
  }

  /** Charges one frame of `bytes` from the peer `key` (peerTag in peer.ts) and decides its fate. */
  charge(key: string, bytes: number, now: number): WorkVerdict {
    const { peerWorkBytesPerSec: rate, peerWorkBurstBytes: burst } = this.limits;
    const cost = bytes + this.limits.frameOverheadBytes;
    const p = this.peer(key, now);
    if (rate > 0) {
      refill(p, rate, burst, now);
      // Refused frames pay too; the debt is capped at one burst, which is
      // also where a peer that keeps going is closed.
      p.tokens = Math.max(-burst, p.tokens - cost);
      if (p.tokens <= -burst) return { kind: "close" };
    }
    if (p.resumeAt !== 0) return now >= p.resumeAt || ++p.dropped > DROPS_BEFORE_CLOSE ? { kind: "close" } : { kind: "drop" };
    // The wait is until half the burst is back, so a client that reconnects
    // then gets a useful run of frames instead of one frame per reconnect.
    if (rate > 0 && p.tokens < 0) return this.outOfStep(p, ErrorCode.RateLimited, wait(burst / 2 - p.tokens, rate));
    const groupRate = this.limits.groupWorkBytesPerSec;
    if (groupRate <= 0) return { kind: "ok" };
    refill(this.group, groupRate, this.limits.groupWorkBurstBytes, now);
    if (this.group.tokens < cost) return this.outOfStep(p, ErrorCode.Overloaded, wait(cost - this.group.tokens, groupRate));
    this.group.tokens -= cost;
    return { kind: "ok" };
  }

  /**
   * A peer connects: 0 if it may (its socket starts in step again), else
   * how long it should wait, in ms: it is still in debt for work it sent,
   * and is told to come back when half its burst is available again.
   */
  connect(key: string, now: number): number {
    const p = this.peers.get(key);
    if (!p) return 0;
    const rate = this.limits.peerWorkBytesPerSec;
    if (rate > 0) {
      const burst = this.limits.peerWorkBurstBytes;
      refill(p, rate, burst, now);
      if (p.tokens < 0) return wait(burst / 2 - p.tokens, rate);
    }
    p.resumeAt = 0;
    p.dropped = 0;
    return 0;
  }

  private peer(key: string, now: number): PeerWork {
    let p = this.peers.get(key);
    if (!p) {
      p = { tokens: this.limits.peerWorkBurstBytes, at: now, resumeAt: 0, dropped: 0 };
      this.peers.set(key, p);
    }
    return p;
  }

  private outOfStep(p: PeerWork, code: typeof ErrorCode.RateLimited | typeof ErrorCode.Overloaded, retryAfterMs: number): WorkVerdict {
    // Frames sent before the peer reads the error are dropped silently;
    // one still arriving after the retry time means it is not listening.
    p.resumeAt = p.at + retryAfterMs;
    p.dropped = 0;
    return { kind: "refuse", code, retryAfterMs };
  }
}

function refill(b: Bucket, rate: number, burst: number, now: number): void {
  if (now > b.at) b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
  b.at = now;
}

function wait(bytes: number, rate: number): number {
  return Math.max(MIN_RETRY_MS, Math.ceil((bytes * 1000) / rate));
}

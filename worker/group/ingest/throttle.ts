/**
 * Per-device (and per-gateway) rate limit: a token bucket of readings.
 *
 * Exactly-once needs care here. If batch N is refused but N+1 were then
 * accepted, lastSeq would move past N and N's resend would be acked as a
 * duplicate: lost. So a refusal blocks the peer at seq N: every later batch
 * is refused too until N itself comes back and fits (or the peer
 * reconnects, when `hello` tells it where to resume). Refused batches cost
 * no tokens, so a short burst over the limit only delays a device; it is
 * never disconnected for it.
 *
 * Buckets live in memory: after a wake they start full, which only ever
 * lets a device send more, never loses anything.
 */
import type { Limits } from "../../../schema/limits.ts";

interface Bucket {
  tokens: number;
  at: number;
  /** Seq of the refused batch every later batch waits behind, or 0. */
  blockedAt: number;
}

export type ThrottleResult = { ok: true } | { ok: false; retryAfterMs: number };

export class Throttle {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;

  constructor(limits: Pick<Limits, "peerReadingsPerSec" | "peerBurstReadings">) {
    this.rate = limits.peerReadingsPerSec;
    this.burst = Math.max(limits.peerBurstReadings, 1);
  }

  /**
   * Decides whether a batch (not a duplicate) may be applied now.
   * `key` is the peer's tag (peerTag in peer.ts).
   */
  check(key: string, seq: number, readings: number, now: number): ThrottleResult {
    if (this.rate <= 0) return { ok: true };
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now, blockedAt: 0 };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.rate) / 1000);
    b.at = now;
    // A batch larger than the whole bucket could never pass; let it through
    // once the bucket is full rather than block the device forever.
    const cost = Math.min(readings, this.burst);
    if (b.blockedAt !== 0 && seq !== b.blockedAt) return { ok: false, retryAfterMs: this.wait(b, cost) };
    if (b.tokens >= cost) {
      b.tokens -= cost;
      b.blockedAt = 0;
      return { ok: true };
    }
    b.blockedAt = seq;
    return { ok: false, retryAfterMs: this.wait(b, cost) };
  }

  /** A new connection: the client resumes from `hello`, so any block is moot. */
  reset(key: string): void {
    const b = this.buckets.get(key);
    if (b) b.blockedAt = 0;
  }

  private wait(b: Bucket, cost: number): number {
    return Math.max(50, Math.ceil(((cost - b.tokens) * 1000) / this.rate));
  }
}

/**
 * The ingest stage: frames from devices and gateways, the per-peer rate
 * limit, and the group commit. Device and gateway sockets take the same
 * path; only the validator differs by kind (frames.ts).
 */
import type { Limits } from "../../../schema/limits.ts";
import { log } from "../../log.ts";
import { CloseCode, ErrorCode, type DownlinkReplyFrame } from "../../../schema/protocol.ts";
import type { Rejection } from "../../../schema/validate.ts";
import { peerTag, type Peer } from "../peer.ts";
import { Cardinality, type OverBudget } from "./cardinality.ts";
import type { PeerReadings } from "./collapse.ts";
import { GroupCommit, type IngestHost } from "./commit.ts";
import { dispatchFrame, rejectionFrame, type FrameContext, type PeerSender } from "./frames.ts";
import type { Store } from "./store.ts";
import { StoredSeries } from "./known-series.ts";
import { Throttle } from "./throttle.ts";
import { WorkBudget } from "./work.ts";

/** What the ingest stage needs from its host, besides the group commit's hooks. */
export interface IngestStageHost<Note> extends Omit<IngestHost<Note>, "refused"> {
  /** A frame of `peer` was rejected with `code`: count it and show it live. */
  rejected(peer: Peer, code: string): void;
  /** A batch of `peer` was refused past a cardinality budget: the group raises an alert. */
  overBudget(peer: Peer, over: OverBudget, now: number): void;
  /** A downlink answer (downlink stage): a rejection to send back, or null when taken (now, or once the promise settles). */
  downlink(peer: Peer, frame: DownlinkReplyFrame): Rejection | null | Promise<Rejection | null>;
}

export class Ingest<Note> implements FrameContext {
  private readonly commit: GroupCommit<Note>;
  private readonly throttle: Throttle;
  private readonly work: WorkBudget;
  private readonly cardinality: Cardinality;
  private readonly store: Store;
  private readonly limits: Limits;
  private readonly host: IngestStageHost<Note>;
  private readonly clock: () => number;

  constructor(store: Store, limits: Limits, host: IngestStageHost<Note>, clock: () => number = Date.now) {
    this.store = store;
    this.limits = limits;
    this.host = host;
    this.clock = clock;
    const cardinality = (this.cardinality = new Cardinality(limits, new StoredSeries(store.db)));
    // The budgets' new gateway devices are written in the commit that applies them.
    this.commit = new GroupCommit(store, limits, {
      name: () => host.name(),
      hasPendingWork: () => host.hasPendingWork(),
      inCommit(c, batches, now) {
        cardinality.inCommit(now, batches);
        return host.inCommit(c, batches, now);
      },
      afterCommit: (c, note, now) => host.afterCommit(c, note, now),
      afterFailure(retrying) {
        cardinality.forget(retrying);
        host.afterFailure(retrying);
      },
      storageFull: (now) => host.storageFull(now),
      // After the flush: the counts ride the next commit.
      refused: (peer, code) => this.report(peer, code),
    });
    this.throttle = new Throttle(limits);
    this.work = new WorkBudget(limits, clock());
  }

  now(): number {
    return this.clock();
  }

  /**
   * Whether a peer may connect now: 0, or how long it must wait (ms) because
   * it is still in debt on its work budget (work.ts). Answered before
   * `connect`, so a peer that was closed for flooding cannot start again at once.
   */
  connectWait(peer: Peer): number {
    return this.work.connect(peerTag(peer), this.now());
  }

  /**
   * A peer connects: commits anything pending first, so `hello` reports
   * every batch this peer has had accepted (including ones sent on a socket
   * now being replaced), records the connect and returns the peer's lastSeq.
   */
  connect(peer: Peer, now: number): number {
    this.commit.flush();
    // The client resumes from `hello`, so a rate-limit block is moot.
    this.throttle.reset(peerTag(peer));
    this.store.touch(peer, now);
    return this.store.lastSeq(peer);
  }

  /**
   * Every message on a device or gateway socket. Its work is charged
   * before it is decoded (work.ts); a frame over the peer's or the group's
   * budget is dropped unread and counted.
   */
  onMessage(from: PeerSender, message: string | ArrayBuffer): void {
    const bytes = typeof message === "string" ? message.length : message.byteLength;
    const verdict = this.work.charge(peerTag(from.peer), bytes, this.now());
    switch (verdict.kind) {
      case "ok":
        dispatchFrame(this, this.limits, from, message);
        return;
      case "refuse": {
        const text =
          verdict.code === ErrorCode.Overloaded
            ? "the group is shedding load: this frame and later ones on this socket were dropped unread; wait retryAfterMs, reconnect and resend from hello's lastSeq"
            : "over the work budget (frames and bytes): this frame and later ones on this socket were dropped unread; wait retryAfterMs, reconnect and resend from hello's lastSeq";
        from.send(rejectionFrame({ ok: false, code: verdict.code, message: text }, verdict.retryAfterMs));
        this.report(from.peer, verdict.code);
        return;
      }
      case "drop":
        this.report(from.peer, ErrorCode.RateLimited);
        return;
      case "close":
        from.close(CloseCode.TooMuchWork, "over the work budget: reconnect after a pause");
        this.report(from.peer, ErrorCode.RateLimited);
        return;
    }
  }

  /** Commits pending batches now, so reads see every acked batch. */
  flush(): void {
    this.commit.flush();
  }

  /** Makes sure a commit runs soon for the host's pending work. */
  schedule(): void {
    this.commit.schedule();
  }

  /**
   * An operator sets a peer's lastSeq: pending batches are committed first,
   * `write` runs (it updates the stored seq), and the cached highest seq is
   * dropped so the stored one counts from the next frame.
   */
  resetSeq<T>(peer: Peer, write: () => T): T {
    this.commit.flush();
    try {
      return write();
    } finally {
      this.commit.forget(peer);
    }
  }

  /**
   * Duplicates pass (they apply nothing); a seq above `maxSeq` gets
   * `bad_seq` (nothing changes); a refused batch gets `rate_limited` with
   * `retryAfterMs`.
   */
  admit(from: PeerSender, seq: number, readings: number): boolean {
    if (seq <= this.commit.highest(from.peer)) return true;
    // Checked here, not in the validator: it is a hub limit (a var), and a
    // duplicate at any seq still gets its ack.
    if (this.limits.maxSeq > 0 && seq > this.limits.maxSeq) {
      this.reject(from, { ok: false, code: ErrorCode.BadSeq, message: `seq is above MAX_SEQ (${this.limits.maxSeq})`, seq });
      return false;
    }
    const r = this.throttle.check(peerTag(from.peer), seq, readings, this.now());
    if (r.ok) return true;
    const message = "over the rate limit: wait retryAfterMs, then resend this batch and the ones after it";
    from.send(rejectionFrame({ ok: false, code: ErrorCode.RateLimited, message, seq }, r.retryAfterMs));
    this.report(from.peer, ErrorCode.RateLimited);
    return false;
  }

  /**
   * Queues a batch for the group commit, unless (not being a duplicate) it
   * would take a cardinality budget past its limit: then it is refused whole
   * with that budget's code and nothing of it is applied.
   */
  submit(from: PeerSender, seq: number, readings: PeerReadings): void {
    if (seq > this.commit.highest(from.peer)) {
      const over = this.cardinality.admit(from.peer, readings);
      if (over) {
        this.reject(from, { ok: false, code: over.code, message: over.message, seq });
        this.host.overBudget(from.peer, over, this.now());
        return;
      }
    }
    this.commit.submit(from, from.peer, seq, readings);
  }

  reject(from: PeerSender, r: Rejection): void {
    from.send(rejectionFrame(r));
    this.report(from.peer, r.code);
  }

  downlink(from: PeerSender, frame: DownlinkReplyFrame): void {
    Promise.resolve(this.host.downlink(from.peer, frame)).then(
      (r) => r && this.reject(from, r),
      (err: unknown) => log.error("ingest.downlink", err, { group: this.host.name() }),
    );
  }

  /** A rejection is counted with the next group commit. */
  private report(peer: Peer, code: string): void {
    this.host.rejected(peer, code);
    this.commit.schedule();
  }
}

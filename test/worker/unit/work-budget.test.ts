/** Issue #12, finding 3: every frame costs work before it is decoded, per peer and per group. */
import { describe, expect, it } from "vitest";
import { WorkBudget, type WorkLimits } from "../../../worker/group/ingest/work.ts";

// 100 bytes of overhead per frame: a 0-byte frame costs 100, the burst holds 10.
const LIMITS: WorkLimits = { peerWorkBytesPerSec: 1000, peerWorkBurstBytes: 1000, frameOverheadBytes: 100, groupWorkBytesPerSec: 0, groupWorkBurstBytes: 0 };

describe("work budget", () => {
  it("lets a burst through, refuses once, drops the rest unread, and closes a peer that keeps going", () => {
    const w = new WorkBudget(LIMITS, 0);
    for (let i = 0; i < 10; i++) expect(w.charge("d:a", 0, 0)).toEqual({ kind: "ok" });
    // Told to wait until half the burst is back: 100 of debt plus 500, at 1000 a second.
    expect(w.charge("d:a", 0, 0)).toEqual({ kind: "refuse", code: "rate_limited", retryAfterMs: 600 });
    // In flight before the peer read the error: dropped silently.
    expect(w.charge("d:a", 0, 50)).toEqual({ kind: "drop" });
    // Still sending on this socket after the wait: it is not listening.
    expect(w.charge("d:a", 0, 700)).toEqual({ kind: "close" });
    // Nor is one that sends more than it could have had in flight when it read the error.
    const v = new WorkBudget({ ...LIMITS, peerWorkBurstBytes: 100_000 }, 0);
    for (let i = 0; i < 1000; i++) v.charge("d:a", 0, 0);
    expect(v.charge("d:a", 0, 0)).toMatchObject({ kind: "refuse" });
    const verdicts = Array.from({ length: 65 }, () => v.charge("d:a", 0, 1).kind);
    expect(verdicts.slice(0, 64).every((k) => k === "drop")).toBe(true);
    expect(verdicts[64]).toBe("close");
    // Another peer has its own budget.
    expect(w.charge("d:b", 0, 700)).toEqual({ kind: "ok" });
  });

  it("charges bytes and overhead alike, so a flood of big frames and of tiny ones both run into debt and close", () => {
    const w = new WorkBudget(LIMITS, 0);
    expect(w.charge("d:a", 800, 0).kind).toBe("ok");
    expect(w.charge("d:a", 800, 0)).toMatchObject({ kind: "refuse", retryAfterMs: 1300 });
    expect(w.charge("d:a", 800, 1)).toEqual({ kind: "close" });
  });

  it("refuses a reconnect while the peer is in debt, and lets it resume in step once paid", () => {
    const w = new WorkBudget(LIMITS, 0);
    for (let i = 0; i < 11; i++) w.charge("d:a", 0, 0);
    expect(w.connect("d:a", 0)).toBe(600);
    expect(w.connect("d:a", 100)).toBe(0);
    expect(w.charge("d:a", 0, 200)).toEqual({ kind: "ok" });
    expect(w.connect("d:new", 100)).toBe(0);
  });

  it("sheds frames beyond the group's budget before decoding, whoever sends them", () => {
    const w = new WorkBudget({ ...LIMITS, peerWorkBurstBytes: 10_000, groupWorkBytesPerSec: 1000, groupWorkBurstBytes: 500 }, 0);
    for (let i = 0; i < 5; i++) expect(w.charge(`d:${i}`, 0, 0)).toEqual({ kind: "ok" });
    expect(w.charge("d:x", 0, 0)).toEqual({ kind: "refuse", code: "overloaded", retryAfterMs: 100 });
    expect(w.charge("d:x", 0, 10)).toEqual({ kind: "drop" });
    // The group refills with time; the shed peer resumes after reconnecting.
    expect(w.charge("d:y", 0, 100)).toEqual({ kind: "ok" });
    expect(w.connect("d:x", 300)).toBe(0);
    expect(w.charge("d:x", 0, 300)).toEqual({ kind: "ok" });
  });

  it("0 disables either budget", () => {
    const w = new WorkBudget({ ...LIMITS, peerWorkBytesPerSec: 0 }, 0);
    for (let i = 0; i < 1000; i++) expect(w.charge("d:a", 1e6, 0).kind).toBe("ok");
  });
});

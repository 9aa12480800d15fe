/**
 * Issue #12, finding 1: a replaced or revoked socket is never restored as
 * valid after a wake; finding 6: nor is a dashboard socket out of step
 * restored as in step.
 */
import { describe, expect, it } from "vitest";
import { fromAttachment, toAttachment } from "../../../worker/group/connections/attachment.ts";

describe("attachment end mark", () => {
  it("survives the round trip through the attachment", () => {
    for (const ended of ["replaced", "revoked"] as const) {
      const role = { kind: "peer" as const, peer: { kind: "device" as const, id: "d1" }, connectedAt: 5, ended };
      expect(fromAttachment(JSON.parse(JSON.stringify(toAttachment(role))))).toEqual(role);
    }
  });

  it("reads attachments written before the mark as live, and refuses an unknown mark", () => {
    expect(fromAttachment({ v: 1, kind: "gateway", id: "w", connectedAt: 1 })).toEqual({ kind: "peer", peer: { kind: "gateway", id: "w" }, connectedAt: 1 });
    expect(fromAttachment({ v: 1, kind: "device", id: "d", connectedAt: 1, ended: "maybe" })).toBeNull();
  });
});

describe("attachment out-of-step mark (dashboard sockets)", () => {
  it("survives the round trip, stays small, and older dashboard attachments read as in step", () => {
    const role = { kind: "dashboard" as const, connectedAt: 5, outOfStep: { seq: 2 ** 40, since: 1_795_460_000_000 } };
    const stored = JSON.stringify(toAttachment(role));
    expect(fromAttachment(JSON.parse(stored))).toEqual(role);
    expect(stored.length).toBeLessThan(200);
    expect(fromAttachment({ v: 1, kind: "dashboard", id: "", connectedAt: 1 })).toEqual({ kind: "dashboard", connectedAt: 1 });
    expect(toAttachment({ kind: "dashboard", connectedAt: 1 })).toEqual({ v: 1, kind: "dashboard", id: "", connectedAt: 1 });
  });

  it("refuses a malformed mark", () => {
    for (const outOfStep of [null, 3, { seq: -1, since: 1 }, { seq: 1.5, since: 1 }, { seq: 1 }, { seq: 1, since: "x" }]) {
      expect(fromAttachment({ v: 1, kind: "dashboard", id: "", connectedAt: 1, outOfStep })).toBeNull();
    }
  });
});

/** Issue #12, finding 1: a replaced or revoked socket is never restored as valid after a wake. */
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

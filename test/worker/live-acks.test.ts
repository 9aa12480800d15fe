/**
 * Issue #12, finding 6, in workerd: a dashboard that acks blindly (a huge
 * seq, never the one it was sent) gets nothing past its snapshot, however
 * many summaries go out to an honest dashboard meanwhile, so the bytes the
 * hub queues for it stay at one frame.
 */
import { describe, expect, it } from "vitest";
import { connectDevice, makeReadings, openLive, uniqueGroup } from "./helpers.ts";

type Summary = { type: string; devices?: { id: string; lastSeq: number }[] };

describe("live acks", () => {
  it("counts only the awaited seq: a blind ack of 2^31 does not release summaries", async () => {
    const group = uniqueGroup();
    const blind = await openLive(group);
    const honest = await openLive(group);
    await blind.frame(0);
    const { sock } = await connectDevice(group, "d1");
    let from = 0;
    for (let seq = 1; seq <= 5; seq++) {
      sock.send({ type: "batch", seq, readings: makeReadings(2) });
      expect(await sock.next()).toEqual({ type: "ack", seq });
      for (let i = 0; i < 10; i++) blind.ws.send(JSON.stringify({ type: "ack", seq: 2 ** 31 }));
      await honest.until((f) => ((f as Summary).devices ?? []).some((d) => d.id === "d1" && d.lastSeq === seq), from);
      from = honest.frames.length;
    }
    expect(honest.frames.length).toBeGreaterThanOrEqual(6);
    expect(blind.frames.map((f) => f.type)).toEqual(["snapshot"]);
    // Acking what it was actually sent releases the next summary as before.
    blind.ack(await blind.frame(0));
    const caughtUp = (await blind.frame(1)) as Summary;
    expect(caughtUp.type).toBe("summary");
    sock.close();
  });
});

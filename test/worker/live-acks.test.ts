/**
 * Issue #12, finding 6, in workerd: a dashboard that acks blindly (a huge
 * seq, never the one it was sent) gets nothing past its snapshot, however
 * many summaries go out to an honest dashboard meanwhile, so the bytes the
 * hub queues for it stay at one frame; also after the object was evicted
 * (the out-of-step mark is in the socket's attachment).
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../harness/wait.ts";
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

  it("keeps a blind socket out of step across an eviction: still nothing past its snapshot until it acks that", async () => {
    const group = uniqueGroup();
    const stub = env.GROUPS.getByName(group);
    const blind = await openLive(group);
    const honest = await openLive(group);
    const snapshot = await blind.frame(0);
    honest.ack(await honest.frame(0));
    blind.ws.send(JSON.stringify({ type: "ack", seq: 2 ** 31 }));
    const marks = () =>
      runInDurableObject(stub, (_hub, state) => state.getWebSockets("live").map((ws) => (ws.deserializeAttachment() as { outOfStep?: { seq: number } }).outOfStep?.seq ?? null));
    await waitFor(async () => (await marks()).includes(snapshot.seq as number), "the blind socket's out-of-step mark");
    expect((await marks()).filter((m) => m !== null)).toHaveLength(1);
    // In-memory state gone, sockets and attachments kept, as after hibernation.
    await evictDurableObject(stub);
    const { sock } = await connectDevice(group, "d1");
    let from = 1;
    for (let seq = 1; seq <= 3; seq++) {
      sock.send({ type: "batch", seq, readings: makeReadings(2) });
      expect(await sock.next()).toEqual({ type: "ack", seq });
      await honest.until((f) => ((f as Summary).devices ?? []).some((d) => d.id === "d1" && d.lastSeq === seq), from);
      from = honest.frames.length;
    }
    expect(blind.frames.map((f) => f.type)).toEqual(["snapshot"]);
    // Acking the frame it owes releases it and clears the mark.
    blind.ack(snapshot);
    const caughtUp = (await blind.frame(1)) as Summary;
    expect(caughtUp.devices?.find((d) => d.id === "d1")?.lastSeq).toBe(3);
    expect(await marks()).toEqual([null, null]);
    sock.close();
  });
});

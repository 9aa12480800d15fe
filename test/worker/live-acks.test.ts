/**
 * Issue #12, finding 6, in workerd: a dashboard that acks blindly (a huge
 * seq, never the one it was sent) gets nothing past its snapshot, however
 * many summaries go out to an honest dashboard meanwhile, so the bytes the
 * hub queues for it stay at one frame; also after the object was evicted
 * (the out-of-step mark is in the socket's attachment). A silent dashboard
 * (it never acks at all) is marked too, by the hub's own check
 * `LIVE_ACK_MARK_MS` after its frame (200 ms in the worker project), with
 * nothing else happening in the group.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { waitFor } from "../../harness/wait.ts";
import { connectDevice, makeReadings, openLive, uniqueGroup, type LiveClient } from "./helpers.ts";

type Summary = { type: string; devices?: { id: string; lastSeq: number }[] };

/** The out-of-step seq kept in each dashboard socket's attachment (null: none). */
function marksOf(stub: DurableObjectStub): Promise<(number | null)[]> {
  return runInDurableObject(stub, (_hub, state) => state.getWebSockets("live").map((ws) => (ws.deserializeAttachment() as { outOfStep?: { seq: number } }).outOfStep?.seq ?? null));
}

/** Waits until only one socket is marked, owing `seq` (an honest socket's mark, if its ack was slow, is cleared by that ack). */
async function waitForOneMark(stub: DurableObjectStub, seq: number, what: string): Promise<void> {
  await waitFor(async () => {
    const marks = await marksOf(stub);
    return marks.includes(seq) && marks.filter((m) => m !== null).length === 1;
  }, what, 10_000);
}

/** Two dashboards of a group: the one a test watches (its snapshot read, not acked) and an honest one, its snapshot acked. */
async function twoDashboards(group: string): Promise<{ stub: DurableObjectStub; watched: LiveClient; honest: LiveClient; snapshot: Awaited<ReturnType<LiveClient["frame"]>> }> {
  const stub = env.GROUPS.getByName(group);
  const watched = await openLive(group);
  const honest = await openLive(group);
  const snapshot = await watched.frame(0);
  honest.ack(await honest.frame(0));
  return { stub, watched, honest, snapshot };
}

/** Batches 1..n from a new device d1, each seen (and acked) by the honest dashboard. */
async function feed(group: string, honest: LiveClient, n: number): Promise<{ close(): void }> {
  const { sock } = await connectDevice(group, "d1");
  let from = 1;
  for (let seq = 1; seq <= n; seq++) {
    sock.send({ type: "batch", seq, readings: makeReadings(2) });
    expect(await sock.next()).toEqual({ type: "ack", seq });
    await honest.until((f) => ((f as Summary).devices ?? []).some((d) => d.id === "d1" && d.lastSeq === seq), from);
    from = honest.frames.length;
  }
  return sock;
}

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

  it("marks a silent socket out of step in a quiet group, so an eviction does not bring it back as up to date", async () => {
    const group = uniqueGroup();
    const { stub, watched: silent, honest, snapshot } = await twoDashboards(group);
    // No ack, no batch: only the hub's check can write this.
    await waitForOneMark(stub, snapshot.seq as number, "the silent socket's out-of-step mark");
    await evictDurableObject(stub);
    const sock = await feed(group, honest, 2);
    // Before the mark, a wake forgot what it owed and sent it a full summary.
    expect(silent.frames.map((f) => f.type)).toEqual(["snapshot"]);
    sock.close();
  });

  it("keeps a blind socket out of step across an eviction: still nothing past its snapshot until it acks that", async () => {
    const group = uniqueGroup();
    const { stub, watched: blind, honest, snapshot } = await twoDashboards(group);
    blind.ws.send(JSON.stringify({ type: "ack", seq: 2 ** 31 }));
    await waitForOneMark(stub, snapshot.seq as number, "the blind socket's out-of-step mark");
    // In-memory state gone, sockets and attachments kept, as after hibernation.
    await evictDurableObject(stub);
    const sock = await feed(group, honest, 3);
    expect(blind.frames.map((f) => f.type)).toEqual(["snapshot"]);
    // Acking the frame it owes releases it and clears the mark.
    blind.ack(snapshot);
    const caughtUp = (await blind.frame(1)) as Summary;
    expect(caughtUp.devices?.find((d) => d.id === "d1")?.lastSeq).toBe(3);
    // (A frame left unacked LIVE_ACK_MARK_MS since may be marked again, as any.)
    expect(await marksOf(stub)).not.toContain(snapshot.seq);
    sock.close();
  });
});

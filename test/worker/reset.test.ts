/**
 * Eviction while batches are in flight, and a Durable Object reset (abort)
 * mid-stream: a client that resends what was not acked, as the protocol
 * asks, ends with exactly the readings it sent.
 */
import { abortAllDurableObjects, env, evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { aggregates, connectDevice, lastSeqOf, makeReadings, uniqueGroup, type TestSocket } from "./helpers.ts";

type Frame = { type: string; seq?: number };

/**
 * Sends batches 1..n, disrupting the group after `disruptAt` of them were
 * sent, then resends whatever is unacked (reconnecting if the socket died)
 * until everything is acked.
 */
async function streamThrough(group: string, n: number, disruptAt: number, disrupt: () => Promise<void>): Promise<{ dupAcks: number; reconnects: number }> {
  const batches = new Map<number, [number, string, number][]>();
  for (let seq = 1; seq <= n; seq++) batches.set(seq, makeReadings(20, "temp", Date.now() - 3 * 3_600_000 + seq * 20_000));
  const acked = new Set<number>();
  let dupAcks = 0;
  let reconnects = 0;
  let { sock } = await connectDevice(group, "dev");
  let alive = true;
  const watch = (s: TestSocket) => void s.closed.then(() => (alive = false));
  watch(sock);
  const drain = async (ms: number) => {
    for (;;) {
      let f: Frame;
      try {
        f = (await sock.next(ms)) as Frame;
      } catch {
        return;
      }
      if (f.type === "ack" && f.seq !== undefined) {
        if ((f as { dup?: boolean }).dup) dupAcks++;
        acked.add(f.seq);
      }
    }
  };
  for (let seq = 1; seq <= n; seq++) {
    sock.send({ type: "batch", seq, readings: batches.get(seq) ?? [] });
    if (seq === disruptAt) await disrupt();
  }
  await drain(500);
  for (let round = 0; acked.size < n && round < 10; round++) {
    if (!alive) {
      const again = await connectDevice(group, "dev");
      reconnects++;
      sock = again.sock;
      alive = true;
      watch(sock);
      for (let s = 1; s <= again.lastSeq; s++) acked.add(s);
    }
    for (let seq = 1; seq <= n; seq++) if (!acked.has(seq)) sock.send({ type: "batch", seq, readings: batches.get(seq) ?? [] });
    await drain(500);
  }
  expect(acked.size).toBe(n);
  sock.close();
  return { dupAcks, reconnects };
}

describe("disruption mid-stream", () => {
  it("eviction while batches wait for their group commit loses nothing and doubles nothing", async () => {
    const group = uniqueGroup();
    await streamThrough(group, 60, 30, () => evictDurableObject(env.GROUPS.getByName(group)));
    expect((await aggregates(group)).reduce((s, b) => s + b.count, 0)).toBe(60 * 20);
    expect(await lastSeqOf(group, "dev")).toBe(60);
  });

  it("a Durable Object reset mid-stream loses nothing and doubles nothing", async () => {
    const group = uniqueGroup();
    const { reconnects } = await streamThrough(group, 60, 25, () => abortAllDurableObjects());
    // The reset really cut the socket: the client had to come back and resend.
    expect(reconnects).toBeGreaterThanOrEqual(1);
    const buckets = await aggregates(group);
    expect(buckets.reduce((s, b) => s + b.count, 0)).toBe(60 * 20);
    // Values are 0.5 .. 19.5 in every batch: the sum is exact only if each batch counted once.
    expect(buckets.reduce((s, b) => s + b.sum, 0)).toBe(60 * 200);
    expect(await lastSeqOf(group, "dev")).toBe(60);
  });
});

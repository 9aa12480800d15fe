/** Per-device rate limit: refused batches get rate_limited, later ones wait behind them, nothing is lost. */
import { describe, expect, it } from "vitest";
import { env } from "cloudflare:test";
import { readLimits } from "../../schema/limits.ts";
import { Throttle } from "../../worker/group/ingest/throttle.ts";
import { aggregates, connectDevice, lastSeqOf, makeReadings, uniqueGroup } from "./helpers.ts";

describe("throttle (unit)", () => {
  it("allows a burst, then refuses, blocks later seqs behind the refused one, and refills", () => {
    const t = new Throttle({ peerReadingsPerSec: 1000, peerBurstReadings: 3000 });
    expect(t.check("d:a", 1, 2000, 0)).toEqual({ ok: true });
    const refused = t.check("d:a", 2, 2000, 0);
    expect(refused).toEqual({ ok: false, retryAfterMs: 1000 });
    // Seq 3 must not overtake seq 2, even with tokens to spare later.
    expect(t.check("d:a", 3, 1, 5000).ok).toBe(false);
    expect(t.check("d:a", 2, 2000, 5000)).toEqual({ ok: true });
    expect(t.check("d:a", 3, 1, 5000)).toEqual({ ok: true });
    // Other devices have their own buckets; a reconnect lifts a block.
    expect(t.check("d:b", 1, 3000, 5000)).toEqual({ ok: true });
    expect(t.check("d:b", 2, 10, 5000).ok).toBe(false);
    t.reset("d:b");
    expect(t.check("d:b", 3, 10, 6000).ok).toBe(true);
  });

  it("never blocks forever on a batch bigger than the bucket, and 0 disables it", () => {
    const t = new Throttle({ peerReadingsPerSec: 100, peerBurstReadings: 50 });
    expect(t.check("d:a", 1, 5000, 0)).toEqual({ ok: true });
    expect(new Throttle({ peerReadingsPerSec: 0, peerBurstReadings: 0 }).check("d:a", 1, 1e9, 0)).toEqual({ ok: true });
  });
});

describe("throttle (hub)", () => {
  it("refuses a flood over the burst without disconnecting, and a resend after retryAfterMs applies everything once", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "flood");
    // The test binding's bucket holds five full batches and refills one a
    // second (vitest.config.ts), far slower than any machine applies them.
    // How many batches it takes to be refused still depends on this machine's
    // speed; that one is refused does not. Send windows until one is.
    const limits = readLimits({ ...env });
    const perBatch = limits.maxReadingsPerBatch;
    const window = 10;
    const maxBatches = Math.ceil(limits.peerBurstReadings / perBatch) * 4;
    const sent = new Map<number, [number, string, number][]>();
    const acked: number[] = [];
    const limited: { seq: number; retryAfterMs: number }[] = [];
    let batches = 0;
    while (limited.length === 0 && batches < maxBatches) {
      for (let k = 0; k < window; k++) {
        const seq = ++batches;
        const r = makeReadings(perBatch, "temp", Date.now() - 2 * perBatch * 1000 + seq);
        sent.set(seq, r);
        sock.send({ type: "batch", seq, readings: r });
      }
      for (let k = 0; k < window; k++) {
        const f = (await sock.next(10_000)) as { type: string; seq: number; code?: string; retryAfterMs?: number };
        if (f.type === "ack") acked.push(f.seq);
        else if (f.code === "rate_limited") limited.push({ seq: f.seq, retryAfterMs: f.retryAfterMs ?? -1 });
        else throw new Error(`unexpected ${JSON.stringify(f)}`);
      }
    }
    expect(limited.length).toBeGreaterThan(0);
    const firstLimited = limited[0]?.seq ?? 0;
    // Everything before the first refusal was applied; nothing after it.
    expect(acked).toEqual(Array.from({ length: firstLimited - 1 }, (_, i) => i + 1));
    expect(limited.map((l) => l.seq)).toEqual(Array.from({ length: batches - firstLimited + 1 }, (_, i) => firstLimited + i));
    expect(limited.every((l) => l.retryAfterMs > 0)).toBe(true);
    expect(await lastSeqOf(group, "flood")).toBe(firstLimited - 1);

    // The socket is still open: after waiting, resend from the refused seq, paced.
    for (let seq = firstLimited; seq <= batches; seq++) {
      for (;;) {
        sock.send({ type: "batch", seq, readings: sent.get(seq) ?? [] });
        const f = (await sock.next(10_000)) as { type: string; retryAfterMs?: number };
        if (f.type === "ack") break;
        await new Promise((r) => setTimeout(r, f.retryAfterMs ?? 100));
      }
    }
    const total = (await aggregates(group)).reduce((n, b) => n + b.count, 0);
    expect(total).toBe(batches * perBatch);
    sock.close();
  }, 60_000);
});

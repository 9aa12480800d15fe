/**
 * Issue #12, finding 3: the rate limit counts work, not applied readings.
 * Duplicates and invalid frames were decoded, validated and answered one by
 * one without limit; now every frame pays its bytes and a per-frame overhead
 * (FRAME_OVERHEAD_BYTES) from its peer's budget before it is decoded.
 */
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { encodeCbor } from "../../schema/cbor.ts";
import { connectDevice, deviceToken, makeReadings, openSocket, uniqueGroup } from "./helpers.ts";

describe("work budget (hub)", () => {
  it("refuses a flood of duplicates and invalid frames once, closes it with 4029, refuses its reconnect with 429, and leaves other devices alone", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "flood");
    const other = await connectDevice(group, "quiet");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const dup = encodeCbor({ type: "batch", seq: 1, readings: makeReadings(1) });
    // Invalid (no readings) and large: bytes count as much as frames, and
    // large frames reach the budget in few sends however slow this machine is.
    const pad = DEFAULT_LIMITS.maxFrameBytes / 2;
    const invalid = encodeCbor({ type: "batch", seq: 2, pad: "x".repeat(pad) });
    // Enough to spend the burst three times over, whatever refills meanwhile.
    const frames = 2 * Math.ceil((3 * DEFAULT_LIMITS.peerWorkBurstBytes) / pad);
    for (let i = 0; i < frames; i++) sock.sendRaw(i % 2 === 0 ? dup : invalid);
    const closed = await sock.closedWithin(15_000);
    expect(closed.code).toBe(4029);

    const answers = sock.takeAll() as { type: string; seq?: number; code?: string; retryAfterMs?: number }[];
    const refusals = answers.filter((f) => f.code === "rate_limited");
    // Told once, without a seq (the frame was never decoded).
    expect(refusals).toHaveLength(1);
    expect(refusals[0]?.seq).toBeUndefined();
    expect(refusals[0]?.retryAfterMs).toBeGreaterThan(0);
    // Frames past the budget were dropped unread (how many depends on how much refilled while they were sent).
    expect(answers.length).toBeLessThan(frames);

    // In debt, it may not reconnect at once.
    const res = await openSocket(`/v1/groups/${group}/devices/flood/ws`, await deviceToken(group, "flood"));
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await res.json()).toMatchObject({ error: "rate_limited" });

    // Another device of the group has its own budget.
    other.sock.send({ type: "batch", seq: 1, readings: makeReadings(1) });
    expect(await other.sock.next()).toEqual({ type: "ack", seq: 1 });
  }, 30_000);
});

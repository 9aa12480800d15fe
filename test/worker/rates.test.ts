/**
 * GET /v1/groups/{group}/rates: readings applied per 10-second slot over the
 * last 15 minutes, kept in the group's storage so a reload of the dashboard
 * (or an eviction of the object) keeps the history.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { RatesResponse } from "../../schema/api.ts";
import { RateHistory, RATE_SLOT_MS, RATE_SLOTS } from "../../worker/group/live/rate-history.ts";
import { connectDevice, getJson, makeReadings, operatorToken, uniqueGroup } from "./helpers.ts";

function total(r: RatesResponse): number {
  return r.readings.reduce((a, b) => a + b, 0);
}

describe("GET /v1/groups/{group}/rates", () => {
  it("counts applied readings (not duplicates) and keeps them across an eviction", async () => {
    const group = uniqueGroup("rates");
    const token = await operatorToken(group);
    const { sock } = await connectDevice(group, "d1");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(7) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.send({ type: "batch", seq: 1, readings: makeReadings(7) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1, dup: true });
    sock.send({ type: "batch", seq: 2, readings: makeReadings(5) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });

    const before = Date.now();
    const r = await getJson(`/v1/groups/${group}/rates`, token);
    expect(r.status).toBe(200);
    const body = r.body as RatesResponse;
    expect(body.stepMs).toBe(RATE_SLOT_MS);
    expect(body.readings).toHaveLength(RATE_SLOTS);
    expect(body.from % RATE_SLOT_MS).toBe(0);
    expect(body.at).toBeGreaterThanOrEqual(before - RATE_SLOT_MS);
    expect(body.from + RATE_SLOTS * RATE_SLOT_MS).toBeGreaterThan(body.at);
    expect(total(body)).toBe(12);

    await evictDurableObject(env.GROUPS.getByName(group));
    expect(total((await getJson(`/v1/groups/${group}/rates`, token)).body as RatesResponse)).toBe(12);
    sock.close();

    expect((await getJson(`/v1/groups/${group}/rates`, await operatorToken("other"))).status).toBe(401);
  });

  it("is a bounded ring: 90 slots of storage, slots older than 15 minutes drop out", async () => {
    const group = uniqueGroup("rates-ring");
    await runInDurableObject(env.GROUPS.getByName(group), (_i, state) => {
      const t0 = 1_800_000_000_000;
      const h = new RateHistory(state.storage.kv);
      // Two full turns of the ring, 10 readings a slot, one slot in three.
      for (let i = 0; i < RATE_SLOTS * 2; i += 3) h.add(10, t0 + i * RATE_SLOT_MS + 1);
      h.add(5, t0 + (RATE_SLOTS * 2 - 1) * RATE_SLOT_MS + 2);
      const keys = [...state.storage.kv.list({ prefix: "rate:" })];
      expect(keys.length).toBeLessThanOrEqual(RATE_SLOTS);

      const now = t0 + (RATE_SLOTS * 2 - 1) * RATE_SLOT_MS + 5000;
      const fresh = new RateHistory(state.storage.kv).series(now);
      expect(fresh).toEqual(h.series(now));
      expect(fresh.readings).toHaveLength(RATE_SLOTS);
      expect(fresh.from).toBe(t0 + RATE_SLOTS * RATE_SLOT_MS);
      // Slots 90..179 of which every third (starting at 90) had 10, plus 5 in the last.
      expect(total(fresh)).toBe(30 * 10 + 5);
      expect(fresh.readings[0]).toBe(10);
      expect(fresh.readings[RATE_SLOTS - 1]).toBe(5);
    });
  });
});

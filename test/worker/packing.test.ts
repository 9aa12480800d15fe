/**
 * Packed hours (docs/history.md): closed hours of minute buckets move into
 * one row per (series, hour) in small steps that survive eviction, answers
 * stay exactly the same, and a late reading into a packed hour is merged by
 * the one merge rule (first as a plain row, then into the pack).
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { describe, expect, it } from "vitest";
import { Packer } from "../../worker/group/history/packer.ts";
import { BucketWriter } from "../../worker/group/history/writer.ts";
import { aggregates, connectDevice, uniqueGroup } from "./helpers.ts";

const MIN = 60_000;
const HOUR = 3_600_000;

const count = (stub: DurableObjectStub, table: string): Promise<number> =>
  runInDurableObject(stub, (_hub, state) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n);

describe("packed hours", () => {
  it("pack closed hours exactly, in steps that survive eviction, and merge late readings", async () => {
    const group = uniqueGroup("pack");
    const stub = env.GROUPS.getByName(group);
    const hour0 = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR;
    // Two series, three closed hours, one to three readings a minute and awkward floats.
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const writer = new BucketWriter(db);
      const metrics = new Map<string, Map<number, { count: number; sum: number; min: number; max: number; firstTs: number; lastTs: number; last: number }>>();
      for (const [k, metric] of ["temp", "hum"].entries()) {
        const buckets = new Map();
        for (let m = 0; m < 180; m++) {
          const start = hour0 + m * MIN;
          const n = 1 + (m % 3);
          const v = 20.1 + Math.sin(m / 7 + k) * 3.3;
          buckets.set(start, { count: n, sum: v * n + (n > 1 ? 0.1 : 0), min: n > 1 ? v - 0.05 : v, max: n > 1 ? v + 0.15 : v, firstTs: start + 100 * (m % 50), lastTs: start + 59_000 - m, last: n > 1 ? v + 0.1 : v });
        }
        metrics.set(metric, buckets);
      }
      db.transaction(() => writer.write(new Map([["p-1", metrics]])));
    });
    const before = await aggregates(group);
    const hoursBefore = await aggregates(group, "?resolution=hour");
    expect(before).toHaveLength(360);

    // One small step (it stops inside an hour), an eviction, then steps until the pass is done.
    const now = hour0 + 6 * HOUR + 1000;
    await runInDurableObject(stub, (_hub, state) => {
      expect(new Packer(drizzle(state.storage)).step(now, 100)).toEqual({ packed: 100, done: false });
    });
    expect(await aggregates(group)).toEqual(before);
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_hub, state) => {
      const packer = new Packer(drizzle(state.storage));
      for (let i = 0; i < 20 && packer.step(now, 100).done === false; i++);
      expect(packer.inProgress()).toBe(false);
    });
    expect(await count(stub, "minute_buckets")).toBe(0);
    expect(await count(stub, "minute_packs")).toBe(6);
    expect(await aggregates(group)).toEqual(before);
    expect(await aggregates(group, "?resolution=hour")).toEqual(hoursBefore);
    // Filters cut inside a packed hour.
    const from = hour0 + 30 * MIN + 1;
    expect(await aggregates(group, `?metric=hum&from=${from}&to=${hour0 + 95 * MIN}`)).toEqual(before.filter((b) => b.metric === "hum" && b.start >= hour0 + 30 * MIN && b.start < hour0 + 95 * MIN));

    // A late reading into a packed minute: a plain row that queries merge, the later arrival winning `last`.
    const target = before.find((b) => b.metric === "temp" && b.start === hour0 + 10 * MIN);
    if (!target) throw new Error("no bucket at minute 10");
    const { sock } = await connectDevice(group, "p-1");
    sock.send({ type: "batch", seq: 1, readings: [[hour0 + 10 * MIN + 59_999, "temp", -4.25]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.close();
    const merged = { ...target, count: target.count + 1, min: Math.min(target.min, -4.25), last: -4.25 };
    const late = (await aggregates(group, `?metric=temp&from=${target.start}&to=${target.start + 1}`))[0];
    expect({ ...late, sum: 0 }).toEqual({ ...merged, sum: 0 });
    expect(Math.abs((late?.sum ?? 0) - (target.sum - 4.25))).toBeLessThan(1e-9 * Math.abs(target.sum));
    // The next pass merges it into the pack; the answer stays the same.
    const withLate = await aggregates(group);
    await runInDurableObject(stub, (_hub, state) => {
      const packer = new Packer(drizzle(state.storage));
      while (!packer.step(now).done);
    });
    expect(await count(stub, "minute_buckets")).toBe(0);
    expect(await aggregates(group)).toEqual(withLate);
  });
});

/**
 * Packed hours (docs/history.md): closed hours of minute buckets move into
 * parts of at most MAX_PART_BYTES (one per hour when it fits) in small steps
 * that survive eviction, answers stay exactly the same, a late reading into
 * a packed hour is merged by the one merge rule (first as a plain row, then
 * into the pack), packing never makes the database bigger, and packs
 * written before parts survive migration 0014.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import { describe, expect, it } from "vitest";
import migrations from "../../schema/migrations/migrations.js";
import { MAX_PART_BYTES, packHour, type PackedMinute } from "../../worker/group/history/pack.ts";
import { BucketTally } from "../../worker/group/history/counts.ts";
import { Packer } from "../../worker/group/history/packer.ts";
import { MAX_LOCAL, payloadBytes } from "../../worker/group/history/record.ts";
import { BucketWriter, type SeriesAggregates } from "../../worker/group/history/writer.ts";
import { aggregates, connectDevice, databaseBefore, uniqueGroup } from "./helpers.ts";

const MIN = 60_000;
const HOUR = 3_600_000;

/** A packer on the group's database with a tally of its own: this file checks packs, not counts (the hub's tally does not see this packer's deletes). */
function packerOf(state: DurableObjectState): Packer {
  const db = drizzle(state.storage);
  return new Packer(db, new BucketTally(db));
}

const count = (stub: DurableObjectStub, table: string): Promise<number> =>
  runInDurableObject(stub, (_hub, state) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n);

interface Part {
  series: number;
  first: number;
  last: number;
  buckets: number;
  bytes: number;
}
const parts = (stub: DurableObjectStub): Promise<Part[]> =>
  runInDurableObject(stub, (_hub, state) =>
    state.storage.sql.exec<{ series: number; first: number; last: number; buckets: number; bytes: number }>("SELECT series, first_minute AS first, last_minute AS last, buckets, length(data) AS bytes FROM minute_packs").toArray(),
  );

/** Every part is within the bound and its whole row stays on its page (no overflow page). */
function expectOnPage(list: Part[]): void {
  for (const p of list) {
    expect(p.bytes).toBeLessThanOrEqual(MAX_PART_BYTES);
    expect(payloadBytes([{ int: p.series }, { int: p.first }, { int: p.last }, { int: p.buckets }, { blob: p.bytes }])).toBeLessThan(MAX_LOCAL);
  }
}

type Partial = { count: number; sum: number; min: number; max: number; firstTs: number; lastTs: number; last: number };
/** Minute buckets of `per` readings with fractional values (min, max, last distinct when per > 1) for `minutes` minutes from `from`, each `every` minutes. */
function minutes(from: number, count: number, per: number, seed: number, every = 1): Map<number, Partial> {
  const out = new Map<number, Partial>();
  for (let m = 0; m < count; m += every) {
    const start = from + m * MIN;
    const v = 20.1 + Math.sin(m / 7 + seed) * 3.3;
    out.set(start, { count: per, sum: v * per + (per > 1 ? 0.1 : 0), min: per > 1 ? v - 0.05 : v, max: per > 1 ? v + 0.15 : v, firstTs: start + 100 * (m % 50), lastTs: start + (per > 1 ? 59_000 - m : 100 * (m % 50)), last: per > 1 ? v + 0.1 : v });
  }
  return out;
}

/** Writes buckets through the commit path's writer (its inserts fire the triggers as a commit's do). */
const write = (stub: DurableObjectStub, data: SeriesAggregates): Promise<void> =>
  runInDurableObject(stub, (_hub, state) => {
    const db = drizzle(state.storage);
    db.transaction(() => new BucketWriter(db).write(data));
  });

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
      expect(packerOf(state).step(now, 100)).toEqual({ packed: 100, read: 100, done: false });
    });
    expect(await aggregates(group)).toEqual(before);
    await evictDurableObject(stub);
    await runInDurableObject(stub, (_hub, state) => {
      const packer = packerOf(state);
      for (let i = 0; i < 20 && packer.step(now, 100).done === false; i++);
      expect(packer.inProgress()).toBe(false);
    });
    expect(await count(stub, "minute_buckets")).toBe(0);
    // Hours of one to three readings a minute take more than one part's bound: each is split, every part on its page.
    const packed = await parts(stub);
    expect(packed.length).toBeGreaterThan(6);
    expect(packed.reduce((n, p) => n + p.buckets, 0)).toBe(360);
    expectOnPage(packed);
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
      const packer = packerOf(state);
      while (!packer.step(now).done);
    });
    expect(await count(stub, "minute_buckets")).toBe(0);
    expect(await count(stub, "pack_late")).toBe(0);
    expect(await aggregates(group)).toEqual(withLate);
    expectOnPage(await parts(stub));
  });


  it("packs an hour of minutes of several readings into parts that make the database smaller, not bigger", async () => {
    const group = uniqueGroup("pack-size");
    const stub = env.GROUPS.getByName(group);
    const hour0 = Math.floor(Date.now() / HOUR) * HOUR - 8 * HOUR;
    const empty = await runInDurableObject(stub, (_hub, state) => state.storage.sql.databaseSize);
    // 24 series, 4 closed hours each of three readings a minute with fractional values: 5,760 full minute rows.
    const data: SeriesAggregates = new Map();
    for (let d = 0; d < 8; d++) data.set(`s-${d}`, new Map(["a", "b", "c"].map((metric, k) => [metric, minutes(hour0, 240, 3, d * 3 + k)])));
    await write(stub, data);
    const before = await aggregates(group, "?device=s-3");
    const sizes = await runInDurableObject(stub, (_hub, state) => {
      const plain = state.storage.sql.databaseSize;
      const packer = packerOf(state);
      while (!packer.step(hour0 + 7 * HOUR).done);
      return { plain, packed: state.storage.sql.databaseSize };
    });
    expect(await count(stub, "minute_buckets")).toBe(0);
    expectOnPage(await parts(stub));
    // The minute rows take most of the plain size (hour and day rows stay): packed, the whole file is smaller.
    expect(sizes.packed).toBeLessThan(sizes.plain);
    expect(sizes.packed - empty).toBeLessThan(0.8 * (sizes.plain - empty));
    expect(await aggregates(group, "?device=s-3")).toEqual(before);
  });

  it("leaves an hour plain when its parts would not be smaller, does not read it again, and packs hours written behind the pass", async () => {
    const group = uniqueGroup("pack-late");
    const stub = env.GROUPS.getByName(group);
    const hour0 = Math.floor(Date.now() / HOUR) * HOUR - 8 * HOUR;
    // A lone one-reading minute in hour 2 (one row is smaller than a part), and a series of one reading every 5 minutes in hours 2 to 4.
    await write(
      stub,
      new Map([
        ["lone", new Map([["t", minutes(hour0 + 2 * HOUR + 17 * MIN, 1, 1, 1)]])],
        ["sparse", new Map([["t", minutes(hour0 + 2 * HOUR, 180, 1, 2, 5)]])],
      ]),
    );
    const now = hour0 + 7 * HOUR;
    const first = await runInDurableObject(stub, (_hub, state) => packerOf(state).step(now));
    expect(first).toEqual({ packed: 36, read: 37, done: true });
    expect(await count(stub, "minute_buckets")).toBe(1);
    // The next pass, an hour later, reads only the newly closed hour: the lone row is not read again.
    expect(await runInDurableObject(stub, (_hub, state) => packerOf(state).step(now + HOUR))).toEqual({ packed: 0, read: 0, done: true });

    // A backlog behind the pass (hours 0 and 1, never packed) and a late minute into packed hour 3: their hours are noted, and only they are read.
    await write(
      stub,
      new Map([["sparse", new Map([["t", new Map([...minutes(hour0, 120, 1, 3, 5), ...minutes(hour0 + 3 * HOUR + 2 * MIN, 1, 2, 4)])]])]]),
    );
    expect(await count(stub, "pack_late")).toBe(3);
    const want = await aggregates(group);
    expect(await runInDurableObject(stub, (_hub, state) => packerOf(state).step(now + HOUR))).toEqual({ packed: 25, read: 25, done: true });
    expect(await count(stub, "pack_late")).toBe(0);
    expect(await count(stub, "minute_buckets")).toBe(1);
    expect(await aggregates(group)).toEqual(want);
  });
});

describe("sums of packed minutes", () => {
  it("refuses with bad_value a late reading whose minute's sum, with the packed part's, would leave the finite range", async () => {
    const group = uniqueGroup("pack-sum");
    const stub = env.GROUPS.getByName(group);
    const { sock } = await connectDevice(group, "ov");
    const hour = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR;
    // Thirty one-reading minutes; minutes 5 and 6 near the largest doubles, of opposite signs, so the hour's and the day's sums stay small.
    const readings: [number, string, number][] = Array.from({ length: 30 }, (_, m) => [hour + m * MIN + 100, "t", m === 5 ? 1e308 : m === 6 ? -1e308 : 1.5]);
    sock.send({ type: "batch", seq: 1, readings });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    await runInDurableObject(stub, (_hub, state) => packerOf(state).step(hour + 4 * HOUR));
    expect(await count(stub, "minute_buckets")).toBe(0);

    // Minute 5 again: its plain row alone is finite, and so are the hour and the day, but with the part it would be +Infinity.
    sock.send({ type: "batch", seq: 2, readings: [[hour + 5 * MIN + 500, "t", 1e308]] });
    expect(await sock.next()).toMatchObject({ type: "error", seq: 2, code: "bad_value" });
    expect(await count(stub, "minute_buckets")).toBe(0);
    // A late reading that keeps the sum finite is applied, and the minute reads as the merge of both.
    sock.send({ type: "batch", seq: 3, readings: [[hour + 5 * MIN + 700, "t", -1e307]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 3 });
    expect(await aggregates(group, `?from=${hour + 5 * MIN}&to=${hour + 6 * MIN}`)).toMatchObject([{ start: hour + 5 * MIN, count: 2, sum: 1e308 - 1e307 }]);
    sock.close();
  });
});

describe("migration 0014 (packs in parts)", () => {
  it("keeps every pack written before parts, and the next pass re-splits those over the bound", async () => {
    const group = uniqueGroup("pack-migrate");
    const stub = env.GROUPS.getByName(group);
    const hour = Math.floor(Date.now() / HOUR) - 10;
    const asPacked = (m: Map<number, Partial>): PackedMinute[] =>
      [...m].map(([start, p]) => ({ minute: (start / MIN) % 60, count: p.count, sum: p.sum, min: p.min, max: p.max, firstOff: p.firstTs - start, lastOff: p.lastTs - start, last: p.last }));
    // An hour of three readings a minute but its first five (about 2 KB packed, over the bound) and an hour of one reading a minute, as the code before parts packed them.
    const full = asPacked(minutes(hour * HOUR, 60, 3, 1)).filter((m) => m.minute >= 5);
    const points = asPacked(minutes((hour + 1) * HOUR, 60, 1, 2));
    expect(packHour(full).length).toBeGreaterThan(MAX_PART_BYTES);
    await runInDurableObject(stub, async (_hub, state) => {
      await databaseBefore(state, "_pack_parts");
      const sql = state.storage.sql;
      sql.exec("INSERT INTO series (id, device, metric) VALUES (1, 'm-1', 't')");
      for (const [h, list] of [[hour, full], [hour + 1, points]] as const) sql.exec("INSERT INTO minute_packs (series, hour, buckets, data) VALUES (1, ?, ?, ?)", h, list.length, packHour(list));
      await migrate(drizzle(state.storage), migrations);
    });
    const want = [...full.map((m) => ({ m, h: hour })), ...points.map((m) => ({ m, h: hour + 1 }))].map(({ m, h }) => {
      const start = h * HOUR + m.minute * MIN;
      return { device: "m-1", metric: "t", start, count: m.count, sum: m.sum, min: m.min, max: m.max, last: m.last };
    });
    const pick = (b: { start: number; count: number; sum: number; min: number; max: number; last: number }) => ({ start: b.start, count: b.count, sum: b.sum, min: b.min, max: b.max, last: b.last });
    expect((await aggregates(group)).map(pick)).toEqual(want.map(pick));
    expect(await parts(stub)).toEqual([
      { series: 1, first: hour * 60, last: hour * 60 + 59, buckets: 55, bytes: packHour(full).length },
      { series: 1, first: (hour + 1) * 60, last: (hour + 1) * 60 + 59, buckets: 60, bytes: packHour(points).length },
    ]);
    // The bucket counts (counts.ts): this group had series before the counters, so the count task counts it first (here by hand).
    const counted = () =>
      runInDurableObject(stub, (_hub, state) => {
        const tally = new BucketTally(drizzle(state.storage));
        while (tally.step());
        return tally.totals().buckets.minute;
      });
    expect(await counted()).toBe(115);
    // The oldest minute (oldest.ts), as the migration found it: such a pack stands for its hour's start.
    const oldestMinute = () =>
      runInDurableObject(stub, (_hub, state) => {
        const oldest = new BucketTally(drizzle(state.storage)).oldest;
        // The recompute the prune task asks for, here by hand.
        while (oldest.step());
        return oldest.read().oldest.minute;
      });
    expect(await oldestMinute()).toBe(hour * 60);

    // The first pass after the migration re-splits the oversize pack and leaves the other as it is.
    await runInDurableObject(stub, (_hub, state) => {
      const packer = packerOf(state);
      while (!packer.step(Date.now()).done);
    });
    const after = await parts(stub);
    expectOnPage(after);
    expect(after.filter((p) => p.first < (hour + 1) * 60).length).toBeGreaterThan(1);
    expect(after.filter((p) => p.first >= (hour + 1) * 60)).toEqual([{ series: 1, first: (hour + 1) * 60, last: (hour + 1) * 60 + 59, buckets: 60, bytes: packHour(points).length }]);
    expect((await aggregates(group)).map(pick)).toEqual(want.map(pick));
    expect(await counted()).toBe(115);
    // Its parts start at their first minute: the oldest rose.
    expect(await oldestMinute()).toBe(hour * 60 + 5);
  });
});

/**
 * `GET /v1/groups/{group}/storage` without scanning the bucket tables
 * (docs/history.md, "Storage budget"): the counters kept by SQLite triggers
 * equal a full count after every kind of write (ingest, replays, late
 * readings, packing, retention and pressure pruning, the backfill), and a
 * group written before the counters is counted by the `history.count` task
 * in steps that survive eviction, commits in between. The oldest bucket of
 * each resolution, kept in the same row (history/oldest.ts), equals a full
 * scan after each of those writes once its recompute after pruning is done.
 */
import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import { describe, expect, it } from "vitest";
import migrations from "../../schema/migrations/migrations.js";
import { HubClient } from "../../schema/client.ts";
import { waitFor } from "../../harness/wait.ts";
import { Backfill } from "../../worker/group/history/backfill.ts";
import { Budget } from "../../worker/group/history/budget.ts";
import { BucketTally } from "../../worker/group/history/counts.ts";
import { PRUNE_TASK } from "../../worker/group/history/history.ts";
import { Packer } from "../../worker/group/history/packer.ts";
import { Pruner } from "../../worker/group/history/prune.ts";
import { BucketWriter, type SeriesAggregates } from "../../worker/group/history/writer.ts";
import { connectDevice, databaseBefore, operatorToken, uniqueGroup } from "./helpers.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

async function client(group: string): Promise<HubClient> {
  return new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: (input, init) => SELF.fetch(input, init) });
}

/** The counts and oldest starts a full scan finds: minute rows plus the minutes in packs (their first minute), hour rows, day rows. */
const scan = (stub: DurableObjectStub) =>
  runInDurableObject(stub, (_hub, state) => {
    const n = (q: string) => state.storage.sql.exec<{ n: number | null }>(q).one().n;
    const start = (b: number | null, len: number) => (b === null ? null : b * len);
    const [m, p] = [n("SELECT min(bucket) AS n FROM minute_buckets"), n("SELECT min(first_minute) AS n FROM minute_packs")];
    return {
      counts: {
        minute: (n("SELECT count(*) AS n FROM minute_buckets") ?? 0) + (n("SELECT coalesce(sum(buckets), 0) AS n FROM minute_packs") ?? 0),
        hour: n("SELECT count(*) AS n FROM hour_buckets") ?? 0,
        day: n("SELECT count(*) AS n FROM day_buckets") ?? 0,
      },
      oldest: {
        minute: start(m === null ? p : p === null ? m : Math.min(m, p), MIN),
        hour: start(n("SELECT min(bucket) AS n FROM hour_buckets"), HOUR),
        day: start(n("SELECT min(bucket) AS n FROM day_buckets"), DAY),
      },
    };
  });

/** The route's counts and oldest starts equal a full scan (once the recompute of the oldest after pruning is done); returns the counts. */
async function expectCounted(op: HubClient, group: string, what: string): Promise<{ minute: number; hour: number; day: number }> {
  await waitFor(async () => !(await op.storage(group)).oldestStale, `the oldest recomputed, ${what}`, 8_000);
  const s = await op.storage(group);
  const counts = { minute: s.resolutions.minute.buckets, hour: s.resolutions.hour.buckets, day: s.resolutions.day.buckets };
  const oldest = { minute: s.resolutions.minute.oldest, hour: s.resolutions.hour.oldest, day: s.resolutions.day.oldest };
  const found = await scan(env.GROUPS.getByName(group));
  expect({ counts, oldest, uncounted: s.uncountedSeries }, what).toEqual({ ...found, uncounted: 0 });
  return counts;
}

/** One reading a minute for `minutes` minutes from `from` but every 20th minute, per metric, as the commit collapses them (straight into the writer). */
function history(device: string, metrics: string[], from: number, minutes: number): SeriesAggregates {
  const byMetric = new Map<string, Map<number, { count: number; sum: number; min: number; max: number; firstTs: number; lastTs: number; last: number }>>();
  for (const [k, metric] of metrics.entries()) {
    const buckets = new Map();
    for (let m = 0; m < minutes; m++) {
      if (m % 20 === 19) continue;
      const start = from + m * MIN;
      const v = 20 + k + m * 0.25;
      buckets.set(start, { count: 1, sum: v, min: v, max: v, firstTs: start + 1000, lastTs: start + 1000, last: v });
    }
    byMetric.set(metric, buckets);
  }
  return new Map([[device, byMetric]]);
}

describe("storage counts", () => {
  it("equal a full scan after ingest, replays, late readings, packing, retention and pressure pruning, and the backfill", async () => {
    const group = uniqueGroup("counts");
    const stub = env.GROUPS.getByName(group);
    const op = await client(group);
    const now = Math.floor(Date.now() / MIN) * MIN;
    expect(await expectCounted(op, group, "empty")).toEqual({ minute: 0, hour: 0, day: 0 });

    // Ingest: three readings in two minutes of one metric (an upsert that updates counts once), one of another.
    const { sock } = await connectDevice(group, "c-1");
    const t = now - 3 * MIN;
    const batch = { type: "batch", seq: 1, readings: [[t, "temp", 1], [t + 1000, "temp", 2], [t + MIN, "temp", 3], [t, "hum", 40]] };
    sock.send(batch);
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const day = Math.floor(t / DAY) === Math.floor((t + MIN) / DAY) ? 2 : 3;
    const hour = Math.floor(t / HOUR) === Math.floor((t + MIN) / HOUR) ? 2 : 3;
    expect(await expectCounted(op, group, "after a batch")).toEqual({ minute: 3, hour, day });
    // A replay is acked as a duplicate and counted nowhere; a reading into an existing minute adds no bucket.
    sock.send(batch);
    expect(await sock.next()).toEqual({ type: "ack", seq: 1, dup: true });
    sock.send({ type: "batch", seq: 2, readings: [[t + 2000, "temp", 4]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    expect(await expectCounted(op, group, "after a replay and an update")).toEqual({ minute: 3, hour, day });

    // Six closed hours of two series, then packed; late readings into a packed hour are plain rows again, until the next pass merges them.
    const old = Math.floor(now / HOUR) * HOUR - 8 * HOUR;
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      db.transaction(() => new BucketWriter(db).write(history("c-2", ["a", "b"], old, 360)));
    });
    await expectCounted(op, group, "after old history");
    await runInDurableObject(stub, (_hub, state) => {
      const packer = new Packer(drizzle(state.storage), new BucketTally(drizzle(state.storage)));
      for (let i = 0; i < 20 && !packer.step(now, 300).done; i++);
      expect(state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM minute_packs").one().n).toBe(12);
    });
    await expectCounted(op, group, "after packing");
    // The oldest minute is now in a pack, the oldest hour a plain row.
    const oldest = (await op.storage(group)).resolutions;
    expect([oldest.minute.oldest, oldest.hour.oldest]).toEqual([old, old]);
    const { sock: late } = await connectDevice(group, "c-2");
    // One into a minute the pack holds, one into a minute it lacks (minute 19).
    late.send({ type: "batch", seq: 1, readings: [[old + 30 * MIN + 5000, "a", 9], [old + 19 * MIN + 30 * 1000, "a", 8]] });
    expect(await late.next()).toEqual({ type: "ack", seq: 1 });
    late.close();
    const lateCounts = await expectCounted(op, group, "after late readings into a packed hour");
    await runInDurableObject(stub, (_hub, state) => {
      expect(new Packer(drizzle(state.storage), new BucketTally(drizzle(state.storage))).step(now).done).toBe(true);
    });
    expect((await expectCounted(op, group, "after packing the late readings")).minute).toBe(lateCounts.minute - 1);

    // Retention: minutes older than 4 hours go (packs whole), hours older than 6. The PUT starts a pass at once; it is over when the next one is an hour away.
    await op.putRetention(group, { minuteMs: 4 * HOUR, hourMs: 6 * HOUR, dayMs: null });
    const nextPass = () => runInDurableObject(stub, (_hub, state) => state.storage.kv.get<number>(`sched:${PRUNE_TASK}`) ?? 0);
    await waitFor(async () => (await nextPass()) > Date.now() + 10 * MIN, "the retention pass", 30_000);
    const pruned = await expectCounted(op, group, "after retention pruning");
    expect(pruned.minute).toBeLessThan(lateCounts.minute - 1);
    expect(pruned.hour).toBeLessThan(lateCounts.hour);
    // A late reading into a minute and an hour that pruning deleted: new rows again, counted as such.
    const { sock: again } = await connectDevice(group, "c-2");
    again.send({ type: "batch", seq: 2, readings: [[old + HOUR + 7 * MIN, "b", 3]] });
    expect(await again.next()).toEqual({ type: "ack", seq: 2 });
    again.close();
    const relate = await expectCounted(op, group, "after a late reading into pruned buckets");
    expect([relate.minute, relate.hour, relate.day]).toEqual([pruned.minute + 1, pruned.hour + 1, pruned.day]);

    // Pressure: a step deletes the oldest hour of minutes across series.
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const tally = new BucketTally(db);
      expect(new Budget(db, () => Infinity, { maxGroupBytes: 1 }, tally).pressureStep()).toBe(true);
      // The recompute of the oldest that the prune task asks for after pruning (history.ts), here at once.
      expect(tally.oldest.stale()).toBe(true);
      while (tally.oldest.step(1));
    });
    const pressed = await expectCounted(op, group, "after a pressure step");
    expect(pressed.minute).toBeLessThan(relate.minute);

    // The backfill of rows left in the pre-history table: one of them into a minute that exists.
    await runInDurableObject(stub, (_hub, state) => {
      const insert = "INSERT INTO aggregates (device, metric, start, count, sum, min, max, first_ts, last_ts, last) VALUES (?, ?, ?, 1, 5, 5, 5, ?, ?, 5)";
      for (const start of [t, now - 10 * MIN, now - 11 * MIN]) state.storage.sql.exec(insert, "c-1", "temp", start, start + 10, start + 10);
      const db = drizzle(state.storage);
      new Backfill(db, new BucketWriter(db)).step();
    });
    expect((await expectCounted(op, group, "after the backfill")).minute).toBe(pressed.minute + 2);

    // Pressure until nothing is left: minutes, then hours, then days.
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const tally = new BucketTally(db);
      const budget = new Budget(db, () => Infinity, { maxGroupBytes: 1 }, tally);
      for (let i = 0; i < 100 && budget.pressureStep(); i++);
      expect(budget.pressureStep()).toBe(false);
    });
    expect(await expectCounted(op, group, "after pruning everything")).toEqual({ minute: 0, hour: 0, day: 0 });
    sock.close();
  });

  it("a group written before the counters is counted by its task, in steps that survive eviction, with commits in between", async () => {
    const group = uniqueGroup("counts-old");
    const stub = env.GROUPS.getByName(group);
    const op = await client(group);
    const from = Math.floor(Date.now() / HOUR) * HOUR - 2 * DAY;
    const counted = await runInDurableObject(stub, async (_hub, state) => {
      await databaseBefore(state, "_bucket_counts");
      const db = drizzle(state.storage);
      // Six series of the old schema (a writer that leaves counts alone), then the new migrations
      // (this instance woke before, so it requested no count).
      db.transaction(() => {
        const writer = new BucketWriter(db, true, false);
        for (const d of ["o-1", "o-2", "o-3"]) writer.write(history(d, ["x", "y"], from, 150));
      });
      await migrate(db, migrations);
      const tally = new BucketTally(db);
      expect(tally.totals()).toEqual({ buckets: { minute: 0, hour: 0, day: 0 }, uncountedSeries: 6 });
      // One step with a small row bound counts the first series whole (143 minutes, 3 hours, 1 or 2 days) and stops.
      expect(tally.step(100)).toBe(true);
      // Commits between steps: new buckets in the series counted (o-1/x) and in one not counted yet (o-3/y).
      db.transaction(() => {
        const writer = new BucketWriter(db);
        writer.write(history("o-1", ["x"], from + 150 * MIN, 10));
        writer.write(history("o-3", ["y"], from + 150 * MIN, 10));
      });
      return tally.totals().uncountedSeries;
    });
    expect(counted).toBe(5);
    // The next wake asks for the task, which finishes in the background.
    await evictDurableObject(stub);
    await waitFor(async () => (await op.storage(group)).uncountedSeries === 0, "the count task", 30_000);
    const all = await expectCounted(op, group, "after counting");
    expect(all.minute).toBe(6 * 143 + 20);
  });

  it("oldest: a group written before the columns gets them exact; a recompute after pruning survives eviction and keeps a late write into a scanned series", async () => {
    const group = uniqueGroup("oldest-old");
    const stub = env.GROUPS.getByName(group);
    const op = await client(group);
    const from = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR;
    await runInDurableObject(stub, async (_hub, state) => {
      await databaseBefore(state, "_oldest_buckets");
      const db = drizzle(state.storage);
      // Two series of the previous schema (a writer that keeps no counts), the second starting two hours later; then the new migration.
      db.transaction(() => {
        const writer = new BucketWriter(db, true, false);
        writer.write(history("p-1", ["x"], from, 100));
        writer.write(history("p-2", ["x"], from + 2 * HOUR, 100));
      });
      // That writer left the counts alone: the count task counts these series after the next wake.
      state.storage.sql.exec("UPDATE bucket_totals SET counted_to = 0");
      await migrate(db, migrations);
      const tally = new BucketTally(db);
      expect(tally.oldest.read()).toEqual({ oldest: { minute: from / MIN, hour: from / HOUR, day: Math.floor(from / DAY) }, stale: false });
      // Pruning the first series' first half hour of minutes: the oldest may have risen, a recompute starts.
      new Pruner(db, tally).step({ minute: from / MIN + 30, hour: null, day: null });
      expect(tally.oldest.read()).toEqual({ oldest: { minute: from / MIN, hour: from / HOUR, day: Math.floor(from / DAY) }, stale: true });
      // One series scanned (its oldest is now minute 30), then a late minute 10 into it: below what the scan found, above the stored lower bound.
      expect(tally.oldest.step(1)).toBe(true);
      db.transaction(() => new BucketWriter(db).write(history("p-1", ["x"], from + 10 * MIN, 1)));
    });
    // While the recompute runs the route answers the lower bound and says so.
    const during = await op.storage(group);
    expect([during.resolutions.minute.oldest, during.oldestStale]).toEqual([from, true]);
    // The next wake asks for the recompute, which finishes in the background.
    await evictDurableObject(stub);
    await waitFor(async () => !(await op.storage(group)).oldestStale, "the oldest recomputed", 10_000);
    await waitFor(async () => (await op.storage(group)).uncountedSeries === 0, "the count task", 10_000);
    await expectCounted(op, group, "after the recompute");
    expect((await op.storage(group)).resolutions.minute.oldest).toBe(from + 10 * MIN);
  });
});

/**
 * History (docs/history.md): minute, hour and day buckets written in the
 * batch's transaction, the aggregates route's resolutions, and the
 * migration of a group written before the history tables.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import { describe, expect, it } from "vitest";
import migrations from "../../schema/migrations/migrations.js";
import { Backfill, BACKFILL_TASK } from "../../worker/group/history/backfill.ts";
import { AggregateQuery } from "../../schema/api.ts";
import { DEFAULT_RETENTION } from "../../worker/group/history/history.ts";
import { BucketQueries } from "../../worker/group/history/query.ts";
import { BucketWriter } from "../../worker/group/history/writer.ts";
import { mergePartial, type PartialAggregate } from "../../worker/group/ingest/collapse.ts";
import { waitFor } from "../../harness/wait.ts";
import { aggregates, connectDevice, databaseBefore, getJson, operatorToken, runTasksNow, uniqueGroup } from "./helpers.ts";
import { expectedBuckets, expectSameBuckets } from "./history-rollups.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

type Reading = [number, string, number];

/** Readings of two metrics spread over the last three days, with awkward floats and ties on timestamps. */
function spread(n: number, now: number): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) {
    const ts = now - 3 * DAY + Math.floor((i * 3 * DAY) / n) + (i % 7) * 1000;
    out.push([ts, i % 3 === 0 ? "hum" : "temp", (i % 11) * 0.1 + i / 3 - 7.7]);
  }
  return out;
}

describe("history rollups", () => {
  it("writes hour and day buckets equal to the merge of their minute buckets; replays count once at every resolution", async () => {
    const group = uniqueGroup("roll");
    const device = "r-1";
    const { sock } = await connectDevice(group, device);
    const now = Date.now() - 5000;
    const readings = spread(240, now);
    // Two batches interleave in time, and a tie on a timestamp: the later arrival wins `last`.
    const first = readings.filter((_, i) => i % 2 === 0);
    const second = [...readings.filter((_, i) => i % 2 === 1), [first[3]?.[0] ?? 0, "temp", 1234.5] as Reading];
    sock.send({ type: "batch", seq: 1, readings: first });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.send({ type: "batch", seq: 2, readings: second });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    sock.send({ type: "batch", seq: 2, readings: second });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2, dup: true });
    const applied = [...first, ...second];

    const minute = await aggregates(group);
    expectSameBuckets(minute, expectedBuckets(device, applied, "minute"), "minute");
    expect(await aggregates(group, "?resolution=minute")).toEqual(minute);
    for (const r of ["hour", "day"] as const) {
      const got = await aggregates(group, `?resolution=${r}`);
      expectSameBuckets(got, expectedBuckets(device, applied, r), r);
      expect(got.reduce((n, b) => n + b.count, 0)).toBe(applied.length);
    }
    sock.close();
  });

  it("answers resolution, from and to per resolution, and auto by retention and maxPoints", async () => {
    const group = uniqueGroup("auto");
    const { sock } = await connectDevice(group, "a-1");
    const now = Date.now() - 5000;
    sock.send({ type: "batch", seq: 1, readings: spread(60, now) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const token = await operatorToken(group);
    const get = async (q: string) => {
      const { status, body } = await getJson(`/v1/groups/${group}/aggregates?device=a-1&metric=temp&${q}`, token);
      expect(status, q).toBe(200);
      return body as { resolution: string; buckets: { start: number }[]; truncated: boolean };
    };
    const hourStart = Math.floor(now / HOUR) * HOUR;
    // Buckets that end after `from` and start before `to`, in the resolution's units.
    const hours = await get(`resolution=hour&from=${hourStart - 24 * HOUR + 1}&to=${hourStart}`);
    expect(hours.resolution).toBe("hour");
    expect(hours.buckets.every((b) => b.start >= hourStart - 24 * HOUR && b.start < hourStart && b.start % HOUR === 0)).toBe(true);
    expect((await get("resolution=day")).buckets.every((b) => b.start % DAY === 0)).toBe(true);

    expect((await get(`resolution=auto&from=${now - 15 * MIN}`)).resolution).toBe("minute");
    expect((await get(`resolution=auto&from=${now - 24 * HOUR}`)).resolution).toBe("minute");
    // 2 days of minutes is 2,880 points: over the default maxPoints, so hours.
    expect((await get(`resolution=auto&from=${now - 2 * DAY}`)).resolution).toBe("hour");
    expect((await get(`resolution=auto&from=${now - 2 * DAY}&maxPoints=5000`)).resolution).toBe("minute");
    expect((await get(`resolution=auto&from=${now - 2 * DAY}&maxPoints=10`)).resolution).toBe("day");
    // Minutes are kept 3 days by default: a longer range is not retained at minute resolution.
    expect((await get(`resolution=auto&from=${now - 4 * DAY}&maxPoints=50000`)).resolution).toBe("hour");
    // Over everything stored (the oldest day bucket on): 4 days of hours.
    expect((await get("resolution=auto")).resolution).toBe("hour");

    for (const q of ["resolution=week", "maxPoints=0", "maxPoints=50001", "maxPoints=1.5"]) {
      const { status, body } = await getJson(`/v1/groups/${group}/aggregates?${q}`, token);
      expect(status, q).toBe(400);
      expect(body, q).toMatchObject({ error: "bad_query" });
    }
    sock.close();
  });
});

/** A one-reading partial aggregate (a point) of `value` at `ts`. */
const point = (ts: number, value: number): PartialAggregate => ({ count: 1, sum: value, min: value, max: value, firstTs: ts, lastTs: ts, last: value });

describe("point rows", () => {
  it("store one-point buckets without min, max, last and last offset, and read and merge them exactly at every resolution", async () => {
    const group = uniqueGroup("points");
    const stub = env.GROUPS.getByName(group);
    const t0 = Math.floor(Date.now() / DAY) * DAY - DAY;
    // Per metric, the partials of one minute bucket in the order of their commits.
    const cases: Record<string, PartialAggregate[]> = {
      one: [point(t0 + 123, 21.5)],
      negZero: [point(t0, -0)],
      zeroAtStart: [point(t0, 0)],
      big: [point(t0 + 59_999, 2 ** 60)],
      huge: [point(t0 + 7, 1e308)],
      tiny: [point(t0 + 7, Number.MIN_VALUE)],
      mostNegative: [point(t0 + 7, -Number.MAX_VALUE)],
      twoPoints: [point(t0 + 500, 3.3), point(t0 + 100, -1.25)],
      pointThenFull: [point(t0 + 500, 0.1), { count: 2, sum: 0.5, min: 0.2, max: 0.30000000000000004, firstTs: t0 + 10, lastTs: t0 + 900, last: 0.2 }],
      fullThenPoint: [{ count: 2, sum: 0.5, min: 0.2, max: 0.30000000000000004, firstTs: t0 + 10, lastTs: t0 + 900, last: 0.2 }, point(t0 + 900, 7.5)],
      tieOnLast: [point(t0 + 42, 1), point(t0 + 42, 2)],
      zerosAtOneTime: [{ count: 2, sum: 0, min: -0, max: 0, firstTs: t0, lastTs: t0, last: -0 }],
      // Written below as the code before point rows stored a one-reading bucket (every column), then a point on top.
      oldRow: [point(t0 + 5, 4.25), point(t0 + 6, 4.5)],
    };
    const metrics = Object.keys(cases);
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const writer = new BucketWriter(db);
      const commits = Math.max(...Object.values(cases).map((c) => c.length));
      db.transaction(() => {
        const id = writer.seriesId("pt-1", "oldRow");
        for (const [table, len] of [["minute_buckets", MIN], ["hour_buckets", HOUR], ["day_buckets", DAY]] as const) {
          state.storage.sql.exec(`INSERT INTO ${table} VALUES (?, ?, 1, 4.25, 4.25, 4.25, 5, 5, 4.25)`, id, t0 / len);
        }
      });
      for (let k = 0; k < commits; k++) {
        const byMetric = new Map<string, Map<number, PartialAggregate>>();
        for (const m of metrics) {
          const a = cases[m]?.[m === "oldRow" ? k + 1 : k];
          if (a) byMetric.set(m, new Map([[t0, { ...a }]]));
        }
        db.transaction(() => writer.write(new Map([["pt-1", byMetric]])));
      }
      // One-point minutes carry the mark (min > max) and zeros, which SQLite stores in no bytes (bench:history measures the size).
      const marked = state.storage.sql.exec("SELECT min, max, last, last_off AS off FROM minute_buckets WHERE min > max").toArray();
      expect(marked).toEqual(metrics.filter((m) => cases[m]?.length === 1).map(() => ({ min: 1, max: 0, last: 0, off: 0 })));
      const queries = new BucketQueries(db);
      for (const r of ["minute", "hour", "day"] as const) {
        const got = queries.query(AggregateQuery.parse({ device: "pt-1", resolution: r }), DEFAULT_RETENTION, t0 + DAY);
        expect(got.buckets.map((b) => b.metric)).toEqual([...metrics].sort());
        for (const b of got.buckets) {
          const [first, ...rest] = cases[b.metric] ?? [];
          expect(first, b.metric).toBeDefined();
          const want = { ...(first as PartialAggregate) };
          for (const a of rest) mergePartial(want, a);
          // A REAL column stores -0 as the integer 0 (it did before point rows too), so -0 reads back as 0.
          const stored = (x: number) => (Object.is(x, -0) ? 0 : x);
          const fields = { count: b.count, sum: b.sum, min: b.min, max: b.max, last: b.last };
          expect(fields, `${r} ${b.metric}`).toStrictEqual({ count: want.count, sum: stored(want.sum), min: stored(want.min), max: stored(want.max), last: stored(want.last) });
          expect(b.start, `${r} ${b.metric}`).toBe(t0);
        }
      }
    });
  });
});

/** Rows as the old store wrote them: one per (device, metric, minute), 1,800 in all over the last two days. */
function oldReadings(now: number): { device: string; readings: Reading[] }[] {
  const old = [
    { device: "o-1", readings: [] as Reading[] },
    { device: "o-2", readings: [] as Reading[] },
  ];
  for (const [k, d] of old.entries()) {
    for (let m = 0; m < 600; m++) {
      const ts = now - 2 * DAY + m * 7 * MIN + k * 1000;
      d.readings.push([ts, "temp", m * 0.25 - k], [ts + 500, "temp", 0.5 - m / 3]);
      if (m % 2 === 0) d.readings.push([ts + 200, "hum", 40 + m * 0.01]);
    }
  }
  return old;
}

/**
 * Makes the group's database one written by the code before the history
 * migration: empty, every migration before it applied, the old rows inserted.
 */
async function writeOldDatabase(state: DurableObjectState, old: { device: string; readings: Reading[] }[]): Promise<void> {
  const sql = state.storage.sql;
  await databaseBefore(state, "_history");
  for (const { device, readings } of old) {
    for (const b of expectedBuckets(device, readings, "minute")) {
      const inBucket = readings.filter(([ts, m]) => m === b.metric && Math.floor(ts / MIN) * MIN === b.start).map(([ts]) => ts);
      sql.exec(
        "INSERT INTO aggregates (device, metric, start, count, sum, min, max, first_ts, last_ts, last) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        device, b.metric, b.start, b.count, b.sum, b.min, b.max, Math.min(...inBucket), Math.max(...inBucket), b.last,
      );
    }
  }
}

const countIn = (stub: DurableObjectStub, table: string): Promise<number> =>
  runInDurableObject(stub, (_hub, state) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n);

async function expectAll(group: string, old: { device: string; readings: Reading[] }[], what: string): Promise<void> {
  for (const r of ["minute", "hour", "day"] as const) {
    expectSameBuckets(await aggregates(group, `?resolution=${r}`), old.flatMap((d) => expectedBuckets(d.device, d.readings, r)), `${r} ${what}`);
  }
}

describe("commits of every size", () => {
  it("write every row of a commit of 1 to 45 series, point and full rows, at every resolution (chunks and their remainder)", async () => {
    const stub = env.GROUPS.getByName(uniqueGroup("sizes"));
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const writer = new BucketWriter(db);
      const t0 = Math.floor(Date.now() / DAY) * DAY - DAY;
      const count = (table: string) => state.storage.sql.exec<{ n: number; c: number }>(`SELECT count(*) AS n, coalesce(sum(count), 0) AS c FROM ${table}`).one();
      let rows = 0;
      let readings = 0;
      for (let n = 1; n <= 45; n++) {
        // Commit n: n series, a point row each on odd n, a full row (two readings) on even n; a minute of its own.
        const start = t0 + n * MIN;
        const metrics = new Map<string, Map<number, PartialAggregate>>();
        for (let k = 0; k < n; k++) {
          const a: PartialAggregate = n % 2 ? { count: 1, sum: k + 0.5, min: k + 0.5, max: k + 0.5, firstTs: start + k, lastTs: start + k, last: k + 0.5 } : { count: 2, sum: 2 * k + 1.5, min: k + 0.5, max: k + 1, firstTs: start, lastTs: start + 1000, last: k + 1 };
          metrics.set(`m${k}`, new Map([[start, a]]));
          readings += a.count;
        }
        db.transaction(() => writer.write(new Map([["sizes-1", metrics]])));
        rows += n;
        expect(count("minute_buckets"), `minute rows after a commit of ${n} series`).toEqual({ n: rows, c: readings });
        // Every commit lands in the same hour and day: one row per series, each holding every reading so far.
        expect(count("hour_buckets"), `hour rows after a commit of ${n} series`).toEqual({ n, c: readings });
        expect(count("day_buckets"), `day rows after a commit of ${n} series`).toEqual({ n, c: readings });
      }
    });
  });
});

describe("migration of a group written before the history tables", () => {
  it("migrates an old database on wake and backfills every old row into minutes, hours and days; new batches merge on top", async () => {
    const group = uniqueGroup("old");
    const stub = env.GROUPS.getByName(group);
    const now = Math.floor(Date.now() / MIN) * MIN;
    const old = oldReadings(now);
    await runInDurableObject(stub, (_hub, state) => writeOldDatabase(state, old));
    expect(await countIn(stub, "aggregates")).toBe(1800);

    // The new code wakes on the old database: the migration runs and the backfill is requested.
    await evictDurableObject(stub);
    // While rows move (by the alarm, in the background), every answer already holds all of them.
    await expectAll(group, old, "while moving");
    await waitFor(async () => (await countIn(stub, "aggregates")) === 0, "the backfill to finish", 10_000);
    expect(await countIn(stub, "minute_buckets")).toBe(1800);
    await expectAll(group, old, "after");

    const { sock } = await connectDevice(group, "o-1");
    const late: Reading = [now - 2 * DAY + 30 * MIN + 100, "temp", 99.5];
    sock.send({ type: "batch", seq: 1, readings: [late] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    await expectAll(group, old.map((d) => (d.device === "o-1" ? { ...d, readings: [...d.readings, late] } : d)), "with a new batch");
    sock.close();
  });

  it("survives an eviction halfway through the backfill", async () => {
    const group = uniqueGroup("old-evict");
    const stub = env.GROUPS.getByName(group);
    const now = Math.floor(Date.now() / MIN) * MIN;
    const old = oldReadings(now);
    // This instance woke before the tables were replaced, so it requested no backfill: the steps here are the only ones.
    const left = await runInDurableObject(stub, async (_hub, state) => {
      await writeOldDatabase(state, old);
      const db = drizzle(state.storage);
      await migrate(db, migrations);
      new Backfill(db, new BucketWriter(db)).step(700);
      return state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM aggregates").one().n;
    });
    expect(left).toBe(1100);
    await expectAll(group, old, "halfway");
    await evictDurableObject(stub);
    for (let i = 0; i < 10 && (await countIn(stub, "aggregates")) > 0; i++) await runTasksNow(stub, BACKFILL_TASK);
    expect(await countIn(stub, "aggregates")).toBe(0);
    expect(await countIn(stub, "minute_buckets")).toBe(1800);
    await expectAll(group, old, "after");
  });
});

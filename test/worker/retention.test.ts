/**
 * Retention (docs/history.md): the GET and PUT routes, pruning by the
 * scheduler task in small steps, and late readings into pruned minutes.
 */
import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { describe, expect, it } from "vitest";
import { HubClient } from "../../schema/client.ts";
import { DEFAULT_RETENTION, PRUNE_TASK } from "../../worker/group/history/history.ts";
import { BucketTally } from "../../worker/group/history/counts.ts";
import { Pruner } from "../../worker/group/history/prune.ts";
import { BucketWriter } from "../../worker/group/history/writer.ts";
import { waitFor } from "../../harness/wait.ts";
import { aggregates, connectDevice, operatorToken, runTasksNow, uniqueGroup } from "./helpers.ts";

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

async function client(group: string): Promise<HubClient> {
  return new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: (input, init) => SELF.fetch(input, init) });
}

const count = (group: string, table: string): Promise<number> =>
  runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n);

describe("retention", () => {
  it("answers the defaults, and refuses bad bodies with 400 bad_body", async () => {
    const group = uniqueGroup("ret");
    const op = await client(group);
    expect(await op.retention(group)).toEqual(DEFAULT_RETENTION);
    const token = await operatorToken(group);
    const bad = [
      "not json",
      "{}",
      '{"minuteMs": 60000, "hourMs": 3600000}',
      '{"minuteMs": 59999, "hourMs": null, "dayMs": null}',
      '{"minuteMs": "1d", "hourMs": null, "dayMs": null}',
      '{"minuteMs": 60000.5, "hourMs": null, "dayMs": null}',
      // A finer resolution kept longer than a coarser one.
      '{"minuteMs": 7200000, "hourMs": 3600000, "dayMs": null}',
      '{"minuteMs": null, "hourMs": 3600000, "dayMs": null}',
    ];
    for (const body of bad) {
      const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/retention`, { method: "PUT", headers: { authorization: `Bearer ${token}` }, body });
      expect(res.status, body).toBe(400);
      expect(await res.json(), body).toMatchObject({ error: "bad_body" });
    }
    expect(await op.retention(group)).toEqual(DEFAULT_RETENTION);
    const forever = { minuteMs: null, hourMs: null, dayMs: null };
    expect(await op.putRetention(group, forever)).toEqual(forever);
    expect(await op.retention(group)).toEqual(forever);
  });

  it("takes effect within 10 s of a PUT: older minutes go, hours and days stay; a late reading lands at every resolution", async () => {
    const group = uniqueGroup("prune");
    const op = await client(group);
    const { sock } = await connectDevice(group, "p-1");
    const now = Math.floor(Date.now() / MIN) * MIN;
    // At an hour's start, so that its first two minutes share that hour whatever the time now.
    const old = Math.floor((now - 2 * DAY) / HOUR) * HOUR;
    sock.send({ type: "batch", seq: 1, readings: [[old + 1000, "temp", 1.5], [old + MIN + 1000, "temp", 2.5], [now - 5 * MIN, "temp", 3.5]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await aggregates(group)).toHaveLength(3);

    await op.putRetention(group, { minuteMs: DAY, hourMs: 30 * DAY, dayMs: null });
    // The task runs by the alarm, with no request after the PUT.
    await waitFor(async () => (await count(group, "minute_buckets")) === 1, "minute buckets older than a day to be pruned", 10_000);
    expect(await aggregates(group)).toMatchObject([{ start: now - 5 * MIN, count: 1 }]);
    const hours = await aggregates(group, "?resolution=hour");
    expect(hours.reduce((n, b) => n + b.count, 0)).toBe(3);

    // A late reading into the pruned minute: its minute comes back with it alone; its hour and day count it.
    sock.send({ type: "batch", seq: 2, readings: [[old + 2000, "temp", 10]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    expect(await aggregates(group, `?to=${old + MIN}`)).toMatchObject([{ start: old, count: 1, sum: 10, last: 10 }]);
    const oldHour = Math.floor(old / HOUR) * HOUR;
    expect((await aggregates(group, `?resolution=hour&from=${oldHour}&to=${oldHour + 1}`))[0]).toMatchObject({ count: 3, sum: 14, min: 1.5, max: 10, last: 2.5 });
    const oldDay = Math.floor(old / DAY) * DAY;
    expect((await aggregates(group, `?resolution=day&from=${oldDay}&to=${oldDay + 1}`))[0]).toMatchObject({ count: 3 });
    sock.close();
  });

  it("prunes in small steps and carries on after an eviction halfway, by the pass's own cutoffs", async () => {
    const group = uniqueGroup("prune-evict");
    const stub = env.GROUPS.getByName(group);
    const now = Math.floor(Date.now() / MIN) * MIN;
    const cutoffMs = now - DAY;
    // 3 series x 1,500 minutes from 2 days ago: 1,440 + 60 per series, 180 of them within the last day.
    await runInDurableObject(stub, (_hub, state) => {
      const db = drizzle(state.storage);
      const writer = new BucketWriter(db);
      const metrics = new Map<string, Map<number, { count: number; sum: number; min: number; max: number; firstTs: number; lastTs: number; last: number }>>();
      for (const metric of ["a", "b", "c"]) {
        const buckets = new Map();
        for (let m = 0; m < 1500; m++) {
          const start = now - 2 * DAY + m * MIN;
          buckets.set(start, { count: 1, sum: m, min: m, max: m, firstTs: start, lastTs: start, last: m });
        }
        metrics.set(metric, buckets);
      }
      db.transaction(() => writer.write(new Map([["e-1", metrics]])));
      const pruner = new Pruner(db, new BucketTally(db));
      const cutoffs = { minute: Math.floor(cutoffMs / MIN), hour: null, day: null };
      expect(pruner.step(cutoffs, false, 1000)).toEqual({ deleted: 1000, done: false });
    });
    expect(await count(group, "minute_buckets")).toBe(3500);
    await evictDurableObject(stub);
    // The woken object resumes the pass under way (its cutoffs, not the default retention's),
    // then packs the closed hours that are left (packer.ts): the answers stay the same.
    const minutes = async () => (await aggregates(group)).length;
    for (let i = 0; i < 10 && (await minutes()) > 180; i++) await runTasksNow(stub, PRUNE_TASK);
    expect(await minutes()).toBe(180);
    // 1,500 minutes cover 25 hours, or 26 when they do not start on an hour.
    const first = now - 2 * DAY;
    const hours = Math.floor((first + 1499 * MIN) / HOUR) - Math.floor(first / HOUR) + 1;
    expect(await count(group, "hour_buckets")).toBe(3 * hours);
    const left = await aggregates(group, "?metric=a");
    expect(left[0]?.start).toBe(cutoffMs);
    expect(left.map((b) => b.sum)).toEqual(Array.from({ length: 60 }, (_, k) => 1440 + k));
  });
});

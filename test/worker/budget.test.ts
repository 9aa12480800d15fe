/**
 * The storage budget (docs/history.md): with MAX_GROUP_BYTES at 4 MB in the
 * worker project, a group near it prunes its oldest minute buckets and
 * raises its `storage` alert instead of failing, and a group at it refuses
 * batches with `storage_full` without applying anything.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HubClient } from "../../schema/client.ts";
import { waitFor } from "../../harness/wait.ts";
import { aggregates, connectDevice, lastSeqOf, operatorToken, uniqueGroup } from "./helpers.ts";

const BUDGET = 4_000_000;
const MIN = 60_000;
/**
 * Pruning under pressure takes some 30 alarm steps of about 1,300 buckets
 * here (an hour of minutes per series a step): 2 s on a quiet machine, and
 * more than 15 s once on a loaded one. A bound, not a phase: the waits poll.
 */
const PRUNE_WAIT_MS = 90_000;

/**
 * Adds old minute buckets (20 series of a second device, a few days back,
 * oldest first) until the database holds at least `share` of the budget.
 * SQL straight into the table: this is a fill, the commit path is tested elsewhere.
 */
function fill(group: string, share: number): Promise<number> {
  return runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => {
    const sql = state.storage.sql;
    for (let k = 0; k < 20; k++) sql.exec("INSERT INTO series (device, metric) VALUES ('filler', ?) ON CONFLICT DO NOTHING", `m${k}`);
    const ids = sql.exec<{ id: number }>("SELECT id FROM series WHERE device = 'filler' ORDER BY id").toArray().map((r) => r.id);
    const base = Math.floor((Date.now() - 5 * 86_400_000) / MIN);
    let next = sql.exec<{ b: number | null }>(`SELECT max(bucket) AS b FROM minute_buckets WHERE series = ${ids[0] ?? 0}`).one().b ?? base;
    while (sql.databaseSize < share * BUDGET) {
      for (const id of ids) {
        sql.exec(
          `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
           INSERT INTO minute_buckets SELECT ?, ? + i, 3, i * 0.37, -i * 0.5, i * 1.5, 100, 59000, i * 0.25 FROM n`,
          id,
          next,
        );
        // Past the writer, so the bucket count and the oldest minute are kept here (worker/group/history/counts.ts, oldest.ts).
        sql.exec("UPDATE bucket_totals SET minute = minute + 500, oldest_minute = min(coalesce(oldest_minute, ?1), ?1) WHERE id = 1", next + 1);
      }
      next += 500;
    }
    // The hourly retention pass and packing of closed hours could also make
    // room (the filler is older than the minutes' retention): they wait an
    // hour, so that only what the test does next decides what is pruned.
    for (const [key, at] of state.storage.kv.list<number>({ prefix: "sched:history." })) state.storage.kv.put(key, Math.max(at, Date.now() + 3_600_000));
    return sql.databaseSize;
  });
}

async function client(group: string): Promise<HubClient> {
  return new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: (input, init) => SELF.fetch(input, init) });
}

describe("storage budget", () => {
  it("near the budget prunes the oldest minute buckets first and raises the storage alert, then clears it; at the budget refuses with storage_full, applying nothing, and the resend after pruning is applied once", async () => {
    const group = uniqueGroup("budget");
    const op = await client(group);
    const { sock } = await connectDevice(group, "b-1");
    const t = Math.floor(Date.now() / MIN) * MIN - 2 * MIN;
    sock.send({ type: "batch", seq: 1, readings: [[t, "temp", 1.5]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });

    const before = await op.storage(group);
    expect(before.budgetBytes).toBe(BUDGET);
    expect(before.resolutions.minute).toMatchObject({ buckets: 1, oldest: t, keepMs: 3 * 86_400_000 });

    // Over 90 %: the next commit asks for pruning, which runs by the alarm until the group is under 80 %.
    await fill(group, 0.92);
    const filled = await op.storage(group);
    sock.send({ type: "batch", seq: 2, readings: [[t + 1000, "temp", 2.5]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    await waitFor(async () => (await op.storage(group)).bytes < 0.8 * BUDGET, "pruning under pressure", PRUNE_WAIT_MS);
    const after = await op.storage(group);
    expect(after.resolutions.minute.buckets).toBeLessThan(filled.resolutions.minute.buckets);
    expect(after.resolutions.minute.oldest).toBeGreaterThan(filled.resolutions.minute.oldest ?? Infinity);
    // Finest first: hours and days are all still there, and the newest minutes too.
    expect(after.resolutions.hour.buckets).toBe(filled.resolutions.hour.buckets);
    expect(await aggregates(group, "?device=b-1")).toMatchObject([{ start: t, count: 2, sum: 4 }]);
    await waitFor(async () => (await op.alerts(group)).some((a) => a.kind === "storage" && a.clearedAt !== null), "the storage alert to clear", PRUNE_WAIT_MS);
    const [alert] = (await op.alerts(group)).filter((a) => a.kind === "storage");
    expect(alert).toMatchObject({ device: "", threshold: BUDGET });
    expect(alert?.value).toBeGreaterThanOrEqual(0.9 * BUDGET);

    // At the budget: refused, nothing applied, the socket closed so nothing later overtakes it.
    await fill(group, 1);
    sock.send({ type: "batch", seq: 3, readings: [[t + 2000, "temp", 100]] });
    expect(await sock.next()).toMatchObject({ type: "error", seq: 3, code: "storage_full", retryAfterMs: 10_000 });
    expect((await sock.closedWithin()).code).toBe(1013);
    expect(await lastSeqOf(group, "b-1")).toBe(2);
    expect(await aggregates(group, "?device=b-1")).toMatchObject([{ start: t, count: 2, sum: 4 }]);

    // Pruning makes space: the storage alert is raised again and clears once
    // the group is below 80 % (by the next check; packing closed hours may
    // move the size again afterwards, within the band where nothing is pruned).
    // The device resends from hello and the batch is applied once.
    const cleared = async () => (await op.alerts(group)).filter((a) => a.kind === "storage" && a.clearedAt !== null);
    await waitFor(async () => (await cleared()).length === 2, "pruning after the refusal to clear the storage alert", PRUNE_WAIT_MS);
    const again = await connectDevice(group, "b-1");
    expect(again.lastSeq).toBe(2);
    again.sock.send({ type: "batch", seq: 3, readings: [[t + 2000, "temp", 100]] });
    expect(await again.sock.next()).toEqual({ type: "ack", seq: 3 });
    expect(await aggregates(group, "?device=b-1")).toMatchObject([{ start: t, count: 3, sum: 104 }]);
    again.sock.close();
  }, 4 * PRUNE_WAIT_MS);
});

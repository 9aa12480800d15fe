/**
 * Eviction: the group's Durable Object is torn down (in-memory state gone,
 * SQLite and hibernated sockets kept) and must carry on from storage alone,
 * also when a deploy left sockets with attachments of an older version.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { getTableName, is } from "drizzle-orm";
import { SQLiteTable } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import * as schema from "../../schema/tables.ts";
import journal from "../../schema/migrations/meta/_journal.json";
import type { GroupHub } from "../../worker/index.ts";
import { aggregates, bucketAgo, connectDevice, connectGateway, devices, lastSeqOf, makeReadings, openLive, uniqueGroup } from "./helpers.ts";

/** The live instance of the group's object (constructing it if needed). */
function instanceOf(group: string): Promise<GroupHub> {
  return runInDurableObject(env.GROUPS.getByName(group), (instance: GroupHub) => instance);
}

describe("eviction", () => {
  it("keeps serving the same socket from storage: acks, lastSeq, dup detection, hello", async () => {
    const group = uniqueGroup("evict");
    const device = "ev-1";
    const stub = env.GROUPS.getByName(group);
    const { sock } = await connectDevice(group, device);
    const t0 = bucketAgo(3);

    sock.send({ type: "batch", seq: 1, readings: [[t0 + 1000, "temp", 10], [t0 + 2000, "hum", 40]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const before = await instanceOf(group);

    await evictDurableObject(stub);

    // Same socket, new instance.
    sock.send({ type: "batch", seq: 2, readings: [[t0 + 3000, "temp", 20], [t0 + 61_000, "temp", 5]] });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2 });
    expect(await instanceOf(group)).not.toBe(before);

    expect(await lastSeqOf(group, device)).toBe(2);
    const both = [
      { device, metric: "hum", start: t0, count: 1, sum: 40, min: 40, max: 40, last: 40 },
      { device, metric: "temp", start: t0, count: 2, sum: 30, min: 10, max: 20, last: 20 },
      { device, metric: "temp", start: t0 + 60_000, count: 1, sum: 5, min: 5, max: 5, last: 5 },
    ];
    expect(await aggregates(group)).toEqual(both);
    // The hibernated socket still counts as online, found through its restored attachment.
    expect(await devices(group)).toMatchObject([{ id: device, lastSeq: 2, online: true, readings: 4 }]);

    // Evict again so the seq cache is cold, then replay seq 1 and seq 2.
    await evictDurableObject(stub);
    sock.send({ type: "batch", seq: 1, readings: [[t0 + 1000, "temp", 10], [t0 + 2000, "hum", 40]] });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 1, dup: true });
    await evictDurableObject(stub);
    sock.send({ type: "batch", seq: 2, readings: [[t0 + 4000, "temp", 99]] });
    expect(await sock.next()).toStrictEqual({ type: "ack", seq: 2, dup: true });
    expect(await aggregates(group)).toEqual(both);
    expect(await lastSeqOf(group, device)).toBe(2);

    // A reconnect after eviction: hello reports lastSeq 2, and the old socket is replaced.
    await evictDurableObject(stub);
    const again = await connectDevice(group, device);
    expect(again.lastSeq).toBe(2);
    expect((await sock.closedWithin()).code).toBe(4001);
    again.sock.send({ type: "batch", seq: 3, readings: [[t0 + 5000, "temp", 1]] });
    expect(await again.sock.next()).toStrictEqual({ type: "ack", seq: 3 });
    expect(await lastSeqOf(group, device)).toBe(3);
    again.sock.close();
  });

  it("runs the migrations once on an empty database and not again after eviction", async () => {
    const group = uniqueGroup("mig");
    const stub = env.GROUPS.getByName(group);

    interface Snapshot {
      instance: GroupHub;
      tables: string[];
      /** Rows of drizzle's bookkeeping table (the durable-sqlite migrator records an empty hash). */
      migrations: { rowid: number; hash: string; created_at: number }[];
      devices: number;
      aggregates: number;
    }
    const snapshot = (): Promise<Snapshot> =>
      runInDurableObject(stub, (instance: GroupHub, state) => {
        const sql = state.storage.sql;
        const tables = sql
          .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY name")
          .toArray()
          .map((r) => r.name);
        const migrations = sql
          .exec<{ rowid: number; hash: string; created_at: number }>(
            "SELECT rowid, hash, created_at FROM __drizzle_migrations ORDER BY rowid",
          )
          .toArray()
          .map((r) => ({ rowid: r.rowid, hash: r.hash, created_at: Number(r.created_at) }));
        const count = (table: string): number => sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n;
        return { instance, tables, migrations, devices: count("devices"), aggregates: count("minute_buckets") };
      });

    // A brand new object: its constructor migrated an empty database.
    const first = await snapshot();
    // Exactly the tables schema/tables.ts declares, and drizzle's and SQLite's own.
    const declared = Object.values(schema).flatMap((t) => (is(t, SQLiteTable) ? [getTableName(t)] : []));
    expect(first.tables).toEqual([...declared, "__drizzle_migrations", "sqlite_sequence"].sort());
    expect(first.devices).toBe(0);
    expect(first.aggregates).toBe(0);
    expect(first.migrations).toHaveLength(journal.entries.length);
    expect(first.migrations.map((m) => m.created_at)).toEqual(journal.entries.map((e) => e.when));

    // Store something, then evict: the next constructor runs migrate() again.
    const { sock } = await connectDevice(group, "m-1");
    sock.send({ type: "batch", seq: 1, readings: [[bucketAgo(1), "temp", 1]] });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    sock.close();
    await evictDurableObject(stub);

    const second = await snapshot();
    expect(second.instance).not.toBe(first.instance);
    expect(second.tables).toEqual(first.tables);
    // No migration was applied (or recorded) a second time, and the data survived.
    expect(second.migrations).toEqual(first.migrations);
    expect(second.devices).toBe(1);
    expect(second.aggregates).toBe(1);
    expect(await lastSeqOf(group, "m-1")).toBe(1);
  });

  it("keeps serving sockets whose attachments are in the old one-letter form, and rewrites them", async () => {
    const group = uniqueGroup("attach");
    const stub = env.GROUPS.getByName(group);
    const dev = await connectDevice(group, "old-dev");
    const gw = await connectGateway(group, "old-gw");
    const live = await openLive(group);
    live.ack(await live.frame(0));

    // What the previous version wrote, and the name the object knows itself by.
    const name = await runInDurableObject(stub, (_hub, state) => {
      for (const ws of state.getWebSockets()) {
        const [tag] = state.getTags(ws);
        if (tag === "live") ws.serializeAttachment({ k: "live", g: group, t: 1 });
        else if (tag?.startsWith("d:")) ws.serializeAttachment({ k: "device", g: group, d: tag.slice(2), t: 1 });
        else if (tag?.startsWith("w:")) ws.serializeAttachment({ k: "gateway", g: group, w: tag.slice(2), t: 1 });
      }
      return state.id.name;
    });
    expect(name).toBe(group);
    await evictDurableObject(stub);

    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(2) });
    expect(await dev.sock.next()).toEqual({ type: "ack", seq: 1 });
    gw.sock.send({ type: "batch", seq: 1, readings: [[Date.now(), "temp", 1, "via-gw"]] });
    expect(await gw.sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await devices(group)).toMatchObject([
      { id: "old-dev", online: true, readings: 2 },
      { id: "via-gw", online: false, readings: 1 },
    ]);
    // The dashboard is still a dashboard: it gets the summary of those batches.
    await live.until((f) => (f.devices as { id: string }[] | undefined)?.some((d) => d.id === "via-gw") ?? false, 1);

    const stored = await runInDurableObject(stub, (_hub, state) => state.getWebSockets().map((ws) => ws.deserializeAttachment() as unknown));
    expect(stored).toHaveLength(3);
    expect(stored).toEqual(expect.arrayContaining([
      { v: 1, kind: "device", id: "old-dev", connectedAt: 1 },
      { v: 1, kind: "gateway", id: "old-gw", connectedAt: 1 },
      { v: 1, kind: "dashboard", id: "", connectedAt: 1 },
    ]));
    live.ws.close(1000, "done");
    dev.sock.close();
    gw.sock.close();
  });
});

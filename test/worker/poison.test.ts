/**
 * Issue #12: one device must not fail the whole group's commit. A batch
 * whose readings take a bucket's sum out of the finite range of a double
 * ([1e308, 1e308], then [-1e308, -1e308] in the same minute: +Inf + -Inf is
 * NaN, stored as NULL, and the NOT NULL constraint aborted the transaction)
 * used to fail every batch of the group commit it rode in, again and again
 * as its firmware resent it. Now such a batch is refused alone with
 * `bad_value` before anything of it is applied, and any batch that makes a
 * group commit throw is isolated by bisection: only it fails, every other
 * batch is applied exactly once and acked.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor, type CborValue } from "../../schema/cbor.ts";
import { readLimits } from "../../schema/limits.ts";
import { RESOLUTION_MS } from "../../schema/api.ts";
import type { PeerSender } from "../../worker/group/ingest/frames.ts";
import { Ingest } from "../../worker/group/ingest/ingest.ts";
import { retryBudget, type DeviceReadings } from "../../worker/group/ingest/commit.ts";
import { Store } from "../../worker/group/ingest/store.ts";
import type { Peer } from "../../worker/group/peer.ts";
import type { Archive } from "../../worker/group/archive/archive.ts";
import type { Alert } from "../../schema/rules.ts";
import { uniqueGroup } from "./helpers.ts";

const HOUR = RESOLUTION_MS.hour;
const DAY = RESOLUTION_MS.day;

/** What each test reads back: answers per peer, inCommit calls, stored seqs and bucket (count, sum) per resolution. */
type Answers = Record<string, unknown[]>;

/**
 * An ingest stage on the object's own SQLite whose group commit runs only
 * when the test flushes it, so the batches sent before a flush share one
 * commit. `inCommit` throws when `fails` says so (by default for a batch of
 * device "boom": a failure the hub cannot name), and records which batches
 * each transaction carried.
 */
function stage(state: DurableObjectState, group: string, fails = (batches: DeviceReadings[]) => batches.some((b) => b.device === "boom")) {
  const limits = { ...readLimits({ ...env }), groupCommitMs: 60_000, groupCommitReadings: 1_000_000 };
  const answers: Answers = {};
  const transactions: string[][] = [];
  const failures = { count: 0 };
  const rejected: Record<string, number> = {};
  const ingest = new Ingest<null>(new Store(state.storage), limits, {
    name: () => group,
    hasPendingWork: () => false,
    inCommit(_c, batches: DeviceReadings[]) {
      transactions.push(batches.map((b) => `${b.source.id}:${b.seq}`));
      if (fails(batches)) throw new Error("a failure the hub cannot name");
      return null;
    },
    afterCommit: () => {},
    afterFailure: (retrying) => {
      if (retrying) failures.count++;
    },
    rejected: (peer) => void (rejected[peer.id] = (rejected[peer.id] ?? 0) + 1),
    overBudget: () => {},
    downlink: () => null,
    storageFull: () => null,
  });
  const closed: string[] = [];
  const sender = (peer: Peer): PeerSender => ({
    peer,
    send: (data) => {
      const d = decodeCbor(data);
      (answers[peer.id] ??= []).push(answerOf(d.ok ? d.value : d));
      return true;
    },
    close: (code) => void closed.push(`${peer.id}:${code}`),
  });
  const peers = new Map<string, PeerSender>();
  // A connect commits what is pending: every peer connects first, so the batches sent before a flush share its commit.
  const connect = (kind: Peer["kind"], ...ids: string[]) => {
    for (const id of ids) {
      const from = sender({ kind, id });
      peers.set(id, from);
      ingest.connect(from.peer, Date.now());
    }
  };
  const send = (_kind: Peer["kind"], id: string, frame: CborValue) => {
    const from = peers.get(id);
    if (!from) throw new Error(`${id} did not connect`);
    ingest.onMessage(from, encodeCbor(frame).slice().buffer);
  };
  const sql = state.storage.sql;
  const buckets = (table: string) =>
    Object.fromEntries(
      sql
        .exec<{ key: string; count: number; sum: number }>(`SELECT s.device || '/' || s.metric || '@' || b.bucket AS key, b.count, b.sum FROM ${table} b JOIN series s ON s.id = b.series ORDER BY key`)
        .toArray()
        .map((r) => [r.key, [r.count, r.sum]]),
    );
  const seqs = () => Object.fromEntries(sql.exec<{ id: string; last_seq: number }>("SELECT id, last_seq FROM devices UNION ALL SELECT 'gw:' || id, last_seq FROM gateways ORDER BY 1").toArray().map((r) => [r.id, r.last_seq]));
  const take = () => {
    const out = { ...answers };
    for (const k of Object.keys(answers)) delete answers[k];
    return out;
  };
  return { ingest, connect, send, take, transactions, failures, rejected, closed, buckets, seqs };
}

function answerOf(v: unknown): string {
  const f = v as { type: string; seq?: number; code?: string; dup?: boolean };
  return f.type === "ack" ? `ack ${f.seq}${f.dup ? " dup" : ""}` : `${f.code ?? f.type} ${f.seq}`;
}

/** Minute `m` (0-59) of the hour before the current one: in the past, and in one hour. */
function lastHour(m: number, ms = 0): number {
  return Math.floor(Date.now() / HOUR) * HOUR - HOUR + m * 60_000 + ms;
}

describe("one batch cannot fail its group commit", () => {
  it("through the hub's own stages: only the applied batches are captured for the archive, and no rejection count is lost", async () => {
    const group = uniqueGroup();
    const out = await runInDurableObject(env.GROUPS.getByName(group), (obj, state) => {
      const hub = obj as unknown as { ingest: Ingest<Alert[]>; archive: Archive };
      const answers: Answers = {};
      const from = (id: string): PeerSender => ({
        peer: { kind: "device", id },
        send: (data) => {
          const d = decodeCbor(data);
          (answers[id] ??= []).push(answerOf(d.ok ? d.value : d));
          return true;
        },
        close: () => {},
      });
      const [d1, d2, bad] = [from("d1"), from("d2"), from("bad")];
      for (const p of [d1, d2, bad]) hub.ingest.connect(p.peer, Date.now());
      const t = lastHour(40);
      const send = (p: PeerSender, frame: CborValue) => hub.ingest.onMessage(p, encodeCbor(frame).slice().buffer);
      // All sent in one synchronous turn: the group commit's timer cannot fire before the flush.
      // A frame refused by the validator: its count is written by the next commit, the one that fails first.
      send(d2, { type: "batch", seq: 1, readings: [[t, "m", "x"]] });
      // The bad batch first: the part that fails last is followed by one that commits (and writes the counts).
      send(bad, { type: "batch", seq: 1, readings: [[t, "x", 1e308], [t + 1, "x", 1e308]] });
      send(d1, { type: "batch", seq: 1, readings: [[t, "m", 1]] });
      hub.ingest.flush();
      const backlog = hub.archive.stats().backlog;
      // The refusal at commit is counted like any rejected frame, with the next commit.
      hub.ingest.flush();
      const rejects = state.storage.sql.exec("SELECT device, code, count FROM device_rejects ORDER BY device").toArray();
      return { answers, backlog, rejects };
    });
    expect(out).toEqual({
      answers: { d2: ["bad_value 1"], bad: ["bad_value 1"], d1: ["ack 1"] },
      backlog: 1,
      rejects: [
        { device: "bad", code: "bad_value", count: 1 },
        { device: "d2", code: "bad_value", count: 1 },
      ],
    });
  });

  it("refuses a batch whose sum leaves the finite range with bad_value, alone, at minute, hour and day", async () => {
    const group = uniqueGroup();
    const out = await runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => {
      const s = stage(state, group);
      const t = lastHour(5);
      const result: Record<string, unknown> = {};
      s.connect("device", "evil", "calm", "good", "bad");
      s.connect("gateway", "gw");
      // The finding as reported: +Inf stored, then -Inf in the same minute failed every batch of the commit.
      s.send("device", "evil", { type: "batch", seq: 1, readings: [[t, "f", 1e308], [t + 1, "f", 1e308]] });
      s.ingest.flush();
      s.send("device", "calm", { type: "batch", seq: 1, readings: [[t, "m", 1]] });
      s.send("device", "evil", { type: "batch", seq: 2, readings: [[t + 2, "f", -1e308], [t + 3, "f", -1e308]] });
      s.ingest.flush();
      result.finding = s.take();
      // The finding: [1e308, 1e308] of one minute is +Inf (it used to be stored as it is).
      s.send("device", "good", { type: "batch", seq: 1, readings: [[t, "m", 1]] });
      s.send("device", "bad", { type: "batch", seq: 1, readings: [[t, "x", 1e308], [t + 1, "x", 1e308]] });
      s.ingest.flush();
      result.inOneBatch = s.take();
      // A stored 1e308 and a new 1e308 in the same minute: the SQL upsert's sum overflows.
      s.send("device", "bad", { type: "batch", seq: 2, readings: [[t, "x", 1e308]] });
      s.ingest.flush();
      s.send("device", "good", { type: "batch", seq: 2, readings: [[t + 2, "m", 2]] });
      s.send("device", "bad", { type: "batch", seq: 3, readings: [[t + 3, "x", 1e308]] });
      s.send("gateway", "gw", { type: "batch", seq: 1, readings: [[t, "m", 5, "other"], [t, "x", 1, "bad"]] });
      s.send("device", "bad", { type: "batch", seq: 1, readings: [[t, "x", 7]] });
      s.ingest.flush();
      result.againstStored = s.take();
      // Two minutes of one hour, each finite: the hour's sum overflows (one batch, then across batches).
      s.send("device", "bad", { type: "batch", seq: 4, readings: [[lastHour(10), "h", 1e308], [lastHour(11), "h", 1e308]] });
      s.send("device", "bad", { type: "batch", seq: 5, readings: [[lastHour(20), "h", -1e308]] });
      s.ingest.flush();
      s.send("device", "bad", { type: "batch", seq: 6, readings: [[lastHour(21), "h", -1e308]] });
      s.send("device", "good", { type: "batch", seq: 3, readings: [[lastHour(21), "m", 3]] });
      s.ingest.flush();
      result.hour = s.take();
      // Two hours of one day (yesterday's): the day's sum overflows.
      const day = Math.floor(Date.now() / DAY) * DAY - DAY;
      s.send("device", "bad", { type: "batch", seq: 7, readings: [[day + HOUR, "d", 1e308]] });
      s.ingest.flush();
      s.send("device", "bad", { type: "batch", seq: 8, readings: [[day + 3 * HOUR, "d", 1e308]] });
      s.ingest.flush();
      result.day = s.take();
      result.minute = s.buckets("minute_buckets");
      result.hourBuckets = s.buckets("hour_buckets");
      result.dayBuckets = s.buckets("day_buckets");
      result.seqs = s.seqs();
      result.closed = s.closed;
      result.rejected = s.rejected;
      return result;
    });
    const t = lastHour(5);
    const minute = (ts: number) => ts / 60_000;
    expect(out).toEqual({
      finding: { evil: ["bad_value 1", "bad_value 2"], calm: ["ack 1"] },
      inOneBatch: { good: ["ack 1"], bad: ["bad_value 1"] },
      againstStored: { good: ["ack 2"], bad: ["ack 2", "bad_value 3", "ack 1 dup"], gw: ["ack 1"] },
      hour: { bad: ["bad_value 4", "ack 5", "bad_value 6"], good: ["ack 3"] },
      day: { bad: ["ack 7", "bad_value 8"] },
      minute: {
        [`bad/d@${minute(Math.floor(Date.now() / DAY) * DAY - DAY + HOUR)}`]: [1, 1e308],
        [`bad/h@${minute(lastHour(20))}`]: [1, -1e308],
        [`bad/x@${minute(t)}`]: [2, 1e308 + 1],
        [`calm/m@${minute(t)}`]: [1, 1],
        [`good/m@${minute(t)}`]: [2, 3],
        [`good/m@${minute(lastHour(21))}`]: [1, 3],
        [`other/m@${minute(t)}`]: [1, 5],
      },
      hourBuckets: expect.any(Object) as unknown,
      dayBuckets: expect.any(Object) as unknown,
      seqs: { bad: 7, calm: 1, evil: 0, good: 3, other: 0, "gw:gw": 1 },
      closed: [],
      // Each refusal at commit is counted as a rejection of its sender.
      rejected: { evil: 2, bad: 5 },
    });
    // Nothing of a refused batch reached the rollups either.
    const hourOf = (ts: number) => Math.floor(ts / HOUR);
    expect((out.hourBuckets as Record<string, unknown>)[`bad/h@${hourOf(lastHour(0))}`]).toEqual([1, -1e308]);
    expect((out.hourBuckets as Record<string, unknown>)[`bad/x@${hourOf(t)}`]).toEqual([2, 1e308 + 1]);
    expect(Object.keys(out.dayBuckets as object).filter((k) => k.startsWith("bad/d@"))).toHaveLength(1);
    expect(Object.entries(out.dayBuckets as Record<string, [number, number]>).find(([k]) => k.startsWith("bad/d@"))?.[1]).toEqual([1, 1e308]);
  });

  it("isolates a batch that fails for a reason the hub cannot name: only it gets internal, its later batches wait, every other batch is applied once", async () => {
    const group = uniqueGroup();
    const out = await runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => {
      const s = stage(state, group);
      const t = lastHour(30);
      s.connect("device", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "boom");
      s.connect("gateway", "gw");
      for (let i = 1; i <= 5; i++) s.send("device", `d${i}`, { type: "batch", seq: 1, readings: [[t, "m", i]] });
      // A gateway's first batch for a device: the pair is recorded by the retried part that applies it.
      s.send("gateway", "gw", { type: "batch", seq: 1, readings: [[t, "m", 6, "d6"]] });
      s.send("device", "boom", { type: "batch", seq: 1, readings: [[t, "m", 100]] });
      s.send("device", "boom", { type: "batch", seq: 2, readings: [[t + 1, "m", 100]] });
      s.send("device", "d7", { type: "batch", seq: 1, readings: [[t, "m", 7]] });
      s.send("device", "d1", { type: "batch", seq: 1, readings: [[t, "m", 1]] });
      s.ingest.flush();
      const answers = s.take();
      const first = { transactions: [...s.transactions], pairs: state.storage.sql.exec("SELECT gateway, device FROM gateway_devices").toArray(), failures: s.failures.count, seqs: s.seqs(), minute: s.buckets("minute_buckets"), closed: [...s.closed] };
      // Alone, a batch the hub cannot name still fails as before.
      s.send("device", "boom", { type: "batch", seq: 1, readings: [[t, "m", 100]] });
      s.ingest.flush();
      return { answers, first, alone: s.take() };
    });
    const t = lastHour(30) / 60_000;
    expect(out.answers).toEqual({
      d1: ["ack 1", "ack 1 dup"],
      d2: ["ack 1"],
      d3: ["ack 1"],
      d4: ["ack 1"],
      d5: ["ack 1"],
      gw: ["ack 1"],
      d7: ["ack 1"],
      boom: ["internal 1", "internal 2"],
    });
    // One failed commit of 9 batches, then halves down to the bad one (boom:2 is held back once boom:1 failed): 7 transactions, not one per batch.
    expect(out.first.failures).toBe(4);
    expect(out.first.transactions).toEqual([
      ["d1:1", "d2:1", "d3:1", "d4:1", "d5:1", "gw:1", "boom:1", "boom:2", "d7:1"],
      ["d1:1", "d2:1", "d3:1", "d4:1", "d5:1"],
      ["gw:1", "boom:1", "boom:2", "d7:1"],
      ["gw:1", "boom:1"],
      ["gw:1"],
      ["boom:1"],
      ["d7:1"],
    ]);
    expect(out.first.pairs).toEqual([{ gateway: "gw", device: "d6" }]);
    expect(out.first.seqs).toEqual({ boom: 0, d1: 1, d2: 1, d3: 1, d4: 1, d5: 1, d6: 0, d7: 1, "gw:gw": 1 });
    expect(out.first.minute).toEqual(Object.fromEntries([1, 2, 3, 4, 5, 6, 7].map((i) => [`d${i}/m@${t}`, [1, i]])));
    // A failed peer's socket is closed so that none of its later batches overtakes the one to resend.
    expect(out.first.closed).toEqual(["boom:1013"]);
    expect(out.alone).toEqual({ boom: ["internal 1"] });
  });

  it("spends a bounded number of transactions when every part fails (the database refuses writes)", async () => {
    const group = uniqueGroup();
    const n = 32;
    const out = await runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => {
      const s = stage(state, group, () => true);
      const ids = Array.from({ length: n }, (_, i) => `d${i}`);
      s.connect("device", ...ids);
      for (const id of ids) s.send("device", id, { type: "batch", seq: 1, readings: [[lastHour(50), "m", 1]] });
      s.ingest.flush();
      return { answers: s.take(), transactions: s.transactions.length, seqs: s.seqs() };
    });
    expect(new Set(Object.values(out.answers).flat())).toEqual(new Set(["internal 1"]));
    expect(Object.keys(out.answers)).toHaveLength(n);
    // The failed commit, then at most the budget (24 for 32 batches), not 2n − 1 = 63.
    expect(out.transactions).toBe(1 + retryBudget(n));
    expect(new Set(Object.values(out.seqs))).toEqual(new Set([0]));
  });
});

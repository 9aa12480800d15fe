/**
 * The raw archive (worker/group/archive/, docs/archive.md) in workerd with
 * miniflare's local R2: capture in the commit, hourly Parquet parts written
 * exactly once (also across an R2 outage and an eviction mid-flush), the
 * readings route, and the backlog cap. Each test shortens its group's
 * flush period to a second (production: an hour; `shortFlush`), so rows are
 * due a second after their commit and no other test's groups flush at all.
 */
import { env, evictDurableObject, runInDurableObject, SELF } from "cloudflare:test";
import { parquetReadObjects } from "hyparquet";
import { describe, expect, it } from "vitest";
import { encodeCompactBatch } from "../../schema/cbatch-encode.ts";
import { HubClient, HubError } from "../../schema/client.ts";
import type { RawReading } from "../../schema/api.ts";
import { waitFor } from "../../harness/wait.ts";
import type { Archive, ArchiveBucket, ArchiveLimits } from "../../worker/group/archive/archive.ts";
import { ARCHIVE_TASK } from "../../worker/group/archive/archive.ts";
import { aggregates, connectDevice, connectGateway, operatorToken, runTasksNow, uniqueGroup, type TestSocket } from "./helpers.ts";

const HOUR = 3_600_000;
/** The flush period the tests give their groups. */
const FLUSH_MS = 1000;
const inWorkerd = (input: string, init?: RequestInit): Promise<Response> => SELF.fetch(input, init);

/** The archive stage inside a group's object, for fault injection: its host's bucket and its limits. */
interface ArchiveSeam {
  archive: { host: { bucket: () => ArchiveBucket | undefined }; limits: ArchiveLimits };
}

/** What a fault-injecting bucket does on put: fail before writing, after writing, or nothing. */
interface Faults {
  put: "before" | "after" | null;
  puts: number;
}

/** Replaces the group's bucket with the real one wrapped in `faults` (until the object is evicted). */
async function injectFaults(group: string, faults: Faults): Promise<void> {
  const real = env.ARCHIVE;
  const bucket: ArchiveBucket = {
    get: (key: string) => real.get(key),
    put: (async (key: string, value: Uint8Array, opts?: R2PutOptions) => {
      faults.puts++;
      if (faults.put === "before") throw new Error("injected: R2 unavailable");
      const r = await real.put(key, value, opts);
      if (faults.put === "after") throw new Error("injected: evicted after the put");
      return r;
    }) as ArchiveBucket["put"],
  };
  await runInDurableObject(env.GROUPS.getByName(group), (obj) => {
    (obj as unknown as ArchiveSeam).archive.host.bucket = () => bucket;
  });
}

/** FLUSH_MS for this group's live instance (again after an eviction: a new instance reads the vars). */
async function shortFlush(group: string, limits: Partial<ArchiveLimits> = {}): Promise<void> {
  await runInDurableObject(env.GROUPS.getByName(group), (obj) => {
    const a = (obj as unknown as ArchiveSeam).archive;
    a.limits = { ...a.limits, flushMs: FLUSH_MS, ...limits };
  });
}

/** The archive stage's stats (backlog, dropped, parts written, readings archived, parts pending). */
async function archiveStats(group: string): Promise<ReturnType<Archive["stats"]>> {
  return runInDurableObject(env.GROUPS.getByName(group), (obj) => (obj as unknown as { archive: Archive }).archive.stats());
}

async function sendAcked(sock: TestSocket, frame: Parameters<TestSocket["send"]>[0] | Uint8Array, dup = false): Promise<void> {
  if (frame instanceof Uint8Array) sock.sendRaw(frame);
  else sock.send(frame);
  const ack = (await sock.next()) as { type: string; dup?: boolean };
  expect(ack.type).toBe("ack");
  expect(ack.dup === true).toBe(dup);
}

/** Waits until the flush period of rows committed so far has closed. */
async function waitForClose(): Promise<void> {
  const closedAfter = Math.floor(Date.now() / FLUSH_MS) * FLUSH_MS + FLUSH_MS;
  await waitFor(() => Date.now() > closedAfter, "the flush period to close");
}

/** Waits until rows committed so far are in a closed flush period, then runs the flush task until nothing is due. */
async function flushAll(group: string): Promise<void> {
  await waitForClose();
  for (let i = 0; i < 10 && (await archiveStats(group)).backlog > 0; i++) await runTasksNow(env.GROUPS.getByName(group), ARCHIVE_TASK);
}

/** Every archived reading of a group, read back from the Parquet objects in R2, and their keys. */
async function archivedReadings(group: string): Promise<{ keys: string[]; readings: RawReading[] }> {
  const listed = await env.ARCHIVE.list({ prefix: `groups/${group}/readings/` });
  const readings: RawReading[] = [];
  for (const o of listed.objects) {
    const body = await env.ARCHIVE.get(o.key);
    if (!body) throw new Error(`listed ${o.key} is gone`);
    for (const r of await parquetReadObjects({ file: await body.arrayBuffer() })) {
      readings.push({
        device: String(r.device),
        metric: String(r.metric),
        ts: (r.ts as Date).getTime(),
        value: Number(r.value),
        received: (r.received as Date).getTime(),
        source: String(r.source),
        seq: Number(r.seq),
      });
    }
  }
  return { keys: listed.objects.map((o) => o.key), readings };
}

/** Per (device, metric, minute): count, sum, min, max, as the aggregates route gives them. */
function perMinute(readings: readonly RawReading[]): Record<string, [number, number, number, number]> {
  const out: Record<string, [number, number, number, number]> = {};
  for (const r of readings) {
    const k = `${r.device}/${r.metric}/${Math.floor(r.ts / 60_000) * 60_000}`;
    const a = (out[k] ??= [0, 0, Infinity, -Infinity]);
    a[0]++;
    a[1] += r.value;
    a[2] = Math.min(a[2], r.value);
    a[3] = Math.max(a[3], r.value);
  }
  return out;
}

async function aggregatesPerMinute(group: string): Promise<Record<string, [number, number, number, number]>> {
  const out: Record<string, [number, number, number, number]> = {};
  for (const b of await aggregates(group)) out[`${b.device}/${b.metric}/${b.start}`] = [b.count, b.sum, b.min, b.max];
  return out;
}

/** Readings of one device batch: `n` per metric, one a second, ending `endAgo` ms before now; values are halves (exact sums). */
function readingsOf(n: number, endAgo: number, metrics = ["temp", "hum"]): [number, string, number][] {
  const end = Date.now() - endAgo;
  const out: [number, string, number][] = [];
  for (let i = 0; i < n; i++) for (const [k, m] of metrics.entries()) out.push([end - (n - i) * 1000, m, i * 0.5 + k]);
  return out;
}

describe("raw archive", () => {
  it("archives every applied reading exactly once as hourly Parquet, matching the aggregates, and serves them over REST", async () => {
    const group = uniqueGroup("arch");
    const { sock: d1 } = await connectDevice(group, "d1");
    await shortFlush(group);
    const { sock: d4 } = await connectDevice(group, "d4");
    const { sock: gw } = await connectGateway(group, "w1");
    // d1: a batch spanning a late hour (two hours back) and now; then the same seq again (a resend: dup).
    const first = [...readingsOf(5, 2 * HOUR), ...readingsOf(5, 0)];
    await sendAcked(d1, { type: "batch", seq: 1, readings: first });
    await sendAcked(d1, { type: "batch", seq: 1, readings: first }, true);
    await sendAcked(d1, { type: "batch", seq: 2, readings: readingsOf(3, 0, ["temp"]) });
    // A gateway batch for two devices, and a compact batch.
    await sendAcked(gw, { type: "batch", seq: 1, readings: readingsOf(4, HOUR).map(([ts, m, v], i) => [ts, m, v, i % 2 ? "d2" : "d3"]) });
    await sendAcked(d4, encodeCompactBatch(7, readingsOf(6, 0)));
    const sent = first.length + 3 + 8 + 12;

    await flushAll(group);
    const stats = await archiveStats(group);
    expect(stats).toMatchObject({ backlog: 0, pending: 0, archived: sent, dropped: 0 });
    const { keys, readings } = await archivedReadings(group);
    expect(readings).toHaveLength(sent);
    for (const k of keys) expect(k).toMatch(new RegExp(`^groups/${group}/readings/date=\\d{4}-\\d{2}-\\d{2}/hour=\\d{2}/part-\\d+\\.parquet$`));
    // Readings two hours back, one hour back and now: at least three hour partitions.
    expect(new Set(keys.map((k) => k.split("/part-")[0])).size).toBeGreaterThanOrEqual(3);
    expect(perMinute(readings)).toEqual(await aggregatesPerMinute(group));
    const d2 = readings.find((r) => r.device === "d2");
    expect(d2).toMatchObject({ source: "gateway:w1", seq: 1 });
    expect(readings.find((r) => r.device === "d4")).toMatchObject({ source: "device:d4", seq: 7 });

    // The same through the readings route, per series by time.
    const api = new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: inWorkerd });
    const all = await api.readings(group);
    expect(all.truncated).toBe(false);
    expect(perMinute(all.readings)).toEqual(await aggregatesPerMinute(group));
    const temp = await api.readings(group, { device: "d1", metric: "temp" });
    expect(temp.readings.map((r) => r.ts)).toEqual(temp.readings.map((r) => r.ts).sort((a, b) => a - b));
    expect(temp.readings).toHaveLength(5 + 5 + 3);
    const recent = await api.readings(group, { from: Date.now() - HOUR / 2 });
    expect(recent.readings.every((r) => r.ts >= Date.now() - HOUR)).toBe(true);
    expect(await api.readings(group, { limit: 2 })).toMatchObject({ truncated: true, readings: [{}, {}] });
    const csv = new TextDecoder().decode((await api.readingsFile(group, "csv", { device: "d2" })).bytes).trim().split("\n");
    expect(csv[0]).toBe("device,metric,ts,value,received,source,seq");
    expect(csv).toHaveLength(1 + 4);
    const pq = await api.readingsFile(group, "parquet", { device: "d4" });
    expect(await parquetReadObjects({ file: pq.bytes.slice().buffer })).toHaveLength(12);
    const tooMany = await api.readings(group, { limit: 100_001 }).catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(HubError);
    expect((tooMany as HubError).status).toBe(400);
    expect((tooMany as HubError).message).toMatch(/limit must be an integer from 1 to 100000/);
    d1.close();
    d4.close();
    gw.close();
  });

  it("keeps capturing through an R2 outage, serves the backlog from SQLite, and flushes it once R2 is back", async () => {
    const group = uniqueGroup("arch");
    const faults: Faults = { put: "before", puts: 0 };
    const { sock } = await connectDevice(group, "d1");
    await shortFlush(group);
    await injectFaults(group, faults);
    await sendAcked(sock, { type: "batch", seq: 1, readings: readingsOf(10, 0) });
    await waitForClose();
    await runTasksNow(env.GROUPS.getByName(group), ARCHIVE_TASK);
    expect(faults.puts).toBeGreaterThan(0);
    expect(await archiveStats(group)).toMatchObject({ backlog: 20, archived: 0, pending: 1 });
    await sendAcked(sock, { type: "batch", seq: 2, readings: readingsOf(3, 0, ["temp"]) });
    const api = new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: inWorkerd });
    expect((await api.readings(group)).readings).toHaveLength(23);
    // Captured rows carry their time bounds: a range none of them reaches decodes none.
    expect((await api.readings(group, { from: Date.now() + 60_000 })).readings).toEqual([]);
    expect((await api.readings(group, { to: Date.now() - HOUR })).readings).toEqual([]);
    expect((await api.readings(group, { device: "d1", metric: "temp", from: Date.now() - 5000 })).readings.length).toBeGreaterThan(0);

    faults.put = null;
    await flushAll(group);
    expect(await archiveStats(group)).toMatchObject({ backlog: 0, archived: 23, pending: 0 });
    const { readings } = await archivedReadings(group);
    expect(readings).toHaveLength(23);
    expect(perMinute(readings)).toEqual(await aggregatesPerMinute(group));
    expect((await api.readings(group)).readings).toHaveLength(23);
    sock.close();
  });

  it("resumes a flush interrupted after its put, in a new instance, without writing a reading twice", async () => {
    const group = uniqueGroup("arch");
    const faults: Faults = { put: "after", puts: 0 };
    const { sock } = await connectDevice(group, "d1");
    await shortFlush(group);
    await injectFaults(group, faults);
    await sendAcked(sock, { type: "batch", seq: 1, readings: [...readingsOf(5, HOUR), ...readingsOf(5, 0)] });
    sock.close();
    await waitForClose();
    await runTasksNow(env.GROUPS.getByName(group), ARCHIVE_TASK);
    expect(faults.puts).toBeGreaterThan(0);
    // The object is in R2 but its rows are still captured and its part pending.
    expect((await archivedReadings(group)).readings.length).toBeGreaterThan(0);
    expect(await archiveStats(group)).toMatchObject({ backlog: 20, pending: 2 });
    // Evict: the next request gets a fresh instance, with the real bucket.
    const before = await runInDurableObject(env.GROUPS.getByName(group), (obj) => obj);
    await evictDurableObject(env.GROUPS.getByName(group));
    expect(await runInDurableObject(env.GROUPS.getByName(group), (obj) => obj)).not.toBe(before);
    await shortFlush(group);
    await flushAll(group);
    expect(await archiveStats(group)).toMatchObject({ backlog: 0, pending: 0, archived: 20, parts: 2 });
    const { keys, readings } = await archivedReadings(group);
    expect(keys.map((k) => k.slice(k.lastIndexOf("/") + 1))).toEqual(["part-0.parquet", "part-0.parquet"]);
    expect(readings).toHaveLength(20);
    expect(perMinute(readings)).toEqual(await aggregatesPerMinute(group));
  });

  it("past the backlog cap stops archiving, raises the archive alert, keeps the aggregates, and clears it once flushed", async () => {
    const group = uniqueGroup("arch");
    const { sock } = await connectDevice(group, "d1");
    // R2 is down, so the backlog only grows (an automatic flush cannot empty it between the batches).
    const faults: Faults = { put: "before", puts: 0 };
    await injectFaults(group, faults);
    await shortFlush(group, { maxBacklog: 24 });
    await sendAcked(sock, { type: "batch", seq: 1, readings: readingsOf(10, 0) });
    await sendAcked(sock, { type: "batch", seq: 2, readings: readingsOf(5, 0, ["temp"]) });
    expect(await archiveStats(group)).toMatchObject({ backlog: 20, dropped: 5 });
    const api = new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: inWorkerd });
    const raised = (await api.alerts(group, { active: true })).filter((a) => a.kind === "archive");
    expect(raised).toMatchObject([{ kind: "archive", device: "", threshold: 24, value: 20 }]);
    expect((await aggregates(group)).reduce((n, b) => n + b.count, 0)).toBe(25);

    faults.put = null;
    await flushAll(group);
    expect(await archiveStats(group)).toMatchObject({ backlog: 0, archived: 20, dropped: 5 });
    expect((await api.alerts(group, { active: true })).filter((a) => a.kind === "archive")).toEqual([]);
    sock.close();
  });
});

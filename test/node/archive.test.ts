/**
 * The raw archive end to end: a simulator run with late readings, resends
 * and dropped connections against `wrangler dev`, then DuckDB reads the
 * Parquet objects straight from wrangler's local R2 (its persisted state)
 * with the hive glob docs/archive.md gives, and must find per (device,
 * metric, minute) exactly the aggregates' count, sum, min and max; so must
 * GET …/readings. Its own hub: it needs ARCHIVE_FLUSH_MS short (rows flush
 * two seconds after their commit instead of an hour) and its state dir.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { DuckDBInstance } from "@duckdb/node-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../harness/wait.ts";
import { startHub, type HubProcess } from "../../harness/wrangler-dev.ts";
import type { RawReading } from "../../schema/api.ts";
import { TEST_SECRET } from "../secret.ts";
import { operatorClient, uniqueGroup } from "./hub.ts";
import { runSim, summaryOf } from "./sim-cli.ts";

let hub: HubProcess;
let state: string;
let out: string;
beforeAll(async () => {
  state = mkdtempSync(join(tmpdir(), "archive-hub-"));
  out = mkdtempSync(join(tmpdir(), "archive-objects-"));
  hub = await startHub({ persistTo: state, vars: { HUB_SECRET: TEST_SECRET, ARCHIVE_FLUSH_MS: "2000" } });
});
afterAll(async () => {
  await hub?.stop();
  for (const d of [state, out]) if (d) rmSync(d, { recursive: true, force: true });
});

/**
 * Copies the group's archive objects out of wrangler's local R2 into `dir`
 * under their keys: miniflare keeps a bucket's index in a SQLite file
 * (`_mf_objects`: key -> blob_id, under `v3/r2/miniflare-R2BucketObject/`)
 * and each object's bytes in a file named by its blob id (under
 * `v3/r2/{bucket}/blobs/`). Returns the keys.
 */
function copyObjects(group: string, dir: string): string[] {
  const root = join(state, "v3", "r2");
  const blobs = new Map(findFiles(root, () => true).map((f) => [basename(f), f]));
  const keys: string[] = [];
  for (const db of findFiles(root, (f) => f.endsWith(".sqlite"))) {
    const sqlite = new DatabaseSync(db, { readOnly: true });
    try {
      if (!sqlite.prepare("SELECT 1 FROM sqlite_master WHERE name = '_mf_objects'").get()) continue;
      const rows = sqlite.prepare("SELECT key, blob_id FROM _mf_objects WHERE key LIKE ?").all(`groups/${group}/readings/%`) as { key: string; blob_id: string }[];
      for (const r of rows) {
        const target = join(dir, r.key);
        mkdirSync(dirname(target), { recursive: true });
        const blob = blobs.get(r.blob_id);
        if (blob === undefined) throw new Error(`no blob ${r.blob_id} for ${r.key} under ${root}`);
        writeFileSync(target, readFileSync(blob));
        keys.push(r.key);
      }
    } finally {
      sqlite.close();
    }
  }
  return keys;
}

function findFiles(dir: string, match: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && match(e.name))
    .map((e) => join(e.parentPath, e.name));
}

type PerMinute = Record<string, [number, number, number, number]>;

/** Sums compared to a relative 1e-9: SQLite and DuckDB add the same doubles in different orders. */
function expectSame(actual: PerMinute, expected: PerMinute): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [k, [count, sum, min, max]] of Object.entries(expected)) {
    const a = actual[k] ?? [NaN, NaN, NaN, NaN];
    expect([k, a[0], a[2], a[3]]).toEqual([k, count, min, max]);
    expect(Math.abs((a[1] - sum) / (Math.abs(sum) || 1)), `${k} sum ${a[1]} vs ${sum}`).toBeLessThan(1e-9);
  }
}

function perMinuteOf(readings: readonly RawReading[]): PerMinute {
  const outMap: PerMinute = {};
  for (const r of readings) {
    const k = `${r.device}/${r.metric}/${Math.floor(r.ts / 60_000) * 60_000}`;
    const a = (outMap[k] ??= [0, 0, Infinity, -Infinity]);
    a[0]++;
    a[1] += r.value;
    a[2] = Math.min(a[2], r.value);
    a[3] = Math.max(a[3], r.value);
  }
  return outMap;
}

/**
 * How docs/archive.md reads the keys' hive columns. `hour` needs its type:
 * DuckDB's inference keeps `hour=05` (zero-padded, hours 00-09) a VARCHAR
 * but makes `hour=13` a BIGINT, so without it the type depends on the hour
 * the test runs at (it failed a run at 00:07 UTC).
 */
const HIVE = "hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER}";

describe("raw archive on wrangler dev", () => {
  it("DuckDB reads the fleet's Parquet objects with the hive glob and finds exactly the aggregates, as does GET …/readings", async () => {
    const prefix = uniqueGroup("arch");
    const group = `${prefix}-1`;
    const r = await runSim(
      [
        "--prefix", prefix, "--groups", "1", "--devices", "4", "--rate", "10/s", "--duration", "4s",
        "--resend-rate", "30/min", "--drop-rate", "10/min", "--late-fraction", "0.05", "--late-by", "90m",
        "--verify", "--json", "--seed", "11",
      ],
      { hub: { url: hub.url, secret: TEST_SECRET } },
    );
    const s = summaryOf(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.verify?.ok).toBe(true);

    const api = await operatorClient(hub.url);
    const { buckets, truncated } = await api.aggregates(group);
    expect(truncated).toBe(false);
    const expected: PerMinute = {};
    for (const b of buckets) expected[`${b.device}/${b.metric}/${b.start}`] = [b.count, b.sum, b.min, b.max];
    const total = buckets.reduce((n, b) => n + b.count, 0);
    expect(total).toBe(s.ackedReadings);

    // The flush runs from the alarm two seconds after the last commit: wait until every reading is in R2.
    const duck = await (await DuckDBInstance.create(":memory:")).connect();
    const glob = join(out, "groups", "*", "readings", "*", "*", "*.parquet");
    const keys = await eventually(
      async () => {
        rmSync(join(out, "groups"), { recursive: true, force: true });
        const copied = copyObjects(group, out);
        if (copied.length === 0) return undefined;
        const n = await duck.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet('${glob}', hive_partitioning = true)`);
        return (n.getRowObjectsJson()[0]?.n as number) === total ? copied : undefined;
      },
      60_000,
      "every acked reading in the archive",
      500,
    );
    for (const k of keys) expect(k).toMatch(/^groups\/[^/]+\/readings\/date=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/part-\d+\.parquet$/);
    // Readings 90 minutes late land in an earlier hour's partition.
    expect(new Set(keys.map((k) => k.split("/part-")[0])).size).toBeGreaterThan(1);

    const rows = await duck.runAndReadAll(`
      SELECT device, metric, (epoch_ms(ts) // 60000) * 60000 AS start, count(*)::INTEGER AS n, sum(value) AS sum, min(value) AS min, max(value) AS max,
             min(date) AS date, min(hour) AS hour, min(epoch_ms(ts)) AS first
      FROM read_parquet('${glob}', ${HIVE})
      GROUP BY ALL`);
    const fromDuck: PerMinute = {};
    for (const x of rows.getRowObjectsJson()) {
      fromDuck[`${String(x.device)}/${String(x.metric)}/${String(x.start)}`] = [Number(x.n), Number(x.sum), Number(x.min), Number(x.max)];
      // The hive columns name each reading's own UTC hour.
      const iso = new Date(Number(x.first)).toISOString();
      expect([String(x.date), Number(x.hour)]).toEqual([iso.slice(0, 10), Number(iso.slice(11, 13))]);
    }
    expectSame(fromDuck, expected);
    const types = await duck.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${glob}', ${HIVE}))`);
    // The file's columns, and the hive partition columns DuckDB derives from the keys.
    expect(Object.fromEntries(types.getRowsJson().map(([n, t]) => [String(n), String(t)]))).toEqual({
      device: "VARCHAR", metric: "VARCHAR", ts: "TIMESTAMP", value: "DOUBLE", received: "TIMESTAMP", source: "VARCHAR", seq: "BIGINT", date: "DATE", hour: "INTEGER",
    });

    const raw = await api.readings(group);
    expect(raw.truncated).toBe(false);
    expectSame(perMinuteOf(raw.readings), expected);
  });
});

/**
 * The Durable Object of `npm run bench:history` (device-sim/bench/history.ts),
 * bundled on its own; it is not part of the hub's Worker. It drives the
 * hub's own store code: `Store.commit` (the group commit's transaction,
 * minute/hour/day buckets) on batches collapsed by `addBatch`, the pruner,
 * the packer and the aggregates queries. Time cannot be measured inside workerd (the
 * clock stands still while code runs), so each request does one measured
 * piece of work and the bench times it from outside.
 */
import { DurableObject } from "cloudflare:workers";
import { AggregateQuery, RESOLUTIONS, type Resolution } from "../../schema/api.ts";
import type { Reading } from "../../schema/protocol.ts";
import { Budget, DEFAULT_BUDGET } from "../group/history/budget.ts";
import { DEFAULT_RETENTION } from "../group/history/history.ts";
import { Packer, packCounts } from "../group/history/packer.ts";
import { cutoffOf, Pruner, type Cutoffs } from "../group/history/prune.ts";
import { oldestBucket } from "../group/history/oldest.ts";
import { BucketQueries, keepOf } from "../group/history/query.ts";
import { addBatch, emptyCollapsed } from "../group/ingest/collapse.ts";
import { Store } from "../group/ingest/store.ts";

interface BenchEnv {
  BENCH: DurableObjectNamespace<HistoryBench>;
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

function int(url: URL, name: string, fallback: number): number {
  const v = url.searchParams.get(name);
  return v === null ? fallback : Number(v);
}

/** A value that moves like a sensor's: smooth, with noise in the low digits. */
function value(series: number, t: number): number {
  return 20 + 5 * Math.sin(t / 3_600_000 + series) + ((t / 1000 + series * 7.3) % 1) * 0.01;
}

/** The oldest bucket of each resolution as the storage route found it before they were kept: a seek per series. */
function oldestBySeeks(store: Store): Record<Resolution, number | null> {
  return Object.fromEntries(RESOLUTIONS.map((r) => [r, oldestBucket(store.db, r, [])])) as Record<Resolution, number | null>;
}

export class HistoryBench extends DurableObject<BenchEnv> {
  private store: Store | null = null;
  private seq = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: BenchEnv) {
    super(ctx, env);
  }

  /**
   * The store, with or without rollups, and with or without the bucket
   * counts (the baseline of what they cost the commit); fixed for the
   * object's life: one object per variant.
   */
  private async storeOf(rollups: boolean, counters: boolean): Promise<Store> {
    if (!this.store) {
      this.store = new Store(this.ctx.storage, rollups, counters);
      await this.store.migrate();
    }
    return this.store;
  }

  private nextSeq(device: string): number {
    const s = (this.seq.get(device) ?? 0) + 1;
    this.seq.set(device, s);
    return s;
  }

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const store = await this.storeOf(url.searchParams.get("rollups") !== "0", url.searchParams.get("counters") !== "0");
    const devices = int(url, "devices", 1000);
    const metrics = int(url, "metrics", 5);
    const names = Array.from({ length: metrics }, (_, k) => `m${k}`);
    let out: unknown;
    switch (url.pathname) {
      case "/noop":
        out = { ok: true };
        break;
      case "/minutes": {
        // One group commit per minute, each device's batch `per` readings per metric (one by default).
        const from = int(url, "from", 0);
        const minutes = int(url, "minutes", 1);
        const per = int(url, "per", 1);
        for (let m = 0; m < minutes; m++) this.commitAt(store, devices, names, from + m * MIN, per, MIN / per);
        out = { readings: minutes * per * devices * metrics };
        break;
      }
      case "/hours": {
        // Two readings per series per hour, a day per commit (old history, cheaply): an hour
        // bucket of devices that report all the time holds several readings, never one point.
        const from = int(url, "from", 0);
        const days = int(url, "days", 1);
        for (let d = 0; d < days; d++) this.commitAt(store, devices, names, from + d * DAY, 48, HOUR / 2);
        out = { readings: days * 48 * devices * metrics };
        break;
      }
      case "/prune": {
        // A full pass by the default retention, as the prune task runs it in steps.
        const now = int(url, "now", Date.now());
        const cutoffs = {} as Cutoffs;
        for (const r of ["minute", "hour", "day"] as const) cutoffs[r] = cutoffOf(r, keepOf(DEFAULT_RETENTION, r), now);
        const pruner = new Pruner(store.db, store.buckets.tally, "bench_prune");
        let deleted = 0;
        for (let done = false; !done; ) {
          const s = pruner.step(cutoffs);
          deleted += s.deleted;
          done = s.done;
        }
        out = { deleted };
        break;
      }
      case "/pack": {
        // A full packing pass of the hours closed by `now`, as the prune task runs it in steps; `parts=0`
        // packs as before parts (an hour in one row, whether or not that is smaller), the baseline.
        const tally = store.buckets.tally;
        const packer = url.searchParams.get("parts") === "0" ? new Packer(store.db, tally, { maxPartBytes: Infinity, onlyWhenSmaller: false }) : new Packer(store.db, tally);
        let packed = 0;
        for (let done = false; !done; ) {
          const s = packer.step(int(url, "now", Date.now()));
          packed += s.packed;
          done = s.done;
        }
        out = { packed };
        break;
      }
      case "/size": {
        const sql = this.ctx.storage.sql;
        const count = (t: string) => sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t}`).one().n;
        const packs = packCounts(store.db);
        out = { bytes: sql.databaseSize, minute: count("minute_buckets") + packs.buckets, packs: packs.rows, packed: packs.buckets, hour: count("hour_buckets"), day: count("day_buckets"), series: count("series") };
        break;
      }
      case "/storage": {
        // The storage route's report, `reps` times: from the counters, only their sums (`way=sums`), with the oldest by one seek per
        // series as before the oldest were kept (`way=seeks`), or as it was before the counters, counting the tables (`way=scan`).
        const reps = int(url, "reps", 1);
        const sql = this.ctx.storage.sql;
        const budget = new Budget(store.db, () => sql.databaseSize, DEFAULT_BUDGET, store.buckets.tally);
        let report: unknown = null;
        const counts = store.buckets.tally;
        const way = url.searchParams.get("way");
        for (let i = 0; i < reps; i++) {
          if (way === "scan") report = this.scanReport(store);
          else if (way === "sums") report = counts.totals();
          else if (way === "seeks") report = { ...counts.totals(), oldest: oldestBySeeks(store) };
          else report = budget.report(DEFAULT_RETENTION);
        }
        out = report;
        break;
      }
      case "/query": {
        const q = AggregateQuery.parse(Object.fromEntries(new URLSearchParams(url.searchParams.get("q") ?? "")));
        const reps = int(url, "reps", 1);
        const now = int(url, "now", Date.now());
        const queries = new BucketQueries(store.db);
        let buckets = 0;
        let resolution: Resolution = "minute";
        for (let i = 0; i < reps; i++) {
          const r = queries.query(q, DEFAULT_RETENTION, now);
          buckets = r.buckets.length;
          resolution = r.resolution;
        }
        out = { buckets, resolution };
        break;
      }
      default:
        return new Response("not found", { status: 404 });
    }
    return Response.json(out);
  }

  /** The storage report as it was before the bucket counters: a count of every table (the baseline of `/storage`). */
  private scanReport(store: Store): unknown {
    const sql = this.ctx.storage.sql;
    const count = (t: string) => sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${t}`).one().n;
    const buckets = { minute: count("minute_buckets") + packCounts(store.db).buckets, hour: count("hour_buckets"), day: count("day_buckets") };
    return { bytes: sql.databaseSize, buckets, oldest: oldestBySeeks(store) };
  }

  /** One commit: `per` readings per series, `step` ms apart from `t0`, through the group commit's store code. */
  private commitAt(store: Store, devices: number, metrics: string[], t0: number, per: number, step: number): void {
    const c = emptyCollapsed();
    for (let d = 0; d < devices; d++) {
      const id = `dev-${String(d).padStart(4, "0")}`;
      const readings: Reading[] = [];
      for (let i = 0; i < per; i++) {
        for (const [k, metric] of metrics.entries()) {
          // Offsets within the step (and the minute), so `per` readings a minute stay in their minute.
          const ts = t0 + i * step + ((d * 7919 + k * 104_729) % Math.min(59_000, step - 1000));
          readings.push([ts, metric, value(d * metrics.length + k, ts)]);
        }
      }
      addBatch(c, { kind: "device", id }, this.nextSeq(id), readings);
    }
    store.commit(c, t0 + per * step);
  }
}

export default {
  fetch(request: Request, env: BenchEnv): Promise<Response> {
    const name = new URL(request.url).searchParams.get("object") ?? "bench";
    return env.BENCH.getByName(name).fetch(request);
  },
};

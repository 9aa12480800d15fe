/**
 * `npm run bench:history`: the history tables (docs/history.md) through the
 * hub's own store code, in workerd (worker/bench/history-bench.ts, a
 * Durable Object that calls `Store.commit`, the pruner and the queries).
 *
 *   npm run bench:history                          about 3.5 minutes
 *   npm run bench:history -- --fill-devices 4      a smaller steady-state fill
 *   npm run bench:history -- --fill-devices 1000   the whole group (5,000 series) filled, not scaled: about 40 minutes and 3.2 GB
 *   npm run bench:history -- --json                the figures as JSON
 *
 * It prints, measured side by side in one run:
 *   - ingest readings/s with rollups (minute, hour and day buckets in the
 *     commit) and without (minute buckets only), 1,000 devices x 5 metrics,
 *     one commit per simulated minute, alternating in rounds; the ratio by
 *     wall time and by workerd's CPU time (Linux /proc);
 *   - the same ratio end to end (history-hub.ts): device sockets into two
 *     hubs, the Worker as it ships and a copy of its bundle without rollups,
 *     for 1,000 devices sending a reading per metric and batch (the worst
 *     case) and for 10 devices sending 100-reading batches; `--hub-seconds`
 *     per window, `--rounds` windows each, alternating;
 *   - bytes per stored bucket (`ctx.storage.sql.databaseSize` over rows),
 *     plain and packed (closed hours of minutes in parts of an hour per
 *     series), for one and for three readings a minute, against packing as
 *     before parts (an hour in one row) in the same run;
 *   - a steady state under the default retention: `--fill-devices` devices
 *     x 5 metrics over 400 simulated days (two readings an hour for the old days,
 *     every minute for the last 3), pruned, its size, and that size scaled
 *     to 1,000 devices;
 *   - query times for one series (24 h at minute, 30 d at hour, 1 y at day,
 *     `auto` over everything), each the mean of `--reps` runs inside the
 *     object, timed from outside minus an empty request's time;
 *   - what keeping the bucket counts costs the commit (ingest with
 *     rollups against an object whose writer keeps none, same rounds);
 *   - the storage route's report from the counters and oldest buckets kept
 *     in one row, against the oldest by a seek per series and against
 *     counting the tables as before, on the steady state and on 5,000 series.
 * Timestamps are simulated (the store takes them as given; the validator's
 * window around the hub's clock is not part of this bench). Only 127.0.0.1
 * is contacted; the bundle and the state are removed on exit.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { processCpuSeconds, readWranglerConfig, workerdChildren } from "./hub.ts";
import { measureHubs } from "./history-hub.ts";

const USAGE = "usage: npm run bench:history [-- --rounds N] [-- --hub-seconds N] [-- --fill-devices N] [-- --reps N] [-- --json]\n";
const values = parseCli(USAGE, {
  options: {
    rounds: { type: "string", default: "4" },
    "hub-seconds": { type: "string", default: "5" },
    "fill-devices": { type: "string", default: "10" },
    reps: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
    help: HELP_FLAG,
  },
});
const ROUNDS = orExit(() => numberOption("rounds", values.rounds, { min: 1 }), USAGE);
const FILL_DEVICES = orExit(() => numberOption("fill-devices", values["fill-devices"], { min: 1 }), USAGE);
const HUB_SECONDS = orExit(() => numberOption("hub-seconds", values["hub-seconds"], { min: 1, max: 600 }), USAGE);
const REPS = orExit(() => numberOption("reps", values.reps, { min: 1 }), USAGE);

const DEVICES = 1000;
const METRICS = 5;
/** Simulated minutes per round and variant. */
const ROUND_MINUTES = 3;
const MIN = 60_000;
const DAY = 86_400_000;
const log = (s: string) => process.stderr.write(`bench:history: ${s}\n`);

const dir = await mkdtemp(join(tmpdir(), "bench-history-"));
const entry = join(dir, "history-bench.js");
await build({
  entryPoints: [join(ROOT, "worker/bench/history-bench.ts")],
  outfile: entry,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["module", "main"],
  external: ["cloudflare:*", "node:*"],
  loader: { ".sql": "text" },
  logLevel: "warning",
});
const config = readWranglerConfig();
const before = new Set(workerdChildren());
const mf = new Miniflare(
  convertV4MiniflareOptions({
    host: "127.0.0.1",
    log: new Log(LogLevel.WARN),
    telemetry: { enabled: false },
    cf: false,
    name: "history-bench",
    modules: [{ type: "ESModule", path: entry }],
    modulesRoot: dir,
    compatibilityDate: config.compatibilityDate,
    compatibilityFlags: config.compatibilityFlags,
    durableObjects: { BENCH: { className: "HistoryBench", useSQLite: true } },
  }),
);

async function call<T>(path: string, params: Record<string, string | number>): Promise<{ ms: number; body: T }> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]));
  const started = performance.now();
  const res = await mf.dispatchFetch(`http://bench${path}?${q}`);
  const text = await res.text();
  const ms = performance.now() - started;
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return { ms, body: JSON.parse(text) as T };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Size {
  bytes: number;
  /** Minute buckets, plain and packed. */
  minute: number;
  packs: number;
  packed: number;
  hour: number;
  day: number;
  series: number;
}

try {
  const now = Math.floor(Date.now() / DAY) * DAY;
  // 1. Ingest with and without rollups, and with rollups but without the bucket counts,
  // in rounds (the order turning each round) so that all see the same machine load.
  const variants = {
    roll: { rollups: 1, counters: 1 },
    plain: { rollups: 0, counters: 1 },
    nocount: { rollups: 1, counters: 0 },
  } as const;
  const names = Object.keys(variants) as (keyof typeof variants)[];
  const t = { roll: 0, plain: 0, nocount: 0 };
  // CPU seconds of the workerd process per variant: on a shared machine wall time also counts the
  // time other processes held the cores, CPU time only the work (all objects run in it, one request at a time).
  const cpu = { roll: 0, plain: 0, nocount: 0 };
  const rounds: number[] = [];
  const countersRounds: number[] = [];
  let readings = 0;
  const start = now - 2 * DAY;
  for (const object of names) await call("/noop", { object, ...variants[object] });
  // A warm-up commit each, not timed: series created, statements compiled, and the bucket counts' highest bucket per series read once (as after a wake); the rounds then measure the steady state.
  for (const object of names) await call("/minutes", { object, ...variants[object], devices: DEVICES, metrics: METRICS, from: start - MIN, minutes: 1 });
  // workerd's process (running once the objects answered), whose CPU time each ingest request is charged.
  const workerd = workerdChildren().find((pid) => !before.has(pid)) ?? null;
  for (let r = 0; r < ROUNDS; r++) {
    const round = { roll: 0, plain: 0, nocount: 0 };
    for (let k = 0; k < names.length; k++) {
      const object = names[(r + k) % names.length] ?? "roll";
      const from = start + r * ROUND_MINUTES * MIN;
      const cpu0 = processCpuSeconds(workerd);
      const { ms, body } = await call<{ readings: number }>("/minutes", { object, ...variants[object], devices: DEVICES, metrics: METRICS, from, minutes: ROUND_MINUTES });
      const cpu1 = processCpuSeconds(workerd);
      if (cpu0 !== null && cpu1 !== null) cpu[object] += cpu1 - cpu0;
      t[object] += ms;
      round[object] = ms;
      if (object === "roll") readings += body.readings;
    }
    rounds.push(Number((round.plain / round.roll).toFixed(2)));
    countersRounds.push(Number((round.nocount / round.roll).toFixed(2)));
    log(`ingest round ${r + 1}/${ROUNDS}: ratio ${rounds.at(-1)}, with/without counters ${countersRounds.at(-1)}`);
  }
  const rollSize = (await call<Size>("/size", { object: "roll" })).body;
  const plainSize = (await call<Size>("/size", { object: "plain" })).body;
  const empty = (await call<Size>("/size", { object: "empty" })).body;
  const ingest = {
    readings,
    withRollups: Math.round(readings / (t.roll / 1000)),
    withoutRollups: Math.round(readings / (t.plain / 1000)),
    ratio: Number((t.plain / t.roll).toFixed(2)),
    /** Each round's ratio: on a shared machine their spread says how far to trust the total. */
    rounds,
    medianRound: median(rounds),
    withRollupsWithoutCounters: Math.round(readings / (t.nocount / 1000)),
    countersRatio: Number((t.nocount / t.roll).toFixed(2)),
    countersRounds,
    medianCountersRound: median(countersRounds),
    /** The ratio of workerd CPU seconds (null where /proc is missing): steadier than wall time on a busy machine. */
    cpuRatio: workerd === null || cpu.roll === 0 ? null : Number((cpu.plain / cpu.roll).toFixed(2)),
    cpuSeconds: { withRollups: Number(cpu.roll.toFixed(2)), withoutRollups: Number(cpu.plain.toFixed(2)), withRollupsWithoutCounters: Number(cpu.nocount.toFixed(2)) },
  };
  // 1b. The same ratio end to end: device sockets into two hubs, the Worker as it ships and a copy without rollups.
  const hubIngest = await measureHubs(dir, { rounds: ROUNDS, seconds: HUB_SECONDS, log });
  if (!hubIngest.every((h) => h.verified)) throw new Error("a hub of the end-to-end ingest does not hold exactly what it acked");

  // Packed hours: minute buckets only (no rollups), 3 closed days of 50 series, before and after a packing pass;
  // one reading a minute (point rows) and three with fractional values (full rows), each packed by the hub's
  // packer (parts on the page, only when smaller) and as before parts (an hour in one row), in objects of their own.
  type Packing = Record<"parts" | "hour", { plain: number; packed: number; packs: number; packedBuckets: number; minute: number; seconds: number }>;
  const packing = { point: {} as Packing, three: {} as Packing };
  for (const [shape, per] of [["point", 1], ["three", 3]] as const) {
    for (const how of ["parts", "hour"] as const) {
      const fill = { object: `packed-${shape}-${how}`, rollups: 0, devices: 10, metrics: METRICS, per };
      for (let m = 0; m < 3 * 1440; m += 240) await call("/minutes", { ...fill, from: now - 3 * DAY + m * MIN, minutes: 240 });
      const before = (await call<Size>("/size", fill)).body;
      const run = await call<{ packed: number }>("/pack", { ...fill, now: now + DAY, parts: how === "parts" ? 1 : 0 });
      const after = (await call<Size>("/size", fill)).body;
      const per1 = (x: number) => Number(((x - empty.bytes) / after.minute).toFixed(1));
      packing[shape][how] = { plain: per1(before.bytes), packed: per1(after.bytes), packs: after.packs, packedBuckets: after.packed, minute: after.minute, seconds: Number((run.ms / 1000).toFixed(1)) };
      log(`packing (${shape}, ${how === "parts" ? "parts" : "as before parts"}): ${run.body.packed.toLocaleString("en")} of ${after.minute.toLocaleString("en")} minute buckets into ${after.packs.toLocaleString("en")} rows in ${(run.ms / 1000).toFixed(1)} s`);
    }
  }
  const bytesPerBucket = {
    plainWithRollups: Number(((rollSize.bytes - empty.bytes) / (rollSize.minute + rollSize.hour + rollSize.day)).toFixed(1)),
    plainMinuteOnly: Number(((plainSize.bytes - empty.bytes) / plainSize.minute).toFixed(1)),
    // Both objects hold the same minute rows: the difference is their hour and day rows, which hold several readings each (not points).
    plainHourAndDay: Number(((rollSize.bytes - plainSize.bytes) / (rollSize.hour + rollSize.day)).toFixed(1)),
    plainBeforePacking: packing.point.parts.plain,
    compacted: packing.point.parts.packed,
  };

  // 2. Steady state under the default retention: 400 days, two readings an hour but for the last 3 days.
  const fill = { object: "steady", devices: FILL_DEVICES, metrics: METRICS };
  const first = now - 400 * DAY;
  const minutesFrom = now - 3 * DAY;
  for (let d = 0; d < 397; d += 30) {
    await call("/hours", { ...fill, from: first + d * DAY, days: Math.min(30, 397 - d) });
    log(`fill: day ${Math.min(d + 30, 397)}/400 (two readings an hour)`);
  }
  for (let m = 0; m < 3 * 1440; m += 240) {
    await call("/minutes", { ...fill, from: minutesFrom + m * MIN, minutes: 240 });
  }
  log("fill: last 3 days (every minute); pruning by the default retention");
  const pruned = (await call<{ deleted: number }>("/prune", { object: "steady", now })).body.deleted;
  const steadyPlain = (await call<Size>("/size", { object: "steady" })).body;
  // The prune task packs closed hours after each retention pass.
  await call("/pack", { object: "steady", now });
  const steady = (await call<Size>("/size", { object: "steady" })).body;
  const steadyBuckets = steady.minute + steady.hour + steady.day;
  const steadyState = {
    series: steady.series,
    buckets: { minute: steady.minute, hour: steady.hour, day: steady.day },
    pruned,
    bytes: steady.bytes,
    bytesPerBucket: Number(((steady.bytes - empty.bytes) / steadyBuckets).toFixed(1)),
    scaledTo1000DevicesGB: Number((((steady.bytes - empty.bytes) * (DEVICES / FILL_DEVICES)) / 1e9).toFixed(2)),
    unpackedScaledTo1000DevicesGB: Number((((steadyPlain.bytes - empty.bytes) * (DEVICES / FILL_DEVICES)) / 1e9).toFixed(2)),
  };

  // 3. Queries for one series, inside the object; an empty request's time subtracted.
  let noop = Infinity;
  for (let i = 0; i < 5; i++) noop = Math.min(noop, (await call("/noop", { object: "steady" })).ms);
  const one = "device=dev-0000&metric=m0";
  const queries: Record<string, { ms: number; buckets: number; resolution: string }> = {};
  for (const [name, q] of [
    ["24h@minute", `${one}&resolution=minute&from=${now - DAY}&to=${now}`],
    ["30d@hour", `${one}&resolution=hour&from=${now - 30 * DAY}&to=${now}`],
    ["1y@day", `${one}&resolution=day&from=${now - 365 * DAY}&to=${now}`],
    ["all@auto", `${one}&resolution=auto`],
  ] as const) {
    let best = Infinity;
    let body = { buckets: 0, resolution: "" };
    // The best of three timed batches of REPS queries: the machine is shared.
    for (let k = 0; k < 3; k++) {
      const r = await call<{ buckets: number; resolution: string }>("/query", { object: "steady", q, reps: REPS, now });
      best = Math.min(best, r.ms);
      body = r.body;
    }
    queries[name] = { ms: Number((Math.max(0, best - noop) / REPS).toFixed(3)), ...body };
  }

  // 4. The storage route's report inside the object: from the counters, and by counting the tables as before them;
  // on the steady state (few series, many buckets) and on the ingest object (5,000 series, few buckets each).
  const storage: Record<string, { ms: number; sumsMs: number; seeksMs: number; scanMs: number; buckets: number; series: number }> = {};
  for (const [name, object] of [["steady", "steady"], ["5000 series", "roll"]] as const) {
    const ms = { report: Infinity, sums: Infinity, seeks: Infinity, scan: Infinity };
    for (let k = 0; k < 3; k++) {
      for (const way of ["report", "sums", "seeks", "scan"] as const) {
        const r = await call("/storage", { object, reps: REPS, way });
        ms[way] = Math.min(ms[way], r.ms);
      }
    }
    const size = name === "steady" ? steady : rollSize;
    const per = (x: number) => Number((Math.max(0, x - noop) / REPS).toFixed(3));
    storage[name] = { ms: per(ms.report), sumsMs: per(ms.sums), seeksMs: per(ms.seeks), scanMs: per(ms.scan), buckets: size.minute + size.hour + size.day, series: size.series };
  }

  const result = { cpu: cpus()[0]?.model ?? "unknown", cores: cpus().length, ingest, hubIngest, bytesPerBucket, packing, steadyState, queries, storage };
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const lines = [
      `History bench (${result.cpu}, ${result.cores} cores, shared with other work: figures are indicative)`,
      `ingest, 1,000 devices x 5 metrics, a commit per minute: ${ingest.withRollups.toLocaleString("en")} readings/s with rollups, ${ingest.withoutRollups.toLocaleString("en")} without: ratio ${ingest.ratio} (${ingest.readings.toLocaleString("en")} readings each; rounds ${ingest.rounds.join(", ")}, median ${ingest.medianRound}); by workerd CPU time: ratio ${ingest.cpuRatio ?? "unknown"} (${ingest.cpuSeconds.withRollups} / ${ingest.cpuSeconds.withoutRollups} s)`,
      ...hubIngest.map((h) => `ingest through the hub, ${h.shape}: ratio ${h.ratio} by readings/s, ${h.cpuRatio ?? "unknown"} by workerd CPU per reading (rounds with/without: ${h.rounds.map((r) => `${r.roll.readingsPerSec.toLocaleString("en")}/${r.plain.readingsPerSec.toLocaleString("en")}`).join(", ")} readings/s; each hub held exactly what it acked)`),
      `bytes per bucket (plain rows): ${bytesPerBucket.plainWithRollups} with rollups (minute+hour+day rows), ${bytesPerBucket.plainMinuteOnly} minute rows only (one reading each), ${bytesPerBucket.plainHourAndDay} hour and day rows (several readings each)`,
      ...(["point", "three"] as const).map((shape) => {
        const { parts, hour } = packing[shape];
        const what = shape === "point" ? "one reading a minute" : "three readings a minute";
        return `bytes per minute bucket, 50 series x 3 days, ${what}: ${parts.plain} as plain rows, ${parts.packed} packed in parts (${parts.packs.toLocaleString("en")} rows, ${parts.packedBuckets.toLocaleString("en")} buckets packed, ${parts.seconds} s), ${hour.packed} packed as before parts (an hour a row: ${hour.packs.toLocaleString("en")} rows, ${hour.seconds} s)`;
      }),
      `steady state, ${steadyState.series} series over 400 days under the default retention: ${steadyState.buckets.minute.toLocaleString("en")} minute, ${steadyState.buckets.hour.toLocaleString("en")} hour, ${steadyState.buckets.day.toLocaleString("en")} day buckets, ${(steadyState.bytes / 1e6).toFixed(1)} MB (${steadyState.bytesPerBucket} B/bucket) with closed hours packed; scaled to 1,000 devices: ${steadyState.scaledTo1000DevicesGB} GB (${steadyState.unpackedScaledTo1000DevicesGB} GB unpacked)`,
      ...Object.entries(queries).map(([k, q]) => `query ${k}: ${q.ms} ms (${q.buckets} ${q.resolution} buckets)`),
      `bucket counts' cost to ingest with rollups: ${ingest.withRollupsWithoutCounters.toLocaleString("en")} readings/s without them, ratio with/without ${ingest.countersRatio} (rounds ${ingest.countersRounds.join(", ")}, median ${ingest.medianCountersRound}); by workerd CPU time ${ingest.cpuSeconds.withRollups} / ${ingest.cpuSeconds.withRollupsWithoutCounters} s`,
      ...Object.entries(storage).map(
        ([, s]) =>
          `storage report, ${s.series.toLocaleString("en")} series, ${s.buckets.toLocaleString("en")} buckets: ${s.ms} ms from the bucket_totals row (${s.sumsMs} ms of it the counts' sums), ${s.seeksMs} ms with the oldest by a seek per series (before the row kept them), ${s.scanMs} ms counting the tables (before the counters)`,
      ),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  }
} finally {
  await mf.dispose();
  await rm(dir, { recursive: true, force: true });
}

/**
 * The raw archive stage (docs/archive.md). Every applied batch's readings
 * are captured in the group commit's transaction (one row per batch and
 * device, compact columns: ./capture.ts), so a reading is captured exactly
 * when its aggregates are, and a duplicate, never applied, never is. A
 * scheduler task flushes the rows of closed periods (UTC hours by default)
 * to R2 as Parquet, one part per hour of the readings' timestamps:
 * `groups/{group}/readings/date=YYYY-MM-DD/hour=HH/part-{n}.parquet`.
 *
 * Exactly once into R2: a flush step (1) records its parts in the manifest
 * as pending with the id range of the rows they hold, (2) puts them, (3)
 * deletes those rows and marks the parts done in one transaction. Keys are
 * fixed at (1), so a step interrupted anywhere (an R2 error, an eviction, a
 * crash) is resumed by putting the same keys from the same rows again:
 * overwriting an object never adds a reading, and rows are only deleted
 * with their parts marked done.
 *
 * In memory: the backlog size and the period the flush was last asked for,
 * both re-read from SQLite (or asked again) after a wake or a failed commit.
 */
import { forEachReading } from "../../../schema/cbatch.ts";
import { readIntVars } from "../../../schema/limits.ts";
import type { Alert } from "../../../schema/rules.ts";
import { log } from "../../log.ts";
import type { GroupDb } from "../history/writer.ts";
import type { DeviceReadings } from "../ingest/commit.ts";
import { peerName } from "../peer.ts";
import type { TaskRequester } from "../scheduler.ts";
import { ArchiveStore, type CapturedRow, type PartRow } from "./archive-store.ts";
import { decodeCaptured, encodeCaptured, timeBounds } from "./capture.ts";
import { columnsLength, emptyColumns, readParquet, sortedOrder, writeParquet, type RawColumns } from "./parquet.ts";

/** The scheduler task that flushes captured rows to R2. */
export const ARCHIVE_TASK = "archive.flush";

const HOUR_MS = 3_600_000;

/** Archive settings, as wrangler.jsonc vars (docs/archive.md). */
export interface ArchiveLimits {
  /** 0 turns capture off (the benchmark's baseline); the flush still drains what is captured. */
  capture: number;
  /** Captured readings kept waiting at most; past it readings are not archived and the `archive` alert is raised. */
  maxBacklog: number;
  /** Readings one flush step writes at most (bounds the alarm's memory and time). */
  stepReadings: number;
  /** Rows are flushed once the period of their commit (this long, aligned to the epoch) has closed. */
  flushMs: number;
}

export const DEFAULT_ARCHIVE_LIMITS: Readonly<ArchiveLimits> = { capture: 1, maxBacklog: 5_000_000, stepReadings: 200_000, flushMs: HOUR_MS };

const ARCHIVE_VARS: Readonly<Record<keyof ArchiveLimits, string>> = {
  capture: "ARCHIVE_CAPTURE",
  maxBacklog: "ARCHIVE_MAX_BACKLOG",
  stepReadings: "ARCHIVE_STEP_READINGS",
  flushMs: "ARCHIVE_FLUSH_MS",
};

/** Archive settings from env vars (see {@link readIntVars}). */
export function readArchiveLimits(env: Readonly<Record<string, unknown>>): ArchiveLimits {
  const l = readIntVars<ArchiveLimits>(env, DEFAULT_ARCHIVE_LIMITS, ARCHIVE_VARS);
  if (l.stepReadings < 1 || l.flushMs < 1) throw new Error("ARCHIVE_STEP_READINGS and ARCHIVE_FLUSH_MS must be positive");
  return l;
}

/** The part of an R2 bucket the archive uses. */
export type ArchiveBucket = Pick<R2Bucket, "put" | "get">;

/** What the archive stage needs from its host. */
export interface ArchiveHost {
  /** The group's id: objects are keyed by it. */
  name(): string;
  readonly scheduler: TaskRequester;
  /** The `ARCHIVE` bucket; undefined when the binding is missing (nothing is captured). */
  bucket(): ArchiveBucket | undefined;
  /** Inside the commit: the backlog is full. Returns the alert raised, if it was not active. */
  raiseAlert(backlog: number, cap: number, now: number): Alert | null;
  /** The backlog is below the cap again: clears the alert, if active. */
  clearAlert(now: number): Alert | null;
  /** Alerts raised or cleared outside a commit (by the flush), for the live view. */
  noteAlerts(alerts: Alert[]): void;
}

/** Filter of {@link Archive.read}. */
export interface RawFilter {
  device?: string;
  metric?: string;
  from?: number;
  to?: number;
  limit: number;
}

/** Readings one request may scan (archived parts plus captured rows); past it the request is refused. */
export const MAX_SCAN_READINGS = 2_000_000;

export type RawResult = { ok: true; columns: RawColumns; truncated: boolean } | { ok: false; message: string };

const DROPPED_KEY = "archive:dropped";

export class Archive {
  private readonly store: ArchiveStore;
  private readonly kv: SyncKvStorage;
  private readonly host: ArchiveHost;
  private readonly limits: ArchiveLimits;
  /** Captured readings waiting; null until read from SQLite. */
  private backlogReadings: number | null = null;
  /** End of the period a flush was last requested for in this wake. */
  private requestedUntil = -Infinity;

  constructor(db: GroupDb, host: ArchiveHost, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS) {
    this.store = new ArchiveStore(db);
    this.kv = db.$client.kv;
    this.host = host;
    this.limits = limits;
  }

  private backlog(): number {
    return (this.backlogReadings ??= this.store.backlog().readings);
  }

  /**
   * Inside the commit's transaction: captures the applied readings. Past
   * the backlog cap they are not captured (counted under `archive:dropped`)
   * and the alert is raised; the commit and its aggregates go on.
   */
  capture(batches: readonly DeviceReadings[], now: number): Alert | null {
    if (this.limits.capture === 0 || batches.length === 0 || !this.host.bucket()) return null;
    let backlog = this.backlog();
    let dropped = 0;
    const rows: Omit<CapturedRow, "id">[] = [];
    for (const b of batches) {
      if (b.count === 0) continue;
      if (backlog + b.count > this.limits.maxBacklog) {
        dropped += b.count;
        continue;
      }
      rows.push({ received: now, device: b.device, source: peerName(b.source), seq: b.seq, readings: b.count, ...timeBounds(b), data: encodeCaptured(b) });
      backlog += b.count;
    }
    this.store.capture(rows);
    this.backlogReadings = backlog;
    const end = Math.floor(now / this.limits.flushMs) * this.limits.flushMs + this.limits.flushMs;
    if (end > this.requestedUntil) {
      this.host.scheduler.request(ARCHIVE_TASK, end);
      this.requestedUntil = end;
    }
    if (dropped === 0) return null;
    this.kv.put(DROPPED_KEY, this.dropped() + dropped);
    const raised = this.host.raiseAlert(backlog, this.limits.maxBacklog, now);
    if (raised) log.warn("archive.backlog_full", { group: this.host.name(), backlog, cap: this.limits.maxBacklog });
    return raised;
  }

  /** After a failed commit: the cached backlog and request may describe rows that were rolled back. */
  afterFailure(): void {
    this.backlogReadings = null;
    this.requestedUntil = -Infinity;
  }

  /** Readings never archived because the backlog was full, all time. */
  dropped(): number {
    const n = this.kv.get<unknown>(DROPPED_KEY);
    return typeof n === "number" ? n : 0;
  }

  /** Backlog and manifest totals (for tests, the benchmark and operators' logs). */
  stats(): { backlog: number; dropped: number; parts: number; bytes: number; archived: number; pending: number } {
    const t = this.store.totals();
    return { backlog: this.store.backlog().readings, dropped: this.dropped(), parts: t.parts, bytes: t.bytes, archived: t.readings, pending: this.store.pendingParts().length };
  }

  /**
   * The flush task: one bounded step (at most `stepReadings` readings, or
   * the one pending step to resume). Returns when to run next. Throws on an
   * R2 error; the scheduler retries, and the step resumes with the same keys.
   */
  async flushStep(now: number): Promise<number | null> {
    const bucket = this.host.bucket();
    if (!bucket) return null;
    const cutoff = Math.floor(now / this.limits.flushMs) * this.limits.flushMs;
    let parts: Omit<PartRow, "bytes" | "state">[] = this.store.pendingParts();
    const range = parts[0] ? { first: parts[0].firstRow, last: parts[0].lastRow } : this.store.planRange(cutoff, this.limits.stepReadings);
    if (!range) {
      const { earliest } = this.store.backlog();
      return earliest === null ? null : Math.max(Math.floor(earliest / this.limits.flushMs) * this.limits.flushMs + this.limits.flushMs, now);
    }
    const byHour = columnsByHour(this.store.rows(range.first, range.last));
    if (parts.length === 0) {
      const group = this.host.name();
      parts = [...byHour.keys()]
        .sort((a, b) => a - b)
        .map((hour) => {
          const part = this.store.nextPart(hour);
          const readings = columnsLength(byHour.get(hour) ?? emptyColumns());
          return { hour, part, key: partKey(group, hour, part), firstRow: range.first, lastRow: range.last, readings, at: now };
        });
      this.store.planParts(parts);
    }
    const written: Pick<PartRow, "hour" | "part" | "bytes">[] = [];
    for (const p of parts) {
      const cols = byHour.get(p.hour);
      if (!cols) throw new Error(`archive part ${p.key}: its rows hold no reading of that hour`);
      const body = writeParquet(cols, sortedOrder(cols));
      // Same key, same rows: a retried put replaces the object with the same readings.
      await bucket.put(p.key, body, { httpMetadata: { contentType: "application/vnd.apache.parquet" } });
      written.push({ hour: p.hour, part: p.part, bytes: body.byteLength });
    }
    let cleared: Alert | null = null;
    this.store.complete(range.first, range.last, written, () => {
      this.backlogReadings = null;
      if (this.backlog() < this.limits.maxBacklog) cleared = this.host.clearAlert(now);
    });
    if (cleared) this.host.noteAlerts([cleared]);
    log.info("archive.flushed", { group: this.host.name(), parts: parts.length, readings: parts.reduce((n, p) => n + p.readings, 0) });
    return this.store.planRange(cutoff, this.limits.stepReadings) ? now : cutoff + this.limits.flushMs;
  }

  /**
   * Raw readings matching the filter, from archived parts and captured rows,
   * sorted per series by time (then arrival). Refused when the range would
   * make it scan more than MAX_SCAN_READINGS.
   */
  async read(q: RawFilter): Promise<RawResult> {
    const from = q.from ?? -Infinity;
    const to = q.to ?? Infinity;
    const keep = (device: string, metric: string, ts: number) =>
      (q.device === undefined || device === q.device) && (q.metric === undefined || metric === q.metric) && ts >= from && ts < to;
    // Manifest and rows are read together, before any await: a part is done
    // exactly when its rows are gone, so every reading is seen once.
    const fromHour = Number.isFinite(from) ? Math.floor(from / HOUR_MS) * HOUR_MS : Number.MIN_SAFE_INTEGER;
    const toHour = Number.isFinite(to) ? to : Number.MAX_SAFE_INTEGER;
    const parts = this.store.doneParts(fromHour, toHour);
    const rows = this.store.rowsOverlapping(q.device, q.from, q.to);
    const scan = parts.reduce((n, p) => n + p.readings, 0) + rows.reduce((n, r) => n + r.readings, 0);
    if (scan > MAX_SCAN_READINGS) {
      return { ok: false, message: `the range holds ${scan} readings to scan, more than ${MAX_SCAN_READINGS}; narrow from/to` };
    }
    const cols = emptyColumns();
    for (const r of rows) appendRow(r, (d, m, ts) => (keep(d, m, ts) ? cols : undefined));
    const bucket = this.host.bucket();
    for (const p of parts) {
      const obj = await bucket?.get(p.key);
      if (!obj) throw new Error(`archive part ${p.key} is in the manifest but not in R2`);
      await readParquet(await obj.arrayBuffer(), cols, keep);
    }
    const order = sortedOrder(cols);
    const truncated = order.length > q.limit;
    if (truncated) order.length = q.limit;
    return { ok: true, columns: pickColumns(cols, order), truncated };
  }
}

/** The object key of a part: hive-style partitions, so one glob reads a fleet. */
export function partKey(group: string, hour: number, part: number): string {
  const iso = new Date(hour).toISOString();
  return `groups/${group}/readings/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/part-${part}.parquet`;
}

/** Appends a captured row's readings to the columns `into` picks for each (none: skipped). */
function appendRow(r: CapturedRow, into: (device: string, metric: string, ts: number) => RawColumns | undefined): void {
  forEachReading(decodeCaptured(r.data), (ts, metric, value) => {
    const c = into(r.device, metric, ts);
    if (!c) return;
    c.device.push(r.device);
    c.metric.push(metric);
    c.ts.push(ts);
    c.value.push(value);
    c.received.push(r.received);
    c.source.push(r.source);
    c.seq.push(r.seq);
  });
}

/** Captured rows' readings as columns per UTC hour of their timestamps. */
function columnsByHour(rows: readonly CapturedRow[]): Map<number, RawColumns> {
  const out = new Map<number, RawColumns>();
  for (const r of rows) {
    appendRow(r, (_device, _metric, ts) => {
      const hour = Math.floor(ts / HOUR_MS) * HOUR_MS;
      let c = out.get(hour);
      if (!c) out.set(hour, (c = emptyColumns()));
      return c;
    });
  }
  return out;
}

function pickColumns(c: RawColumns, order: readonly number[]): RawColumns {
  const pick = <T>(col: readonly T[]): T[] => order.map((i) => col[i] as T);
  return { device: pick(c.device), metric: pick(c.metric), ts: pick(c.ts), value: pick(c.value), received: pick(c.received), source: pick(c.source), seq: pick(c.seq) };
}

/**
 * Recordings and replays.
 *
 * `--record FILE` writes one JSON object per generated reading:
 *   {"group":"sim-1","device":"dev-01","ts":1732300000000,"metric":"temp","value":21.5}
 *
 * `--replay FILE` reads such a file, or a CSV whose header names the columns
 * (any order, case-insensitive): timestamp (or ts, time), device, metric,
 * value, and optionally group. Timestamps are milliseconds since the epoch
 * or ISO 8601 text.
 */
import { createWriteStream, readFileSync, type WriteStream } from "node:fs";
import { ID_PATTERN, METRIC_PATTERN } from "../schema/protocol.ts";
import type { SimConfig } from "./config.ts";

export interface ReplayRow {
  group: string;
  device: string;
  ts: number;
  metric: string;
  value: number;
}

export interface ReplayData {
  rows: ReplayRow[];
  /** Lines that could not be used, with the first few reasons. */
  skipped: number;
  problems: string[];
}

export class ReplayError extends Error {}

const COLUMN_NAMES: Record<keyof ReplayRow, string[]> = {
  ts: ["timestamp", "ts", "time"],
  device: ["device", "device_id", "sensor"],
  metric: ["metric", "name"],
  value: ["value", "val"],
  group: ["group", "group_id"],
};

function parseTs(s: string): number | null {
  const t = s.trim();
  if (/^-?\d+$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? null : ms;
}

/** Splits one CSV line (RFC 4180 quoting, no embedded newlines). */
function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

function check(row: ReplayRow): string | null {
  if (!ID_PATTERN.test(row.group)) return `bad group id '${row.group}'`;
  if (!ID_PATTERN.test(row.device)) return `bad device id '${row.device}'`;
  if (!METRIC_PATTERN.test(row.metric)) return `bad metric '${row.metric}'`;
  if (!Number.isSafeInteger(row.ts)) return "bad timestamp";
  if (!Number.isFinite(row.value)) return "value is not a finite number";
  return null;
}

/** Reads a recording (.jsonl / .ndjson) or a CSV file, sorted by timestamp. */
export function readReplay(path: string, defaultGroup: string): ReplayData {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ReplayError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  const data: ReplayData = { rows: [], skipped: 0, problems: [] };
  const skip = (lineNo: number, why: string) => {
    data.skipped++;
    if (data.problems.length < 10) data.problems.push(`line ${lineNo}: ${why}`);
  };
  const first = lines[0]?.trim() ?? "";
  if (first.startsWith("{")) {
    lines.forEach((line, i) => {
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        return skip(i + 1, "not JSON");
      }
      if (typeof o !== "object" || o === null) return skip(i + 1, "not an object");
      const r = o as Record<string, unknown>;
      const row: ReplayRow = {
        group: typeof r.group === "string" ? r.group : defaultGroup,
        device: String(r.device ?? ""),
        ts: typeof r.ts === "number" ? r.ts : (parseTs(String(r.ts ?? "")) ?? Number.NaN),
        metric: String(r.metric ?? ""),
        value: typeof r.value === "number" ? r.value : Number(r.value),
      };
      const why = check(row);
      if (why) return skip(i + 1, why);
      data.rows.push(row);
    });
  } else {
    const header = splitCsv(first).map((h) => h.toLowerCase());
    const col = {} as Record<keyof ReplayRow, number>;
    for (const key of Object.keys(COLUMN_NAMES) as (keyof ReplayRow)[]) {
      col[key] = header.findIndex((h) => COLUMN_NAMES[key].includes(h));
      if (col[key] < 0 && key !== "group") {
        throw new ReplayError(`CSV header has no ${key} column (one of: ${COLUMN_NAMES[key].join(", ")}); header was: ${first}`);
      }
    }
    for (let i = 1; i < lines.length; i++) {
      const f = splitCsv(lines[i] ?? "");
      const row: ReplayRow = {
        group: col.group >= 0 ? (f[col.group] ?? "") : defaultGroup,
        device: f[col.device] ?? "",
        ts: parseTs(f[col.ts] ?? "") ?? Number.NaN,
        metric: f[col.metric] ?? "",
        value: (f[col.value] ?? "") === "" ? Number.NaN : Number(f[col.value]),
      };
      const why = check(row);
      if (why) skip(i + 1, why);
      else data.rows.push(row);
    }
  }
  data.rows.sort((a, b) => a.ts - b.ts);
  return data;
}

/** Appends readings to a JSONL recording. */
export class Recorder {
  private readonly out: WriteStream;
  private buf: string[] = [];
  count = 0;

  constructor(path: string) {
    this.out = createWriteStream(path, { flags: "w" });
  }

  write(group: string, device: string, ts: number, metric: string, value: number): void {
    this.buf.push(JSON.stringify({ group, device, ts, metric, value }));
    this.count++;
    if (this.buf.length >= 1000) this.flushBuffer();
  }

  private flushBuffer(): void {
    if (this.buf.length === 0) return;
    this.out.write(this.buf.join("\n") + "\n");
    this.buf = [];
  }

  close(): Promise<void> {
    this.flushBuffer();
    return new Promise((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

/**
 * The replay's tick: each call hands the rows now due (at `speed`, from
 * `started`) to `emit`, one call's rows at a time, and calls `stop` once
 * every row has been emitted.
 */
export function replayTicker(
  data: ReplayData,
  started: number,
  opts: Pick<SimConfig, "speed" | "replayTime">,
  hooks: { stop(): void; emit(rows: ReplayRow[], shift: number, now: number): Promise<void> },
): () => void {
  const rows = data.rows;
  const ts0 = rows[0]?.ts ?? started;
  // Faster than real time, a row t ms into the recording is sent t/speed
  // after the start: moved to "start now" it would be stamped in the
  // future (and past MAX_FUTURE_MS, rejected). Move the recording back by
  // what it gains on the clock, so every row's time has passed when it is
  // sent; at speed 1 it starts now, at max it ends now.
  const span = (rows.at(-1)?.ts ?? ts0) - ts0;
  const ahead = span * Math.max(0, 1 - 1 / opts.speed);
  const shift = opts.replayTime === "shift" ? Math.floor((started - ts0 - ahead) / 60_000) * 60_000 : 0;
  let i = 0;
  let creating = false;
  return () => {
    if (creating) return;
    if (i >= rows.length) {
      hooks.stop();
      return;
    }
    const now = Date.now();
    const horizon = Number.isFinite(opts.speed) ? ts0 + (now - started) * opts.speed : Infinity;
    let budget = Number.isFinite(opts.speed) ? Infinity : 20_000;
    const batch: ReplayRow[] = [];
    while (i < rows.length && budget-- > 0) {
      const r = rows[i];
      if (!r || r.ts > horizon) break;
      batch.push(r);
      i++;
    }
    creating = true;
    void hooks.emit(batch, shift, now).finally(() => (creating = false));
  };
}

/**
 * Raw readings as Parquet: written with hyparquet-writer (plain JS, runs in
 * workerd) and read back with hyparquet. Columns (docs/archive.md):
 * `device`, `metric`, `source` (strings, dictionary-encoded when that pays,
 * which it does for these), `ts` and `received` (timestamps, ms), `value`
 * (double), `seq` (int64). Snappy is the one codec the writer ships in JS;
 * ZSTD would need a WebAssembly compressor.
 */
import { parquetReadObjects } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";
import type { RawReading } from "../../../schema/api.ts";

/** Raw readings as columns, one index per reading. */
export interface RawColumns {
  device: string[];
  metric: string[];
  ts: number[];
  value: number[];
  received: number[];
  source: string[];
  seq: number[];
}

export function emptyColumns(): RawColumns {
  return { device: [], metric: [], ts: [], value: [], received: [], source: [], seq: [] };
}

export function columnsLength(c: RawColumns): number {
  return c.ts.length;
}

/** Reading `i` of the columns as the REST API returns it. */
export function readingAt(c: RawColumns, i: number): RawReading {
  return {
    device: c.device[i] as string,
    metric: c.metric[i] as string,
    ts: c.ts[i] as number,
    value: c.value[i] as number,
    received: c.received[i] as number,
    source: c.source[i] as string,
    seq: c.seq[i] as number,
  };
}

/** The order readings are written and returned in: per series (device, metric), by ts, then arrival. */
export function sortedOrder(c: RawColumns): number[] {
  const order = Array.from({ length: columnsLength(c) }, (_, i) => i);
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return order.sort(
    (a, b) =>
      cmp(c.device[a] as string, c.device[b] as string) ||
      cmp(c.metric[a] as string, c.metric[b] as string) ||
      (c.ts[a] as number) - (c.ts[b] as number) ||
      (c.received[a] as number) - (c.received[b] as number) ||
      a - b,
  );
}

/** Writes readings (in the given order) as one Parquet file. */
export function writeParquet(c: RawColumns, order: readonly number[]): Uint8Array {
  const pick = <T>(col: readonly T[]): T[] => order.map((i) => col[i] as T);
  const buf = parquetWriteBuffer({
    columnData: [
      { name: "device", data: pick(c.device), type: "STRING", nullable: false },
      { name: "metric", data: pick(c.metric), type: "STRING", nullable: false },
      { name: "ts", data: pick(c.ts).map(BigInt), type: "TIMESTAMP", nullable: false, encoding: "DELTA_BINARY_PACKED" },
      { name: "value", data: pick(c.value), type: "DOUBLE", nullable: false },
      { name: "received", data: pick(c.received).map(BigInt), type: "TIMESTAMP", nullable: false, encoding: "DELTA_BINARY_PACKED" },
      { name: "source", data: pick(c.source), type: "STRING", nullable: false },
      { name: "seq", data: pick(c.seq).map(BigInt), type: "INT64", nullable: false, encoding: "DELTA_BINARY_PACKED" },
    ],
    codec: "SNAPPY",
    rowGroupSize: 1_000_000,
    createdBy: "telemetry-hub archive",
  });
  return new Uint8Array(buf);
}

/** Reads a file written by {@link writeParquet} back into columns (appended to `into`), keeping rows `keep` accepts. */
export async function readParquet(bytes: ArrayBuffer, into: RawColumns, keep: (device: string, metric: string, ts: number) => boolean): Promise<void> {
  const rows = await parquetReadObjects({ file: bytes, utf8: true });
  for (const r of rows) {
    const device = String(r.device);
    const metric = String(r.metric);
    const ts = toMs(r.ts);
    if (!keep(device, metric, ts)) continue;
    into.device.push(device);
    into.metric.push(metric);
    into.ts.push(ts);
    into.value.push(Number(r.value));
    into.received.push(toMs(r.received));
    into.source.push(String(r.source));
    into.seq.push(Number(r.seq));
  }
}

/** hyparquet gives timestamps as Dates; plain integers pass through. */
function toMs(v: unknown): number {
  return v instanceof Date ? v.getTime() : Number(v);
}

/**
 * Raw readings as the readings route answers them: JSON, CSV (a header row
 * naming the columns) or Parquet (the archive's own columns). Ids and
 * metrics never hold commas or quotes (schema/protocol.ts patterns), so
 * CSV fields need no quoting.
 */
import { RAW_COLUMNS, type RawFormat, type ReadingsResponse } from "../../../schema/api.ts";
import { columnsLength, readingAt, writeParquet, type RawColumns } from "./parquet.ts";

/** The body of a readings answer in one format, and its content type. */
export function exportReadings(cols: RawColumns, truncated: boolean, format: RawFormat): { body: string | Uint8Array; type: string } {
  const n = columnsLength(cols);
  if (format === "parquet") {
    return { body: writeParquet(cols, Array.from({ length: n }, (_, i) => i)), type: "application/vnd.apache.parquet" };
  }
  if (format === "csv") {
    const lines = [RAW_COLUMNS.join(",")];
    for (let i = 0; i < n; i++) lines.push(RAW_COLUMNS.map((k) => String(cols[k][i])).join(","));
    return { body: lines.join("\n") + "\n", type: "text/csv; charset=utf-8" };
  }
  const body: ReadingsResponse = { readings: Array.from({ length: n }, (_, i) => readingAt(cols, i)), truncated };
  return { body: JSON.stringify(body), type: "application/json; charset=utf-8" };
}

/**
 * REST schemas of a group's raw readings (docs/archive.md). Part of the API
 * defined in schema/api.ts, which re-exports it.
 */
import * as z from "zod/mini";
import { described, doc, rangeInOrder, seriesFilter } from "./api-doc.ts";
import type { AggregateFilter } from "./api-history.ts";

/** Most raw readings one `GET /v1/groups/{group}/readings` returns (docs/archive.md); a larger `limit` is a 400. */
export const MAX_RAW_READINGS = 100_000;
/** Formats of `GET /v1/groups/{group}/readings`. */
export const RAW_FORMATS = ["json", "csv", "parquet"] as const;
export type RawFormat = (typeof RAW_FORMATS)[number];

/** Query of `GET /v1/groups/{group}/readings`: the aggregates' filter, a format and a row limit. */
export const ReadingsQuery = z
  .object({
    ...seriesFilter(),
    format: doc(z.optional(z.enum(RAW_FORMATS)), { description: "json (default), csv or parquet" }),
    limit: doc(
      z.optional(
        z.pipe(
          z.string().check(z.refine((s) => /^\d{1,7}$/.test(s) && Number(s) >= 1 && Number(s) <= MAX_RAW_READINGS, `limit must be an integer from 1 to ${MAX_RAW_READINGS}`)),
          z.transform(Number),
        ),
      ),
      { description: `most readings returned (default and maximum ${MAX_RAW_READINGS}); \`truncated\` (or the x-truncated header) says more matched` },
    ),
  })
  .check(rangeInOrder());
export type ReadingsQuery = z.output<typeof ReadingsQuery>;
/** The raw readings filter as a client passes it. */
export type ReadingsFilter = AggregateFilter & { limit?: number };

/** The columns of a raw reading, in CSV order. */
export const RAW_COLUMNS = ["device", "metric", "ts", "value", "received", "source", "seq"] as const;

/** One raw reading of `GET /v1/groups/{group}/readings` (and one row of the archive's Parquet files). */
export const RawReading = doc(
  z.object({
    device: z.string(),
    metric: z.string(),
    ts: described(z.number(), "the reading's time, ms since the epoch"),
    value: z.number(),
    received: described(z.number(), "hub time of the commit that applied it, ms"),
    source: described(z.string(), "who sent it: device:{id} or gateway:{id}"),
    seq: described(z.number(), "seq of the batch that carried it"),
  }),
  { id: "RawReading" },
);
export type RawReading = z.infer<typeof RawReading>;
export const ReadingsResponse = doc(
  z.object({
    readings: z.array(RawReading),
    truncated: described(z.boolean(), "more readings matched than the limit; narrow the range"),
  }),
  { id: "ReadingsResponse" },
);
export type ReadingsResponse = z.infer<typeof ReadingsResponse>;

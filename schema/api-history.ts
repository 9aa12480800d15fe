/**
 * REST schemas of a group's history (docs/history.md): the aggregates query
 * and its buckets, retention and storage. Part of the API defined in
 * schema/api.ts, which re-exports it.
 */
import * as z from "zod/mini";
import { described, doc, rangeInOrder, seriesFilter } from "./api-doc.ts";

/** The bucket resolutions the hub stores, finest first (docs/history.md). */
export const RESOLUTIONS = ["minute", "hour", "day"] as const;
export type Resolution = (typeof RESOLUTIONS)[number];
/** Length of a bucket at each resolution, ms (UTC minutes, hours and days). */
export const RESOLUTION_MS: Readonly<Record<Resolution, number>> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
/** Default `maxPoints` of the aggregates query. */
export const DEFAULT_MAX_POINTS = 1500;
/** Largest `maxPoints` accepted. */
export const MAX_MAX_POINTS = 50_000;

/** Query of `GET /v1/groups/{group}/aggregates`; every field optional, empty means absent. */
export const AggregateQuery = z
  .object({
    ...seriesFilter(),
    resolution: doc(
      z.pipe(
        z.optional(z.enum(["", ...RESOLUTIONS, "auto"], "resolution must be minute, hour, day or auto")),
        z.transform((r): Resolution | "auto" => (r === undefined || r === "" ? "minute" : r)),
      ),
      { description: "bucket size: minute (default), hour, day, or auto (the finest retained over the range with at most maxPoints buckets per series)" },
    ),
    maxPoints: doc(
      z.pipe(
        z.optional(
          z
            .string()
            .check(z.refine((s) => s === "" || (/^\d{1,6}$/.test(s) && Number(s) >= 1 && Number(s) <= MAX_MAX_POINTS), `maxPoints must be an integer from 1 to ${MAX_MAX_POINTS}`)),
        ),
        z.transform((s) => (s === undefined || s === "" ? DEFAULT_MAX_POINTS : Number(s))),
      ),
      { description: `most buckets per series that resolution=auto aims for (default ${DEFAULT_MAX_POINTS})` },
    ),
  })
  .check(rangeInOrder());
/** The aggregate filter once validated. */
export type AggregateQuery = z.output<typeof AggregateQuery>;
/** The aggregate filter as a client passes it. */
export type AggregateFilter = {
  device?: string;
  metric?: string;
  from?: number;
  to?: number;
  /** Default minute. */
  resolution?: Resolution | "auto";
  /** For `auto`; default {@link DEFAULT_MAX_POINTS}. */
  maxPoints?: number;
};

/** One bucket of `GET /v1/groups/{group}/aggregates` (a minute, an hour or a day). */
export const AggregateBucket = doc(
  z.object({
    device: z.string(),
    metric: z.string(),
    start: described(z.number(), "bucket start, ms since the epoch: the start of its UTC minute, hour or day"),
    count: z.int(),
    sum: z.number(),
    min: z.number(),
    max: z.number(),
    last: described(z.number(), "value of the reading with the greatest timestamp"),
  }),
  { id: "AggregateBucket" },
);
export type AggregateBucket = z.infer<typeof AggregateBucket>;
export const AggregatesResponse = doc(
  z.object({
    resolution: described(z.enum(RESOLUTIONS), "the resolution of these buckets (the one auto chose)"),
    buckets: z.array(AggregateBucket),
    truncated: described(z.boolean(), "more buckets matched than one response holds; narrow the filter"),
  }),
  { id: "AggregatesResponse" },
);
export type AggregatesResponse = z.infer<typeof AggregatesResponse>;

/** How long one resolution is kept, ms; null keeps it forever. */
function keep(r: Resolution) {
  return described(
    z.nullable(
      z.int().check(
        z.minimum(RESOLUTION_MS[r], `${r}Ms must be at least ${RESOLUTION_MS[r]} (one ${r}) or null`),
        z.maximum(MAX_KEEP_MS, `${r}Ms must be at most ${MAX_KEEP_MS} (100 years) or null`),
      ),
    ),
    `how long ${r} buckets are kept, ms; null: forever`,
  );
}
const forever = (ms: number | null): number => ms ?? Infinity;
/** Longest finite retention accepted: 100 years. */
export const MAX_KEEP_MS = 100 * 366 * 86_400_000;

/**
 * `GET` and `PUT /v1/groups/{group}/retention`: how long each resolution is
 * kept. A finer resolution may not be kept longer than a coarser one.
 */
export const Retention = doc(
  z
    .object({ minuteMs: keep("minute"), hourMs: keep("hour"), dayMs: keep("day") })
    .check(
      z.refine((r) => forever(r.minuteMs) <= forever(r.hourMs) && forever(r.hourMs) <= forever(r.dayMs), "a finer resolution may not be kept longer than a coarser one (minuteMs <= hourMs <= dayMs, null meaning forever)"),
    ),
  { id: "Retention" },
);
export type Retention = z.infer<typeof Retention>;

/** One resolution in `GET /v1/groups/{group}/storage`. */
const StorageResolution = z.object({
  buckets: described(z.int(), "buckets stored (minute: plain rows plus minutes in packs), exact as of the last commit"),
  oldest: described(z.nullable(z.number()), "start of the oldest bucket, ms; null when there is none"),
  keepMs: described(z.nullable(z.number()), "the retention of this resolution, ms; null: forever"),
});
/** `GET /v1/groups/{group}/storage`: the database's size against the group's budget (docs/history.md). */
export const StorageResponse = doc(
  z.object({
    bytes: described(z.number(), "size of the group's database, bytes"),
    budgetBytes: described(z.number(), "MAX_GROUP_BYTES: from 90 % of it the oldest buckets are pruned; at it batches are refused with storage_full"),
    resolutions: z.object({ minute: StorageResolution, hour: StorageResolution, day: StorageResolution }),
    uncountedSeries: described(
      z.int(),
      "series whose buckets are not counted yet, left out of `buckets`: 0, except for a while after a group written before the bucket counters wakes on the new code (docs/history.md)",
    ),
    oldestStale: described(
      z.boolean(),
      "true for a few alarm steps after pruning, while `oldest` is recomputed: each `oldest` is then the last exact value (lowered by buckets written since), a lower bound; false: exact (docs/history.md)",
    ),
  }),
  { id: "StorageResponse" },
);
export type StorageResponse = z.infer<typeof StorageResponse>;

/** Query-string parsing for REST routes, on the schemas of schema/api.ts. */
import { AggregateQuery } from "../../schema/api.ts";

export type { AggregateQuery } from "../../schema/api.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

/** Each query parameter once, by its first value (as `URLSearchParams.get` reads it). */
export function firstValues(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of params) out[k] ??= v;
  return out;
}

/** The aggregate filter of a query string. */
export function parseAggregateQuery(params: URLSearchParams): Parsed<AggregateQuery> {
  const r = AggregateQuery.safeParse(firstValues(params));
  return r.success ? { ok: true, value: r.data } : { ok: false, message: r.error.issues[0]?.message ?? "bad query" };
}

/**
 * Helpers the REST schemas (schema/api.ts and its parts) share: OpenAPI
 * documentation and the query parameter shapes more than one area uses.
 */
import * as z from "zod/mini";
import { ID_PATTERN, METRIC_PATTERN } from "./protocol.ts";

/** ID_PATTERN (schema/protocol.ts) as error messages quote it. */
export const ID_RULE = "[A-Za-z0-9_.-]{1,64}";

/** Documentation for the OpenAPI document: `id` makes a schema a named component. */
export function doc<T extends z.ZodMiniType>(schema: T, meta: z.core.GlobalMeta): T {
  z.globalRegistry.add(schema, meta);
  return schema;
}

/** `schema` with a description in the OpenAPI document. */
export const described = <T extends z.ZodMiniType>(schema: T, description: string): T => doc(schema, { description });

/** A pattern that also accepts the empty string: an empty query parameter means "absent". */
function orEmpty(re: RegExp): RegExp {
  return new RegExp(`^(?:${re.source.replace(/^\^|\$$/g, "")})?$`);
}

/** An optional filter parameter matching `re`; empty means absent. */
export function filter(re: RegExp, message: string, description: string) {
  const value = z.pipe(
    z.string().check(z.regex(orEmpty(re), message)),
    z.transform((s) => (s === "" ? undefined : s)),
  );
  return doc(z.optional(value), { description });
}

/** An optional time parameter, integer ms since the epoch; empty means absent. */
export function millis(name: "from" | "to") {
  const value = z
    .pipe(
      z.string().check(z.regex(/^(?:-?\d{1,16})?$/, `${name} must be an integer number of milliseconds`)),
      z.transform((s) => (s === "" ? undefined : Number(s))),
    )
    .check(z.refine((n) => n === undefined || Number.isSafeInteger(n), `${name} is out of range`));
  return doc(z.optional(value), { description: `${name === "from" ? "earliest" : "latest"} time, integer ms since the Unix epoch` });
}

/** The device, metric and time-range parameters of the aggregates and raw readings queries; fresh schemas per call. */
export function seriesFilter() {
  return {
    device: filter(ID_PATTERN, `device must match ${ID_RULE}`, "only this device"),
    metric: filter(METRIC_PATTERN, "metric must match [A-Za-z0-9_.:-]{1,64}", "only this metric"),
    from: millis("from"),
    to: millis("to"),
  };
}

/** The check that a query's `from` is not after its `to`. */
export function rangeInOrder() {
  return z.refine<{ from?: number | undefined; to?: number | undefined }>((q) => q.from === undefined || q.to === undefined || q.from <= q.to, "from must not be after to");
}

/** A `limit` parameter from 1 to 1000. */
export const limitValue = z.pipe(
  // Number(), not a digit pattern: the route has always accepted what Number() reads as an integer.
  z.string().check(z.refine((s) => Number.isInteger(Number(s)) && Number(s) >= 1 && Number(s) <= 1000, "limit must be an integer from 1 to 1000")),
  z.transform(Number),
);

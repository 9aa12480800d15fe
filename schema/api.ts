/**
 * The REST API (docs/protocol.md, "HTTP routes"), defined once: its paths,
 * the path and query parameters it accepts, and the JSON bodies it answers.
 * The Worker declares its routes and validates requests with these schemas
 * (worker/http/routes.ts), the OpenAPI document at `/v1/openapi.json` is
 * generated from them, and the typed client (schema/client.ts) checks every
 * answer against them. Types are inferred from the schemas, so a body and
 * its type never drift apart.
 */
import * as z from "zod";
import { ID_PATTERN, METRIC_PATTERN } from "./protocol.ts";
import { MAX_RULES, RULE_OPS } from "./rules.ts";

/** Every route's path, in OpenAPI template form. */
export const PATHS = {
  health: "/v1/health",
  openapi: "/v1/openapi.json",
  groups: "/v1/groups",
  deviceSocket: "/v1/groups/{group}/devices/{device}/ws",
  gatewaySocket: "/v1/groups/{group}/gateways/{gateway}/ws",
  devices: "/v1/groups/{group}/devices",
  aggregates: "/v1/groups/{group}/aggregates",
  live: "/v1/groups/{group}/live",
  rules: "/v1/groups/{group}/rules",
  alerts: "/v1/groups/{group}/alerts",
  rates: "/v1/groups/{group}/rates",
  revocations: "/v1/groups/{group}/revocations",
  revocation: "/v1/groups/{group}/revocations/{kind}/{id}",
} as const;

/** {@link ID_PATTERN} as error messages quote it. */
export const ID_RULE = "[A-Za-z0-9_.-]{1,64}";

/** A path id: a group, device or gateway. */
function pathId(name: string, description: string) {
  return z
    .string()
    .regex(ID_PATTERN)
    .meta({ description, example: name === "group" ? "demo" : `${name}-1` });
}

export const GroupParams = z.object({ group: pathId("group", "group id") });
export const DeviceSocketParams = GroupParams.extend({ device: pathId("device", "device id") });
export const GatewaySocketParams = GroupParams.extend({ gateway: pathId("gateway", "gateway id") });
/** Peer kinds that can be revoked. */
export const PeerKind = z.enum(["device", "gateway"]).meta({ id: "PeerKind" });
export type PeerKind = z.infer<typeof PeerKind>;
export const RevocationParams = GroupParams.extend({
  kind: PeerKind,
  id: pathId("id", "device or gateway id"),
});

/** A pattern that also accepts the empty string: an empty query parameter means "absent". */
function orEmpty(re: RegExp): RegExp {
  return new RegExp(`^(?:${re.source.replace(/^\^|\$$/g, "")})?$`);
}

function millis(name: "from" | "to") {
  return z
    .string()
    .regex(/^(?:-?\d{1,16})?$/, `${name} must be an integer number of milliseconds`)
    .transform((s) => (s === "" ? undefined : Number(s)))
    .refine((n) => n === undefined || Number.isSafeInteger(n), `${name} is out of range`)
    .optional()
    .meta({ description: `${name === "from" ? "earliest" : "latest"} time, integer ms since the Unix epoch` });
}

/** Query of `GET /v1/groups/{group}/aggregates`; every field optional, empty means absent. */
export const AggregateQuery = z
  .object({
    device: z
      .string()
      .regex(orEmpty(ID_PATTERN), `device must match ${ID_RULE}`)
      .transform((s) => (s === "" ? undefined : s))
      .optional()
      .meta({ description: "only this device" }),
    metric: z
      .string()
      .regex(orEmpty(METRIC_PATTERN), "metric must match [A-Za-z0-9_.:-]{1,64}")
      .transform((s) => (s === "" ? undefined : s))
      .optional()
      .meta({ description: "only this metric" }),
    from: millis("from"),
    to: millis("to"),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, "from must not be after to");
/** The aggregate filter once validated. */
export type AggregateQuery = z.output<typeof AggregateQuery>;
/** The aggregate filter as a client passes it. */
export type AggregateFilter = { device?: string; metric?: string; from?: number; to?: number };

/** Query of `GET /v1/groups/{group}/alerts`. */
export const AlertQuery = z.object({
  active: z
    .enum(["true", "false"], "active must be true or false")
    .optional()
    .transform((v) => v === "true")
    .meta({ description: "only alerts that have not cleared" }),
  limit: z
    .string()
    // Number(), not a digit pattern: the route has always accepted what Number() reads as an integer.
    .refine((s) => Number.isInteger(Number(s)) && Number(s) >= 1 && Number(s) <= 1000, "limit must be an integer from 1 to 1000")
    .transform(Number)
    .optional()
    .transform((n) => n ?? 100)
    .meta({ description: "newest N alerts, 1 to 1000 (default 100)" }),
});
export type AlertQuery = z.output<typeof AlertQuery>;

/** Every error: a stable code and a human-readable message. */
export const ErrorBody = z
  .object({ error: z.string().meta({ example: "unauthorized" }), message: z.string() })
  .meta({ id: "Error" });
export type ErrorBody = z.infer<typeof ErrorBody>;

/** `GET /v1/health`. */
export const Health = z.object({ ok: z.literal(true), protocol: z.number().int() }).meta({ id: "Health" });
export type Health = z.infer<typeof Health>;

/** One entry of `GET /v1/groups`. */
export const GroupEntry = z
  .object({ id: z.string(), firstSeen: z.number().meta({ description: "when the group was first seen, ms" }) })
  .meta({ id: "GroupEntry" });
export type GroupEntry = z.infer<typeof GroupEntry>;
export const GroupsResponse = z.object({ groups: z.array(GroupEntry) }).meta({ id: "GroupsResponse" });
export type GroupsResponse = z.infer<typeof GroupsResponse>;

/** One entry of `GET /v1/groups/{group}/devices`. */
export const DeviceInfo = z
  .object({
    id: z.string(),
    lastSeq: z.number().int().meta({ description: "highest batch seq applied" }),
    lastSeen: z.number().meta({ description: "hub time of the last applied batch or connect, ms" }),
    online: z.boolean(),
    readings: z.number().int().meta({ description: "readings applied, all time" }),
  })
  .meta({ id: "DeviceInfo" });
export type DeviceInfo = z.infer<typeof DeviceInfo>;
export const DevicesResponse = z.object({ devices: z.array(DeviceInfo) }).meta({ id: "DevicesResponse" });
export type DevicesResponse = z.infer<typeof DevicesResponse>;

/** One per-minute bucket of `GET /v1/groups/{group}/aggregates`. */
export const AggregateBucket = z
  .object({
    device: z.string(),
    metric: z.string(),
    start: z.number().meta({ description: "bucket start, ms since the epoch, a multiple of 60,000" }),
    count: z.number().int(),
    sum: z.number(),
    min: z.number(),
    max: z.number(),
    last: z.number().meta({ description: "value of the reading with the greatest timestamp" }),
  })
  .meta({ id: "AggregateBucket" });
export type AggregateBucket = z.infer<typeof AggregateBucket>;
export const AggregatesResponse = z
  .object({
    buckets: z.array(AggregateBucket),
    truncated: z.boolean().meta({ description: "more buckets matched than one response holds; narrow the filter" }),
  })
  .meta({ id: "AggregatesResponse" });
export type AggregatesResponse = z.infer<typeof AggregatesResponse>;

/**
 * A rules document as `GET /v1/groups/{group}/rules` answers it. `PUT` bodies
 * are checked by `validateRules` (schema/rules.ts), whose messages name the
 * offending field; this schema documents the same shape.
 */
export const Rule = z
  .object({
    id: z.string().regex(ID_PATTERN),
    metric: z.string().regex(METRIC_PATTERN),
    op: z.enum(RULE_OPS),
    threshold: z.number(),
    device: z.string().regex(ID_PATTERN).optional().meta({ description: "only this device" }),
    forMs: z.number().int().min(0).meta({ description: "how long the condition must hold before the alert is raised" }),
  })
  .meta({ id: "Rule" });
export const RulesDoc = z
  .object({
    rules: z.array(Rule).max(MAX_RULES),
    offlineAfterMs: z.number().int().min(0).meta({ description: "0 turns offline alerts off" }),
  })
  .meta({ id: "RulesDoc" });

/** One alert of `GET /v1/groups/{group}/alerts`. */
export const AlertEntry = z
  .object({
    id: z.number().int(),
    kind: z.enum(["threshold", "offline"]),
    ruleId: z.string().nullable(),
    device: z.string(),
    metric: z.string().nullable(),
    op: z.enum(RULE_OPS).nullable(),
    threshold: z.number().nullable(),
    value: z.number().nullable().meta({ description: "the reading that raised it, or the silence in ms (offline)" }),
    raisedAt: z.number(),
    clearedAt: z.number().nullable(),
  })
  .meta({ id: "Alert" });
export const AlertsResponse = z.object({ alerts: z.array(AlertEntry) }).meta({ id: "AlertsResponse" });
export type AlertsResponse = z.infer<typeof AlertsResponse>;

/**
 * `GET /v1/groups/{group}/rates`: readings the group applied per slot of hub
 * receive time over the last 15 minutes (the dashboard's readings/s chart).
 */
export const RatesResponse = z
  .object({
    stepMs: z.number().meta({ description: "slot length, ms (10,000)" }),
    from: z.number().meta({ description: "start of the first slot, ms since the epoch, a multiple of stepMs" }),
    at: z.number().meta({ description: "hub time of the answer; the last slot contains it and is still filling" }),
    readings: z.array(z.number()).meta({ description: "readings applied in each slot, oldest first" }),
  })
  .meta({ id: "RatesResponse" });
export type RatesResponse = z.infer<typeof RatesResponse>;

/** One revoked device or gateway. */
export const RevocationEntry = z
  .object({ kind: PeerKind, id: z.string(), revokedAt: z.number() })
  .meta({ id: "Revocation" });
export type RevocationEntry = z.infer<typeof RevocationEntry>;
export const RevocationsResponse = z.object({ revocations: z.array(RevocationEntry) }).meta({ id: "RevocationsResponse" });
export type RevocationsResponse = z.infer<typeof RevocationsResponse>;
/** `DELETE /v1/groups/{group}/revocations/{kind}/{id}`: the revocation was lifted. */
export const RevocationLifted = z
  .object({ kind: PeerKind, id: z.string(), revoked: z.literal(false) })
  .meta({ id: "RevocationLifted" });
export type RevocationLifted = z.infer<typeof RevocationLifted>;

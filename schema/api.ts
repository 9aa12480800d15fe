/**
 * The REST API (docs/protocol.md, "HTTP routes"), defined once: its paths,
 * the path and query parameters it accepts, and the JSON bodies it answers.
 * The Worker declares its routes and validates requests with these schemas
 * (worker/http/routes.ts), the OpenAPI document at `/v1/openapi.json` is
 * generated from them, and the typed client (schema/client.ts) checks every
 * answer against them. Types are inferred from the schemas, so a body and
 * its type never drift apart.
 */
// zod/mini: the same schemas as classic zod at a fraction of the bundle (the Worker and the dashboard ship them).
import * as z from "zod/mini";
import { COMMAND_NAME_PATTERN, ID_PATTERN, METRIC_PATTERN } from "./protocol.ts";
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
  readings: "/v1/groups/{group}/readings",
  live: "/v1/groups/{group}/live",
  rules: "/v1/groups/{group}/rules",
  alerts: "/v1/groups/{group}/alerts",
  rates: "/v1/groups/{group}/rates",
  revocations: "/v1/groups/{group}/revocations",
  revocation: "/v1/groups/{group}/revocations/{kind}/{id}",
  peerSeq: "/v1/groups/{group}/peers/{kind}/{id}/seq",
  commands: "/v1/groups/{group}/devices/{device}/commands",
  command: "/v1/groups/{group}/devices/{device}/commands/{id}",
  config: "/v1/groups/{group}/devices/{device}/config",
  retention: "/v1/groups/{group}/retention",
  storage: "/v1/groups/{group}/storage",
  groupConfig: "/v1/groups/{group}/config",
} as const;

/** {@link ID_PATTERN} as error messages quote it. */
export const ID_RULE = "[A-Za-z0-9_.-]{1,64}";

/** Documentation for the OpenAPI document: `id` makes a schema a named component. */
function doc<T extends z.ZodMiniType>(schema: T, meta: z.core.GlobalMeta): T {
  z.globalRegistry.add(schema, meta);
  return schema;
}

/** A path id: a group, device or gateway. */
function pathId(name: string, description: string) {
  return doc(z.string().check(z.regex(ID_PATTERN)), { description, example: name === "group" ? "demo" : `${name}-1` });
}

export const GroupParams = z.object({ group: pathId("group", "group id") });
export const DeviceSocketParams = z.extend(GroupParams, { device: pathId("device", "device id") });
export const GatewaySocketParams = z.extend(GroupParams, { gateway: pathId("gateway", "gateway id") });
/** A device of a group, as in `/devices/{device}/commands`. */
export const DeviceParams = DeviceSocketParams;
/** One command of a device. */
export const CommandParams = z.extend(DeviceParams, { id: pathId("id", "command id") });
/** Peer kinds that can be revoked. */
export const PeerKind = doc(z.enum(["device", "gateway"]), { id: "PeerKind" });
export type PeerKind = z.infer<typeof PeerKind>;
export const RevocationParams = z.extend(GroupParams, { kind: PeerKind, id: pathId("id", "device or gateway id") });
/** A device or gateway of a group, as in `/peers/{kind}/{id}`. */
export const PeerParams = RevocationParams;

/** A pattern that also accepts the empty string: an empty query parameter means "absent". */
function orEmpty(re: RegExp): RegExp {
  return new RegExp(`^(?:${re.source.replace(/^\^|\$$/g, "")})?$`);
}

/** An optional filter parameter matching `re`; empty means absent. */
function filter(re: RegExp, message: string, description: string) {
  const value = z.pipe(
    z.string().check(z.regex(orEmpty(re), message)),
    z.transform((s) => (s === "" ? undefined : s)),
  );
  return doc(z.optional(value), { description });
}

function millis(name: "from" | "to") {
  const value = z
    .pipe(
      z.string().check(z.regex(/^(?:-?\d{1,16})?$/, `${name} must be an integer number of milliseconds`)),
      z.transform((s) => (s === "" ? undefined : Number(s))),
    )
    .check(z.refine((n) => n === undefined || Number.isSafeInteger(n), `${name} is out of range`));
  return doc(z.optional(value), { description: `${name === "from" ? "earliest" : "latest"} time, integer ms since the Unix epoch` });
}

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
    device: filter(ID_PATTERN, `device must match ${ID_RULE}`, "only this device"),
    metric: filter(METRIC_PATTERN, "metric must match [A-Za-z0-9_.:-]{1,64}", "only this metric"),
    from: millis("from"),
    to: millis("to"),
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
  .check(z.refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, "from must not be after to"));
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

const limitValue = z.pipe(
  // Number(), not a digit pattern: the route has always accepted what Number() reads as an integer.
  z.string().check(z.refine((s) => Number.isInteger(Number(s)) && Number(s) >= 1 && Number(s) <= 1000, "limit must be an integer from 1 to 1000")),
  z.transform(Number),
);

/** Query of the device and gateway socket routes (the token may be in it too). */
export const SocketQuery = z.object({
  downlink: doc(z.optional(z.enum(["0", "1"], "downlink must be 0 or 1")), {
    description: "1: this device or gateway receives commands and configuration (docs/protocol.md, \"Downlink\")",
  }),
});

/** Query of `GET /v1/groups/{group}/alerts`. */
export const AlertQuery = z.object({
  active: doc(
    z.pipe(
      z.optional(z.enum(["true", "false"], "active must be true or false")),
      z.transform((v) => v === "true"),
    ),
    { description: "only alerts that have not cleared" },
  ),
  limit: doc(
    z.pipe(
      z.optional(limitValue),
      z.transform((n) => n ?? 100),
    ),
    { description: "newest N alerts, 1 to 1000 (default 100)" },
  ),
});
export type AlertQuery = z.output<typeof AlertQuery>;

/** Every error: a stable code and a human-readable message. */
export const ErrorBody = doc(z.object({ error: doc(z.string(), { example: "unauthorized" }), message: z.string() }), { id: "Error" });
export type ErrorBody = z.infer<typeof ErrorBody>;

const described = <T extends z.ZodMiniType>(schema: T, description: string): T => doc(schema, { description });

/** `GET /v1/health`. */
export const Health = doc(z.object({ ok: z.literal(true), protocol: z.int() }), { id: "Health" });
export type Health = z.infer<typeof Health>;

/** One entry of `GET /v1/groups`. */
export const GroupEntry = doc(z.object({ id: z.string(), firstSeen: described(z.number(), "when the group was first seen, ms") }), { id: "GroupEntry" });
export type GroupEntry = z.infer<typeof GroupEntry>;
export const GroupsResponse = doc(z.object({ groups: z.array(GroupEntry) }), { id: "GroupsResponse" });
export type GroupsResponse = z.infer<typeof GroupsResponse>;

/** One entry of `GET /v1/groups/{group}/devices`. */
export const DeviceInfo = doc(
  z.object({
    id: z.string(),
    lastSeq: described(z.int(), "highest batch seq applied"),
    lastSeen: described(z.number(), "hub time of the last applied batch or connect, ms"),
    online: z.boolean(),
    readings: described(z.int(), "readings applied, all time"),
  }),
  { id: "DeviceInfo" },
);
export type DeviceInfo = z.infer<typeof DeviceInfo>;
export const DevicesResponse = doc(z.object({ devices: z.array(DeviceInfo) }), { id: "DevicesResponse" });
export type DevicesResponse = z.infer<typeof DevicesResponse>;

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

/** Most raw readings one `GET /v1/groups/{group}/readings` returns (docs/archive.md); a larger `limit` is a 400. */
export const MAX_RAW_READINGS = 100_000;
/** Formats of `GET /v1/groups/{group}/readings`. */
export const RAW_FORMATS = ["json", "csv", "parquet"] as const;
export type RawFormat = (typeof RAW_FORMATS)[number];

/** Query of `GET /v1/groups/{group}/readings`: the aggregates' filter, a format and a row limit. */
export const ReadingsQuery = z
  .object({
    device: filter(ID_PATTERN, `device must match ${ID_RULE}`, "only this device"),
    metric: filter(METRIC_PATTERN, "metric must match [A-Za-z0-9_.:-]{1,64}", "only this metric"),
    from: millis("from"),
    to: millis("to"),
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
  .check(z.refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, "from must not be after to"));
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

/**
 * A rules document as `GET /v1/groups/{group}/rules` answers it. `PUT` bodies
 * are checked by `validateRules` (schema/rules.ts), whose messages name the
 * offending field; this schema documents the same shape.
 */
export const Rule = doc(
  z.object({
    id: z.string().check(z.regex(ID_PATTERN)),
    metric: z.string().check(z.regex(METRIC_PATTERN)),
    op: z.enum(RULE_OPS),
    threshold: z.number(),
    device: described(z.optional(z.string().check(z.regex(ID_PATTERN))), "only this device"),
    forMs: described(z.int().check(z.minimum(0)), "how long the condition must hold before the alert is raised"),
    hysteresis: described(z.optional(z.number().check(z.minimum(0))), "how far back past the threshold a value must go to clear the alert (> >= < <= only)"),
    minIntervalMs: described(z.optional(z.int().check(z.minimum(0))), "least hub time between two changes of one alert once its burst is spent (default ALERT_MIN_INTERVAL_MS)"),
  }),
  { id: "Rule" },
);
export const RulesDoc = doc(
  z.object({
    rules: z.array(Rule).check(z.maxLength(MAX_RULES)),
    offlineAfterMs: described(z.int().check(z.minimum(0)), "0 turns offline alerts off"),
  }),
  { id: "RulesDoc" },
);

/** One alert of `GET /v1/groups/{group}/alerts`. */
export const AlertEntry = doc(
  z.object({
    id: z.int(),
    kind: described(
      z.enum(["threshold", "offline", "archive", "budget", "storage"]),
      "archive: the raw archive's backlog reached its cap (docs/archive.md); budget: a batch was refused past a cardinality budget (metric holds the error code, device the sender); storage: the group's database neared its budget and the oldest buckets are being pruned (docs/history.md)",
    ),
    ruleId: z.nullable(z.string()),
    device: z.string(),
    metric: z.nullable(z.string()),
    op: z.nullable(z.enum(RULE_OPS)),
    threshold: z.nullable(z.number()),
    value: described(z.nullable(z.number()), "the reading that raised it, or the silence in ms (offline)"),
    raisedAt: z.number(),
    clearedAt: z.nullable(z.number()),
    flapping: described(z.optional(z.literal(true)), "a change was held back: the value flaps around the threshold"),
  }),
  { id: "Alert" },
);
export const AlertsResponse = doc(z.object({ alerts: z.array(AlertEntry) }), { id: "AlertsResponse" });
export type AlertsResponse = z.infer<typeof AlertsResponse>;

/**
 * `GET /v1/groups/{group}/rates`: readings the group applied per slot of hub
 * receive time over the last 15 minutes (the dashboard's readings/s chart).
 */
export const RatesResponse = doc(
  z.object({
    stepMs: described(z.number(), "slot length, ms (10,000)"),
    from: described(z.number(), "start of the first slot, ms since the epoch, a multiple of stepMs"),
    at: described(z.number(), "hub time of the answer; the last slot contains it and is still filling"),
    readings: described(z.array(z.number()), "readings applied in each slot, oldest first"),
  }),
  { id: "RatesResponse" },
);
export type RatesResponse = z.infer<typeof RatesResponse>;

/** One revoked device or gateway. */
export const RevocationEntry = doc(z.object({ kind: PeerKind, id: z.string(), revokedAt: z.number() }), { id: "Revocation" });
export type RevocationEntry = z.infer<typeof RevocationEntry>;
export const RevocationsResponse = doc(z.object({ revocations: z.array(RevocationEntry) }), { id: "RevocationsResponse" });
export type RevocationsResponse = z.infer<typeof RevocationsResponse>;
/** `DELETE /v1/groups/{group}/revocations/{kind}/{id}`: the revocation was lifted. */
export const RevocationLifted = doc(z.object({ kind: PeerKind, id: z.string(), revoked: z.literal(false) }), { id: "RevocationLifted" });
export type RevocationLifted = z.infer<typeof RevocationLifted>;

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
  buckets: described(z.int(), "buckets stored"),
  oldest: described(z.nullable(z.number()), "start of the oldest bucket, ms; null when there is none"),
  keepMs: described(z.nullable(z.number()), "the retention of this resolution, ms; null: forever"),
});
/** `GET /v1/groups/{group}/storage`: the database's size against the group's budget (docs/history.md). */
export const StorageResponse = doc(
  z.object({
    bytes: described(z.number(), "size of the group's database, bytes"),
    budgetBytes: described(z.number(), "MAX_GROUP_BYTES: from 90 % of it the oldest buckets are pruned; at it batches are refused with storage_full"),
    resolutions: z.object({ minute: StorageResolution, hour: StorageResolution, day: StorageResolution }),
  }),
  { id: "StorageResponse" },
);
export type StorageResponse = z.infer<typeof StorageResponse>;

/** `PUT /v1/groups/{group}/peers/{kind}/{id}/seq`: the lastSeq an operator sets (any seq from 0 to 2^53 - 1). */
export const SeqResetBody = doc(
  z.object({ lastSeq: described(z.int().check(z.minimum(0), z.maximum(Number.MAX_SAFE_INTEGER)), "the peer's new highest applied seq") }),
  { id: "SeqResetBody" },
);
export type SeqResetBody = z.infer<typeof SeqResetBody>;
/** One audited seq reset. */
export const SeqReset = doc(
  z.object({
    at: described(z.int(), "hub time of the reset, ms"),
    by: described(z.string(), "who asked: the operator credential's kind, and the Access email when there is one"),
    oldSeq: z.int(),
    newSeq: z.int(),
  }),
  { id: "SeqReset" },
);
/** A peer's stored seq and its resets, newest first. */
export const PeerSeqResponse = doc(z.object({ kind: PeerKind, id: z.string(), lastSeq: z.int(), resets: z.array(SeqReset) }), { id: "PeerSeq" });
export type PeerSeqResponse = z.infer<typeof PeerSeqResponse>;

/** `POST /v1/groups/{group}/devices/{device}/commands`. Args are checked against DOWNLINK_MAX_ARGS_BYTES and ttlMs against DOWNLINK_MAX_TTL_MS by the Worker. */
export const CommandBody = doc(
  z.object({
    name: described(z.string().check(z.regex(COMMAND_NAME_PATTERN, "name must match [A-Za-z0-9_.:-]{1,64}")), "the command, e.g. ping, set_rate, reboot"),
    args: described(z.optional(z.unknown()), "any JSON value the device's handler takes (default null)"),
    ttlMs: described(z.optional(z.int().check(z.minimum(1, "ttlMs must be at least 1"))), "how long the command may wait for its device, ms (default DOWNLINK_DEFAULT_TTL_MS)"),
  }),
  { id: "CommandBody" },
);
export type CommandBody = z.infer<typeof CommandBody>;

/** Statuses of a command: waiting (`queued`, `delivered`) or final. */
export const COMMAND_STATUSES = ["queued", "delivered", "succeeded", "failed", "expired"] as const;
export const CommandStatus = doc(z.enum(COMMAND_STATUSES), { id: "CommandStatus" });
export type CommandStatus = z.infer<typeof CommandStatus>;

/** `202` to a queued command. */
export const CommandQueued = doc(z.object({ id: z.string(), status: z.literal("queued") }), { id: "CommandQueued" });
export type CommandQueued = z.infer<typeof CommandQueued>;

/** One command, as `GET .../commands/{id}` answers it. */
export const CommandEntry = doc(
  z.object({
    id: z.string(),
    name: z.string(),
    args: z.unknown(),
    status: CommandStatus,
    createdAt: described(z.number(), "hub time it was queued, ms"),
    deliveredAt: described(z.nullable(z.number()), "hub time it was last sent to the device"),
    completedAt: described(z.nullable(z.number()), "hub time it reached its final status"),
    expiresAt: z.number(),
    result: described(z.unknown(), "what the device answered (null until then)"),
    error: z.nullable(z.string()),
  }),
  { id: "Command" },
);
export type CommandEntry = z.infer<typeof CommandEntry>;
export const CommandsResponse = doc(z.object({ commands: z.array(CommandEntry) }), { id: "CommandsResponse" });
export type CommandsResponse = z.infer<typeof CommandsResponse>;

/** Query of `GET .../commands`. */
export const CommandsQuery = z.object({
  limit: doc(
    z.pipe(
      z.optional(limitValue),
      z.transform((n) => n ?? 100),
    ),
    { description: "newest N commands, 1 to 1000 (default 100)" },
  ),
});

/** A configuration: a JSON map. */
const ConfigMap = z.record(z.string(), z.unknown());

/** `PUT /v1/groups/{group}/devices/{device}/config`. */
export const ConfigBody = doc(z.object({ desired: described(ConfigMap, "the whole desired configuration (replaces the previous one)") }), { id: "ConfigBody" });
export type ConfigBody = z.infer<typeof ConfigBody>;
export const ConfigVersion = doc(z.object({ version: described(z.int(), "the new desired version") }), { id: "ConfigVersion" });
export type ConfigVersion = z.infer<typeof ConfigVersion>;

/** Most devices one `PUT /v1/groups/{group}/config` names. */
export const MAX_CONFIG_DEVICES = 10_000;

/** `PUT /v1/groups/{group}/config`: one desired configuration for many devices, each at its own next version. */
export const GroupConfigBody = doc(
  z.object({
    desired: described(ConfigMap, "the whole desired configuration of each device"),
    devices: described(
      z.optional(z.array(z.string().check(z.regex(ID_PATTERN, `devices must match ${ID_RULE}`))).check(z.minLength(1), z.maxLength(MAX_CONFIG_DEVICES))),
      "these devices (1 to 10,000); absent: every device the group has seen",
    ),
  }),
  { id: "GroupConfigBody" },
);
export type GroupConfigBody = z.infer<typeof GroupConfigBody>;
export const GroupConfigResult = doc(z.object({ devices: described(z.int(), "devices given the configuration as their next version") }), { id: "GroupConfigResult" });
export type GroupConfigResult = z.infer<typeof GroupConfigResult>;

/** `GET /v1/groups/{group}/devices/{device}/config`. */
export const ConfigResponse = doc(
  z.object({
    desired: ConfigMap,
    version: described(z.int(), "0 before the first PUT"),
    reported: described(z.nullable(ConfigMap), "what the device reported with its last config_applied"),
    appliedVersion: described(z.int(), "the highest version the device reported applied (0: none)"),
  }),
  { id: "DeviceConfig" },
);
export type ConfigResponse = z.infer<typeof ConfigResponse>;

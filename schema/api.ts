/**
 * The REST API (docs/protocol.md, "HTTP routes"), defined once: its paths,
 * the path and query parameters it accepts, and the JSON bodies it answers.
 * The Worker declares its routes and validates requests with these schemas
 * (worker/http/routes.ts), the OpenAPI document at `/v1/openapi.json` is
 * generated from them, and the typed client (schema/client.ts) checks every
 * answer against them. Types are inferred from the schemas, so a body and
 * its type never drift apart.
 *
 * This file holds the paths, parameters and the core bodies; the areas'
 * bodies live in schema/api-history.ts, api-archive.ts and api-downlink.ts,
 * re-exported here so every caller imports the API from this one module.
 */
// zod/mini: the same schemas as classic zod at a fraction of the bundle (the Worker and the dashboard ship them).
import * as z from "zod/mini";
import { described, doc, limitValue } from "./api-doc.ts";
import { ID_PATTERN, METRIC_PATTERN, PEER_KINDS } from "./protocol.ts";
import { MAX_RULES, RULE_OPS } from "./rules.ts";

export { ID_RULE } from "./api-doc.ts";
export * from "./api-archive.ts";
export * from "./api-downlink.ts";
export * from "./api-history.ts";

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
export const PeerKind = doc(z.enum(PEER_KINDS), { id: "PeerKind" });
export type PeerKind = z.infer<typeof PeerKind>;
export const RevocationParams = z.extend(GroupParams, { kind: PeerKind, id: pathId("id", "device or gateway id") });
/** A device or gateway of a group, as in `/peers/{kind}/{id}`. */
export const PeerParams = RevocationParams;

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
      "archive: the raw archive's backlog reached its cap (docs/archive.md); budget: a batch was refused past a cardinality budget (metric holds the error code, device and peerKind the sender); storage: the group's database neared its budget and the oldest buckets are being pruned (docs/history.md)",
    ),
    ruleId: z.nullable(z.string()),
    device: described(z.string(), "the id of the device or gateway the alert is about (peerKind says which); \"\" for the group's own alerts (archive, storage)"),
    peerKind: described(
      z.optional(PeerKind),
      "whose id device is: gateway only for a gateway's budget alert, device for every other alert about a peer; absent for the group's own alerts",
    ),
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

/**
 * REST schemas of the downlink (docs/protocol.md, "Downlink"): commands and
 * desired configuration. Part of the API defined in schema/api.ts, which
 * re-exports it.
 */
import * as z from "zod/mini";
import { ID_RULE, described, doc, limitValue } from "./api-doc.ts";
import { COMMAND_NAME_PATTERN, ID_PATTERN } from "./protocol.ts";

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

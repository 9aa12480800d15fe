/**
 * The public routes (docs/protocol.md, "HTTP routes"), declared once: path,
 * method, who may call it, the parameters it accepts and what it answers.
 * worker/http/app.ts binds a handler to each and validates requests with
 * these schemas; worker/http/openapi.ts generates `/v1/openapi.json` from
 * them.
 */
import type * as z from "zod/mini";
import {
  AggregateQuery,
  AggregatesResponse,
  AlertQuery,
  AlertsResponse,
  CommandBody,
  CommandEntry,
  CommandParams,
  CommandQueued,
  CommandsQuery,
  CommandsResponse,
  ConfigBody,
  ConfigResponse,
  ConfigVersion,
  DeviceParams,
  GroupConfigBody,
  GroupConfigResult,
  DeviceSocketParams,
  DevicesResponse,
  GatewaySocketParams,
  GroupParams,
  GroupsResponse,
  Health,
  PATHS,
  PeerParams,
  PeerSeqResponse,
  ReadingsQuery,
  ReadingsResponse,
  RatesResponse,
  Retention,
  StorageResponse,
  RevocationEntry,
  RevocationLifted,
  RevocationParams,
  RevocationsResponse,
  RulesDoc,
  SeqResetBody,
  SocketQuery,
} from "../../schema/api.ts";

/** Who may call a route (docs/protocol.md, "Auth"). */
export type Caller = "anyone" | "operator" | "all-groups operator" | "device" | "gateway";

/** One route. The 405 and 503 answers apply to every route but health. */
export interface RouteSpec {
  method: "get" | "put" | "post" | "delete";
  /** OpenAPI path template, from {@link PATHS}. */
  path: string;
  summary: string;
  caller: Caller;
  params?: z.ZodMiniObject;
  query?: z.ZodMiniObject;
  /** Documented request body; the handler reads and checks it itself. */
  body?: z.ZodMiniType;
  /** The JSON body of a 200 (or of `status`); absent for WebSocket routes, which answer 101. */
  ok?: z.ZodMiniType;
  /** The success status when it is not 200 (202 for a queued command). */
  status?: number;
  /** Error statuses the route itself answers. */
  errors: readonly number[];
}

export const ROUTES = {
  health: {
    method: "get",
    path: PATHS.health,
    summary: "Liveness; touches no Durable Object. Answers any method.",
    caller: "anyone",
    ok: Health,
    errors: [],
  },
  openapi: {
    method: "get",
    path: PATHS.openapi,
    summary: "This document (OpenAPI 3.1)",
    caller: "anyone",
    errors: [],
  },
  groups: {
    method: "get",
    path: PATHS.groups,
    summary: "Every group a device or gateway has connected to, sorted by id",
    caller: "all-groups operator",
    ok: GroupsResponse,
    errors: [401],
  },
  deviceSocket: {
    method: "get",
    path: PATHS.deviceSocket,
    summary: "Device socket: CBOR frames over WebSocket (docs/protocol.md)",
    caller: "device",
    params: DeviceSocketParams,
    query: SocketQuery,
    errors: [400, 401, 403, 426, 429],
  },
  gatewaySocket: {
    method: "get",
    path: PATHS.gatewaySocket,
    summary: "Gateway socket: CBOR frames for many devices over one WebSocket",
    caller: "gateway",
    params: GatewaySocketParams,
    query: SocketQuery,
    errors: [400, 401, 403, 426, 429],
  },
  devices: {
    method: "get",
    path: PATHS.devices,
    summary: "The group's devices, sorted by id",
    caller: "operator",
    params: GroupParams,
    ok: DevicesResponse,
    errors: [400, 401],
  },
  aggregates: {
    method: "get",
    path: PATHS.aggregates,
    summary: "Minute, hour or day aggregates (default minute), sorted by device, metric, start",
    caller: "operator",
    params: GroupParams,
    query: AggregateQuery,
    ok: AggregatesResponse,
    errors: [400, 401],
  },
  readings: {
    method: "get",
    path: PATHS.readings,
    summary:
      "Raw readings from the archive and the rows not yet flushed, per series by time (docs/archive.md). format=csv answers CSV with a header row, format=parquet a Parquet file; both carry x-truncated",
    caller: "operator",
    params: GroupParams,
    query: ReadingsQuery,
    ok: ReadingsResponse,
    errors: [400, 401],
  },
  live: {
    method: "get",
    path: PATHS.live,
    summary: "Live socket for dashboards: JSON frames over WebSocket",
    caller: "operator",
    params: GroupParams,
    errors: [400, 401, 403, 426],
  },
  getRules: {
    method: "get",
    path: PATHS.rules,
    summary: "The group's alert rules",
    caller: "operator",
    params: GroupParams,
    ok: RulesDoc,
    errors: [400, 401],
  },
  putRules: {
    method: "put",
    path: PATHS.rules,
    summary: "Replace the group's alert rules",
    caller: "operator",
    params: GroupParams,
    body: RulesDoc,
    ok: RulesDoc,
    errors: [400, 401, 413],
  },
  alerts: {
    method: "get",
    path: PATHS.alerts,
    summary: "Alert history, newest first",
    caller: "operator",
    params: GroupParams,
    query: AlertQuery,
    ok: AlertsResponse,
    errors: [400, 401],
  },
  rates: {
    method: "get",
    path: PATHS.rates,
    summary: "Readings applied per 10-second slot over the last 15 minutes",
    caller: "operator",
    params: GroupParams,
    ok: RatesResponse,
    errors: [400, 401],
  },
  revocations: {
    method: "get",
    path: PATHS.revocations,
    summary: "Revoked devices and gateways",
    caller: "operator",
    params: GroupParams,
    ok: RevocationsResponse,
    errors: [400, 401],
  },
  revoke: {
    method: "put",
    path: PATHS.revocation,
    summary: "Revoke a device or gateway; its socket is closed at once",
    caller: "operator",
    params: RevocationParams,
    ok: RevocationEntry,
    errors: [400, 401, 404],
  },
  restore: {
    method: "delete",
    path: PATHS.revocation,
    summary: "Lift a revocation (404 not_revoked if there is none)",
    caller: "operator",
    params: RevocationParams,
    ok: RevocationLifted,
    errors: [400, 401, 404],
  },
  peerSeq: {
    method: "get",
    path: PATHS.peerSeq,
    summary: "A device's or gateway's lastSeq and the audit of its resets, newest first",
    caller: "operator",
    params: PeerParams,
    ok: PeerSeqResponse,
    errors: [400, 401, 404],
  },
  resetSeq: {
    method: "put",
    path: PATHS.peerSeq,
    summary: "Set a device's or gateway's lastSeq (audited: who, when, old and new value)",
    caller: "operator",
    params: PeerParams,
    body: SeqResetBody,
    ok: PeerSeqResponse,
    errors: [400, 401, 404, 413],
  },
  queueCommand: {
    method: "post",
    path: PATHS.commands,
    summary: "Queue a command for a device; sent at once if it is online with downlink=1, else after its next hello",
    caller: "operator",
    params: DeviceParams,
    body: CommandBody,
    ok: CommandQueued,
    status: 202,
    errors: [400, 401, 413, 429],
  },
  commands: {
    method: "get",
    path: PATHS.commands,
    summary: "A device's commands, newest first",
    caller: "operator",
    params: DeviceParams,
    query: CommandsQuery,
    ok: CommandsResponse,
    errors: [400, 401],
  },
  command: {
    method: "get",
    path: PATHS.command,
    summary: "One command and its status",
    caller: "operator",
    params: CommandParams,
    ok: CommandEntry,
    errors: [400, 401, 404],
  },
  putConfig: {
    method: "put",
    path: PATHS.config,
    summary: "Replace a device's desired configuration; answers its new version",
    caller: "operator",
    params: DeviceParams,
    body: ConfigBody,
    ok: ConfigVersion,
    errors: [400, 401, 413],
  },
  putGroupConfig: {
    method: "put",
    path: PATHS.groupConfig,
    summary: "One desired configuration for many devices (or every device the group has seen), each at its own next version",
    caller: "operator",
    params: GroupParams,
    body: GroupConfigBody,
    ok: GroupConfigResult,
    errors: [400, 401, 413],
  },
  getConfig: {
    method: "get",
    path: PATHS.config,
    summary: "A device's desired and reported configuration and their versions",
    caller: "operator",
    params: DeviceParams,
    ok: ConfigResponse,
    errors: [400, 401],
  },
  getRetention: {
    method: "get",
    path: PATHS.retention,
    summary: "How long minute, hour and day buckets are kept (docs/history.md)",
    caller: "operator",
    params: GroupParams,
    ok: Retention,
    errors: [400, 401],
  },
  storage: {
    method: "get",
    path: PATHS.storage,
    summary: "The group's database size against its budget, and the buckets of each resolution (docs/history.md)",
    caller: "operator",
    params: GroupParams,
    ok: StorageResponse,
    errors: [400, 401],
  },
  putRetention: {
    method: "put",
    path: PATHS.retention,
    summary: "Set how long minute, hour and day buckets are kept; pruning by it starts within seconds",
    caller: "operator",
    params: GroupParams,
    body: Retention,
    ok: Retention,
    errors: [400, 401, 413],
  },
} as const satisfies Record<string, RouteSpec>;

/** Why each error status is answered; every error body is `{error, message}`. */
export const ERROR_REASONS: Record<number, string> = {
  400: "bad_group, bad_device, bad_gateway, bad_id, bad_query, bad_rules or bad_body (a command or configuration over DOWNLINK_MAX_ARGS_BYTES, a ttlMs over DOWNLINK_MAX_TTL_MS)",
  401: "unauthorized: missing or invalid token",
  403: "revoked: this device or gateway has been revoked; bad_origin: a live socket authenticated by Cloudflare Access from a page of another origin",
  404: "not_found (no such revocation, peer kind or command, or a peer that never connected), or not_revoked",
  405: "method_not_allowed; the Allow header lists the methods",
  413: "too_large: body over 64 KiB",
  426: "upgrade_required: this route only accepts WebSocket upgrades",
  429: "rate_limited: this device or gateway was closed for sending more work than its budget and is still in debt, or over DOWNLINK_COMMANDS_PER_SEC for the group; too_many_commands: the device has DOWNLINK_MAX_QUEUED commands waiting (all with Retry-After)",
  503: "not_configured (no HUB_SECRET), or too_many_sockets on a socket route (with Retry-After)",
};

/** `/v1/groups/{group}` (OpenAPI) as `/v1/groups/:group` (Hono). */
export function honoPath(path: string): string {
  return path.replaceAll(/\{(\w+)\}/g, ":$1");
}

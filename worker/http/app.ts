/**
 * The Worker's HTTP surface: a Hono app binding a handler to each route of
 * routes.ts. Every request is checked completely here, in the order
 * docs/protocol.md gives (route, method, secret, ids, upgrade, query,
 * token), before a Durable Object is touched, so a bad request costs no
 * Durable Object request.
 */
import { Hono, type Context, type MiddlewareHandler } from "hono";
import type * as z from "zod/mini";
import { CommandBody, ConfigBody, GroupConfigBody, ID_RULE, MAX_RAW_READINGS, PATHS, Retention, SeqResetBody } from "../../schema/api.ts";
import { cborSize, isJsonValue } from "../../schema/downlink.ts";
import { readDownlinkLimits } from "../../schema/limits.ts";
import { exportReadings } from "../group/archive/export.ts";
import { PROTOCOL_VERSION } from "../../schema/protocol.ts";
import { validateRules } from "../../schema/rules.ts";
import { log } from "../log.ts";
import { REGISTRY_NAME } from "../registry.ts";
import { extractToken, isAccessRequest, isDeviceAuthorized, isGatewayAuthorized, isOperatorAuthorized, isOperatorRequest, secretsOf } from "./auth.ts";
import { json, jsonError } from "./json.ts";
import { openApiDocument } from "./openapi.ts";
import { isAllowedOrigin } from "./origin.ts";
import { firstValues } from "./params.ts";
import { honoPath, ROUTES, type RouteSpec } from "./routes.ts";

type HubEnv = { Bindings: Env };
type Ctx = Context<HubEnv>;

/** Largest rules body accepted, bytes. 100 rules fit in a fraction of it. */
const MAX_RULES_BODY = 64 * 1024;

/** The answer to a bad path parameter, by parameter name. */
const PARAM_ERRORS: Record<string, [status: number, code: string, message: string]> = {
  group: [400, "bad_group", `group id must match ${ID_RULE}`],
  device: [400, "bad_device", `device id must match ${ID_RULE}`],
  gateway: [400, "bad_gateway", `gateway id must match ${ID_RULE}`],
  kind: [404, "not_found", "peer kinds are device and gateway: /revocations/device/{id}, /peers/gateway/{id}/seq"],
  id: [400, "bad_id", `id must match ${ID_RULE}`],
};

function paramError(error: z.core.$ZodError): Response {
  const [status, code, message] = PARAM_ERRORS[String(error.issues[0]?.path[0])] ?? [400, "bad_request", "bad path parameter"];
  return jsonError(status, code, message);
}

function isConfigured(env: Env): boolean {
  // The current secret must be set; the previous one only ever adds to it.
  return typeof env.HUB_SECRET === "string" && env.HUB_SECRET.length > 0;
}

function notConfigured(): Response {
  return jsonError(503, "not_configured", "HUB_SECRET is not configured; set it with `wrangler secret put HUB_SECRET`");
}

function unauthorized(): Response {
  return jsonError(401, "unauthorized", "missing or invalid token", { "www-authenticate": 'Bearer realm="telemetry-hub"' });
}

function upgradeRequired(): Response {
  return jsonError(426, "upgrade_required", "this route only accepts WebSocket upgrades", { upgrade: "websocket" });
}

const isUpgrade = (c: Ctx): boolean => c.req.header("upgrade")?.toLowerCase() === "websocket";
const tokenOf = (c: Ctx): string | null => extractToken(c.req.raw, new URL(c.req.url));
const isOperator = (c: Ctx, group: string): Promise<boolean> => isOperatorRequest(c.req.raw, c.env, secretsOf(c.env), tokenOf(c), group);

/** Forwards a checked upgrade to the group's Durable Object; the token stays in the Worker. */
function toGroup(c: Ctx, group: string, what: string, params: Record<string, string> = {}): Promise<Response> {
  const target = new URL(`https://group.internal/${what}`);
  target.searchParams.set("group", group);
  for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
  return c.env.GROUPS.getByName(group).fetch(target, { headers: { upgrade: "websocket" } });
}

/**
 * Method, then secret, for every request to a declared path. It reads the
 * raw method because Hono routes HEAD as GET, and HEAD was never accepted.
 */
function gate(methods: readonly string[]): MiddlewareHandler<HubEnv> {
  const allow = methods.join(", ");
  return async (c, next) => {
    if (!methods.includes(c.req.raw.method)) return jsonError(405, "method_not_allowed", `this route accepts ${allow}`, { allow });
    // Refuse rather than run open: a hub without a secret cannot tell devices apart.
    if (!isConfigured(c.env)) return notConfigured();
    await next();
    return undefined;
  };
}

type Out<T> = T extends z.ZodMiniType ? z.output<T> : Record<string, never>;
/** A route's validated parameters, and `reply`, which types the 200 body by the route's schema. */
interface Input<S extends RouteSpec> {
  params: Out<S["params"]>;
  query: Out<S["query"]>;
  reply: (body: S["ok"] extends z.ZodMiniType ? z.input<S["ok"]> : never) => Response;
}

export const app = new Hono<HubEnv>();

// Method and secret checks come first, on every declared path (health answers any method itself).
const methodsByPath = new Map<string, string[]>();
for (const r of Object.values(ROUTES) as RouteSpec[]) {
  if (r.path !== PATHS.health) methodsByPath.set(r.path, [...(methodsByPath.get(r.path) ?? []), r.method.toUpperCase()]);
}
for (const [path, methods] of methodsByPath) app.use(honoPath(path), gate(methods));

/** Binds a handler to a route: path ids first, then the query, as docs/protocol.md orders the checks. */
function route<S extends RouteSpec>(spec: S, handler: (c: Ctx, input: Input<S>) => Promise<Response>): void {
  app.on(spec.method.toUpperCase(), honoPath(spec.path), async (c) => {
    const params = spec.params?.safeParse(c.req.param());
    if (params && !params.success) return paramError(params.error);
    const query = spec.query?.safeParse(firstValues(new URL(c.req.url).searchParams));
    if (query && !query.success) return jsonError(400, "bad_query", query.error.issues[0]?.message ?? "bad query");
    // Both were just parsed by the route's own schemas; only the generic type is restated.
    return handler(c, { params: params?.data ?? {}, query: query?.data ?? {}, reply: json } as Input<S>);
  });
}

// Liveness has always answered any method: load balancers probe with HEAD or POST too.
app.all(PATHS.health, (c) => (isConfigured(c.env) ? json({ ok: true, protocol: PROTOCOL_VERSION }) : notConfigured()));

let doc: unknown = null;
app.get(PATHS.openapi, () => json((doc ??= openApiDocument())));

route(ROUTES.groups, async (c, { reply }) => {
  // Only the all-groups operator (or Cloudflare Access) may see every group's name.
  if (!(await isOperator(c, "*"))) return unauthorized();
  return reply({ groups: await c.env.REGISTRY.getByName(REGISTRY_NAME).list() });
});

/** The socket's opt-ins for the group's object: `downlink=1` (docs/protocol.md, "Downlink"). */
const optIns = (downlink: "0" | "1" | undefined): Record<string, string> => (downlink === "1" ? { downlink } : {});

route(ROUTES.deviceSocket, async (c, { params: { group, device }, query: { downlink } }) => {
  if (!isUpgrade(c)) return upgradeRequired();
  const token = tokenOf(c);
  if (token === null || !(await isDeviceAuthorized(secretsOf(c.env), token, group, device))) return unauthorized();
  return toGroup(c, group, "device", { device, ...optIns(downlink) });
});

route(ROUTES.gatewaySocket, async (c, { params: { group, gateway }, query: { downlink } }) => {
  if (!isUpgrade(c)) return upgradeRequired();
  const token = tokenOf(c);
  if (token === null || !(await isGatewayAuthorized(secretsOf(c.env), token, group, gateway))) return unauthorized();
  return toGroup(c, group, "gateway", { gateway, ...optIns(downlink) });
});

route(ROUTES.live, async (c, { params: { group } }) => {
  if (!isUpgrade(c)) return upgradeRequired();
  const token = tokenOf(c);
  if (token !== null && (await isOperatorAuthorized(secretsOf(c.env), token, group))) return toGroup(c, group, "live");
  if (!(await isAccessRequest(c.req.raw, c.env))) return unauthorized();
  // The Access cookie rides along with any page's handshake: only the hub's own pages may use it (origin.ts).
  if (!isAllowedOrigin(c.req.raw, c.env.LIVE_ALLOWED_ORIGINS)) {
    return jsonError(403, "bad_origin", "this Origin may not open the live socket with Access credentials; see LIVE_ALLOWED_ORIGINS");
  }
  return toGroup(c, group, "live");
});

route(ROUTES.devices, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply({ devices: await c.env.GROUPS.getByName(group).listDevices() });
});

route(ROUTES.aggregates, async (c, { params: { group }, query, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).queryAggregates(query));
});

route(ROUTES.readings, async (c, { params: { group }, query }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const { format = "json", limit = MAX_RAW_READINGS, ...filter } = query;
  const r = await c.env.GROUPS.getByName(group).readRaw({ ...filter, limit });
  if (!r.ok) return jsonError(400, "range_too_large", r.message);
  const { body, type } = exportReadings(r.columns, r.truncated, format);
  return new Response(body, { headers: { "content-type": type, "cache-control": "no-store", "x-truncated": String(r.truncated) } });
});

route(ROUTES.getRules, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).getRules());
});

route(ROUTES.putRules, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const tooLarge = () => jsonError(413, "too_large", `rules body is limited to ${MAX_RULES_BODY} bytes`);
  if (Number(c.req.header("content-length") ?? "0") > MAX_RULES_BODY) return tooLarge();
  const text = await c.req.raw.text();
  if (text.length > MAX_RULES_BODY) return tooLarge();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return jsonError(400, "bad_rules", "body is not JSON");
  }
  // The hand-written validator, not the schema: its messages name the offending field.
  const checked = validateRules(body);
  if (!checked.ok) return jsonError(400, "bad_rules", checked.message);
  return reply(await c.env.GROUPS.getByName(group).putRules(checked.doc));
});

route(ROUTES.alerts, async (c, { params: { group }, query: { active, limit }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply({ alerts: await c.env.GROUPS.getByName(group).listAlerts(active, limit) });
});

route(ROUTES.rates, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).rateHistory());
});

route(ROUTES.revocations, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply({ revocations: await c.env.GROUPS.getByName(group).listRevocations() });
});

route(ROUTES.revoke, async (c, { params: { group, kind, id }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).revoke(kind, id));
});

route(ROUTES.restore, async (c, { params: { group, kind, id }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const lifted = await c.env.GROUPS.getByName(group).restore(kind, id);
  return lifted ? reply({ kind, id, revoked: false }) : jsonError(404, "not_revoked", `${kind} ${id} is not revoked`);
});

/** Largest seq reset body accepted, bytes. */
const MAX_SEQ_BODY = 1024;

/** Who made an operator request, for the audit: the credential's kind, with the Access email when there is one. */
function callerOf(c: Ctx): string {
  if (tokenOf(c) !== null) return "operator token";
  const email = c.req.header("cf-access-authenticated-user-email");
  return email ? `access:${email}` : "access";
}

route(ROUTES.peerSeq, async (c, { params: { group, kind, id }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const seq = await c.env.GROUPS.getByName(group).peerSeq(kind, id);
  return seq ? reply({ kind, id, ...seq }) : jsonError(404, "not_found", `${kind} ${id} never connected to this group`);
});

route(ROUTES.resetSeq, async (c, { params: { group, kind, id }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const text = await c.req.raw.text();
  if (text.length > MAX_SEQ_BODY) return jsonError(413, "too_large", `body is limited to ${MAX_SEQ_BODY} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return jsonError(400, "bad_body", "body is not JSON");
  }
  const checked = SeqResetBody.safeParse(body);
  if (!checked.success) return jsonError(400, "bad_body", 'body must be {"lastSeq": N}, N an integer from 0 to 2^53 - 1');
  const seq = await c.env.GROUPS.getByName(group).resetSeq(kind, id, checked.data.lastSeq, callerOf(c));
  return seq ? reply({ kind, id, ...seq }) : jsonError(404, "not_found", `${kind} ${id} never connected to this group`);
});

/** Largest command or configuration body, bytes; their values are limited far below (DOWNLINK_MAX_ARGS_BYTES). */
const MAX_DOWNLINK_BODY = 64 * 1024;

/** A request's JSON body, or the 413/400 answer when it is too large or not JSON. */
async function jsonBody(c: Ctx, max: number): Promise<{ ok: true; body: unknown } | { ok: false; response: Response }> {
  const tooLarge = { ok: false as const, response: jsonError(413, "too_large", `body is limited to ${max} bytes`) };
  if (Number(c.req.header("content-length") ?? "0") > max) return tooLarge;
  const text = await c.req.raw.text();
  if (text.length > max) return tooLarge;
  try {
    return { ok: true, body: JSON.parse(text) };
  } catch {
    return { ok: false, response: jsonError(400, "bad_body", "body is not JSON") };
  }
}

/** Why a command's args or a configuration cannot be sent, or null. */
function downlinkValueError(what: string, v: unknown, maxBytes: number): string | null {
  if (!isJsonValue(v)) return `${what} is nested too deeply`;
  return cborSize(v) > maxBytes ? `${what} exceeds ${maxBytes} bytes as CBOR (DOWNLINK_MAX_ARGS_BYTES)` : null;
}

route(ROUTES.queueCommand, async (c, { params: { group, device } }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const read = await jsonBody(c, MAX_DOWNLINK_BODY);
  if (!read.ok) return read.response;
  const checked = CommandBody.safeParse(read.body);
  if (!checked.success) return jsonError(400, "bad_body", `body must be {"name", "args"?, "ttlMs"?}: ${checked.error.issues[0]?.message ?? ""}`);
  const limits = readDownlinkLimits({ ...c.env });
  const args = checked.data.args ?? null;
  const bad = downlinkValueError("args", args, limits.maxArgsBytes);
  if (bad) return jsonError(400, "bad_body", bad);
  const ttlMs = checked.data.ttlMs ?? Math.min(limits.defaultTtlMs, limits.maxTtlMs);
  if (ttlMs > limits.maxTtlMs) return jsonError(400, "bad_body", `ttlMs is above ${limits.maxTtlMs} (DOWNLINK_MAX_TTL_MS)`);
  const r = await c.env.GROUPS.getByName(group).queueCommand(device, { name: checked.data.name, args, ttlMs });
  if (!r.ok) return jsonError(429, r.code, r.message, { "retry-after": String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))) });
  return json({ id: r.id, status: "queued" }, 202);
});

route(ROUTES.commands, async (c, { params: { group, device }, query: { limit }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply({ commands: await c.env.GROUPS.getByName(group).listCommands(device, limit) });
});

route(ROUTES.command, async (c, { params: { group, device, id }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const cmd = await c.env.GROUPS.getByName(group).getCommand(device, id);
  return cmd ? reply(cmd) : jsonError(404, "not_found", `device ${device} has no command ${id}`);
});

route(ROUTES.putConfig, async (c, { params: { group, device }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const read = await jsonBody(c, MAX_DOWNLINK_BODY);
  if (!read.ok) return read.response;
  const checked = ConfigBody.safeParse(read.body);
  if (!checked.success) return jsonError(400, "bad_body", 'body must be {"desired": {...}}, a JSON map');
  const bad = downlinkValueError("desired", checked.data.desired, readDownlinkLimits({ ...c.env }).maxArgsBytes);
  if (bad) return jsonError(400, "bad_body", bad);
  return reply({ version: await c.env.GROUPS.getByName(group).putConfig(device, checked.data.desired) });
});

/** Largest group configuration body: 10,000 device ids and a configuration. */
const MAX_GROUP_CONFIG_BODY = 1024 * 1024;

route(ROUTES.putGroupConfig, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const read = await jsonBody(c, MAX_GROUP_CONFIG_BODY);
  if (!read.ok) return read.response;
  const checked = GroupConfigBody.safeParse(read.body);
  if (!checked.success) return jsonError(400, "bad_body", `body must be {"desired": {...}, "devices"?: [...]}: ${checked.error.issues[0]?.message ?? ""}`);
  const bad = downlinkValueError("desired", checked.data.desired, readDownlinkLimits({ ...c.env }).maxArgsBytes);
  if (bad) return jsonError(400, "bad_body", bad);
  return reply({ devices: await c.env.GROUPS.getByName(group).putGroupConfig(checked.data.devices ?? null, checked.data.desired) });
});

route(ROUTES.getConfig, async (c, { params: { group, device }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).getConfig(device));
});

/** Largest retention body accepted, bytes. */
const MAX_RETENTION_BODY = 1024;

route(ROUTES.storage, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).storage());
});

route(ROUTES.getRetention, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  return reply(await c.env.GROUPS.getByName(group).getRetention());
});

route(ROUTES.putRetention, async (c, { params: { group }, reply }) => {
  if (!(await isOperator(c, group))) return unauthorized();
  const read = await jsonBody(c, MAX_RETENTION_BODY);
  if (!read.ok) return read.response;
  const checked = Retention.safeParse(read.body);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    return jsonError(400, "bad_body", `body must be {"minuteMs", "hourMs", "dayMs"}, each ms or null (forever); ${where}${issue?.message ?? "invalid"}`);
  }
  return reply(await c.env.GROUPS.getByName(group).putRetention(checked.data));
});

app.notFound((c) => {
  // Static assets normally answer before the Worker runs (assets config in
  // wrangler.jsonc); this covers requests routed to the Worker first.
  if (!c.req.path.startsWith("/v1/")) return c.env.ASSETS.fetch(c.req.raw);
  // An empty segment (`/v1/groups//devices`) is a bad id, not an unknown route.
  // Hono's fast router never matches an empty parameter (allowing one costs
  // every request its slower router), so such a path is tried once more with
  // an id no route accepts in place of each empty segment.
  const url = new URL(c.req.url);
  if (/\/(?=\/|$)/.test(url.pathname)) {
    url.pathname = url.pathname.replace(/\/(?=\/|$)/g, "/%00");
    return app.fetch(new Request(url, c.req.raw), c.env);
  }
  return jsonError(404, "not_found", "no such route");
});

app.onError((err, c) => {
  log.error("worker.fetch", err, { path: c.req.path });
  return jsonError(500, "internal", "internal error");
});

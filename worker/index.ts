/**
 * The Worker: validates and authenticates every request, then routes it to
 * the group's Durable Object. Nothing reaches a Durable Object before the
 * ids, the upgrade header and the token have been checked, so a bad request
 * costs no Durable Object request.
 */
import { PROTOCOL_VERSION, isValidId } from "../schema/protocol.ts";
import { extractToken, isDeviceAuthorized, isGatewayAuthorized, isOperatorRequest, secretsOf } from "./http/auth.ts";
import { json, jsonError, unauthorized } from "./http/json.ts";
import { parseAggregateQuery } from "./http/params.ts";
import { handleOperatorRoute } from "./http/operator.ts";
import { allowedMethods, matchRoute } from "./http/routes.ts";
import { log } from "./log.ts";
import { REGISTRY_NAME } from "./registry.ts";

export { GroupHub } from "./group/GroupHub.ts";
export { GroupRegistry } from "./registry.ts";

export default {
  async fetch(request, env): Promise<Response> {
    try {
      return await handle(request, env);
    } catch (err) {
      log.error("worker.fetch", err, { path: new URL(request.url).pathname });
      return jsonError(500, "internal", "internal error");
    }
  },
} satisfies ExportedHandler<Env>;

async function handle(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  if (!url.pathname.startsWith("/v1/")) {
    // Static assets normally answer before the Worker runs (assets config in
    // wrangler.jsonc); this covers requests routed to the Worker first.
    return env.ASSETS.fetch(request);
  }
  // The current secret must be set; the previous one only ever adds to it.
  const configured = typeof env.HUB_SECRET === "string" && env.HUB_SECRET.length > 0;
  const secret = secretsOf(env);
  if (url.pathname === "/v1/health") {
    // Liveness for load balancers and test harnesses; touches no Durable Object.
    return configured ? json({ ok: true, protocol: PROTOCOL_VERSION }) : notConfigured();
  }
  if (url.pathname === "/v1/groups") return listGroups(request, url, env, configured);
  const route = matchRoute(url.pathname);
  if (!route) return jsonError(404, "not_found", "no such route");
  const methods = allowedMethods(route);
  if (!methods.includes(request.method)) {
    return jsonError(405, "method_not_allowed", `this route accepts ${methods.join(", ")}`, { allow: methods.join(", ") });
  }
  // Refuse rather than run open: a hub without a secret cannot tell devices apart.
  if (!configured) return notConfigured();
  if (!isValidId(route.group)) return jsonError(400, "bad_group", "group id must match [A-Za-z0-9_.-]{1,64}");
  const token = extractToken(request, url);

  switch (route.kind) {
    case "device-socket": {
      if (!isValidId(route.device)) return jsonError(400, "bad_device", "device id must match [A-Za-z0-9_.-]{1,64}");
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return jsonError(426, "upgrade_required", "this route only accepts WebSocket upgrades", { upgrade: "websocket" });
      }
      if (token === null || !(await isDeviceAuthorized(secret, token, route.group, route.device))) {
        return unauthorized();
      }
      const target = new URL("https://group.internal/device");
      target.searchParams.set("group", route.group);
      target.searchParams.set("device", route.device);
      // Only the upgrade travels on; the token stays in the Worker.
      return env.GROUPS.getByName(route.group).fetch(target, { headers: { upgrade: "websocket" } });
    }
    case "gateway-socket": {
      if (!isValidId(route.gateway)) return jsonError(400, "bad_gateway", "gateway id must match [A-Za-z0-9_.-]{1,64}");
      if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return jsonError(426, "upgrade_required", "this route only accepts WebSocket upgrades", { upgrade: "websocket" });
      }
      if (token === null || !(await isGatewayAuthorized(secret, token, route.group, route.gateway))) {
        return unauthorized();
      }
      const target = new URL("https://group.internal/gateway");
      target.searchParams.set("group", route.group);
      target.searchParams.set("gateway", route.gateway);
      return env.GROUPS.getByName(route.group).fetch(target, { headers: { upgrade: "websocket" } });
    }
    case "devices": {
      if (!(await isOperatorRequest(request, env, secret, token, route.group))) return unauthorized();
      const devices = await env.GROUPS.getByName(route.group).listDevices();
      return json({ devices });
    }
    case "aggregates": {
      const q = parseAggregateQuery(url.searchParams);
      if (!q.ok) return jsonError(400, "bad_query", q.message);
      if (!(await isOperatorRequest(request, env, secret, token, route.group))) return unauthorized();
      const result = await env.GROUPS.getByName(route.group).queryAggregates(q.value);
      return json(result);
    }
    case "live":
    case "rules":
    case "alerts":
    case "rates":
    case "revocations":
    case "revocation":
      return handleOperatorRoute(route, request, url, env, secret, token);
  }
}


/** GET /v1/groups: every group that has had a device or gateway, for all-groups operators. */
async function listGroups(request: Request, url: URL, env: Env, configured: boolean): Promise<Response> {
  if (request.method !== "GET") return jsonError(405, "method_not_allowed", "this route accepts GET", { allow: "GET" });
  if (!configured) return notConfigured();
  // Only the all-groups operator (or Cloudflare Access) may see every group's name.
  if (!(await isOperatorRequest(request, env, secretsOf(env), extractToken(request, url), "*"))) return unauthorized();
  return json({ groups: await env.REGISTRY.getByName(REGISTRY_NAME).list() });
}

function notConfigured(): Response {
  return jsonError(503, "not_configured", "HUB_SECRET is not configured; set it with `wrangler secret put HUB_SECRET`");
}

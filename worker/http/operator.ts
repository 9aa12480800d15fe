/**
 * Operator routes for the dashboard: the live socket, rules, alerts and the readings/s history
 * (docs/protocol.md). Like every route, each is checked completely here
 * before the group's Durable Object is called.
 */
import { isValidId } from "../../schema/protocol.ts";
import { validateRules } from "../../schema/rules.ts";
import { isOperatorRequest, type Secrets } from "./auth.ts";
import { json, jsonError, unauthorized } from "./json.ts";
import type { Route } from "./routes.ts";

/** Largest rules body accepted, bytes. 100 rules fit in a fraction of it. */
const MAX_RULES_BODY = 64 * 1024;

export async function handleOperatorRoute(
  route: Route & { kind: "live" | "rules" | "alerts" | "rates" | "revocations" | "revocation" },
  request: Request,
  url: URL,
  env: Env,
  secret: Secrets,
  token: string | null,
): Promise<Response> {
  if (route.kind === "live" && request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return jsonError(426, "upgrade_required", "this route only accepts WebSocket upgrades", { upgrade: "websocket" });
  }
  let alertQuery: { active: boolean; limit: number } | null = null;
  if (route.kind === "alerts") {
    const active = url.searchParams.get("active");
    const limitRaw = url.searchParams.get("limit");
    if (active !== null && active !== "true" && active !== "false") return jsonError(400, "bad_query", "active must be true or false");
    const limit = limitRaw === null ? 100 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return jsonError(400, "bad_query", "limit must be an integer from 1 to 1000");
    alertQuery = { active: active === "true", limit };
  }
  if (route.kind === "revocation") {
    if (route.peer !== "device" && route.peer !== "gateway") return jsonError(404, "not_found", "revocations are /revocations/device/{id} or /revocations/gateway/{id}");
    if (!isValidId(route.id)) return jsonError(400, "bad_id", "id must match [A-Za-z0-9_.-]{1,64}");
  }
  if (!(await isOperatorRequest(request, env, secret, token, route.group))) return unauthorized();
  const stub = env.GROUPS.getByName(route.group);

  switch (route.kind) {
    case "live": {
      const target = new URL("https://group.internal/live");
      target.searchParams.set("group", route.group);
      return stub.fetch(target, { headers: { upgrade: "websocket" } });
    }
    case "alerts":
      return json({ alerts: await stub.listAlerts(alertQuery?.active ?? false, alertQuery?.limit ?? 100) });
    case "rates":
      return json(await stub.rateHistory());
    case "revocations":
      return json({ revocations: await stub.listRevocations() });
    case "revocation": {
      const peer = route.peer === "gateway" ? "gateway" : "device";
      if (request.method === "PUT") return json(await stub.revoke(peer, route.id));
      const lifted = await stub.restore(peer, route.id);
      return lifted ? json({ kind: peer, id: route.id, revoked: false }) : jsonError(404, "not_revoked", `${peer} ${route.id} is not revoked`);
    }
    case "rules": {
      if (request.method === "GET") return json(await stub.getRules());
      const declared = Number(request.headers.get("content-length") ?? "0");
      if (declared > MAX_RULES_BODY) return jsonError(413, "too_large", `rules body is limited to ${MAX_RULES_BODY} bytes`);
      const text = await request.text();
      if (text.length > MAX_RULES_BODY) return jsonError(413, "too_large", `rules body is limited to ${MAX_RULES_BODY} bytes`);
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return jsonError(400, "bad_rules", "body is not JSON");
      }
      const checked = validateRules(body);
      if (!checked.ok) return jsonError(400, "bad_rules", checked.message);
      return json(await stub.putRules(checked.doc));
    }
  }
}

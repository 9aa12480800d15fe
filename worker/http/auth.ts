/** Token extraction and checks for the Worker (docs/protocol.md, "Auth"). */
import { deviceSubject, gatewaySubject, operatorSubject, verifyToken } from "../../schema/token.ts";
import { accessConfig, accessToken, verifyAccessJwt } from "./access.ts";

/**
 * The token from `Authorization: Bearer <token>`, else from `?token=`.
 * Browsers and many devices cannot set headers on a WebSocket handshake,
 * hence the query parameter.
 */
export function extractToken(request: Request, url: URL): string | null {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m?.[1] ?? null;
  }
  return url.searchParams.get("token");
}

/**
 * The secrets tokens are checked against: HUB_SECRET, and during a key
 * rotation also HUB_SECRET_PREVIOUS (docs/security.md, "Rotating the key").
 */
export type Secrets = readonly string[];

export function secretsOf(env: { HUB_SECRET?: string; HUB_SECRET_PREVIOUS?: string }): Secrets {
  return [env.HUB_SECRET, env.HUB_SECRET_PREVIOUS].filter((s): s is string => typeof s === "string" && s.length > 0);
}

async function verifyAny(secrets: Secrets, subjects: readonly string[], token: string): Promise<boolean> {
  for (const secret of secrets) {
    for (const subject of subjects) if (await verifyToken(secret, subject, token)) return true;
  }
  return false;
}

export function isDeviceAuthorized(secrets: Secrets, token: string, group: string, device: string): Promise<boolean> {
  return verifyAny(secrets, [deviceSubject(group, device)], token);
}

export function isGatewayAuthorized(secrets: Secrets, token: string, group: string, gateway: string): Promise<boolean> {
  return verifyAny(secrets, [gatewaySubject(group, gateway)], token);
}

/** An operator token for this group, or the all-groups `operator:*` token. */
export function isOperatorAuthorized(secrets: Secrets, token: string, group: string): Promise<boolean> {
  return verifyAny(secrets, [operatorSubject(group), operatorSubject("*")], token);
}

/**
 * Whether a request may act as operator for `group`: an operator token, or,
 * where Cloudflare Access is configured, a valid Access JWT (all groups).
 */
export async function isOperatorRequest(request: Request, env: Env, secrets: Secrets, token: string | null, group: string): Promise<boolean> {
  if (token !== null && (await isOperatorAuthorized(secrets, token, group))) return true;
  return isAccessRequest(request, env);
}

/** Whether Cloudflare Access is configured and the request carries a valid Access JWT (header or cookie). */
export async function isAccessRequest(request: Request, env: Env): Promise<boolean> {
  const cfg = accessConfig(env);
  if (!cfg) return false;
  const jwt = accessToken(request);
  return jwt !== null && (await verifyAccessJwt(cfg, jwt)) !== null;
}

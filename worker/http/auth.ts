/** Token extraction and checks for the Worker (docs/protocol.md, "Auth"). */
import { deviceSubject, gatewaySubject, operatorSubject, verifyToken } from "../../schema/token.ts";

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

export function isDeviceAuthorized(secret: string, token: string, group: string, device: string): Promise<boolean> {
  return verifyToken(secret, deviceSubject(group, device), token);
}

export function isGatewayAuthorized(secret: string, token: string, group: string, gateway: string): Promise<boolean> {
  return verifyToken(secret, gatewaySubject(group, gateway), token);
}

/** An operator token for this group, or the all-groups `operator:*` token. */
export async function isOperatorAuthorized(secret: string, token: string, group: string): Promise<boolean> {
  if (await verifyToken(secret, operatorSubject(group), token)) return true;
  return verifyToken(secret, operatorSubject("*"), token);
}

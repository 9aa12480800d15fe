/**
 * Origin check for the dashboards' live socket (docs/security.md, "Live
 * socket origin"). A browser sends the Cloudflare Access cookie with a
 * WebSocket handshake whatever page opened it, and WebSockets are not subject
 * to CORS, so without this check any site an operator visits could open
 * `/live` as that operator (cross-site WebSocket hijacking). A bearer token is
 * not at risk: a foreign page cannot know it. So the check applies only when
 * the request is authenticated by Access.
 */

/** The serialized origin of `text` ("https://hub.example.com"), or null if it is not an http(s) URL. */
function originOf(text: string): string | null {
  try {
    const url = new URL(text.trim());
    return url.protocol === "https:" || url.protocol === "http:" ? url.origin : null;
  } catch {
    return null;
  }
}

/**
 * The origins LIVE_ALLOWED_ORIGINS lists (comma- or space-separated full
 * origins such as "https://ops.example.com"); entries that are not http(s)
 * origins are ignored rather than widening the list.
 */
export function parseAllowedOrigins(list: string | undefined): Set<string> {
  const out = new Set<string>();
  for (const part of (list ?? "").split(/[\s,]+/)) {
    const origin = part === "" ? null : originOf(part);
    if (origin !== null) out.add(origin);
  }
  return out;
}

/**
 * Whether a cookie-authenticated browser request may come from its page: its
 * `Origin` is the hub's own origin or listed in LIVE_ALLOWED_ORIGINS. A
 * request without `Origin` is allowed: browsers always send one on a
 * WebSocket handshake, so its absence means a non-browser client, which has
 * no ambient cookie to abuse. `Origin: null` (sandboxed frames, file: pages)
 * is refused.
 */
export function isAllowedOrigin(request: Request, allowList: string | undefined): boolean {
  const header = request.headers.get("origin");
  if (header === null) return true;
  const origin = originOf(header);
  if (origin === null) return false;
  return origin === new URL(request.url).origin || parseAllowedOrigins(allowList).has(origin);
}

/**
 * The operator token. `npm start` prints a URL that carries it once as
 * `?token=`; the page moves it into sessionStorage (this tab only, gone when
 * the tab closes) and takes it out of the address bar at once, so it does not
 * stay in the history, in bookmarks or in screenshots. It is never logged.
 *
 * A link never silently replaces a token the tab already holds: tokens are
 * opaque, so another token may open other groups (or fewer), and a link can
 * come from anyone. The link's token is then held in memory only until the
 * operator chooses (docs/dashboard.md, "Tokens in links").
 */

const TOKEN_KEY = "telemetry-hub.token";
/** The one group a group-scoped token opens, once the page has learned it. */
const SCOPE_KEY = "telemetry-hub.token-group";

function session(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the token then lives in memory only
  }
}

let memoryToken: string | null = null;
/** A link's token that differs from the tab's, waiting for the operator's choice; never stored. */
let linkToken: string | null = null;

/**
 * Takes `?token=` from the address bar (once) and removes it from the URL.
 * The token is stored when the tab has none (or the same one); a different
 * one is only held, and `pendingLinkToken()` then returns it.
 */
export function captureTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return;
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  const t = token.trim();
  if (t === "") return;
  const current = getToken();
  if (current === null) setToken(t);
  else if (current !== t) linkToken = t;
}

/** The token a link brought that differs from the tab's, until `useLinkToken` or `keepCurrentToken`. */
export function pendingLinkToken(): string | null {
  return linkToken;
}

/** The operator chose the link's token: it replaces the tab's (and its learned group). */
export function useLinkToken(): void {
  if (linkToken !== null) setToken(linkToken);
  linkToken = null;
}

/** The operator kept the tab's token: the link's is forgotten. */
export function keepCurrentToken(): void {
  linkToken = null;
}

export function getToken(): string | null {
  return session()?.getItem(TOKEN_KEY) ?? memoryToken;
}

export function setToken(token: string): void {
  memoryToken = token;
  const s = session();
  s?.setItem(TOKEN_KEY, token);
  s?.removeItem(SCOPE_KEY);
}

export function clearToken(): void {
  memoryToken = null;
  session()?.removeItem(TOKEN_KEY);
  session()?.removeItem(SCOPE_KEY);
}

/** The group this token is limited to, if the page has seen it open that group and be refused another. */
export function getTokenGroup(): string | null {
  return session()?.getItem(SCOPE_KEY) ?? null;
}

export function setTokenGroup(group: string): void {
  session()?.setItem(SCOPE_KEY, group);
}

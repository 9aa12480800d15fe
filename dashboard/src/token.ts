/**
 * The operator token. `npm start` prints a URL that carries it once as
 * `?token=`; the page moves it into sessionStorage (this tab only, gone when
 * the tab closes) and takes it out of the address bar at once, so it does not
 * stay in the history, in bookmarks or in screenshots. It is never logged.
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

/** Takes `?token=` from the address bar (once), stores it and removes it from the URL. */
export function captureTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return;
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url.pathname + url.search + url.hash);
  if (token.trim() !== "") setToken(token.trim());
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

/**
 * Client-side routes. The Worker serves index.html for every path without a
 * file (SPA fallback in wrangler.jsonc), so these are real, bookmarkable URLs:
 *
 *   /                                  groups the operator may see
 *   /groups/{group}                    one group: fleet overview and alerts
 *   /groups/{group}/devices/{device}   one device: charts per metric
 */
import { ID_PATTERN } from "../../schema/protocol.ts";

export type Route =
  | { name: "home" }
  | { name: "group"; group: string }
  | { name: "device"; group: string; device: string }
  | { name: "not-found"; path: string };

function decode(s: string): string | null {
  try {
    const v = decodeURIComponent(s);
    return ID_PATTERN.test(v) ? v : null;
  } catch {
    return null;
  }
}

export function parseRoute(pathname: string): Route {
  const parts = pathname.split("/").filter((p) => p !== "");
  if (parts.length === 0) return { name: "home" };
  if (parts[0] === "groups" && parts.length === 2) {
    const group = decode(parts[1] ?? "");
    if (group !== null) return { name: "group", group };
  }
  if (parts[0] === "groups" && parts.length === 4 && parts[2] === "devices") {
    const group = decode(parts[1] ?? "");
    const device = decode(parts[3] ?? "");
    if (group !== null && device !== null) return { name: "device", group, device };
  }
  return { name: "not-found", path: pathname };
}

export function groupHref(group: string): string {
  return `/groups/${encodeURIComponent(group)}`;
}

export function deviceHref(group: string, device: string): string {
  return `/groups/${encodeURIComponent(group)}/devices/${encodeURIComponent(device)}`;
}

const listeners = new Set<() => void>();

export function onNavigate(fn: () => void): void {
  listeners.add(fn);
}

export function navigate(href: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) window.history.replaceState(null, "", href);
  else window.history.pushState(null, "", href);
  for (const fn of listeners) fn();
}

/** Same-origin links navigate in place; modified clicks (new tab, download) keep their default. */
export function interceptLinks(root: Document): void {
  root.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const target = ev.target instanceof Element ? ev.target.closest("a") : null;
    if (!target || target.target !== "" || target.hasAttribute("download")) return;
    const url = new URL(target.href, window.location.href);
    if (url.origin !== window.location.origin || url.pathname.startsWith("/v1/")) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => {
    for (const fn of listeners) fn();
  });
}

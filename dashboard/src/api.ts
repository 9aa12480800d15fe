/**
 * REST client for the hub's `/v1` routes (docs/protocol.md). Every answer is
 * checked before it is used; a non-2xx answer becomes a {@link HubError}
 * whose `status` (401: sign in again, 404: the hub lacks the route) callers
 * branch on.
 */
import type { RatesResponse } from "../../schema/api.ts";
import { getToken } from "./token.ts";
import {
  isObj,
  parseAlerts,
  parseBuckets,
  parseDevices,
  parseRates,
  parseRuleSet,
  type Alert,
  type Bucket,
  type DevicePatch,
  type RuleSet,
} from "./hub/types.ts";

export class HubError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function isAuthError(err: unknown): boolean {
  return err instanceof HubError && err.status === 401;
}

export interface AggregateQuery {
  device?: string;
  metric?: string;
  from?: number;
  to?: number;
}

const TIMEOUT_MS = 15_000;

function groupPath(group: string, rest: string): string {
  return `/v1/groups/${encodeURIComponent(group)}/${rest}`;
}

async function request(path: string, init: RequestInit = {}, signal?: AbortSignal): Promise<unknown> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const res = await fetch(path, { ...init, headers, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  let body: unknown;
  const text = await res.text();
  try {
    body = text === "" ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  if (!res.ok) {
    const code = isObj(body) && typeof body.error === "string" ? body.error : `http_${res.status}`;
    const message = isObj(body) && typeof body.message === "string" ? body.message : res.statusText;
    throw new HubError(res.status, code, message);
  }
  return body;
}

function malformed(what: string): HubError {
  return new HubError(502, "bad_answer", `the hub's ${what} answer was not understood`);
}

export async function fetchDevices(group: string, signal?: AbortSignal): Promise<DevicePatch[]> {
  const devices = parseDevices(await request(groupPath(group, "devices"), {}, signal));
  if (devices === null) throw malformed("devices");
  return devices;
}

export async function fetchAggregates(group: string, q: AggregateQuery, signal?: AbortSignal): Promise<{ buckets: Bucket[]; truncated: boolean }> {
  const params = new URLSearchParams();
  if (q.device !== undefined) params.set("device", q.device);
  if (q.metric !== undefined) params.set("metric", q.metric);
  if (q.from !== undefined) params.set("from", String(Math.floor(q.from)));
  if (q.to !== undefined) params.set("to", String(Math.ceil(q.to)));
  const qs = params.toString();
  const result = parseBuckets(await request(groupPath(group, `aggregates${qs ? `?${qs}` : ""}`), {}, signal));
  if (result === null) throw malformed("aggregates");
  return result;
}

export async function fetchAlerts(group: string, limit = 200, signal?: AbortSignal): Promise<Alert[]> {
  const alerts = parseAlerts(await request(groupPath(group, `alerts?limit=${limit}`), {}, signal));
  if (alerts === null) throw malformed("alerts");
  return alerts;
}

/** The group's readings per 10-second slot over the last 15 minutes. */
export async function fetchRates(group: string, signal?: AbortSignal): Promise<RatesResponse> {
  const rates = parseRates(await request(groupPath(group, "rates"), {}, signal));
  if (rates === null) throw malformed("rates");
  return rates;
}

export async function fetchRules(group: string, signal?: AbortSignal): Promise<RuleSet> {
  const rules = parseRuleSet(await request(groupPath(group, "rules"), {}, signal));
  if (rules === null) throw malformed("rules");
  return rules;
}

export async function putRules(group: string, rules: RuleSet): Promise<RuleSet> {
  const body = await request(groupPath(group, "rules"), {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(rules),
  });
  return parseRuleSet(body) ?? rules;
}

/**
 * Every group, when the token may list them (operator:* or Cloudflare Access);
 * null when it may not (a one-group token: 401) or the hub cannot (404).
 */
export async function fetchGroups(signal?: AbortSignal): Promise<string[] | null> {
  try {
    const body = await request("/v1/groups", {}, signal);
    if (!isObj(body) || !Array.isArray(body.groups)) return null;
    return body.groups.flatMap((g: unknown) => (typeof g === "string" ? [g] : isObj(g) && typeof g.id === "string" ? [g.id] : []));
  } catch (err) {
    if (err instanceof HubError && (err.status === 401 || err.status === 403 || err.status === 404 || err.status === 405)) return null;
    throw err;
  }
}

/** The live socket's URL. Browsers cannot set headers on a WebSocket, so the token rides in the query. */
export function liveUrl(group: string): string {
  const url = new URL(groupPath(group, "live"), window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const token = getToken();
  if (token !== null) url.searchParams.set("token", token);
  return url.toString();
}

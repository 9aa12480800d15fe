/**
 * The page's REST calls, through the hub's typed client (schema/client.ts):
 * every answer is checked against its schema, and a non-2xx answer becomes a
 * {@link HubError} whose `status` (401: sign in again, 404: the hub lacks the
 * route) callers branch on. The functions below adapt its answers to the
 * page's own shapes (hub/types.ts), which the live frames share.
 */
import type { AggregateFilter, CommandEntry, ConfigResponse, RatesResponse, Resolution } from "../../schema/api.ts";
import { HubClient, HubError } from "../../schema/client.ts";
import { getToken } from "./token.ts";
import { parseAlert, parseDevice, type Alert, type Bucket, type DevicePatch, type RuleSet } from "./hub/types.ts";

export { HubError };

export function isAuthError(err: unknown): boolean {
  return err instanceof HubError && err.status === 401;
}

/** The page's aggregate query: the hub's filter; `auto` resolution lets the hub pick by retention and `maxPoints` (docs/history.md). */
export type AggregateQuery = AggregateFilter;

let client: HubClient | null = null;

/** Made on first use: the page's origin is the hub, and the token is read before every request. */
function hub(): HubClient {
  client ??= new HubClient({ url: window.location.origin, token: getToken, timeoutMs: 15_000 });
  return client;
}

const opts = (signal?: AbortSignal) => (signal ? { signal } : {});

export async function fetchDevices(group: string, signal?: AbortSignal): Promise<DevicePatch[]> {
  return (await hub().devices(group, opts(signal))).flatMap((d) => parseDevice(d) ?? []);
}

export function fetchAggregates(group: string, q: AggregateQuery, signal?: AbortSignal): Promise<{ resolution: Resolution; buckets: Bucket[]; truncated: boolean }> {
  return hub().aggregates(group, q, opts(signal));
}

/** The device's raw readings in [from, to) as the hub's CSV (docs/archive.md); `truncated` if the hub's row limit cut it. */
export async function fetchRawCsv(group: string, device: string, from: number, to: number, signal?: AbortSignal): Promise<{ csv: string; truncated: boolean }> {
  const { bytes, truncated } = await hub().readingsFile(group, "csv", { device, from, to }, opts(signal));
  return { csv: new TextDecoder().decode(bytes), truncated };
}

export async function fetchAlerts(group: string, limit = 200, signal?: AbortSignal): Promise<Alert[]> {
  return (await hub().alerts(group, { limit }, opts(signal))).flatMap((a) => parseAlert(a) ?? []);
}

/** The group's readings per 10-second slot over the last 15 minutes. */
export function fetchRates(group: string, signal?: AbortSignal): Promise<RatesResponse> {
  return hub().rates(group, opts(signal));
}

export function fetchRules(group: string, signal?: AbortSignal): Promise<RuleSet> {
  return hub().rules(group, opts(signal));
}

export function putRules(group: string, rules: RuleSet): Promise<RuleSet> {
  return hub().putRules(group, rules);
}

/**
 * Every group, when the token may list them (operator:* or Cloudflare Access);
 * null when it may not (a one-group token: 401), the hub cannot (404) or its
 * answer is not a list of groups.
 */
export async function fetchGroups(signal?: AbortSignal): Promise<string[] | null> {
  try {
    return (await hub().groups(opts(signal))).map((g) => g.id);
  } catch (err) {
    if (err instanceof HubError && (err.status === 401 || err.status === 403 || err.status === 404 || err.status === 405 || err.code === "bad_answer")) return null;
    throw err;
  }
}

/** The live socket's URL. Browsers cannot set headers on a WebSocket, so the token rides in the query. */
export function liveUrl(group: string): string {
  return hub().socketUrl({ live: true }, group);
}

/** `POST .../commands`: queues a command; its id. */
export async function sendCommand(group: string, device: string, cmd: { name: string; args?: unknown; ttlMs?: number }): Promise<string> {
  return (await hub().queueCommand(group, device, cmd)).id;
}

/** A device's commands, newest first. */
export function fetchCommands(group: string, device: string, signal?: AbortSignal): Promise<CommandEntry[]> {
  return hub().commands(group, device, { limit: 50 }, opts(signal));
}

/** A device's desired and reported configuration. */
export function fetchConfig(group: string, device: string, signal?: AbortSignal): Promise<ConfigResponse> {
  return hub().config(group, device, opts(signal));
}

/** Replaces a device's desired configuration; its new version. */
export function saveConfig(group: string, device: string, desired: Record<string, unknown>): Promise<number> {
  return hub().putConfig(group, device, desired);
}

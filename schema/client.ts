/**
 * The typed REST client of the hub (docs/protocol.md, "HTTP routes"), for
 * the dashboard, the simulator's verifier, the benchmarks and the tests.
 * Paths and bodies come from schema/api.ts, the same definitions the Worker
 * validates and documents with; every answer is checked against its schema
 * before it is returned, and a non-2xx answer becomes a {@link HubError}.
 */
import type * as z from "zod/mini";
import * as api from "./api.ts";
import type { AggregateFilter, CommandEntry, ConfigResponse, DeviceInfo, GroupEntry, PeerKind, ReadingsFilter } from "./api.ts";
import type { Alert, RulesDoc as Rules } from "./rules.ts";

/** A refused request (`status` and the hub's error `code`), or an answer that was not understood (502 `bad_answer`). */
export class HubError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "HubError";
    this.status = status;
    this.code = code;
  }
}

export interface HubClientOptions {
  /** The hub's base URL, e.g. `http://localhost:8787` (a page passes `location.origin`). */
  url: string;
  /** A token, or a function read before every request (a page's token can change). */
  token?: string | null | (() => string | null);
  /** The fetch to use; tests inside workerd pass `SELF.fetch`. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  /** Per-request timeout, ms (default 30,000). */
  timeoutMs?: number;
}

/** Options of a single call. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A path template of {@link api.PATHS} with its `{name}` segments filled in, percent-encoded. */
export function pathOf(template: string, params: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(v);
  });
}

export class HubClient {
  private readonly opts: HubClientOptions;

  constructor(opts: HubClientOptions) {
    this.opts = opts;
  }

  /** `GET /v1/health`. */
  health(o?: CallOptions): Promise<z.infer<typeof api.Health>> {
    return this.call(api.Health, "GET", api.PATHS.health, o);
  }

  /** `GET /v1/groups`: every group (all-groups operators only). */
  async groups(o?: CallOptions): Promise<GroupEntry[]> {
    return (await this.call(api.GroupsResponse, "GET", api.PATHS.groups, o)).groups;
  }

  /** `GET /v1/groups/{group}/devices`, sorted by id. */
  async devices(group: string, o?: CallOptions): Promise<DeviceInfo[]> {
    return (await this.call(api.DevicesResponse, "GET", pathOf(api.PATHS.devices, { group }), o)).devices;
  }

  /** `GET /v1/groups/{group}/aggregates` (minute buckets unless `resolution` says otherwise); `truncated` says to narrow the filter. */
  aggregates(group: string, filter: AggregateFilter = {}, o?: CallOptions): Promise<z.infer<typeof api.AggregatesResponse>> {
    const q = filterQuery(filter);
    if (filter.resolution !== undefined) q.set("resolution", filter.resolution);
    if (filter.maxPoints !== undefined) q.set("maxPoints", String(filter.maxPoints));
    return this.call(api.AggregatesResponse, "GET", withQuery(pathOf(api.PATHS.aggregates, { group }), q), o);
  }

  /** `GET /v1/groups/{group}/readings` as JSON: raw readings per series by time; `truncated` says more matched than `limit`. */
  readings(group: string, filter: ReadingsFilter = {}, o?: CallOptions): Promise<z.infer<typeof api.ReadingsResponse>> {
    return this.call(api.ReadingsResponse, "GET", withQuery(pathOf(api.PATHS.readings, { group }), filterQuery(filter)), o);
  }

  /** `GET /v1/groups/{group}/readings` as a CSV or Parquet file. */
  async readingsFile(group: string, format: "csv" | "parquet", filter: ReadingsFilter = {}, o?: CallOptions): Promise<{ bytes: Uint8Array; truncated: boolean }> {
    const q = filterQuery(filter);
    q.set("format", format);
    const res = await this.send("GET", withQuery(pathOf(api.PATHS.readings, { group }), q), o);
    if (!res.ok) throw await errorOf(res);
    return { bytes: new Uint8Array(await res.arrayBuffer()), truncated: res.headers.get("x-truncated") === "true" };
  }

  /** `GET /v1/groups/{group}/rules`. */
  rules(group: string, o?: CallOptions): Promise<Rules> {
    return this.call(api.RulesDoc, "GET", pathOf(api.PATHS.rules, { group }), o);
  }

  /** `PUT /v1/groups/{group}/rules`: replaces the rules; answers the rules now in force. */
  putRules(group: string, doc: Rules, o?: CallOptions): Promise<Rules> {
    return this.call(api.RulesDoc, "PUT", pathOf(api.PATHS.rules, { group }), o, doc);
  }

  /** `GET /v1/groups/{group}/alerts`, newest first. */
  async alerts(group: string, filter: { active?: boolean; limit?: number } = {}, o?: CallOptions): Promise<Alert[]> {
    const q = new URLSearchParams();
    if (filter.active) q.set("active", "true");
    if (filter.limit !== undefined) q.set("limit", String(filter.limit));
    return (await this.call(api.AlertsResponse, "GET", withQuery(pathOf(api.PATHS.alerts, { group }), q), o)).alerts;
  }

  /** `GET /v1/groups/{group}/rates`: readings applied per 10-second slot. */
  rates(group: string, o?: CallOptions): Promise<z.infer<typeof api.RatesResponse>> {
    return this.call(api.RatesResponse, "GET", pathOf(api.PATHS.rates, { group }), o);
  }

  /** `GET /v1/groups/{group}/revocations`. */
  async revocations(group: string, o?: CallOptions): Promise<z.infer<typeof api.RevocationEntry>[]> {
    return (await this.call(api.RevocationsResponse, "GET", pathOf(api.PATHS.revocations, { group }), o)).revocations;
  }

  /** `PUT /v1/groups/{group}/revocations/{kind}/{id}`: refuses the peer from now on. */
  revoke(group: string, kind: PeerKind, id: string, o?: CallOptions): Promise<z.infer<typeof api.RevocationEntry>> {
    return this.call(api.RevocationEntry, "PUT", pathOf(api.PATHS.revocation, { group, kind, id }), o);
  }

  /** `DELETE /v1/groups/{group}/revocations/{kind}/{id}`; a {@link HubError} 404 `not_revoked` if there was none. */
  restore(group: string, kind: PeerKind, id: string, o?: CallOptions): Promise<z.infer<typeof api.RevocationLifted>> {
    return this.call(api.RevocationLifted, "DELETE", pathOf(api.PATHS.revocation, { group, kind, id }), o);
  }

  /**
   * `PUT /v1/groups/{group}/peers/{kind}/{id}/seq`: sets the peer's lastSeq
   * (audited); a {@link HubError} 404 `not_found` if it never connected.
   */
  resetSeq(group: string, kind: PeerKind, id: string, lastSeq: number, o?: CallOptions): Promise<z.infer<typeof api.PeerSeqResponse>> {
    return this.call(api.PeerSeqResponse, "PUT", pathOf(api.PATHS.peerSeq, { group, kind, id }), o, { lastSeq });
  }

  /** `GET /v1/groups/{group}/storage`: the database's size against its budget, and the buckets per resolution. */
  storage(group: string, o?: CallOptions): Promise<api.StorageResponse> {
    return this.call(api.StorageResponse, "GET", pathOf(api.PATHS.storage, { group }), o);
  }

  /** `GET /v1/groups/{group}/retention`: how long each resolution is kept (null: forever). */
  retention(group: string, o?: CallOptions): Promise<api.Retention> {
    return this.call(api.Retention, "GET", pathOf(api.PATHS.retention, { group }), o);
  }

  /** `PUT /v1/groups/{group}/retention`: answers the retention now in force; pruning by it starts within seconds. */
  putRetention(group: string, r: api.Retention, o?: CallOptions): Promise<api.Retention> {
    return this.call(api.Retention, "PUT", pathOf(api.PATHS.retention, { group }), o, r);
  }

  /**
   * `POST /v1/groups/{group}/devices/{device}/commands`: queues a command;
   * a {@link HubError} 429 (`too_many_commands` or `rate_limited`) when the
   * device or the group has too many.
   */
  queueCommand(group: string, device: string, cmd: { name: string; args?: unknown; ttlMs?: number }, o?: CallOptions): Promise<z.infer<typeof api.CommandQueued>> {
    return this.call(api.CommandQueued, "POST", pathOf(api.PATHS.commands, { group, device }), o, cmd);
  }

  /** `GET /v1/groups/{group}/devices/{device}/commands`, newest first. */
  async commands(group: string, device: string, filter: { limit?: number } = {}, o?: CallOptions): Promise<CommandEntry[]> {
    const q = new URLSearchParams();
    if (filter.limit !== undefined) q.set("limit", String(filter.limit));
    return (await this.call(api.CommandsResponse, "GET", withQuery(pathOf(api.PATHS.commands, { group, device }), q), o)).commands;
  }

  /** `GET /v1/groups/{group}/devices/{device}/commands/{id}`; a {@link HubError} 404 if there is none. */
  command(group: string, device: string, id: string, o?: CallOptions): Promise<CommandEntry> {
    return this.call(api.CommandEntry, "GET", pathOf(api.PATHS.command, { group, device, id }), o);
  }

  /** `PUT /v1/groups/{group}/devices/{device}/config`: the new desired configuration; answers its version. */
  async putConfig(group: string, device: string, desired: Record<string, unknown>, o?: CallOptions): Promise<number> {
    return (await this.call(api.ConfigVersion, "PUT", pathOf(api.PATHS.config, { group, device }), o, { desired })).version;
  }

  /**
   * `PUT /v1/groups/{group}/config`: one desired configuration for many
   * devices (every device the group has seen when `devices` is absent),
   * each at its own next version; answers how many.
   */
  async putGroupConfig(group: string, desired: Record<string, unknown>, devices?: readonly string[], o?: CallOptions): Promise<number> {
    const body = devices === undefined ? { desired } : { desired, devices };
    return (await this.call(api.GroupConfigResult, "PUT", pathOf(api.PATHS.groupConfig, { group }), o, body)).devices;
  }

  /** `GET /v1/groups/{group}/devices/{device}/config`: desired, reported and their versions. */
  config(group: string, device: string, o?: CallOptions): Promise<ConfigResponse> {
    return this.call(api.ConfigResponse, "GET", pathOf(api.PATHS.config, { group, device }), o);
  }

  /**
   * The WebSocket URL of a device, gateway or live socket, with the token in
   * the query: browsers and many devices cannot set headers on a handshake.
   * `downlink: true` opts a device or gateway in to commands and configuration.
   */
  socketUrl(socket: { device: string; downlink?: boolean } | { gateway: string; downlink?: boolean } | { live: true }, group: string): string {
    const path =
      "device" in socket
        ? pathOf(api.PATHS.deviceSocket, { group, device: socket.device })
        : "gateway" in socket
          ? pathOf(api.PATHS.gatewaySocket, { group, gateway: socket.gateway })
          : pathOf(api.PATHS.live, { group });
    const url = new URL(`${this.opts.url}${path}`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const token = this.token();
    if (token !== null) url.searchParams.set("token", token);
    if ("downlink" in socket && socket.downlink) url.searchParams.set("downlink", "1");
    return url.toString();
  }

  private token(): string | null {
    const t = this.opts.token;
    return typeof t === "function" ? t() : (t ?? null);
  }

  private send(method: string, path: string, o: CallOptions = {}, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    const token = this.token();
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const timeout = AbortSignal.timeout(this.opts.timeoutMs ?? 30_000);
    const init: RequestInit = { method, headers, signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout };
    if (body !== undefined) init.body = JSON.stringify(body);
    const doFetch = this.opts.fetch ?? fetch;
    return doFetch(`${this.opts.url}${path}`, init);
  }

  private async call<S extends z.ZodMiniType>(schema: S, method: string, path: string, o: CallOptions = {}, body?: unknown): Promise<z.infer<S>> {
    const res = await this.send(method, path, o, body);
    if (!res.ok) throw await errorOf(res);
    const parsed = parseJson(await res.text());
    const checked = schema.safeParse(parsed);
    if (!checked.success) throw new HubError(502, "bad_answer", `${method} ${path}: the answer does not match its schema: ${checked.error.issues[0]?.message ?? ""}`);
    return checked.data;
  }
}

function parseJson(text: string): unknown {
  try {
    return text === "" ? null : JSON.parse(text);
  } catch {
    // not JSON: reported by the caller as an error or a bad answer
    return null;
  }
}

/** A refused request as a {@link HubError}, with the hub's code when the body has one. */
async function errorOf(res: Response): Promise<HubError> {
  const err = api.ErrorBody.safeParse(parseJson(await res.text()));
  return err.success ? new HubError(res.status, err.data.error, err.data.message) : new HubError(res.status, `http_${res.status}`, res.statusText);
}

/** A filter as query parameters. */
function filterQuery(filter: ReadingsFilter): URLSearchParams {
  const q = new URLSearchParams();
  if (filter.device !== undefined) q.set("device", filter.device);
  if (filter.metric !== undefined) q.set("metric", filter.metric);
  // The hub takes integer milliseconds; widen a fractional window rather than cut it.
  if (filter.from !== undefined) q.set("from", String(Math.floor(filter.from)));
  if (filter.to !== undefined) q.set("to", String(Math.ceil(filter.to)));
  if (filter.limit !== undefined) q.set("limit", String(filter.limit));
  return q;
}

function withQuery(path: string, q: URLSearchParams): string {
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/**
 * The simulator's REST calls to the hub: the preflight before a run, the
 * devices' `lastSeq` after it, and the aggregates `--verify` compares. A hub
 * that just weathered a reconnect storm can take a while to answer, so each
 * call retries until its deadline and fails with a one-line reason.
 */
import type { AggregateBucket } from "../schema/api.ts";
import { operatorSubject, signToken } from "../schema/token.ts";

/** A REST call that failed for good; the message is one line, for the CLI. */
export class HubError extends Error {}

/** The hub's HTTP base URL for a --url that may be ws:// or wss://. */
export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  return u.toString().replace(/\/$/, "");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isBucket(v: unknown): v is AggregateBucket {
  if (!isRecord(v)) return false;
  return (
    typeof v.device === "string" &&
    typeof v.metric === "string" &&
    ["start", "count", "sum", "min", "max"].every((k) => typeof v[k] === "number")
  );
}

function describe(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "no answer";
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HubRest {
  readonly base: string;
  private readonly token: string;
  private readonly timeoutMs: number;

  private constructor(base: string, token: string, timeoutMs: number) {
    this.base = base;
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  /** `timeoutMs`: how long one call may keep retrying before it gives up. */
  static async create(url: string, secret: string, timeoutMs: number): Promise<HubRest> {
    return new HubRest(httpBase(url), await signToken(secret, operatorSubject("*")), timeoutMs);
  }

  /**
   * Fails fast, before any device connects, when the hub is not there or
   * does not take our tokens: otherwise a whole fleet would retry its
   * sockets for the length of the run and report nothing useful.
   */
  async preflight(timeoutMs: number): Promise<void> {
    let res: Response;
    try {
      res = await fetch(`${this.base}/v1/health`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.text();
    } catch (err) {
      throw new HubError(`hub unreachable at ${this.base} (${describe(err)}); is it running? (npm start, or pass --url)`);
    }
    if (res.status !== 200) throw new HubError(`hub at ${this.base} answered GET /v1/health with HTTP ${res.status}; is it a Telemetry Hub?`);
    // The operator token is signed with the same secret as the device tokens.
    try {
      res = await fetch(`${this.base}/v1/groups`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(timeoutMs) });
      await res.text();
    } catch (err) {
      throw new HubError(`hub at ${this.base} did not answer GET /v1/groups (${describe(err)})`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new HubError(`hub at ${this.base} rejected the simulator's tokens (HTTP ${res.status}): --secret, HUB_SECRET or .dev.vars must hold the hub's HUB_SECRET`);
    }
    if (res.status === 503) throw new HubError(`hub at ${this.base} is not configured (HTTP 503): it has no HUB_SECRET`);
  }

  /** Each device's `lastSeq` in a group (devices the hub has never seen are absent). */
  async lastSeqs(group: string): Promise<Map<string, number>> {
    const body = await this.get(`/v1/groups/${encodeURIComponent(group)}/devices`, `GET devices of ${group}`);
    if (!isRecord(body) || !Array.isArray(body.devices)) throw new HubError(`GET devices of ${group}: unexpected body`);
    const out = new Map<string, number>();
    for (const d of body.devices) {
      if (isRecord(d) && typeof d.id === "string" && typeof d.lastSeq === "number") out.set(d.id, d.lastSeq);
    }
    return out;
  }

  /** Every bucket of these devices in a group (per device when one response would be truncated). */
  async buckets(group: string, devices: ReadonlySet<string>): Promise<AggregateBucket[]> {
    let all = await this.aggregates(group);
    if (!all.truncated) return all.buckets.filter((b) => devices.has(b.device));
    const out: AggregateBucket[] = [];
    for (const d of devices) {
      all = await this.aggregates(group, d);
      if (all.truncated) throw new HubError(`device ${group}/${d} has more buckets than one request returns`);
      out.push(...all.buckets);
    }
    return out;
  }

  private async aggregates(group: string, device?: string): Promise<{ buckets: AggregateBucket[]; truncated: boolean }> {
    const q = device ? `?device=${encodeURIComponent(device)}` : "";
    const body = await this.get(`/v1/groups/${encodeURIComponent(group)}/aggregates${q}`, `GET aggregates of ${group}`);
    if (!isRecord(body) || !Array.isArray(body.buckets)) throw new HubError(`GET aggregates of ${group}: unexpected body`);
    const buckets = body.buckets.filter(isBucket);
    if (buckets.length !== body.buckets.length) throw new HubError(`GET aggregates of ${group}: malformed bucket`);
    return { buckets, truncated: body.truncated === true };
  }

  /** GET with retries on network errors, timeouts, 429 and 5xx until the deadline. */
  private async get(path: string, what: string): Promise<unknown> {
    const started = Date.now();
    const deadline = started + this.timeoutMs;
    let wait = 250;
    let last = "";
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const res = await fetch(`${this.base}${path}`, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(left) });
        const text = await res.text();
        if (res.status === 200) return JSON.parse(text) as unknown;
        last = `HTTP ${res.status} ${text.slice(0, 200)}`;
        if (res.status !== 429 && res.status < 500) throw new HubError(`${what}: ${last}`);
      } catch (err) {
        if (err instanceof HubError) throw err;
        last = describe(err);
      }
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
      wait = Math.min(wait * 2, 5000);
    }
    throw new HubError(`${what}: ${last || "no answer"} within ${Math.round((Date.now() - started) / 1000)} s (the hub is overloaded or gone)`);
  }
}

/**
 * The simulator's REST calls to the hub, through the typed client
 * (schema/client.ts): the preflight before a run, the devices' `lastSeq`
 * after it, and the aggregates `--verify` compares. A hub that just weathered
 * a reconnect storm can take a while to answer, so each call retries until
 * its deadline and fails with a one-line reason (a {@link HubError}).
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { AggregateBucket, AggregatesResponse, CommandEntry, Resolution } from "../schema/api.ts";
import { HubClient, HubError } from "../schema/client.ts";
import { operatorSubject, signToken } from "../schema/token.ts";

export { HubError };

/** The hub's HTTP base URL for a --url that may be ws:// or wss://. */
export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  return u.toString().replace(/\/$/, "");
}

function describe(err: unknown): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return "no answer";
  if (err instanceof HubError) return `HTTP ${err.status} ${err.code}: ${err.message}`.slice(0, 240);
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** A failure of the simulator's own making (no hub status to report): status 0. */
function failure(code: string, message: string): HubError {
  return new HubError(0, code, message);
}

/** Worth another try: no answer, the hub shedding load (429) or failing (5xx, not an answer we could not read). */
function transient(err: unknown): boolean {
  if (!(err instanceof HubError)) return true;
  return err.code !== "bad_answer" && (err.status === 429 || err.status >= 500);
}

export class HubRest {
  readonly base: string;
  private readonly client: HubClient;
  private readonly timeoutMs: number;

  private constructor(base: string, token: string, timeoutMs: number) {
    this.base = base;
    this.timeoutMs = timeoutMs;
    // Each call passes its own deadline as a signal; the client's timeout only bounds it.
    this.client = new HubClient({ url: base, token, timeoutMs: Math.max(timeoutMs, 1) });
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
    try {
      await this.client.health({ signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      if (!(err instanceof HubError)) throw failure("unreachable", `hub unreachable at ${this.base} (${describe(err)}); is it running? (npm start, or pass --url)`);
      const answered = err.code === "bad_answer" ? "an answer that is not a hub's health" : `HTTP ${err.status}`;
      throw failure("not_a_hub", `hub at ${this.base} answered GET /v1/health with ${answered}; is it a Telemetry Hub?`);
    }
    // The operator token is signed with the same secret as the device tokens.
    try {
      await this.client.groups({ signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      if (!(err instanceof HubError)) throw failure("unreachable", `hub at ${this.base} did not answer GET /v1/groups (${describe(err)})`);
      if (err.status === 401 || err.status === 403) {
        throw failure("rejected", `hub at ${this.base} rejected the simulator's tokens (HTTP ${err.status}): --secret, HUB_SECRET or .dev.vars must hold the hub's HUB_SECRET`);
      }
      if (err.status === 503) throw failure("not_configured", `hub at ${this.base} is not configured (HTTP 503): it has no HUB_SECRET`);
      // Any other answer: the hub is there and takes the token; the run may start.
    }
  }

  /** Each device's `lastSeq` in a group (devices the hub has never seen are absent). */
  async lastSeqs(group: string): Promise<Map<string, number>> {
    const devices = await this.retry(`GET devices of ${group}`, (signal) => this.client.devices(group, { signal }));
    return new Map(devices.map((d) => [d.id, d.lastSeq]));
  }

  /** Every bucket of these devices in a group (per device when one response would be truncated). */
  async buckets(group: string, devices: ReadonlySet<string>, resolution: Resolution = "minute"): Promise<AggregateBucket[]> {
    let all = await this.aggregates(group, undefined, resolution);
    if (!all.truncated) return all.buckets.filter((b) => devices.has(b.device));
    const out: AggregateBucket[] = [];
    for (const d of devices) {
      all = await this.aggregates(group, d, resolution);
      if (all.truncated) throw failure("truncated", `device ${group}/${d} has more buckets than one request returns`);
      out.push(...all.buckets);
    }
    return out;
  }

  /** Queues a command (`--command-rate`); a refusal (429 included) is thrown, not retried: the load goes on. */
  async queueCommand(group: string, device: string, cmd: { name: string; args?: unknown; ttlMs?: number }): Promise<string> {
    return (await this.client.queueCommand(group, device, cmd, { signal: AbortSignal.timeout(this.timeoutMs) })).id;
  }

  /** One command's status and result. */
  command(group: string, device: string, id: string): Promise<CommandEntry> {
    return this.retry(`GET command ${id} of ${group}/${device}`, (signal) => this.client.command(group, device, id, { signal }));
  }

  private aggregates(group: string, device: string | undefined, resolution: Resolution): Promise<AggregatesResponse> {
    return this.retry(`GET aggregates of ${group}`, (signal) => this.client.aggregates(group, device === undefined ? { resolution } : { device, resolution }, { signal }));
  }

  /** A call retried on no answer, 429 and 5xx until the deadline; anything else fails at once. */
  private async retry<T>(what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const started = Date.now();
    const deadline = started + this.timeoutMs;
    let wait = 250;
    let last = "";
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        return await call(AbortSignal.timeout(left));
      } catch (err) {
        last = describe(err);
        if (!transient(err)) throw failure("refused", `${what}: ${last}`);
      }
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
      wait = Math.min(wait * 2, 5000);
    }
    throw failure("no_answer", `${what}: ${last || "no answer"} within ${Math.round((Date.now() - started) / 1000)} s (the hub is overloaded or gone)`);
  }
}

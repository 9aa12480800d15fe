/**
 * The device side of downlink (docs/protocol.md, "Downlink"): runs the
 * hub's commands and applies its configuration, exactly once.
 *
 * The hub resends a command after every `hello` until its result arrives,
 * so the same id can come twice (a result lost with a dropped socket, a hub
 * restarted between delivery and result). This runner remembers the ids it
 * has executed with their results, and answers a command it has seen with
 * the stored result instead of running it again; one that comes again while
 * it still runs waits for that run. Configuration versions are applied in
 * order, each once; an older or repeated version is only acknowledged again.
 */
import type { CborValue } from "../schema/cbor.ts";
import type { CommandFrame, ConfigFrame } from "../schema/protocol.ts";

/** Runs one command; returns its result (any JSON value) or throws to fail it. */
export type CommandHandler = (args: unknown, command: CommandFrame) => unknown;
/**
 * Applies a desired configuration (on a gateway: of `device`); returns what
 * the device now runs with (sent as `reported`), or nothing.
 */
export type ConfigHandler = (desired: Record<string, unknown>, version: number, device: string | undefined) => unknown;

/** A command's outcome, as remembered. */
export interface CommandOutcome {
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** What the runner remembers, to save across a restart and pass back as `executed`. */
export interface ExecutedCommand extends CommandOutcome {
  id: string;
  expiresAt: number;
}

export interface DownlinkRunnerOptions {
  /** Sends a frame on the current socket; false when there is none (the hub will resend). */
  send: (frame: CborValue) => boolean;
  /** Executed commands to remember from a saved state. */
  executed?: readonly ExecutedCommand[];
  /** Most executed ids remembered; the oldest are forgotten beyond it. Default 10,000. */
  maxRemembered?: number;
}

/** Longer than any TTL the hub allows (DOWNLINK_MAX_TTL_MS defaults to a day), plus clock skew. */
const REMEMBER_PAST_EXPIRY_MS = 3600_000;

export class DownlinkRunner {
  private readonly handlers = new Map<string, CommandHandler>();
  private configHandler: ConfigHandler | null = null;
  private relay: ((frame: CommandFrame | ConfigFrame) => void) | null = null;
  private readonly send: (frame: CborValue) => boolean;
  private readonly maxRemembered: number;
  /** Executed (or running) commands by id, oldest first. */
  private readonly done = new Map<string, { expiresAt: number; outcome: Promise<CommandOutcome>; settled: CommandOutcome | null }>();
  /** Highest configuration version applied, per device ("" for the socket's own). */
  private readonly applied = new Map<string, { version: number; reported: unknown }>();
  /** Configurations are applied one at a time, in the order they arrive. */
  private configChain: Promise<void> = Promise.resolve();

  constructor(opts: DownlinkRunnerOptions) {
    this.send = opts.send;
    this.maxRemembered = opts.maxRemembered ?? 10_000;
    for (const e of opts.executed ?? []) {
      const outcome: CommandOutcome = { ok: e.ok, result: e.result, error: e.error };
      this.done.set(e.id, { expiresAt: e.expiresAt, outcome: Promise.resolve(outcome), settled: outcome });
    }
  }

  /** Registers the handler of a command name (replacing one registered before). */
  command(name: string, handler: CommandHandler): this {
    this.handlers.set(name, handler);
    return this;
  }

  /** Registers the configuration handler. */
  config(handler: ConfigHandler): this {
    this.configHandler = handler;
    return this;
  }

  /**
   * Hands every `command` and `config` frame to `relay` as it comes, instead
   * of the handlers: for a gateway that passes downlink on to its devices
   * (the MQTT bridge), where the devices behind it keep the memory that
   * runs each command once.
   */
  passThrough(relay: (frame: CommandFrame | ConfigFrame) => void): this {
    this.relay = relay;
    return this;
  }

  /** Commands executed, with their outcomes (to save for a restart). */
  executed(): ExecutedCommand[] {
    const out: ExecutedCommand[] = [];
    for (const [id, e] of this.done) if (e.settled) out.push({ id, expiresAt: e.expiresAt, ...e.settled });
    return out;
  }

  /** The configuration version applied (of `device` on a gateway), 0 if none. */
  appliedVersion(device?: string): number {
    return this.applied.get(device ?? "")?.version ?? 0;
  }

  /** A `command` or `config` frame from the hub. */
  onFrame(frame: CommandFrame | ConfigFrame): void {
    if (this.relay) this.relay(frame);
    else if (frame.type === "command") void this.onCommand(frame);
    else this.configChain = this.configChain.then(() => this.onConfig(frame));
  }

  private async onCommand(cmd: CommandFrame): Promise<void> {
    let entry = this.done.get(cmd.id);
    if (!entry) {
      entry = { expiresAt: cmd.expiresAt, outcome: this.run(cmd), settled: null };
      const e = entry;
      this.done.set(cmd.id, e);
      void e.outcome.then((o) => (e.settled = o));
      this.forgetOld();
    }
    const o = await entry.outcome;
    // A handler's result is meant to be JSON (docs/protocol.md); the encoder refuses anything else.
    this.send({ type: "command_result", id: cmd.id, ok: o.ok, result: o.result as CborValue, error: o.error, device: cmd.device });
  }

  private async run(cmd: CommandFrame): Promise<CommandOutcome> {
    const handler = this.handlers.get(cmd.name);
    if (!handler) return { ok: false, error: `unknown command ${cmd.name}` };
    try {
      const result: unknown = await handler(cmd.args, cmd);
      return result === undefined ? { ok: true } : { ok: true, result };
    } catch (err) {
      return { ok: false, error: (err instanceof Error ? err.message : String(err)).slice(0, 1024) };
    }
  }

  private async onConfig(cfg: ConfigFrame): Promise<void> {
    const key = cfg.device ?? "";
    let state = this.applied.get(key);
    if (!state || cfg.version > state.version) {
      if (!this.configHandler) return;
      let reported: unknown;
      try {
        reported = await this.configHandler(cfg.desired, cfg.version, cfg.device);
      } catch {
        // Not applied: the hub sends it again after the next hello.
        return;
      }
      state = { version: cfg.version, reported };
      this.applied.set(key, state);
    }
    // Applied now or before (the hub missed our answer): say so. `reported` must be a map.
    const r = state.reported;
    const reported = r !== null && typeof r === "object" && !Array.isArray(r) ? (r as CborValue) : undefined;
    this.send({ type: "config_applied", version: state.version, reported, device: cfg.device });
  }

  /** Forgets the oldest settled ids beyond the cap, and those long past their expiry. */
  private forgetOld(): void {
    const now = Date.now();
    for (const [id, e] of this.done) {
      const old = this.done.size > this.maxRemembered || e.expiresAt + REMEMBER_PAST_EXPIRY_MS < now;
      if (!old) break;
      if (e.settled) this.done.delete(id);
      else break;
    }
  }
}

/**
 * Downlink in the simulator (docs/simulator.md, "Commands and
 * configuration"): with `--downlink` every device opts in, runs the built-in
 * commands (`ping`, `set_rate`, `reboot`, which drops and reopens its
 * socket) and applies a `sampleRateMs` configuration; `--command-rate` has
 * the simulator queue commands for its own devices over REST, and
 * `--command-drop-rate` drops a device's socket mid-command (before its
 * result, or while it still runs), so the hub must redeliver. `--verify`
 * then proves every queued command reached a final status and ran exactly
 * once, whatever was redelivered.
 */
import type { CommandEntry } from "../schema/api.ts";
import type { HubRest } from "./hub-rest.ts";
import type { SimDevice } from "./sim-device.ts";
import { mulberry32 } from "./signal.ts";
import type { Stats } from "./stats.ts";

export interface DownlinkSimConfig {
  /** Commands the simulator queues per device per second (0: none; devices still answer an operator's). */
  commandRate: number;
  /** Fraction (0..1) of commands during which the device drops its socket. */
  dropFraction: number;
  /** Time to live of the commands it queues, ms. */
  ttlMs: number;
}

/** What `--verify` found about the commands this run queued. */
export interface CommandCheck {
  ok: boolean;
  queued: number;
  /** Refused by the hub when queued (429): not counted below. */
  refused: number;
  byStatus: Record<string, number>;
  /** Runs of all commands, on the devices. */
  executions: number;
  /** Commands that ran more than once (must be none). */
  ranTwice: string[];
  /** Commands not final when the drain ended, or succeeded without running. */
  unfinished: string[];
}

interface Tracked {
  sim: SimDevice;
  runs: Map<string, number>;
  /** The device's sample interval, ms (what the run's own set_rate commands ask for, so they do not change the load). */
  rateMs: number;
}

const final = (s: string): boolean => s === "succeeded" || s === "failed" || s === "expired";

export class SimDownlink {
  private readonly cfg: DownlinkSimConfig;
  private readonly stats: Stats;
  private readonly rest: () => Promise<HubRest>;
  private readonly devices = new Map<SimDevice, Tracked>();
  private readonly queued = new Map<string, { sim: SimDevice; entry: CommandEntry | null }>();
  private readonly posting = new Set<Promise<void>>();
  private readonly rnd = mulberry32(0x0c0ffee);
  private refused = 0;

  constructor(cfg: DownlinkSimConfig, stats: Stats, rest: () => Promise<HubRest>) {
    this.cfg = cfg;
    this.stats = stats;
    this.rest = rest;
  }

  /** Installs the built-in commands and the configuration handler on a device sampling every `rateMs`; `setRate` changes that interval. */
  add(sim: SimDevice, rateMs: number, setRate: (sampleRateMs: number) => void): void {
    const t: Tracked = { sim, runs: new Map(), rateMs };
    this.devices.set(sim, t);
    const client = sim.client;
    const rnd = mulberry32(this.devices.size * 7919);
    const builtIn: Record<string, (args: unknown) => unknown> = {
      ping: () => ({ pong: Date.now() }),
      set_rate: (args) => {
        const ms = typeof args === "number" ? args : (args as { ms?: unknown } | null)?.ms;
        if (typeof ms !== "number" || !(ms > 0)) throw new Error("set_rate takes {ms} (a positive number)");
        setRate((t.rateMs = ms));
        return { sampleRateMs: ms };
      },
      // Drops the socket as a reboot would; the result goes out after it is back (from memory, not by rebooting again).
      reboot: () => {
        client.dropConnection();
        return { rebooted: true };
      },
    };
    for (const [name, run] of Object.entries(builtIn)) {
      client.downlink.command(name, async (args, cmd) => {
        t.runs.set(cmd.id, (t.runs.get(cmd.id) ?? 0) + 1);
        if (this.cfg.dropFraction > 0 && rnd() < this.cfg.dropFraction) {
          client.dropConnection();
          if (rnd() < 0.5) {
            // Still running when the hub redelivers it: the repeat waits for this run.
            this.stats.bump(this.stats.faults, "disconnect_mid_command");
            await new Promise<void>((resolve) => {
              const done = setTimeout(resolve, 10_000);
              client.once("hello", () => {
                clearTimeout(done);
                resolve();
              });
            });
          } else {
            this.stats.bump(this.stats.faults, "command_result_dropped");
          }
        }
        return run(args);
      });
    }
    client.downlink.config((desired) => {
      const ms = desired.sampleRateMs;
      if (typeof ms === "number" && ms > 0) setRate((t.rateMs = ms));
      return { sampleRateMs: typeof ms === "number" ? ms : null };
    });
  }

  /** Queues commands for devices that are due one, at `commandRate` per device per second. */
  tick(dtMs: number): void {
    if (this.cfg.commandRate <= 0) return;
    const p = (this.cfg.commandRate * dtMs) / 1000;
    for (const [sim, t] of this.devices) {
      if (this.rnd() >= p) continue;
      const roll = this.rnd();
      // set_rate keeps the device's rate: the command runs, the load stays as asked.
      const cmd = roll < 0.6 ? { name: "ping" } : roll < 0.9 ? { name: "set_rate", args: { ms: t.rateMs } } : { name: "reboot" };
      const post = this.post(sim, cmd);
      this.posting.add(post);
      void post.finally(() => this.posting.delete(post));
    }
  }

  private async post(sim: SimDevice, cmd: { name: string; args?: unknown }): Promise<void> {
    try {
      const id = await (await this.rest()).queueCommand(sim.group, sim.device, { ...cmd, ttlMs: this.cfg.ttlMs });
      this.queued.set(id, { sim, entry: null });
    } catch {
      this.refused++;
    }
  }

  /**
   * Waits (up to `timeoutMs`) until every command this run queued is final,
   * while the devices are still connected to answer, and checks each ran
   * once. Call before closing the devices.
   */
  async settle(timeoutMs: number): Promise<CommandCheck> {
    await Promise.all([...this.posting]);
    const rest = await this.rest();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const open = [...this.queued].filter(([, q]) => !q.entry || !final(q.entry.status));
      if (open.length === 0 || Date.now() > deadline) break;
      for (const [id, q] of open.slice(0, 200)) q.entry = await rest.command(q.sim.group, q.sim.device, id);
      if (open.some(([, q]) => q.entry && !final(q.entry.status))) await new Promise((r) => setTimeout(r, 200));
    }
    const check: CommandCheck = { ok: true, queued: this.queued.size, refused: this.refused, byStatus: {}, executions: 0, ranTwice: [], unfinished: [] };
    for (const t of this.devices.values()) for (const n of t.runs.values()) check.executions += n;
    for (const [id, q] of this.queued) {
      const status = q.entry?.status ?? "unknown";
      check.byStatus[status] = (check.byStatus[status] ?? 0) + 1;
      const runs = this.devices.get(q.sim)?.runs.get(id) ?? 0;
      if (runs > 1) check.ranTwice.push(id);
      if (!final(status) || (status === "succeeded" && runs !== 1)) check.unfinished.push(id);
    }
    check.ok = check.ranTwice.length === 0 && check.unfinished.length === 0;
    return check;
  }
}

/**
 * The fleet engine: drives simulated devices (generated or replayed)
 * against a hub, then drains, verifies and reports. `npm run sim`, the demo
 * fleet of `npm start` and `npm run bench:ingest` all run through here.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Reading } from "../schema/protocol.ts";
import { deviceSubject, signToken } from "../schema/token.ts";
import { Expected } from "./expected.ts";
import { fleetDevices, type Fleet } from "./fleet.ts";
import { HubRest } from "./hub-rest.ts";
import { addBaseline, decide, EXIT, message, settleByLastSeq, type Outcome } from "./outcome.ts";
import { formatSummary, Progress, summarize, type Summary } from "./report.ts";
import { Recorder, replayTicker, type ReplayData } from "./replay.ts";
import { hashSeed, Signal } from "./signal.ts";
import type { SimConfig } from "./config.ts";
import { SimDevice } from "./sim-device.ts";
import { loadState, saveState, stateKey, stateOf, type SimState } from "./state.ts";
import { Stats } from "./stats.ts";
import { verify, type VerifyResult } from "./verify.ts";
import { SimDownlink, type CommandCheck } from "./downlink.ts";

export { simConfig, type SimConfig } from "./config.ts";

export interface SimResult {
  summary: Summary;
  verify: VerifyResult | undefined;
  /** See `EXIT` in outcome.ts: 0 ok, 1 differences, 3 hub unreachable, 4 failed. */
  exitCode: number;
  /** Why the run failed, in one line; null when it did not. */
  reason: string | null;
  text: string;
}

interface Generator {
  sim: SimDevice;
  metrics: string[];
  signals: Signal[];
  /** Ms between samples; 0 for "max" (keep the window full), Infinity while paused. */
  intervalMs: number;
  nextAt: number;
  source?: { batch(size: number, now: number): Reading[] };
  /** With a source: samples due but not yet sent as a batch. */
  owed: number;
}

const TICK_MS = 20;

export class Simulation {
  readonly stats = new Stats();
  readonly expected = new Expected();
  private readonly cfg: SimConfig;
  private readonly devices = new Map<string, SimDevice>();
  private readonly generators: Generator[] = [];
  private recorder: Recorder | null = null;
  private stopping = false;
  private stopRequested: (() => void) | null = null;
  private state: SimState | null = null;
  /** `--downlink`: the devices' commands, and those this run queues. */
  private readonly downlink: SimDownlink | null;

  constructor(cfg: SimConfig) {
    this.cfg = cfg;
    this.downlink = cfg.downlink ? new SimDownlink(cfg.downlink, this.stats, () => this.rest()) : null;
  }

  /** Ends generation early (SIGINT); the run still drains, verifies and reports. */
  requestStop(): void {
    this.stopRequested?.();
  }

  private async addDevice(group: string, device: string, startDelayMs: number): Promise<SimDevice> {
    const key = stateKey(group, device);
    const existing = this.devices.get(key);
    if (existing) return existing;
    const saved = this.state?.devices[key];
    const token = await signToken(this.cfg.secret, deviceSubject(group, device));
    const sim = new SimDevice(
      { group, device, seed: hashSeed(this.cfg.seed, key) },
      {
        url: this.cfg.url,
        group,
        device,
        token,
        maxInFlight: this.cfg.maxInFlight,
        maxQueued: this.cfg.bufferBatches,
        lastSeq: saved?.lastSeq ?? 0,
        unacked: saved?.unacked ?? [],
        backoffInitialMs: 200,
        backoffMaxMs: 10_000,
        ackTimeoutMs: 15_000,
        // Each simulated device has one owner, this process: a 4001 can only
        // come from one of its own connection attempts the hub saw late.
        reconnectWhenReplaced: true,
        frames: this.cfg.frames ?? "cbatch",
        downlink: this.downlink !== null,
      },
      // Expectations cost a map update per reading; keep them only when something reads them.
      { stats: this.stats, expected: this.cfg.verify || this.cfg.statePath ? this.expected : null, policy: this.cfg.policy, faults: this.cfg.faults },
    );
    for (const b of saved?.unsent ?? []) sim.client.send(b);
    this.devices.set(key, sim);
    this.stats.devices++;
    setTimeout(() => sim.client.start(), startDelayMs);
    return sim;
  }

  /**
   * Runs the fleet until the duration, the reading limit or `requestStop()`,
   * then drains, verifies, closes and reports.
   */
  async run(): Promise<SimResult> {
    const early = await this.beforeStart();
    if (early) return this.report(undefined, early);
    const stopGenerating = new Promise<void>((resolve) => {
      this.stopRequested = resolve;
      if (this.cfg.durationMs !== null) setTimeout(resolve, this.cfg.durationMs).unref();
    });
    await this.start();
    await stopGenerating;
    return this.finish();
  }

  private timer: NodeJS.Timeout | undefined;
  private progress: Progress | null = null;

  /** Connects the fleet and starts generating (for programs that drive it themselves, with `setRate`). */
  async start(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.statePath) {
      this.state = loadState(cfg.statePath);
      for (const row of this.state?.expected ?? []) this.expected.addRow(row);
    }
    if (cfg.recordPath) this.recorder = new Recorder(cfg.recordPath);
    this.progress = new Progress(this.stats, process.stderr, cfg.progress);
    const started = Date.now();
    if (cfg.fleet) await this.setUpFleet(cfg.fleet, started);
    const tick = cfg.replay
      ? replayTicker(cfg.replay, started, cfg, { stop: () => this.stopRequested?.(), emit: (rows, shift, now) => this.emitRows(rows, shift, now) })
      : () => this.generate(Date.now());
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      tick();
      for (const d of this.devices.values()) {
        d.maybeFlush(now);
        d.injectFaults(now, now - last);
      }
      this.downlink?.tick(now - last);
      last = now;
      if (this.reachedLimit()) this.stopRequested?.();
    }, cfg.tickMs ?? TICK_MS);
  }

  /** One REST client per run, made on first use (a promise, so two first uses share it). */
  private restClient: Promise<HubRest> | null = null;
  private rest(): Promise<HubRest> {
    return (this.restClient ??= HubRest.create(this.cfg.url, this.cfg.secret, this.cfg.httpTimeoutMs ?? 60_000));
  }

  /** The preflight and --verify's baseline; an outcome when the run must not start. */
  private async beforeStart(): Promise<Outcome | null> {
    const cfg = this.cfg;
    try {
      if (cfg.preflight) await (await this.rest()).preflight(10_000);
    } catch (err) {
      return { exitCode: EXIT.hubUnreachable, reason: message(err) };
    }
    // With --state, the state file carries what earlier runs expect.
    if (!cfg.verify || cfg.statePath) return null;
    const devices = new Map<string, Set<string>>();
    const add = (g: string, d: string) => (devices.get(g) ?? devices.set(g, new Set()).get(g))?.add(d);
    if (cfg.fleet) for (const fd of fleetDevices(cfg.fleet)) add(fd.group, fd.device);
    for (const r of cfg.replay?.rows ?? []) add(r.group, r.device);
    try {
      await addBaseline(await this.rest(), devices, this.expected);
    } catch (err) {
      return { exitCode: EXIT.failed, reason: `--verify could not read what the hub held before the run: ${message(err)}` };
    }
    return null;
  }

  /** Stops generating, drains outstanding acks, closes, settles, verifies and reports. Never throws. */
  async finish(): Promise<SimResult> {
    const cfg = this.cfg;
    this.stopping = true;
    clearInterval(this.timer);
    for (const d of this.devices.values()) {
      d.flush();
      d.client.resume();
    }
    await this.drain(cfg.drainTimeoutMs);
    // Before closing: the devices must still be there to answer their commands.
    const commands = this.downlink && cfg.verify ? await this.downlink.settle(cfg.drainTimeoutMs).catch(() => null) : null;
    this.progress?.stop();
    // Close before reading the hub: with no socket open it applies nothing
    // more of ours, so lastSeq and the aggregates hold still while we read.
    await Promise.all([...this.devices.values()].map((d) => d.client.close()));
    await this.recorder?.close();

    let restError: string | null = null;
    if (cfg.verify || cfg.statePath) {
      try {
        // Acks lost with a socket (cut, timed out, closed above) do not mean
        // the batch was not applied: the hub's lastSeq says which were.
        this.stats.settledByLastSeq += await settleByLastSeq(await this.rest(), this.simDevices());
      } catch (err) {
        restError = `could not read the devices' lastSeq: ${message(err)}`;
      }
    }
    if (cfg.statePath) this.save(cfg.statePath);

    let v: VerifyResult | undefined;
    if (cfg.verify && !restError) {
      try {
        v = await verify(await this.rest(), this.expected);
      } catch (err) {
        restError = message(err);
      }
    }
    return this.report(v, null, restError, commands);
  }

  private report(v: VerifyResult | undefined, early: Outcome | null, verifyError: string | null = null, commands: CommandCheck | null = null): SimResult {
    const unacked = { batches: 0, readings: 0 };
    for (const d of this.devices.values()) {
      const u = d.unacked();
      unacked.batches += u.batches;
      unacked.readings += u.readings;
    }
    const outcome =
      early ??
      decide({ stats: this.stats, verify: v, verifyRequested: this.cfg.verify, verifyError, unackedBatches: unacked.batches, keepsState: this.cfg.statePath !== null, commands });
    const summary = summarize(this.stats, unacked, v, outcome, commands);
    return { summary, verify: v, exitCode: outcome.exitCode, reason: outcome.reason, text: formatSummary(summary, v) };
  }

  private reachedLimit(): boolean {
    if (this.cfg.maxReadings !== null && this.stats.generatedReadings >= this.cfg.maxReadings) return true;
    return false;
  }

  private async setUpFleet(fleet: Fleet, started: number): Promise<void> {
    const all = fleetDevices(fleet);
    let i = 0;
    for (const fd of all) {
      const delay = (i++ / this.cfg.connectRate) * 1000;
      const sim = await this.addDevice(fd.group, fd.device, delay);
      const key = stateKey(fd.group, fd.device);
      const signals = fd.kind.metrics.map((m) => {
        const spec = fd.kind.signals[m];
        if (!spec) throw new Error(`no signal for ${m}`);
        return new Signal(spec, hashSeed(this.cfg.seed, `${key}/${m}`), started);
      });
      const intervalMs = Number.isFinite(fd.kind.rate) ? 1000 / fd.kind.rate : 0;
      // Each device starts at its own phase within one interval, so a fleet never samples in lockstep.
      const gen: Generator = { sim, metrics: fd.kind.metrics, signals, intervalMs, nextAt: started + delay + Math.random() * intervalMs, owed: 0 };
      // set_rate and a sampleRateMs configuration change this device's sample interval.
      this.downlink?.add(sim, intervalMs, (ms) => ((gen.intervalMs = ms), (gen.nextAt = Date.now())));
      const source = this.cfg.batchSource?.(i - 1);
      if (source) gen.source = source;
      this.generators.push(gen);
      // "max" rate: keep the in-flight window full, refilling as acks arrive.
      const refill = () => gen.intervalMs === 0 && this.fillWindow(gen);
      sim.client.on("hello", refill);
      sim.client.on("ack", refill);
    }
  }

  /**
   * Changes every generated device's rate while running: samples per second
   * per device, Infinity for "max", 0 to pause.
   */
  setRate(samplesPerSecond: number): void {
    const now = Date.now();
    for (const g of this.generators) {
      g.intervalMs = samplesPerSecond === Infinity ? 0 : samplesPerSecond > 0 ? 1000 / samplesPerSecond : Infinity;
      g.nextAt = now;
      if (g.intervalMs === 0) this.fillWindow(g);
    }
  }

  /** The simulated devices (their clients carry seqs and pending counts). */
  simDevices(): SimDevice[] {
    return [...this.devices.values()];
  }

  /** Waits until every device's batches are acked, or the timeout. Returns whether all were. */
  async settle(timeoutMs: number): Promise<boolean> {
    await this.drain(timeoutMs);
    return this.simDevices().every((d) => d.client.pending === 0);
  }

  /** Fixed-rate devices: every sample due by `now`, one reading per metric. */
  private generate(now: number): void {
    for (const g of this.generators) {
      if (g.intervalMs === 0 || g.intervalMs === Infinity) continue;
      if (now - g.nextAt > 5000) {
        // The process fell behind (overloaded); skip rather than burst.
        this.stats.bump(this.stats.faults, "generator_skipped_samples", Math.floor((now - g.nextAt) / g.intervalMs));
        g.nextAt = now;
      }
      if (g.source) {
        // Whole batches from the source, as soon as a batch's worth is due.
        const perBatch = Math.max(1, Math.floor(this.cfg.policy.batchReadings / g.metrics.length));
        while (g.nextAt <= now) {
          g.owed++;
          g.nextAt += g.intervalMs;
        }
        while (g.owed >= perBatch) {
          g.owed -= perBatch;
          g.sim.sendBatch(g.source.batch(perBatch * g.metrics.length, now));
        }
        continue;
      }
      while (g.nextAt <= now) {
        this.sample(g, Math.round(g.nextAt), now);
        g.nextAt += g.intervalMs;
      }
    }
  }

  private sample(g: Generator, ts: number, now: number): void {
    for (let m = 0; m < g.metrics.length; m++) {
      const metric = g.metrics[m] ?? "";
      const value = this.round(g.signals[m]?.sample(ts) ?? 0);
      this.recorder?.write(g.sim.group, g.sim.device, ts, metric, value);
      g.sim.push(ts, metric, value, now);
    }
  }

  /** A value as generated: float32 with --float32 (the client's lossless encoding then sends 4 bytes), else as is. */
  private round(v: number): number {
    return this.cfg.float32 ? Math.fround(v) : v;
  }

  private fillWindow(g: Generator): void {
    const client = g.sim.client;
    const perBatch = Math.max(1, Math.floor(this.cfg.policy.batchReadings / g.metrics.length));
    // Twice the window: the client sends the queued half the moment acks free
    // slots, without waiting for this generator.
    while (!this.stopping && client.state === "open" && client.pending < this.cfg.maxInFlight * 2) {
      if (this.reachedLimit()) {
        this.stopRequested?.();
        return;
      }
      const now = Date.now();
      if (g.source) {
        g.sim.sendBatch(g.source.batch(perBatch * g.metrics.length, now));
        continue;
      }
      for (let i = 0; i < perBatch; i++) this.sample(g, now - perBatch + i, now);
      g.sim.flush();
    }
  }

  private async emitRows(rows: ReplayData["rows"], shift: number, now: number): Promise<void> {
    for (const r of rows) {
      const sim = await this.addDevice(r.group, r.device, 0);
      sim.push(r.ts + shift, r.metric, this.round(r.value), now);
    }
    if (!Number.isFinite(this.cfg.speed)) {
      // As fast as possible, but never faster than the hub acks: wait for the backlog to clear.
      for (const d of this.devices.values()) d.flush();
      await this.drain(10_000);
    }
  }

  private async drain(timeoutMs: number): Promise<void> {
    // An unref'd timer: a drain that waits out its timeout must not hold the process open.
    await Promise.race([Promise.all([...this.devices.values()].map((d) => d.client.idle())), sleep(timeoutMs, undefined, { ref: false })]);
  }

  private save(path: string): void {
    const clients = new Map([...this.devices].map(([key, d]) => [key, d.client]));
    saveState(path, stateOf(clients, this.state, this.cfg.prefix, this.expected.rows()));
  }
}

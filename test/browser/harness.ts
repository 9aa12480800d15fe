/**
 * Browser-test harness: Debian's headless Chromium through playwright-core,
 * a simulated fleet from the simulator's engine, screenshots into
 * test-artifacts/dashboard/. Everything started here is stopped by the
 * returned `close`/`stop` functions, each bounded in time.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { Simulation, type SimConfig } from "../../device-sim/engine.ts";
import { fleetFromOptions } from "../../device-sim/fleet.ts";
import { NO_FAULTS, type FaultConfig } from "../../device-sim/sim-device.ts";
import { withTimeout } from "../../harness/wait.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { TEST_SECRET } from "../secret.ts";

export { eventually, withTimeout } from "../../harness/wait.ts";
export { operatorToken } from "../tokens.ts";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const ARTIFACTS = join(ROOT, "test-artifacts", "dashboard");

export interface BrowserHandle {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<BrowserHandle> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH`);
  }
  // launch() runs Chromium on a fresh temporary profile and removes it on
  // close; the background-networking flags keep Chromium from dialling out.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    browser,
    async close() {
      await withTimeout(browser.close(), 15_000, "closing Chromium").catch(() => {});
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export interface FleetHandle {
  sim: Simulation;
  stop(): Promise<void>;
}

/** A simulated fleet in `group`, running until stopped. */
export function startFleet(
  url: string,
  group: string,
  opts: { devices: number; metrics: string[]; rate: number; batchMs?: number; faults?: Partial<FaultConfig>; connectRate?: number },
): FleetHandle {
  const fleet = fleetFromOptions({ groups: 1, prefix: "ui", devices: opts.devices, metrics: opts.metrics, rate: opts.rate });
  fleet.groups = [group];
  const cfg: SimConfig = {
    url,
    secret: TEST_SECRET,
    fleet,
    replay: null,
    speed: 1,
    replayTime: "shift",
    prefix: "ui",
    seed: 7,
    durationMs: null,
    maxReadings: null,
    policy: { batchMs: opts.batchMs ?? 250, batchReadings: 100 },
    maxInFlight: 8,
    bufferBatches: 600,
    faults: { ...NO_FAULTS, ...opts.faults },
    statePath: null,
    recordPath: null,
    verify: false,
    drainTimeoutMs: 2000,
    connectRate: opts.connectRate ?? 200,
    progress: false,
    // The devices answer commands and configuration sent from the device page.
    downlink: { commandRate: 0, dropFraction: 0, ttlMs: 60_000 },
  };
  const sim = new Simulation(cfg);
  const done = sim.run();
  return {
    sim,
    async stop() {
      sim.requestStop();
      await withTimeout(done, 20_000, "stopping the simulated fleet").catch(() => {});
    },
  };
}

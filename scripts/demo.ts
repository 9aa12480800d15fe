/**
 * The demo fleet of `npm start`: the simulator's fleet engine with a few
 * groups of tens of devices, running until the hub stops, so a new user
 * sees data flow at once.
 */
import { Simulation, simConfig, type SimConfig } from "../device-sim/engine.ts";
import { fleetFromOptions } from "../device-sim/fleet.ts";

export interface DemoFleet {
  description: string;
  stop(): Promise<void>;
}

export function demoConfig(url: string, secret: string): SimConfig {
  const fleet = fleetFromOptions({ groups: 3, prefix: "demo", devices: 12, metrics: ["temp", "humidity", "pressure"], rate: 1 });
  // Friendlier names than demo-1..3; the first matches the device token `npm start` prints.
  fleet.groups = ["demo", "factory-a", "greenhouse"];
  return simConfig(
    { url, secret, fleet },
    {
      prefix: "demo",
      policy: { batchMs: 1000, batchReadings: 100 },
      maxInFlight: 8,
      bufferBatches: 600,
      drainTimeoutMs: 3000,
      connectRate: 50,
      // The devices answer commands and configuration from the README, the dashboard and curl.
      downlink: { commandRate: 0, dropFraction: 0, ttlMs: 60_000 },
    },
  );
}

export function startDemoFleet(opts: { url: string; secret: string }): DemoFleet {
  const cfg = demoConfig(opts.url, opts.secret);
  const sim = new Simulation(cfg);
  const done = sim.run();
  const kinds = cfg.fleet?.kinds[0];
  return {
    description: `${cfg.fleet?.groups.join(", ")}: ${kinds?.count} devices each, ${kinds?.metrics.join("/")} once a second`,
    async stop() {
      sim.requestStop();
      await done;
    },
  };
}

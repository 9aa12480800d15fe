/**
 * A small demo fleet for `npm start`: a few groups of devices sending
 * temperature and humidity through the real device client, so a new user
 * sees data flow at once.
 */
import { DeviceClient } from "../device-sim/client.ts";
import type { Reading } from "../schema/protocol.ts";
import { deviceSubject, signToken } from "../schema/token.ts";

export interface DemoFleet {
  description: string;
  stop(): Promise<void>;
}

export async function startDemoFleet(opts: { url: string; secret: string }): Promise<DemoFleet> {
  const groups = ["demo", "factory-a", "greenhouse"];
  const perGroup = 8;
  const clients: DeviceClient[] = [];
  const timers: NodeJS.Timeout[] = [];
  for (const group of groups) {
    for (let i = 1; i <= perGroup; i++) {
      const device = `sensor-${String(i).padStart(2, "0")}`;
      const token = await signToken(opts.secret, deviceSubject(group, device));
      const client = new DeviceClient({ url: opts.url, group, device, token, keepAliveMs: 30_000 }).start();
      clients.push(client);
      const phase = Math.random() * Math.PI * 2;
      // One batch a second with ten readings per metric, 100 ms apart.
      timers.push(
        setInterval(() => {
          const now = Date.now();
          const readings: Reading[] = [];
          for (let k = 0; k < 10; k++) {
            const ts = now - 1000 + k * 100;
            const day = Math.sin((ts / 86_400_000) * Math.PI * 2 + phase);
            readings.push([ts, "temp", round(21 + 4 * day + (Math.random() - 0.5))]);
            readings.push([ts, "humidity", round(45 - 10 * day + (Math.random() - 0.5) * 2)]);
          }
          client.send(readings);
        }, 1000),
      );
    }
  }
  return {
    description: `${groups.length} groups (${groups.join(", ")}) x ${perGroup} devices, 20 readings/s each`,
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** Shared setup for Node-side tests: a real `wrangler dev` hub on a free port with its own state dir. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { DeviceClient, type DeviceClientOptions } from "../../client/index.ts";
import { sleep } from "../../harness/wait.ts";
import { startHub, type HubProcess } from "../../harness/wrangler-dev.ts";
import type { AggregateBucket, AggregateFilter } from "../../schema/api.ts";
import { HubClient } from "../../schema/client.ts";
import { TEST_SECRET } from "../secret.ts";
import { deviceToken, operatorToken } from "../tokens.ts";

export { uniqueGroup } from "../../harness/names.ts";

export interface TestHub {
  hub: HubProcess;
  url: string;
  stateDir: string;
  /** Restarts wrangler on the same port and state directory, after `downMs` with no hub. */
  restart(downMs?: number): Promise<void>;
  /** Stops wrangler (resolves once it has exited); `up()` starts it again on the same port and state. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** The project's shared hub (test/node/shared-hub.ts starts it): its URL and port. */
export interface SharedHub {
  url: string;
  port: number;
}

/**
 * The hub every file of the node project shares: no start-up cost. Use a
 * group of your own (uniqueGroup) for everything the test sends or reads.
 * Only a test that stops, restarts or reads the log of its hub starts one
 * of its own with `startTestHub()`.
 */
export function sharedHub(): SharedHub {
  return { url: inject("sharedHubUrl"), port: inject("sharedHubPort") };
}

export async function startTestHub(): Promise<TestHub> {
  const stateDir = mkdtempSync(join(tmpdir(), "hub-e2e-"));
  const vars = { HUB_SECRET: TEST_SECRET };
  let hub = await startHub({ persistTo: stateDir, vars });
  const t: TestHub = {
    hub,
    url: hub.url,
    stateDir,
    async restart(downMs = 0) {
      await t.down();
      if (downMs > 0) await sleep(downMs);
      await t.up();
    },
    async down() {
      await hub.stop();
    },
    async up() {
      hub = await startHub({ persistTo: stateDir, vars, port: hub.port });
      t.hub = hub;
    },
    async stop() {
      await hub.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
  return t;
}

export async function deviceClient(
  url: string,
  group: string,
  device: string,
  extra: Partial<DeviceClientOptions> = {},
): Promise<DeviceClient> {
  const token = await deviceToken(group, device);
  return new DeviceClient({ url, group, device, token, backoffInitialMs: 50, backoffMaxMs: 500, ...extra });
}

export async function operatorGet(url: string, path: string, group: string | "*" = "*"): Promise<{ status: number; body: unknown }> {
  const token = await operatorToken(group);
  const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

export type Bucket = AggregateBucket;

/** The typed REST client (schema/client.ts) as an operator of `group` (default: all groups). */
export async function operatorClient(url: string, group: string | "*" = "*"): Promise<HubClient> {
  return new HubClient({ url, token: await operatorToken(group) });
}

/** The group's aggregate buckets, through the typed client. */
export async function buckets(url: string, group: string, filter: AggregateFilter = {}): Promise<Bucket[]> {
  return (await (await operatorClient(url)).aggregates(group, filter)).buckets;
}

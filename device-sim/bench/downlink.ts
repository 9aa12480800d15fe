/**
 * `npm run bench:downlink`: commands and configuration to devices
 * (docs/protocol.md, "Downlink") against the real Worker on workerd
 * (Miniflare's API, SQLite on disk):
 *
 * 1. command round trip at a steady rate (default 1,000 commands/s) spread
 *    over 1,000 online devices: from sending the POST to the device's result
 *    (the hub applies a result as it arrives), p50 and p99; and the hub's own
 *    `completedAt - createdAt` for the same commands;
 * 2. one configuration PUT (`PUT /v1/groups/{group}/config`) naming 10,000
 *    online devices: time from sending it until every device has applied it.
 *
 *   npm run bench:downlink                       about a minute
 *   npm run bench:downlink -- --rate 500 --config-devices 2000 --json
 *
 * Only 127.0.0.1 is contacted; the workerd process and temp dirs are removed
 * at the end. docs/benchmarks.md has the figures.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DeviceClient } from "../../client/index.ts";
import { sleep } from "../../harness/wait.ts";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../../lib/options.ts";
import { HubClient } from "../../schema/client.ts";
import { deviceSubject, operatorSubject, signToken } from "../../schema/token.ts";
import { bundleWorker, readWranglerConfig, startHub } from "./hub.ts";

const USAGE = "usage: npm run bench:downlink -- [--rate N] [--duration S] [--devices N] [--config-devices N] [--json]\n";
const values = parseCli(USAGE, {
  options: {
    json: { type: "boolean", default: false },
    rate: { type: "string", default: "1000" },
    duration: { type: "string", default: "10" },
    devices: { type: "string", default: "1000" },
    "config-devices": { type: "string", default: "10000" },
    help: HELP_FLAG,
  },
});
const RATE = orExit(() => numberOption("rate", values.rate, { min: 1, max: 100_000 }), USAGE);
const DURATION_S = orExit(() => numberOption("duration", values.duration, { min: 1, max: 3600, integer: false }), USAGE);
const DEVICES = orExit(() => numberOption("devices", values.devices, { min: 1, max: 10_000 }), USAGE);
const CONFIG_DEVICES = orExit(() => numberOption("config-devices", values["config-devices"], { min: 1, max: 10_000 }), USAGE);
const progress = (s: string) => process.stderr.write(`downlink: ${s}\n`);
const secret = `bench-${Math.random().toString(36).slice(2)}`;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? 0;
}
const ms = (n: number) => +n.toFixed(1);
/** Commands sent and not yet answered, at most. */
const MAX_POSTS_IN_FLIGHT = 256;

/** Opens `n` opted-in devices of a group, a few hundred at a time; `setup` registers their handlers. */
async function openDevices(url: string, group: string, n: number, setup: (c: DeviceClient, i: number) => void): Promise<DeviceClient[]> {
  const out: DeviceClient[] = [];
  for (let i = 0; i < n; i += 250) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(250, n - i) }, async (_, k) => {
        const device = `d-${i + k}`;
        const c = new DeviceClient({ url, group, device, token: await signToken(secret, deviceSubject(group, device)), downlink: true, backoffMaxMs: 2000 });
        setup(c, i + k);
        const hello = new Promise<void>((r) => c.once("hello", () => r()));
        c.start();
        await hello;
        return c;
      }),
    );
    out.push(...chunk);
  }
  return out;
}

const work = await mkdtemp(join(tmpdir(), "hub-downlink-"));
const entry = await bundleWorker(join(work, "bundle"));
const hub = await startHub({
  entry,
  config: readWranglerConfig(),
  secret,
  vars: { MAX_PEER_SOCKETS: String(Math.max(DEVICES, CONFIG_DEVICES) + 100), DOWNLINK_COMMANDS_PER_SEC: String(RATE * 2) },
  onLog: () => undefined,
});
progress(`hub on ${hub.url}`);

let commands: Record<string, unknown> | undefined;
let config: Record<string, unknown> | undefined;
try {
  // 1. Command round trips.
  {
    const group = "dl-commands";
    const op = new HubClient({ url: hub.url, token: await signToken(secret, operatorSubject(group)), timeoutMs: 120_000 });
    const sentAt = new Map<string, number>();
    const roundTrip: number[] = [];
    const early = new Map<string, number>();
    const devices = await openDevices(hub.url, group, DEVICES, (c) => {
      c.downlink.command("ping", (_args, cmd) => {
        const now = performance.now();
        const t0 = sentAt.get(cmd.id);
        // The result can beat the POST's answer back to this process: match it up later.
        if (t0 === undefined) early.set(cmd.id, now);
        else roundTrip.push(now - t0);
        return null;
      });
    });
    progress(`${DEVICES} devices online; ${RATE} commands/s for ${DURATION_S} s`);
    const total = Math.round(RATE * DURATION_S);
    const ids: { device: string; id: string }[] = [];
    let refused = 0;
    const started = performance.now();
    const inflight = new Set<Promise<void>>();
    for (let k = 0; k < total; k++) {
      // Paced by the clock: command k goes out at k / RATE seconds, with at
      // most MAX_POSTS_IN_FLIGHT unanswered (a hub that falls behind lowers
      // the achieved rate instead of piling up requests here).
      const due = started + (k * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      while (inflight.size >= MAX_POSTS_IN_FLIGHT) await Promise.race(inflight);
      const device = `d-${k % DEVICES}`;
      const t0 = performance.now();
      const post = op.queueCommand(group, device, { name: "ping", ttlMs: 60_000 }).then(
        ({ id }) => {
          ids.push({ device, id });
          const at = early.get(id);
          if (at === undefined) sentAt.set(id, t0);
          else roundTrip.push(at - t0);
        },
        () => void refused++,
      );
      inflight.add(post);
      void post.finally(() => inflight.delete(post));
    }
    await Promise.all(inflight);
    const sendS = (performance.now() - started) / 1000;
    const deadline = Date.now() + 30_000;
    while (roundTrip.length < ids.length && Date.now() < deadline) await sleep(50);
    // The hub's view of the same commands: queued to final, on its own clock.
    const hubSide: number[] = [];
    const byDevice = new Set(ids.map((x) => x.device));
    let succeeded = 0;
    for (const d of byDevice) {
      for (const c of await op.commands(group, d, { limit: 1000 })) {
        if (c.status === "succeeded") succeeded++;
        if (c.completedAt !== null) hubSide.push(c.completedAt - c.createdAt);
      }
    }
    commands = {
      devices: DEVICES,
      targetRate: RATE,
      achievedRate: Math.round(ids.length / sendS),
      queued: ids.length,
      refused,
      succeeded,
      roundTripMs: { p50: ms(quantile(roundTrip, 0.5)), p99: ms(quantile(roundTrip, 0.99)), max: ms(Math.max(0, ...roundTrip)) },
      hubQueuedToFinalMs: { p50: ms(quantile(hubSide, 0.5)), p99: ms(quantile(hubSide, 0.99)) },
    };
    progress(`commands: ${JSON.stringify(commands)}`);
    await Promise.all(devices.map((c) => c.close()));
  }

  // 2. One configuration PUT to CONFIG_DEVICES devices.
  {
    const group = "dl-config";
    const op = new HubClient({ url: hub.url, token: await signToken(secret, operatorSubject(group)), timeoutMs: 120_000 });
    let applied = 0;
    let lastAppliedAt = 0;
    const devices = await openDevices(hub.url, group, CONFIG_DEVICES, (c) => {
      c.downlink.config((desired) => {
        applied++;
        lastAppliedAt = performance.now();
        return desired;
      });
    });
    progress(`${CONFIG_DEVICES} devices online; one PUT /v1/groups/${group}/config naming them all`);
    const started = performance.now();
    await op.putGroupConfig(group, { sampleRateMs: 250 }, devices.map((_, i) => `d-${i}`));
    const putsDoneMs = performance.now() - started;
    const deadline = Date.now() + 60_000;
    while (applied < CONFIG_DEVICES && Date.now() < deadline) await sleep(20);
    const sample = await op.config(group, `d-${CONFIG_DEVICES - 1}`);
    config = {
      devices: CONFIG_DEVICES,
      applied,
      putsDoneMs: ms(putsDoneMs),
      allAppliedMs: applied === CONFIG_DEVICES ? ms(lastAppliedAt - started) : null,
      lastDeviceAppliedVersion: sample.appliedVersion,
    };
    progress(`config: ${JSON.stringify(config)}`);
    await Promise.all(devices.map((c) => c.close()));
  }
} finally {
  await hub.dispose();
  await rm(work, { recursive: true, force: true });
}

const result = { date: new Date().toISOString(), commands, config, goals: { commandP99Ms: 50, configAllAppliedMs: 5000 } };
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const c = commands as { roundTripMs: { p50: number; p99: number }; achievedRate: number; hubQueuedToFinalMs: { p50: number; p99: number } };
  const f = config as { allAppliedMs: number | null; putsDoneMs: number };
  process.stdout.write(
    `command round trip at ${c.achievedRate}/s over ${DEVICES} devices: p50 ${c.roundTripMs.p50} ms, p99 ${c.roundTripMs.p99} ms (goal p99 <= 50 ms); hub queued->final p50 ${c.hubQueuedToFinalMs.p50} ms, p99 ${c.hubQueuedToFinalMs.p99} ms\n` +
      `config PUT to ${CONFIG_DEVICES} devices: all applied after ${f.allAppliedMs ?? "(not all)"} ms (PUT answered after ${f.putsDoneMs} ms; goal <= 5000 ms)\n`,
  );
}

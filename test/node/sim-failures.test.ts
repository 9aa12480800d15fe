/**
 * The simulator when things go wrong, against a real hub (wrangler dev):
 * a whole fleet's sockets cut at once, acks lost on the way, a hub that is
 * not there, rejects our tokens, rejects every batch or stops answering.
 * Each run must end with its summary, a one-line reason and the right exit
 * code, and --verify must be right whenever the hub is.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Simulation, simConfig } from "../../device-sim/engine.ts";
import { fleetFromOptions, type Fleet } from "../../device-sim/fleet.ts";
import { heavyPhase } from "../../harness/heavy.ts";
import { freePort } from "../../harness/ports.ts";
import type { DeviceInfo } from "../../schema/api.ts";
import { TEST_SECRET } from "../secret.ts";
import { CutProxy } from "./cut-proxy.ts";
import { buckets, deviceClient, operatorGet, startTestHub, uniqueGroup, type TestHub } from "./hub.ts";
import { runSim, summaryOf } from "./sim-cli.ts";

// Its own hub: a 300-device fleet (and the backlog it can leave on a busy
// machine) must not slow the shared hub's other files, nor they it.
let t: TestHub;
let dir: string;
beforeAll(async () => {
  t = await startTestHub();
  dir = mkdtempSync(join(tmpdir(), "sim-failures-"));
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The hub's own totals for a group over REST: devices' `readings`, and the sum of its buckets' counts. */
async function hubTotals(group: string): Promise<{ devices: number; buckets: number }> {
  const { status, body } = await operatorGet(t.url, `/v1/groups/${group}/devices`);
  if (status !== 200) throw new Error(`devices ${status}`);
  const devices = (body as { devices: DeviceInfo[] }).devices.reduce((n, d) => n + d.readings, 0);
  const counted = (await buckets(t.url, group)).reduce((n, b) => n + b.count, 0);
  return { devices, buckets: counted };
}

async function hubReadings(fleet: Fleet): Promise<number> {
  let n = 0;
  for (const g of fleet.groups) n += (await hubTotals(g)).devices;
  return n;
}

/** Long enough for a busy two-core machine; the waits end as soon as the state is reached. */
const WAIT = { timeout: 90_000, interval: 100 };

/**
 * The cut fleet: three groups of 100. It was 600 devices, and under a CPU
 * burner in CI 156 of them were still reconnecting after 90 s (the same
 * run passed alone under two burners in seconds); 300 sockets cut at once
 * prove the same and leave the machine's speed out of it.
 */
const GROUPS = 3;
const PER_GROUP = 100;
const FLEET = GROUPS * PER_GROUP;

/** What the simulator saw, for the message of a failed wait. */
function simState(sim: Simulation): string {
  const s = sim.stats;
  return JSON.stringify({ connected: s.connected, reconnects: s.reconnects, connectErrors: s.connectErrors, lastConnectError: s.lastConnectError, closes: s.closes, errors: s.errors, ackedBatches: s.ackedBatches });
}

describe("a fleet losing its sockets", () => {
  it("every socket of a 300-device fleet cut at once (1006): resent, settled, EXACT MATCH, and the hub's own totals agree", () =>
    heavyPhase("a 300-device fleet cut at once", async () => {
      const proxy = await new CutProxy(t.hub.port).listen();
      try {
        const fleet = fleetFromOptions({ groups: GROUPS, prefix: uniqueGroup("cut"), devices: PER_GROUP, metrics: ["temp", "humidity"], rate: 2 });
        const sim = new Simulation(simConfig({ url: proxy.url, secret: TEST_SECRET, fleet }, { verify: true, connectRate: 1000, drainTimeoutMs: 60_000 }));
        const done = sim.run();
        await vi.waitFor(() => {
          expect(sim.stats.connected, simState(sim)).toBe(FLEET);
          expect(sim.stats.ackedBatches, simState(sim)).toBeGreaterThan(2 * FLEET);
        }, WAIT);
        // First the acks go missing while the hub keeps applying: batches the
        // fleet has not heard about are in the hub when the sockets go.
        proxy.muteWebSockets();
        const heard = sim.stats.ackedReadings;
        await vi.waitFor(async () => expect(await hubReadings(fleet)).toBeGreaterThan(heard + 2 * FLEET), WAIT);
        expect(proxy.dropAll()).toBe(FLEET);
        const before = sim.stats.ackedBatches;
        await vi.waitFor(() => {
          expect(sim.stats.reconnects, simState(sim)).toBeGreaterThanOrEqual(FLEET);
          expect(sim.stats.connected, simState(sim)).toBe(FLEET);
          expect(sim.stats.ackedBatches, simState(sim)).toBeGreaterThan(before + 2 * FLEET);
        }, WAIT);
        sim.requestStop();
        const r = await done;

        expect(r.exitCode, `${r.reason}\n${r.text.slice(0, 3000)}`).toBe(0);
        expect(r.verify?.ok).toBe(true);
        expect(r.summary.closesByCode["1006"]).toBeGreaterThanOrEqual(FLEET);
        // The hub had applied batches whose acks never came: hello's lastSeq settled them.
        expect(r.summary.duplicateAcks).toBeGreaterThan(0);
        expect(r.summary.unacked).toEqual({ batches: 0, readings: 0 });
        expect(r.verify?.readingsFound).toBe(r.summary.ackedReadings);
        let devices = 0;
        let counted = 0;
        for (const g of fleet.groups) {
          const total = await hubTotals(g);
          devices += total.devices;
          counted += total.buckets;
        }
        expect(devices).toBe(r.summary.ackedReadings);
        expect(counted).toBe(r.summary.ackedReadings);
      } finally {
        await proxy.close();
      }
    }),
    300_000,
  );

  it("acks lost at the end of a run are settled by the hub's lastSeq, not reported as differences", async () => {
    const proxy = await new CutProxy(t.hub.port).listen();
    try {
      const fleet = fleetFromOptions({ groups: 1, prefix: uniqueGroup("lost-acks"), devices: 20, metrics: ["temp"], rate: 10 });
      // A drain shorter than the time the acks stay lost: the run ends with them outstanding.
      const sim = new Simulation(simConfig({ url: proxy.url, secret: TEST_SECRET, fleet }, { verify: true, drainTimeoutMs: 500 }));
      const done = sim.run();
      await vi.waitFor(() => {
        expect(sim.stats.connected).toBe(20);
        expect(sim.stats.ackedBatches).toBeGreaterThan(40);
      }, WAIT);
      proxy.muteWebSockets();
      const heard = sim.stats.ackedReadings;
      await vi.waitFor(async () => expect(await hubReadings(fleet)).toBeGreaterThan(heard + 100), WAIT);
      sim.requestStop();
      const r = await done;
      expect(r.exitCode, `${r.reason}\n${r.text}`).toBe(0);
      expect(r.verify?.ok).toBe(true);
      expect(r.summary.settledByLastSeq).toBeGreaterThan(0);
      expect(r.summary.unacked).toEqual({ batches: 0, readings: 0 });
      const total = await hubTotals(fleet.groups[0] ?? "");
      expect(total).toEqual({ devices: r.summary.ackedReadings, buckets: r.summary.ackedReadings });
    } finally {
      await proxy.close();
    }
  });
});

describe("a slow hub", () => {
  it("a device keeps its socket while acks fall seconds behind but keep coming, and drops it when the hub goes silent", async () => {
    const proxy = await new CutProxy(t.hub.port).listen();
    const ackTimeoutMs = 3000;
    const client = await deviceClient(proxy.url, uniqueGroup("slow"), "d1", { ackTimeoutMs });
    try {
      let disconnects = 0;
      let slowest = 0;
      // When the client last heard from the hub, and the silence it had heard at its first disconnect: a
      // disconnect is right (by design) only after ackTimeoutMs without a frame, whatever made the silence (a
      // stalled hub or test process on a busy machine), and wrong while frames keep coming, however late each
      // ack is. The longest silence between acks is kept for the log.
      let lastHeard = 0;
      let longestSilence = 0;
      let silenceAtDisconnect: number | null = null;
      client.on("disconnect", () => {
        if (disconnects++ === 0 && lastHeard > 0) silenceAtDisconnect = Date.now() - lastHeard;
      });
      client.on("ack", (_seq, dup, latencyMs) => {
        if (!dup) slowest = Math.max(slowest, latencyMs);
        const now = Date.now();
        if (lastHeard > 0 && disconnects === 0) longestSilence = Math.max(longestSilence, now - lastHeard);
        lastHeard = now;
      });
      client.start();
      await vi.waitFor(() => expect(client.state).toBe("open"), WAIT);
      // Acks come later and later, up to twice the timeout: each batch waits
      // longer than ackTimeoutMs, yet the hub is never silent for that long.
      const t0 = Date.now();
      proxy.delayFromHub(() => Math.min(6000, (Date.now() - t0) / 2));
      // A device with a bounded backlog: one window and a little more.
      const sender = setInterval(() => client.pending < 40 && client.send([[Date.now(), "temp", 1]]), 20);
      try {
        await vi.waitFor(() => expect(slowest).toBeGreaterThan(4500), WAIT);
      } finally {
        clearInterval(sender);
      }
      proxy.delayFromHub(() => 0);
      await client.idle();
      console.log(
        `slow hub: slowest ack ${slowest} ms, longest silence between acks ${longestSilence} ms (ack timeout ${ackTimeoutMs} ms), disconnects ${disconnects}${silenceAtDisconnect === null ? "" : `, the first after ${silenceAtDisconnect} ms of silence`}`,
      );
      // Frames kept coming: no disconnect. A disconnect is only accepted after a silence of about the
      // timeout (less 100 ms of timer slack); then the slow-ack property went unproven this run, and the log says so.
      if (disconnects > 0) expect(silenceAtDisconnect ?? 0, "a disconnect while the hub kept answering").toBeGreaterThanOrEqual(ackTimeoutMs - 100);
      const before = disconnects;
      // A silent hub is still left: no frame at all for ackTimeoutMs with a batch in flight.
      proxy.muteWebSockets();
      client.send([[Date.now(), "temp", 2]]);
      await vi.waitFor(() => expect(disconnects).toBe(before + 1), WAIT);
      await client.idle();
    } finally {
      await client.close();
      await proxy.close();
    }
  });
});

describe("exit paths of npm run sim", () => {
  it("no hub: exit 3 at once with a one-line reason", async () => {
    const port = await freePort();
    const r = await runSim(["--duration", "30s", "--verify"], { hub: { url: `http://127.0.0.1:${port}`, secret: TEST_SECRET } });
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^sim: hub unreachable at http:\/\/127\.0\.0\.1:\d+ .*is it running\?/);
    expect(r.stdout).toContain("Result: FAILED (exit 3)");
  });

  it("a secret the hub does not know: exit 3, says so", async () => {
    const r = await runSim(["--duration", "30s", "--json"], { hub: { url: t.url, secret: "not-the-hub-secret" } });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/rejected the simulator's tokens \(HTTP 401\)/);
    expect(summaryOf(r).failure).toMatch(/HUB_SECRET/);
  });

  it("every batch rejected: exit 4, nothing was acked, and the summary says by which code", async () => {
    const csv = join(dir, "old.csv");
    // Two years old, kept as recorded: outside the hub's timestamp window.
    writeFileSync(csv, "ts,device,metric,value\n" + [0, 1, 2].map((i) => `${Date.UTC(2024, 0, 1, 0, 0, i)},old-1,temp,${20 + i}`).join("\n") + "\n");
    const r = await runSim(["--replay", csv, "--replay-group", uniqueGroup("old"), "--replay-time", "original", "--speed", "max", "--json"], {
      hub: { url: t.url, secret: TEST_SECRET },
    });
    const s = summaryOf(r);
    expect(r.code).toBe(4);
    expect(s.ackedReadings).toBe(0);
    expect(s.failure).toMatch(/^nothing was acked: the hub rejected every batch \(\w+=\d+\)/);
    expect(r.stderr).toContain(`sim: ${s.failure ?? ""}`);
  });

  it("a hub that stops answering: the run times out, prints its summary and the reason, exit 4", async () => {
    const proxy = await new CutProxy(t.hub.port).listen();
    try {
      // Once the hub holds readings of the run, it goes silent, and the user presses Ctrl-C.
      const prefix = uniqueGroup("hang");
      const silent = proxy
        .firstWebSocket()
        .then(() => vi.waitFor(async () => expect((await hubTotals(`${prefix}-1`)).devices).toBeGreaterThan(0), WAIT))
        .then(() => proxy.hang());
      const running = runSim(
        ["--prefix", prefix, "--groups", "1", "--devices", "3", "--duration", "10m", "--verify", "--drain-timeout", "1s", "--http-timeout", "2s"],
        { hub: { url: proxy.url, secret: TEST_SECRET }, interrupt: silent },
      );
      const r = await Promise.race([running, new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the simulator did not give up")), 100_000))]);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stdout).toContain("Simulation summary");
      expect(r.stdout).toContain("Result: FAILED (exit 4): --verify could not run:");
      // Whichever REST call met the silence first (lastSeq of unacked batches, or the aggregates).
      expect(r.stderr).toMatch(/\nsim: --verify could not run: .*GET (devices|aggregates) of \S+: no answer within \d+ s .*\n$/);
    } finally {
      await proxy.close();
    }
  });
});

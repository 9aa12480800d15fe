/**
 * `npm run bench:bridge`: messages per second from an MQTT.js publisher
 * through Mosquitto and the bridge into the hub, against Mosquitto
 * delivering the same messages to a plain MQTT.js subscriber, in the same
 * run, alternating rounds.
 *
 *   npm run bench:bridge                           5 rounds of 50,000 messages each way
 *   npm run bench:bridge -- --messages 50000 --rounds 5
 *   npm run bench:bridge -- --json
 *
 * Both consumers are child processes subscribed for the whole run (QoS 1,
 * MQTT 5, the same receive maximum) and each is idle while the other is
 * measured: the plain subscriber on plain/#, the bridge on sensors/#. A
 * round's rate is messages / (time of the last delivery - time of the first
 * publish); for the bridge, the last delivery is the hub's ack of the batch
 * holding the last message, so its rate includes the hub's commits. Only
 * 127.0.0.1 is used; Mosquitto, workerd and the children are stopped by PID.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { childBridge, hasMosquitto, startMosquitto, type ChildBridge, type Mosquitto } from "../harness/mqtt-procs.ts";
import { sleep, waitFor } from "../harness/wait.ts";
import { bundleWorker, readWranglerConfig, startHub, type Hub } from "../device-sim/bench/hub.ts";
import { HELP_FLAG, numberOption, orExit, parseCli } from "../lib/options.ts";
import { HubClient } from "../schema/client.ts";
import { gatewaySubject, operatorSubject, signToken } from "../schema/token.ts";

const WINDOW = 10_000;
const GROUP = "bench";
const GATEWAY = "bench-bridge";

// --- subscriber child: `node bridge/bench.ts --subscriber URL` --------------

async function runSubscriber(url: string): Promise<void> {
  const client = await connectAsync(url, { clientId: `bench-sub-${process.pid}`, protocolVersion: 5, clean: true, properties: { receiveMaximum: WINDOW } });
  let count = 0;
  let expect = Infinity;
  client.on("message", () => {
    if (++count === expect) process.send?.({ done: Date.now() });
  });
  process.on("message", (m: { expect?: number }) => {
    if (typeof m.expect === "number") {
      count = 0;
      expect = m.expect;
    }
  });
  await client.subscribeAsync("plain/#", { qos: 1 });
  process.send?.({ ready: true });
}

// --- the benchmark ------------------------------------------------------------

interface Round {
  plain: number;
  bridge: number;
  /** CPU seconds per 10,000 messages, by process, in each phase. */
  plainCpu: Record<string, number>;
  bridgeCpu: Record<string, number>;
}

/** utime + stime of a process and all its descendants, seconds (Linux /proc; 0 elsewhere). */
function treeCpuSeconds(root: number): number {
  const children = new Map<number, number[]>();
  const own = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  for (const d of entries) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      // Fields after "(comm) ": state ppid ... utime(14) stime(15).
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pid = Number(d);
      const ppid = Number(f[1]);
      own.set(pid, (Number(f[11]) + Number(f[12])) / 100);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop() ?? 0;
    total += own.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

type Pids = Record<string, number>;

function cpuSnapshot(pids: Pids): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = name === "publisher" ? process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6 : treeCpuSeconds(pid);
  return out;
}

function cpuPer10k(before: Record<string, number>, after: Record<string, number>, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(before)) out[k] = Math.round((((after[k] ?? 0) - (before[k] ?? 0)) * 10_000 * 100) / n) / 100;
  return out;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

function fmtCpu(c: Record<string, number>): string {
  return Object.entries(c)
    .filter(([, v]) => v > 0.005)
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(", ");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** Publishes n QoS 1 messages as fast as the client pipelines them; resolves at the first publish's time. */
function publishAll(pub: MqttClient, prefix: string, n: number, offset: number, devices: number): { start: number; done: Promise<void> } {
  const start = Date.now();
  const all: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) all.push(pub.publishAsync(`${prefix}/${GROUP}/dev-${i % devices}/temp`, String(offset + i), { qos: 1 }));
  return { start, done: Promise.all(all).then(() => undefined) };
}

class Subscriber {
  private readonly child: ChildProcess;
  private waiter: ((t: number) => void) | null = null;
  readonly ready: Promise<void>;

  constructor(url: string) {
    this.child = fork(import.meta.filename, ["--subscriber", url], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.ready = new Promise((resolve, reject) => {
      this.child.once("exit", (code) => reject(new Error(`subscriber exited ${code}`)));
      this.child.on("message", (m: { ready?: boolean; done?: number }) => {
        if (m.ready) resolve();
        if (typeof m.done === "number") this.waiter?.(m.done);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolves with the time the n-th message arrived. */
  expect(n: number): Promise<number> {
    const p = new Promise<number>((resolve) => (this.waiter = resolve));
    this.child.send({ expect: n });
    return p;
  }

  stop(): void {
    if (this.child.pid !== undefined && this.child.exitCode === null) process.kill(this.child.pid, "SIGTERM");
  }
}

/** Waits until the bridge's hub-acked counter reaches `target`; returns when it got there (10 ms resolution). */
async function bridgeAckedAt(b: ChildBridge, target: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await b.metrics();
    if ((m.bridge_messages_hub_acked_total ?? 0) >= target) return Date.now();
    if (Date.now() > deadline) throw new Error(`bridge acked ${m.bridge_messages_hub_acked_total} of ${target}`);
    await sleep(10);
  }
}

async function main(): Promise<void> {
  const usage = "usage: npm run bench:bridge [-- --messages N] [-- --rounds R] [-- --devices N] [-- --batch-readings N] [-- --json]\n";
  const values = parseCli(usage, {
    options: {
      messages: { type: "string", default: "50000" },
      rounds: { type: "string", default: "5" },
      "batch-readings": { type: "string" },
      devices: { type: "string", default: "100" },
      json: { type: "boolean", default: false },
      help: HELP_FLAG,
    },
  });
  const n = orExit(() => numberOption("messages", values.messages, { min: 100 }), usage);
  const rounds = orExit(() => numberOption("rounds", values.rounds, { min: 1 }), usage);
  const devices = orExit(() => numberOption("devices", values.devices, { min: 1 }), usage);
  if (!hasMosquitto()) throw new Error("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)");

  const stateDir = mkdtempSync(join(tmpdir(), "bench-bridge-"));
  const secret = randomBytes(24).toString("base64url");
  let mq: Mosquitto | null = null;
  let hub: Hub | null = null;
  let bridge: ChildBridge | null = null;
  let sub: Subscriber | null = null;
  let pub: MqttClient | null = null;
  try {
    log("starting mosquitto and the hub (the deploy bundle on workerd, as bench:ingest runs it)...");
    mq = await startMosquitto();
    // The per-gateway rate limit (50,000 readings/s by default) would cap the
    // bridge below what it can do; the bench measures the path, not the limit.
    hub = await startHub({
      entry: await bundleWorker(join(stateDir, "bundle")),
      config: readWranglerConfig(),
      secret,
      vars: { PEER_READINGS_PER_SEC: "0", PEER_WORK_BYTES_PER_SEC: "0", GROUP_WORK_BYTES_PER_SEC: "0" },
      onLog: () => undefined,
    });
    const token = await signToken(secret, gatewaySubject(GROUP, GATEWAY));
    const extra = values["batch-readings"] ? ["--batch-readings", values["batch-readings"]] : [];
    bridge = await childBridge(["--mqtt", mq.url, "--hub", hub.url, "--gateway", GATEWAY, "--token", `${GROUP}=${token}`, "--window", String(WINDOW), ...extra]);
    const b = bridge;
    await waitFor(async () => (await b.metrics()).bridge_mqtt_connected === 1, "the bridge to connect");
    sub = new Subscriber(mq.url);
    await sub.ready;
    pub = await connectAsync(mq.url, { clientId: "bench-pub", protocolVersion: 4 });

    let sent = 0;
    const warm = Math.min(2000, n);
    log(`warming up with ${warm} messages each way...`);
    const w1 = sub.expect(warm);
    await publishAll(pub, "plain", warm, 0, devices).done;
    await w1;
    await publishAll(pub, "sensors", warm, sent, devices).done;
    sent += warm;
    await bridgeAckedAt(b, sent, 60_000);

    const pids: Pids = {
      publisher: process.pid,
      mosquitto: mq.pid,
      subscriber: sub.pid,
      bridge: bridge.child.pid ?? 0,
      hub: hub.workerdPid ?? 0,
    };
    const results: Round[] = [];
    for (let r = 0; r < rounds; r++) {
      let cpu0 = cpuSnapshot(pids);
      const got = sub.expect(n);
      const a = publishAll(pub, "plain", n, 0, devices);
      const plainEnd = await got;
      await a.done;
      const plain = n / ((plainEnd - a.start) / 1000);
      const plainCpu = cpuPer10k(cpu0, cpuSnapshot(pids), n);

      cpu0 = cpuSnapshot(pids);
      const p = publishAll(pub, "sensors", n, sent, devices);
      sent += n;
      const bridgeEnd = await bridgeAckedAt(b, sent, 120_000);
      await p.done;
      const viaBridge = n / ((bridgeEnd - p.start) / 1000);
      const bridgeCpu = cpuPer10k(cpu0, cpuSnapshot(pids), n);
      results.push({ plain, bridge: viaBridge, plainCpu, bridgeCpu });
      log(`round ${r + 1}: plain subscriber ${Math.round(plain)} msg/s, bridge into the hub ${Math.round(viaBridge)} msg/s (${((viaBridge / plain) * 100).toFixed(0)}%)`);
      log(`  CPU s per 10k messages, plain: ${JSON.stringify(plainCpu)}; bridge: ${JSON.stringify(bridgeCpu)}`);
    }

    // Everything the bridge acked is in the hub, once.
    const op = new HubClient({ url: hub.url, token: await signToken(secret, operatorSubject(GROUP)) });
    const inHub = (await op.aggregates(GROUP)).buckets.reduce((s, x) => s + x.count, 0);
    const m = await b.metrics();
    const cpuMedian = (phase: "plainCpu" | "bridgeCpu"): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const k of Object.keys(pids)) out[k] = median(results.map((x) => x[phase][k] ?? 0));
      return out;
    };
    const summary = {
      messages: n,
      rounds,
      devices,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "?",
      plainMedian: Math.round(median(results.map((x) => x.plain))),
      bridgeMedian: Math.round(median(results.map((x) => x.bridge))),
      // Each round measures both paths back to back, so its ratio is the
      // fairest figure when other load on the machine drifts; the ratio of
      // the two medians is shown too.
      ratio: median(results.map((x) => x.bridge / x.plain)),
      ratioOfMedians: median(results.map((x) => x.bridge)) / median(results.map((x) => x.plain)),
      roundRatios: results.map((x) => Math.round((x.bridge / x.plain) * 100) / 100),
      perRound: results.map((x) => ({ plain: Math.round(x.plain), bridge: Math.round(x.bridge), plainCpu: x.plainCpu, bridgeCpu: x.bridgeCpu })),
      cpuPer10kPlain: cpuMedian("plainCpu"),
      cpuPer10kBridge: cpuMedian("bridgeCpu"),
      readingsInHub: inHub,
      published: sent,
      batches: m.bridge_batches_sent_total ?? 0,
      readingsPerBatch: Math.round(sent / (m.bridge_batches_sent_total ?? 1)),
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      process.stdout.write(
        [
          "",
          `MQTT bridge benchmark: ${n} QoS 1 messages per round from ${devices} sensors, ${rounds} rounds, ${summary.cpus} x ${summary.cpuModel}`,
          `  Mosquitto -> plain MQTT.js subscriber:      ${summary.plainMedian} msg/s (median)`,
          `  Mosquitto -> bridge -> hub (acked):         ${summary.bridgeMedian} msg/s (median)`,
          `  bridge / plain, median of the rounds:       ${(summary.ratio * 100).toFixed(0)}% (target >= 80%); per round ${summary.roundRatios.map((r) => `${Math.round(r * 100)}%`).join(" ")}`,
          `  bridge / plain, ratio of the medians:       ${(summary.ratioOfMedians * 100).toFixed(0)}%`,
          `  CPU seconds per 10,000 messages (median), plain path:  ${fmtCpu(summary.cpuPer10kPlain)}`,
          `  CPU seconds per 10,000 messages (median), bridge path: ${fmtCpu(summary.cpuPer10kBridge)}`,
          `  batches: ${summary.batches}, ${summary.readingsPerBatch} readings each on average`,
          `  readings in the hub: ${inHub} of ${sent} published through the bridge${inHub === sent ? " (exact)" : " (MISMATCH)"}`,
          "",
        ].join("\n"),
      );
    }
    if (inHub !== sent) process.exitCode = 1;
  } finally {
    await pub?.endAsync().catch(() => undefined);
    sub?.stop();
    await bridge?.stop();
    await hub?.dispose();
    await mq?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "--subscriber") await runSubscriber(process.argv[3] ?? "");
else await main();

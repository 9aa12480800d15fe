/**
 * MQTT test fixtures: a real Mosquitto started by the test (own config, a
 * free 127.0.0.1 port, stopped by PID), publishers (mosquitto_pub and
 * MQTT.js), and the bridge in-process or as a child process.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { startBridge, type Bridge } from "../../bridge/bridge.ts";
import { Logger } from "../../bridge/log.ts";
import { DEFAULTS, type BridgeConfig } from "../../bridge/options.ts";
import { ROOT, freePort } from "../../scripts/wrangler-dev.ts";
import { gatewaySubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";

/** True when the mosquitto broker and clients are installed (CI installs them from .ci/apt-packages). */
export function hasMosquitto(): boolean {
  const found = (bin: string): boolean => spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`]).status === 0;
  return found("mosquitto") && found("mosquitto_pub");
}

function mosquittoBin(): string {
  const r = spawnSync("sh", ["-c", "command -v mosquitto"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "/usr/sbin/mosquitto";
}

export interface Mosquitto {
  port: number;
  url: string;
  pid: number;
  log(): string;
  stop(): Promise<void>;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

export async function startMosquitto(): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-"));
  const port = await freePort();
  const logFile = join(dir, "mosquitto.log");
  // No persistence file: the broker lives as long as the test. The queue
  // limit is raised from the default 1000 so that a stopped bridge does not
  // lose messages to it (docs/bridge.md, "Broker settings").
  writeFileSync(
    join(dir, "mosquitto.conf"),
    [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "max_queued_messages 1000000", `log_dest file ${logFile}`, "log_type error", "log_type warning", "log_type notice", ""].join("\n"),
  );
  const child = spawn(mosquittoBin(), ["-c", join(dir, "mosquitto.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  if (child.pid === undefined) throw new Error("could not start mosquitto");
  try {
    await waitForPort(port);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`mosquitto did not start: ${stderr}`, { cause: err });
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    log: () => {
      try {
        return readFileSync(logFile, "utf8") + stderr;
      } catch {
        return stderr;
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid ?? 0, "SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Publishes each line as one QoS 1 message with mosquitto_pub -l; resolves when it exits. */
export function mosquittoPub(port: number, topic: string, lines: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), "-q", "1", "-t", topic, "-l"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${err}`))));
    child.stdin.end(lines.map((l) => `${l}\n`).join(""));
  });
}

/** An MQTT.js publisher (MQTT 3.1.1, so it works with aedes as well). */
export function publisher(url: string, clientId: string): Promise<MqttClient> {
  return connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 200 });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds; throws with `what` after the timeout. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export function gatewayToken(group: string, gateway: string): Promise<string> {
  return signToken(TEST_SECRET, gatewaySubject(group, gateway));
}

export interface TestBridge {
  bridge: Bridge;
  logs: string[];
}

/** The bridge in this process, with quick reconnects and its log lines collected. */
export async function inProcessBridge(over: Partial<BridgeConfig> & Pick<BridgeConfig, "hubUrl" | "gateway">, groups: string[]): Promise<TestBridge> {
  const tokens: Record<string, string> = {};
  for (const g of groups) tokens[g] = await gatewayToken(g, over.gateway);
  const logs: string[] = [];
  const cfg: BridgeConfig = { ...DEFAULTS, httpPort: null, backoffMaxMs: 500, logLevel: "info", tokens, ...over };
  const bridge = await startBridge(cfg, { log: new Logger({ level: "debug", write: (l) => logs.push(l) }) });
  return { bridge, logs };
}

export interface ChildBridge {
  child: ChildProcess;
  httpPort: number;
  output(): string;
  metrics(): Promise<Record<string, number>>;
  /** SIGKILL: no drain, no DISCONNECT, nothing flushed. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** `npm run bridge` as a child process; resolves once it logged bridge.started. */
export async function childBridge(args: string[]): Promise<ChildBridge> {
  const child = spawn(process.execPath, [join(ROOT, "bridge/cli.ts"), "--http-port", "0", "--backoff-max-ms", "500", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let out = "";
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let httpPort = 0;
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`bridge exited ${child.exitCode}: ${out}`);
      const m = /"event":"bridge\.started".*?"http":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(out);
      if (m) httpPort = Number(m[1]);
      return httpPort > 0;
    },
    "the bridge to start",
    15_000,
  );
  const signal = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    process.kill(child.pid, sig);
    await exited;
  };
  return {
    child,
    httpPort,
    output: () => out,
    async metrics() {
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const line of text.split("\n")) {
        const m = /^(\S+) (\S+)$/.exec(line);
        if (m?.[1] && m[2] && !line.startsWith("#")) out[m[1]] = Number(m[2]);
      }
      return out;
    },
    kill: () => signal("SIGKILL"),
    stop: () => signal("SIGTERM"),
  };
}

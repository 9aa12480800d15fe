/**
 * Processes the bridge's tests and benchmark start: a real Mosquitto with a
 * generated config on a free 127.0.0.1 port (no system service), and the
 * bridge CLI as a child process. Both are stopped by PID.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitForPort } from "./ports.ts";
import { waitFor } from "./wait.ts";
import { ROOT } from "./wrangler-dev.ts";

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

/**
 * `security(dir)` gives the config lines about who may connect (and may
 * write files into the broker's directory, `dir`); default: anyone.
 */
export async function startMosquitto(security: (dir: string) => string[] = () => ["allow_anonymous true"]): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), "mosquitto-"));
  const port = await freePort();
  const logFile = join(dir, "mosquitto.log");
  // No persistence file: the broker lives as long as the test. The queue
  // limit is raised from the default 1000 so that a stopped bridge does not
  // lose messages to it (docs/bridge.md, "Broker settings").
  writeFileSync(
    join(dir, "mosquitto.conf"),
    [`listener ${port} 127.0.0.1`, ...security(dir), "persistence false", "max_queued_messages 1000000", `log_dest file ${logFile}`, "log_type error", "log_type warning", "log_type notice", ""].join("\n"),
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
  try {
    // The port is in the `bridge.started` line, logged at info level.
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
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
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

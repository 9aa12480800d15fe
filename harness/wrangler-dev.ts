/**
 * Starts `wrangler dev` as a child process and waits until the hub answers.
 * Used by `npm start`, the end-to-end tests and the benchmarks.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";
import { freePort } from "./ports.ts";
import { sleep } from "./wait.ts";

export const ROOT = resolve(import.meta.dirname, "..");
/** The wrangler CLI of this checkout. */
export const WRANGLER = resolve(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

export interface HubProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything wrangler printed so far (for failure reports). */
  output(): string;
  /** Stops wrangler (SIGTERM, then SIGKILL after a grace period) and waits for it to exit. */
  stop(): Promise<void>;
  /**
   * SIGKILLs wrangler and the workerd runtime under it at once, as a power
   * cut would (needs `crashable: true`). Waits until they are gone.
   */
  crash(): Promise<void>;
}

export interface StartOptions {
  port?: number;
  /** Directory for the local Durable Object state (wrangler's --persist-to). */
  persistTo?: string;
  /** Extra vars (`--var NAME:VALUE`), e.g. HUB_SECRET for tests. */
  vars?: Record<string, string>;
  /** Forward wrangler's output to this process's stdout/stderr. */
  inheritOutput?: boolean;
  /** wrangler's --log-level (default: wrangler's own, "log"). */
  logLevel?: "debug" | "info" | "log" | "warn" | "error" | "none";
  readyTimeoutMs?: number;
  /** Run wrangler in its own process group so `crash()` can kill the whole tree. */
  crashable?: boolean;
  /**
   * Keep wrangler's local observability (a trace of every event, kept for
   * its local explorer). Off by default: see the comment in `startHub`.
   */
  observability?: boolean;
}

export async function startHub(opts: StartOptions = {}): Promise<HubProcess> {
  const port = opts.port ?? (await freePort());
  const inspector = await freePort();
  const args = [
    WRANGLER,
    "dev",
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspector),
    "--show-interactive-dev-session=false",
  ];
  if (opts.persistTo) args.push("--persist-to", opts.persistTo);
  if (opts.logLevel) args.push("--log-level", opts.logLevel);
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("--var", `${k}:${v}`);
  // process.execPath is the Node that runs us: the bundled Node >= 22 under npm scripts.
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      CI: process.env.CI ?? "",
      FORCE_COLOR: "0",
      // wrangler dev attaches a streaming tail to the Worker that records a
      // trace of every event, and every WebSocket message to a group is an
      // event: with a few hundred devices that tripled the runtime's CPU per
      // batch and flooded the log with "tail session was canceled" errors
      // until acks fell so far behind that the fleet timed out and
      // reconnected at once (docs/benchmarks.md, "The simulator against
      // npm start"). The hub logs nothing it needs there.
      ...(opts.observability ? {} : { X_LOCAL_OBSERVABILITY: "false" }),
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.crashable === true,
  });
  let out = "";
  const onData = (stream: NodeJS.WriteStream) => (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
    if (opts.inheritOutput) stream.write(chunk);
  };
  child.stdout?.on("data", onData(process.stdout));
  child.stderr?.on("data", onData(process.stderr));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const url = `http://127.0.0.1:${port}`;
  const hub: HubProcess = {
    url,
    port,
    child,
    output: () => out,
    async crash() {
      if (!opts.crashable || child.pid === undefined) throw new Error("crash() needs crashable: true");
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      await exited;
      // workerd is in the same group; give the kernel a moment to release the port.
      await sleep(200);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (opts.crashable && child.pid !== undefined) {
        // Detached: signal the whole group so workerd goes too.
        try {
          process.kill(-child.pid, "SIGTERM");
        } catch {
          // already gone
        }
        const t = setTimeout(() => {
          try {
            if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
          } catch {
            // gone meanwhile
          }
        }, 5000);
        await exited;
        clearTimeout(t);
        return;
      }
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}:\n${out}`);
    try {
      const res = await fetch(`${url}/v1/health`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return hub;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  await hub.stop();
  throw new Error(`wrangler dev did not become ready within the timeout:\n${out}`);
}

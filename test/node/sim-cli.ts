/** Runs `npm run sim` (device-sim/cli.ts) as a child process, as a user would, for the simulator's tests. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { Summary } from "../../device-sim/report.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";

export interface SimRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `hub` adds --url and --secret; SIGINT (Ctrl-C) goes out after `interruptAfterMs`, or when `interrupt` resolves. */
export function runSim(
  args: string[],
  opts: { hub?: { url: string; secret: string }; interruptAfterMs?: number; interrupt?: Promise<void> } = {},
): Promise<SimRun> {
  const hubArgs = opts.hub ? ["--url", opts.hub.url, "--secret", opts.hub.secret] : [];
  const child = spawn(process.execPath, [join(ROOT, "device-sim/cli.ts"), ...hubArgs, "--no-progress", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, HUB_SECRET: "" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  if (opts.interruptAfterMs) setTimeout(() => child.kill("SIGINT"), opts.interruptAfterMs);
  void opts.interrupt?.then(() => child.kill("SIGINT"));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/** The --json summary of a run; fails with the run's output when there is none. */
export function summaryOf(r: SimRun): Summary {
  try {
    return JSON.parse(r.stdout) as Summary;
  } catch {
    throw new Error(`no JSON summary; exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

/**
 * Commands as a user runs them, for tests: `bash -c` in a process group of
 * its own (as a terminal's foreground job), stopped with the group-wide
 * SIGINT that Ctrl-C sends. `npmStart` runs `npm start` that way on free
 * ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../../harness/wait.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { freePort } from "../../harness/ports.ts";

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ShellJob {
  child: ChildProcess;
  /** stdout and stderr, interleaved as they arrived. */
  output(): string;
  stdout(): string;
  /** Resolves with the first match of `re` in the output; throws if the job exits first. */
  waitForOutput(re: RegExp, what: string, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Waits for the job to end by itself; SIGKILLs its group after the timeout. */
  exit(timeoutMs: number): Promise<Exit>;
  /** Ctrl-C: SIGINT to the whole process group; resolves with the exit and what was printed after the signal. */
  ctrlC(timeoutMs?: number): Promise<Exit & { after: string }>;
  /** SIGKILL to the group, for cleanup after a failure. */
  kill(): Promise<void>;
}

/** Runs `bash -c command` in the repository root with `env` added to this process's environment. */
export function shellJob(command: string, env: Record<string, string> = {}): ShellJob {
  const child = spawn("bash", ["-c", command], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, FORCE_COLOR: "0", NO_COLOR: "1", ...env },
  });
  let out = "";
  let stdout = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
    stdout += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<Exit>((r) => child.once("close", (code, signal) => r({ code, signal })));
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const signalGroup = (sig: NodeJS.Signals): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      // the group is gone
    }
  };
  const within = async (timeoutMs: number): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
    const r = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (r !== "timeout") return r;
    signalGroup("SIGKILL");
    await exited;
    throw new Error(`'${command}' did not end within ${timeoutMs} ms:\n${out}`);
  };
  return {
    child,
    output: () => out,
    stdout: () => stdout,
    async waitForOutput(re, what, timeoutMs = 120_000) {
      let m: RegExpExecArray | null = null;
      await waitFor(
        () => {
          m = re.exec(out);
          if (m === null && !alive()) throw new Error(`'${command}' exited (${child.exitCode ?? child.signalCode}) before ${what}:\n${out}`);
          return m !== null;
        },
        `${what} from '${command}':\n${out}`,
        timeoutMs,
      );
      if (m === null) throw new Error("unreachable");
      return m;
    },
    exit: within,
    async ctrlC(timeoutMs = 30_000) {
      const mark = out.length;
      signalGroup("SIGINT");
      const e = await within(timeoutMs);
      return { ...e, after: out.slice(mark) };
    },
    async kill() {
      if (alive()) signalGroup("SIGKILL");
      await exited;
    },
  };
}

export interface NpmStart extends ShellJob {
  hubPort: number;
  mqttPort: number;
  opsPort: number;
  /** Removes its state directory and, should npm start have failed to, stops its hub. */
  cleanup(): Promise<void>;
}

/** `npm start -- <args>` with --port, --mqtt-port, --ops-port and --persist-to on free ports and a temporary directory. */
export async function npmStart(args = "", env: Record<string, string> = {}): Promise<NpmStart> {
  const [hubPort, mqttPort, opsPort] = [await freePort(), await freePort(), await freePort()];
  const state = mkdtempSync(join(tmpdir(), "npm-start-"));
  const job = shellJob(`npm start -- ${args} --port ${hubPort} --mqtt-port ${mqttPort} --ops-port ${opsPort} --persist-to ${state}`, env);
  return {
    ...job,
    hubPort,
    mqttPort,
    opsPort,
    async cleanup() {
      await job.kill();
      // The hub runs in a process group of its own (scripts/start.ts) that
      // wrangler leads and workerd belongs to; found by its state directory.
      for (const pid of processesMentioning(state)) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, "SIGKILL");
          } catch {
            // gone meanwhile, or not a group leader
          }
        }
      }
      rmSync(state, { recursive: true, force: true });
    },
  };
}

/** PIDs whose command line contains `text` (Linux /proc). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(text)) pids.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

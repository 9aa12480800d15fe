/**
 * The part of the docs check (test/node/docs.test.ts) shared by its two
 * files: running a doc command as a user would, and the runners of the
 * commands that need no `npm start` to talk to (a --help, a hub or dev
 * server of their own, a generator), which docs-standalone.test.ts runs
 * beside the rest so the two halves take turns waiting.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { verifyPassword } from "../../bridge/broker-auth.ts";
import { waitFor } from "../../harness/wait.ts";
import { freePort } from "../../harness/ports.ts";
import { npmStart, shellJob } from "./shell-job.ts";

/** Lines that must not appear when a command stops on Ctrl-C. */
export const ALARMING = /connect_failed|ECONNREFUSED|"level":"(warn|error)"|\berror\b|\bwarn(ing)?\b|^\s+at \S+ \(|✘/im;
/**
 * npm start's and npm run dev's pre-scripts rebuild dashboard/dist, which
 * would pull it from under the browser tests that run alongside; npm's
 * ignore-scripts skips pre-scripts only. vitest.config.ts builds it first.
 */
export const NO_PRE_SCRIPTS = { npm_config_ignore_scripts: "true" };

/** Shell variables the docs set ($TOKEN, $OPERATOR), for the commands after them. */
export const vars: Record<string, string> = { ...NO_PRE_SCRIPTS };

export async function run(cmd: string, timeoutMs = 60_000): Promise<{ stdout: string; output: string }> {
  const job = shellJob(cmd, vars);
  const e = await job.exit(timeoutMs);
  expect(e.code, `'${cmd}' exited ${e.code ?? e.signal}:\n${job.output()}`).toBe(0);
  return { stdout: job.stdout(), output: job.output() };
}

/** Runs a long-running doc command until `ready`, probes it, then stops it with Ctrl-C, which must be clean (if `quietStop`). */
export async function runServer(cmd: string, ready: RegExp, probe: (m: RegExpExecArray) => Promise<void>, quietStop = true): Promise<void> {
  const job = shellJob(cmd, vars);
  try {
    const m = await job.waitForOutput(ready, "its ready line");
    await probe(m);
    const stop = await job.ctrlC();
    expect(stop.code === 0 || stop.signal === "SIGINT" || stop.code === 130, `'${cmd}' on Ctrl-C: ${stop.code ?? stop.signal}:\n${job.output()}`).toBe(true);
    if (quietStop) expect(stop.after).not.toMatch(ALARMING);
  } finally {
    await job.kill();
  }
}

export type Runner = (cmd: string) => Promise<void>;

async function runNpmStartVariant(cmd: string): Promise<void> {
  const flags = cmd.replace(/^npm start -- /, "");
  const job = await npmStart(flags, NO_PRE_SCRIPTS);
  try {
    await job.waitForOutput(/Stop with Ctrl-C\./, "the running banner");
    const last = flags.includes("--no-bridge") ? /Demo fleet: .*\n/ : /MQTT bridge: .*\n/;
    if (!(flags.includes("--no-bridge") && flags.includes("--no-demo"))) await job.waitForOutput(last, "the last start-up line");
    const res = await fetch(`http://127.0.0.1:${job.hubPort}/v1/health`);
    expect(res.status).toBe(200);
    if (flags.includes("--no-demo")) expect(job.output()).not.toMatch(/Demo fleet:/);
    if (flags.includes("--no-bridge")) {
      expect(job.output()).not.toMatch(/MQTT bridge/);
      await expect(fetch(`http://127.0.0.1:${job.opsPort}/healthz`)).rejects.toThrow();
    }
    const stop = await job.ctrlC();
    expect(stop.code, job.output()).toBe(0);
    expect(stop.after).not.toMatch(ALARMING);
  } finally {
    await job.cleanup();
  }
}

async function runHashPassword(cmd: string): Promise<void> {
  const password = /^echo '([^']*)'/.exec(cmd)?.[1] ?? "";
  const hash = (await run(cmd)).stdout.trim();
  expect(await verifyPassword(password, hash), hash).toBe(true);
}

async function runDashboardDev(cmd: string): Promise<void> {
  const port = await freePort();
  await runServer(`${cmd} -- --port ${port} --strictPort --host 127.0.0.1`, /Local: +http:\/\/127\.0\.0\.1:\d+/, async () => {
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<script");
  });
}

async function runWranglerDev(cmd: string): Promise<void> {
  const [port, inspector] = [await freePort(), await freePort()];
  const state = mkdtempSync(join(tmpdir(), "docs-wrangler-dev-"));
  try {
    await runServer(
      `${cmd} -- --ip 127.0.0.1 --port ${port} --inspector-port ${inspector} --persist-to ${state}`,
      /Ready on http/,
      async () => {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/v1/health`).catch(() => null))?.status === 200, "wrangler dev's health");
      },
      // Plain `wrangler dev` shares the terminal's Ctrl-C with its runtime,
      // which may die first: wrangler then warns of a crash. Not ours to
      // change; npm start runs wrangler in a process group of its own.
      false,
    );
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

/**
 * Runners of the commands that need no `npm start` (the first match runs a
 * command; docs.test.ts tries these before its own, so the order matters).
 */
export const STANDALONE: [RegExp, Runner][] = [
  [/^npm (start|run \S+) -- (--help|-h)$/, async (cmd) => expect((await run(cmd)).stdout).toMatch(/usage/i)],
  [/^npm start -- /, runNpmStartVariant],
  [/^echo '([^']*)' \| npm run -s bridge -- hash-password$/, runHashPassword],
  [/^npm run cost -- /, async (cmd) => expect((await run(cmd)).stdout).toMatch(/total per month|"pricesReadOn"/)],
  [/^npm run db:generate$/, async (cmd) => expect((await run(cmd)).output).toMatch(/No schema changes/)],
  // As written it rewrites the file; --check tells whether that would change it.
  [/^npm run types$/, async (cmd) => expect((await run(`${cmd} -- --check`)).output).toMatch(/up to date/)],
  [/^npm run dashboard:dev$/, runDashboardDev],
  [/^npm run dev$/, runWranglerDev],
];

/** True when a runner of STANDALONE, tried first, takes the command. */
export function isStandalone(cmd: string): boolean {
  return STANDALONE.some(([re]) => re.test(cmd));
}

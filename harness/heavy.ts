/**
 * One heavy phase at a time across the test files of this checkout. Test
 * files run side by side (vitest.config.ts), which pays off while they wait
 * on processes and real time; two phases that each keep a core busy (a
 * 600-device fleet, a 1,000-device dashboard, a chaos run) would only slow
 * each other down on a two-core machine, past their own time limits. Each
 * takes this lock for its busy part, and the light files fill the gaps.
 *
 * The lock is a directory (mkdir is atomic) holding the owner's PID, in the
 * system's temp directory, named after this checkout so that two clones do
 * not share it; a lock whose owner has died is taken over.
 */
import { createHash } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "./wait.ts";
import { ROOT } from "./wrangler-dev.ts";

const LOCK = join(tmpdir(), `telemetry-hub-heavy-${createHash("sha1").update(ROOT).digest("hex").slice(0, 12)}`);

function ownerAlive(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(LOCK, "pid"), "utf8"));
  } catch {
    // No PID yet: its owner is between mkdir and writing it, unless it died there.
    try {
      return Date.now() - statSync(LOCK).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  if (!(pid > 0)) return true; // being written
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Runs `fn` once no other heavy phase of this checkout runs; waits up to `timeoutMs` for its turn. */
export async function heavyPhase<T>(what: string, fn: () => Promise<T>, timeoutMs = 600_000): Promise<T> {
  const asked = Date.now();
  const deadline = asked + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (!ownerAlive()) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${what}: another heavy test phase held ${LOCK} for ${timeoutMs} ms`, { cause: err });
      else await sleep(100);
    }
  }
  writeFileSync(join(LOCK, "pid"), String(process.pid));
  const started = Date.now();
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
    // HEAVY_LOG=file: one JSON line per phase (docs/testing.md, "Where the time goes").
    const log = process.env.HEAVY_LOG;
    if (log) appendFileSync(log, `${JSON.stringify({ what, asked, started, ended: Date.now() })}\n`);
  }
}

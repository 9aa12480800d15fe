/** The short chaos run: SIGKILL the hub runtime mid-stream; nothing acknowledged is lost or doubled. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";
import { heavyPhase } from "../../harness/heavy.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";

it("survives SIGKILLs of the hub runtime with an exact verify", () =>
  heavyPhase("the chaos run", async () => {
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/chaos.ts"), "--readings", "20000", "--kills", "2", "--json"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 240_000,
    });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    const outcome = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(outcome).toMatchObject({ ok: true, kills: 2, lost: 0, countedTwice: 0, differences: 0, commands: { ok: true, ranTwice: 0, unfinished: 0 } });
    expect(outcome.readingsAcked).toEqual(expect.any(Number));
    expect(Number(outcome.readingsAcked)).toBeGreaterThanOrEqual(20000);
  }),
  300_000,
);

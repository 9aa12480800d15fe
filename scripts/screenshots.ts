/**
 * `npm run screenshots`: every dashboard page (home, group, alerts, rules,
 * device, sign-in) at 1400 and 390 px wide, into screenshots/ (git-ignored).
 * Starts its own hub (`wrangler dev` on a free port, fresh state, a random
 * secret), seeds it and runs the demo fleet, and stops all of it at the end,
 * on failure too. Labels that overlap or are cut off are listed; the exit
 * status is 1 if there are any.
 *
 *   npm run screenshots                  # into screenshots/
 *   npm run screenshots -- --out DIR     # elsewhere
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { HELP_FLAG, parseCli } from "../lib/options.ts";
import { sleep } from "../harness/wait.ts";
import { launchBrowser, type BrowserHandle } from "../test/browser/harness.ts";
import { ensureDashboardBuilt } from "./build-dashboard.ts";
import { capturePages, seedHub, type Seeded } from "./screenshot-pages.ts";
import { ROOT, startHub, type HubProcess } from "../harness/wrangler-dev.ts";

/** Fleet time before the first screenshot, so the readings/s chart has some history. */
const WARM_UP_MS = 30_000;

const values = parseCli("usage: npm run screenshots [-- --out DIR]\n", { options: { out: { type: "string", default: join(ROOT, "screenshots") }, help: HELP_FLAG } });
const outDir = resolve(values.out ?? "screenshots");

let hub: HubProcess | null = null;
let seeded: Seeded | null = null;
let browser: BrowserHandle | null = null;
const stateDir = mkdtempSync(join(tmpdir(), "hub-screenshots-"));

async function stopAll(): Promise<void> {
  await browser?.close();
  browser = null;
  await seeded?.stop().catch((err: unknown) => console.error(`stopping the fleet: ${String(err)}`));
  seeded = null;
  await hub?.stop();
  hub = null;
  rmSync(stateDir, { recursive: true, force: true });
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

try {
  ensureDashboardBuilt();
  const secret = randomBytes(32).toString("base64url");
  hub = await startHub({ persistTo: stateDir, vars: { HUB_SECRET: secret }, logLevel: "warn" });
  console.log(`hub on ${hub.url}; seeding and running the demo fleet for ${WARM_UP_MS / 1000} s`);
  seeded = await seedHub(hub.url, secret);
  await sleep(WARM_UP_MS);
  browser = await launchBrowser();
  const shots = await capturePages(browser.browser, hub.url, seeded.token, outDir);
  let problems = 0;
  for (const s of shots) {
    console.log(`${relative(process.cwd(), s.file)}${s.issues.length > 0 ? `: ${s.issues.length} layout issue(s)` : ""}`);
    for (const i of s.issues) console.log(`  ${i.kind}: "${i.text}" (${i.detail})`);
    problems += s.issues.length;
  }
  console.log(`${shots.length} screenshots in ${relative(process.cwd(), outDir) || "."}; ${problems === 0 ? "no" : problems} layout issues`);
  process.exitCode = problems === 0 ? 0 : 1;
} catch (err) {
  console.error(err instanceof Error ? err.stack : String(err));
  if (hub) console.error(hub.output().slice(-4000));
  process.exitCode = 1;
} finally {
  await stopAll();
}

/**
 * Builds the dashboard (dashboard/ -> dashboard/dist) when the build is
 * missing or older than its sources. vitest.config.ts calls it, so that
 * `npx vitest run` works on a fresh clone: the workerd test project reads
 * wrangler.jsonc, whose assets directory must exist, and the browser tests
 * must see the current page. `npm run build` always builds.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const OUT = join(ROOT, "dashboard", "dist", "index.html");
const SOURCES = ["dashboard/src", "dashboard/public", "dashboard/index.html", "dashboard/vite.config.ts", "schema/protocol.ts", "schema/rules.ts", "package-lock.json"];

function newest(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const e of readdirSync(path)) max = Math.max(max, newest(join(path, e)));
  return max;
}

export function dashboardIsStale(): boolean {
  if (!existsSync(OUT)) return true;
  const built = statSync(OUT).mtimeMs;
  return SOURCES.some((s) => newest(join(ROOT, s)) > built);
}

export function ensureDashboardBuilt(): void {
  if (!dashboardIsStale()) return;
  const vite = join(ROOT, "node_modules", "vite", "bin", "vite.js");
  const r = spawnSync(process.execPath, [vite, "build", "dashboard", "--logLevel", "warn"], { cwd: ROOT, stdio: "inherit" });
  if (r.status !== 0) throw new Error(`building the dashboard failed (vite exited with ${r.status ?? r.signal})`);
}

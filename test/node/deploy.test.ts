/** Deploy readiness: `wrangler deploy --dry-run` bundles the Worker, migrations and assets without errors. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "../../harness/wrangler-dev.ts";

it("wrangler deploy --dry-run succeeds and bundles the migrations", () => {
  const out = mkdtempSync(join(tmpdir(), "hub-dry-"));
  try {
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", out], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("env.GROUPS (GroupHub)");
    const files = readdirSync(out);
    expect(files).toContain("index.js");
    expect(files.some((f) => f.endsWith("0000_init.sql"))).toBe(true);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

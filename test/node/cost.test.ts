/**
 * The cost model behind `npm run cost` (scripts/cost-model.ts, docs/cost.md):
 * WebSocket messages billed at 20:1, AWS messages metered in 5 KB steps and
 * tiered, free allowances applied, and the CLI's refusals.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AWS_IOT, CLOUDFLARE, DEFAULT_FLEET, fleetCost, frameBytes } from "../../scripts/cost-model.ts";

const ROOT = join(import.meta.dirname, "../..");
const fleet = (devices: number, rate: number, batchMs: number) => fleetCost({ ...DEFAULT_FLEET, devices, rate, batchMs });
const line = (lines: { item: string; quantity: number; usd: number }[], prefix: string) => {
  const l = lines.find((x) => x.item.startsWith(prefix));
  if (!l) throw new Error(`no line ${prefix}`);
  return l;
};

describe("cost model", () => {
  it("bills incoming socket messages as Durable Object requests at 20:1, beyond the included million", () => {
    const r = fleet(1000, 1, 1000);
    const batches = 1000 * 30 * 24 * 3600;
    expect(r.perMonth.batches).toBe(batches);
    const req = line(r.cloudflare.lines, "DO requests");
    expect(req.quantity).toBe(batches / CLOUDFLARE.wsMessagesPerRequest + 1000 * 30);
    expect(req.usd).toBeCloseTo(((req.quantity - 1e6) / 1e6) * 0.15, 6);
  });

  it("meters AWS messages in 5 KB steps and by tier", () => {
    // 2,000 float32 readings in one cbatch: about 10 KB, two metered messages a batch.
    const r = fleet(10, 2000, 1000);
    const bytes = frameBytes("cbatch32", 2000, 4, 9);
    expect(Math.ceil((bytes + 40) / AWS_IOT.meteringBytes)).toBe(2);
    expect(line(r.aws.lines, "Messaging").quantity).toBe(r.perMonth.batches * 2);
    // Above a billion messages the price per million falls.
    const big = fleet(1000, 1, 1000);
    expect(line(big.aws.lines, "Messaging").usd).toBeCloseTo(1000 * 1.0 + 1592 * 0.8, 1);
  });

  it("costs a small fleet the Workers Paid minimum on Cloudflare", () => {
    const r = fleet(10, 1, 60_000);
    expect(r.cloudflare.total).toBe(5);
    expect(r.perMonth.readingsPerBatch).toBe(60);
  });

  it("sends one reading a batch when the batch interval is shorter than the reading interval", () => {
    const r = fleet(1, 0.1, 1000);
    expect(r.perMonth.readingsPerBatch).toBe(1);
    expect(r.perMonth.batches).toBeCloseTo(0.1 * 30 * 24 * 3600, 6);
  });
});

describe("npm run cost", () => {
  const cli = join(ROOT, "scripts/cost.ts");
  it("prints both platforms' totals, and JSON with --json", () => {
    const json = execFileSync(process.execPath, [cli, "--devices", "100", "--rate", "1", "--batch-ms", "10000", "--json"], { encoding: "utf8" });
    const r = JSON.parse(json) as { pricesReadOn: string; cloudflare: { total: number }; aws: { total: number } };
    expect(r.pricesReadOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(r.cloudflare.total).toBeGreaterThanOrEqual(5);
    expect(r.aws.total).toBeGreaterThan(0);
  });

  it("refuses a missing or bad option with exit code 2", () => {
    const missing = spawnSync(process.execPath, [cli, "--devices", "100", "--rate", "1"], { encoding: "utf8" });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("--batch-ms is required");
    const bad = spawnSync(process.execPath, [cli, "--devices", "100", "--rate", "1", "--batch-ms", "1000", "--format", "xml"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--format must be one of");
  });
});

import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { ensureDashboardBuilt } from "./scripts/build-dashboard.ts";
import LongestFirst from "./test/node/sequencer.ts";
import { TEST_SECRET } from "./test/secret.ts";

// wrangler.jsonc serves dashboard/dist: it must exist (and be current) before any project starts.
ensureDashboardBuilt();

export default defineConfig({
  test: {
    // Vitest's default is one worker less than the cores: one on a two-core
    // machine, so every file of every project would run in turn. Files of
    // every project run side by side in three: node and browser files mostly
    // wait (on fleets, Chromium, real time), so three keep two cores busy.
    maxWorkers: 3,
    // The longest-waiting files first, so that none of them starts last.
    sequence: { sequencer: LongestFirst },
    projects: [
      {
        // Inside the real workerd runtime, with the Worker from wrangler.jsonc.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.jsonc" },
            // Small socket limits so test/worker/limits.test.ts can reach them, and
            // short live-view intervals (worker/group/live/live.ts) so no test sleeps
            // through a 10 s rate window.
            miniflare: {
              bindings: {
                HUB_SECRET: TEST_SECRET,
                MAX_DASHBOARD_SOCKETS: "20",
                MAX_PEER_SOCKETS: "60",
                LIVE_SUMMARY_MS: "100",
                // A dashboard that leaves a frame unacked 200 ms is marked out of step (production:
                // 5 s), so test/worker/live-acks.test.ts sees a silent socket marked without a long wait.
                LIVE_ACK_MARK_MS: "200",
                LIVE_RATE_WINDOW_S: "2",
                // A 4 MB storage budget (production: 6 GB), so test/worker/budget.test.ts reaches
                // it with a few tens of thousands of buckets; other tests' groups stay far below.
                MAX_GROUP_BYTES: "4000000",
                // A per-device bucket of five full batches refilled at one a second
                // (production: 50 and 10), so test/worker/throttle.test.ts reaches it
                // however slowly a loaded machine runs the hub.
                PEER_READINGS_PER_SEC: "5000",
                PEER_BURST_READINGS: "25000",
                // A budget alert clears after 1 s without refusals (production: 10 min), so
                // test/worker/cardinality.test.ts sees it clear without sleeping through minutes.
                BUDGET_ALERT_CLEAR_MS: "1000",
              },
            },
          }),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          exclude: ["test/worker/unit/**"],
          testTimeout: 20_000,
          // Files reuse their pool worker, so one workerd (Miniflare) per worker
          // slot loads the Worker's modules once instead of once per file: the
          // project took 111–156 s with a workerd per file (most of it starting
          // runtimes and importing), 30–35 s like this. Files share storage and
          // Durable Object instances, which a unique group per test keeps apart;
          // no file may leave module state behind (docs/testing.md).
          isolate: false,
        },
      },
      {
        // Pure tests of the Worker's parts (frame path, collapse, live state,
        // fan-out, alerting): no runtime needed, so they skip workerd's per-file start.
        test: { name: "unit", include: ["test/worker/unit/**/*.test.ts"], environment: "node" },
      },
      {
        // Node side: device client, CLIs, and end-to-end tests against `wrangler dev`.
        // One hub for the whole project (test/node/shared-hub.ts; docs/testing.md
        // says how a test uses it), so files start no wrangler of their own and
        // run beside each other and beside the other projects.
        test: {
          name: "node",
          include: ["test/node/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/node/shared-hub.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The dashboard in Debian's headless Chromium (playwright-core) against `wrangler dev` and the simulator,
        // a shared hub of its own (layout.test.ts and scale.test.ts start their own: the fixed "demo" group, a 1,000-device fleet).
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/node/shared-hub.ts"],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Side by side with the other projects' files: the 1,000-device fleet
          // of scale.test.ts runs inside heavyPhase() (harness/heavy.ts), so no
          // other fleet or flood runs beside it.
        },
      },
    ],
  },
});

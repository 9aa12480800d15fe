/**
 * The order vitest starts test files in (vitest.config.ts's
 * sequence.sequencer). Every project shares the same few workers, and the
 * suite lasts as long as its longest file plus whatever started before it,
 * so the files that wait longest on real time (fleets, wrangler, Chromium)
 * start first and the short workerd and unit files fill the gaps after.
 * vitest's own order (by project name, then by the last run's durations,
 * or by size on a clean clone) would start them last.
 */
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * The longest files (`npm test`'s per-file times), those with a heavy phase
 * (harness/heavy.ts) spread out so they do not all queue for it at once; a
 * file not listed keeps vitest's order after them.
 */
const LONGEST = [
  "test/node/sim.test.ts",
  "test/browser/layout.test.ts",
  "test/node/docs.test.ts",
  "test/node/docs-standalone.test.ts",
  "test/node/sim-failures.test.ts",
  "test/browser/dashboard.test.ts",
  "test/node/chaos.test.ts",
  "test/node/flood.test.ts",
  "test/browser/scale.test.ts",
  "test/node/bridge-faults.test.ts",
  "test/browser/security.test.ts",
];

/** Projects whose files wait on processes and real time go before the CPU-bound ones. */
const PROJECT_RANK: Record<string, number> = { node: 0, browser: 0, worker: 1, unit: 2 };

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const key = (f: TestSpecification): [number, number] => {
      const i = LONGEST.indexOf(relative(f.project.config.root, f.moduleId));
      return [i === -1 ? LONGEST.length : i, PROJECT_RANK[f.project.name] ?? 1];
    };
    // Array.prototype.sort is stable: vitest's order stays within equal keys.
    return base.sort((a, b) => {
      const [ka, kb] = [key(a), key(b)];
      return ka[0] - kb[0] || ka[1] - kb[1];
    });
  }
}

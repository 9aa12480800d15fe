/**
 * Every dashboard page at 1400 and 390 px wide, on a hub seeded as by
 * `npm run screenshots` (the demo fleet, an hour of history with large
 * values, a device with extreme values, a flapping alert): no text label
 * overlaps another or is cut off. DOM text is measured from its boxes;
 * chart axes, drawn on canvas, from the label layout the chart recorded
 * when it drew them (dashboard/src/charts/axes.ts). Screenshots go to
 * test-artifacts/dashboard/layout/.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capturePages, PAGES, seedHub, WIDTHS, type Seeded, type Shot } from "../../scripts/screenshot-pages.ts";
import { startTestHub, type TestHub } from "../node/hub.ts";
import { TEST_SECRET } from "../secret.ts";
import { ARTIFACTS, launchBrowser, type BrowserHandle } from "./harness.ts";

let hub: TestHub;
let seeded: Seeded | undefined;
let browser: BrowserHandle;
let shots: Shot[] = [];

beforeAll(async () => {
  hub = await startTestHub();
  seeded = await seedHub(hub.url, TEST_SECRET);
  browser = await launchBrowser();
  // Each page waits for its own data (chart points, alert rows, ...) before it is measured.
  shots = await capturePages(browser.browser, hub.url, seeded.token, join(ARTIFACTS, "layout"));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await seeded?.stop();
  await hub?.stop();
}, 60_000);

describe("layout", () => {
  for (const width of WIDTHS) {
    for (const spec of PAGES) {
      it(`${spec.name} at ${width} px: no text overlaps or is cut off`, () => {
        const shot = shots.find((s) => s.page === spec.name && s.width === width);
        expect(shot, "page captured").toBeDefined();
        expect(shot?.issues).toEqual([]);
      });
    }
  }

  it("checked the canvas axes of every chart: the rate chart and two per device page", () => {
    for (const s of shots) {
      const expected = { group: 1, device: 2, "device-extreme": 2, "device-long-names": 1, "device-live": 3 }[s.page] ?? 0;
      expect(s.charts, `${s.page} at ${s.width} px`).toBeGreaterThanOrEqual(expected);
    }
  });
});

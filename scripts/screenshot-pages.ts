/**
 * Every page of the dashboard at the widths that matter, for
 * `npm run screenshots` and the browser layout test: a hub seeded with the
 * demo fleet plus a device with an hour of history and a flapping one, the
 * list of pages with what to wait for on each, and a check run in the page
 * that reports text labels that overlap or are cut off.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { DeviceClient } from "../client/index.ts";
import { waitFor } from "../harness/wait.ts";
import { HubClient } from "../schema/client.ts";
import type { Reading } from "../schema/protocol.ts";
import { deviceSubject, operatorSubject, signToken } from "../schema/token.ts";
import { startDemoFleet } from "./demo.ts";

/** Viewport widths: a desktop and a phone. */
export const WIDTHS = [1400, 390] as const;
export const GROUP = "demo";
/** A device with an hour of history with large values (long y-axis labels). */
export const HISTORY_DEVICE = "boiler-7";
/** A device whose alert raises and clears every few seconds. */
export const FLAPPING_DEVICE = "valve-3";
/** A device with extreme values: billions, negatives and tiny decimals (the widest axis labels), in a group of its own. */
export const EXTREME_DEVICE = "gauge-9";
export const LAB_GROUP = "lab";
/** Names as long as the protocol allows parts of, for the breadcrumb at 390 px. */
export const LONG_GROUP = "greenhouse-north-wing-section-b";
export const LONG_DEVICE = "humidity-probe-under-the-east-bench-07";

export interface Seeded {
  token: string;
  stop(): Promise<void>;
}

async function client(url: string, secret: string, group: string, device: string): Promise<DeviceClient> {
  return new DeviceClient({ url, group, device, token: await signToken(secret, deviceSubject(group, device)), backoffInitialMs: 50, backoffMaxMs: 500 }).start();
}

/**
 * Seeds a running hub: rules, an hour of history for {@link HISTORY_DEVICE}
 * (then it goes offline), twenty raise/clear cycles of {@link FLAPPING_DEVICE},
 * and the demo fleet of `npm start`, running until `stop`.
 */
export async function seedHub(url: string, secret: string): Promise<Seeded> {
  const token = await signToken(secret, operatorSubject("*"));
  await new HubClient({ url, token }).putRules(GROUP, {
    rules: [
      { id: "hot", metric: "temp", op: ">", threshold: 1013, forMs: 0 },
      { id: "shaking", metric: "vibration", op: ">", threshold: 5, forMs: 0 },
    ],
    offlineAfterMs: 0,
  });

  const boiler = await client(url, secret, GROUP, HISTORY_DEVICE);
  const now = Date.now();
  const history: Reading[] = [];
  for (let ts = now - 60 * 60_000; ts <= now - 1000; ts += 5_000) {
    const phase = (ts - now) / (20 * 60_000);
    history.push([ts, "temp", 1010 + 4 * Math.sin(phase * Math.PI) + ((ts / 5_000) % 7) * 0.13]);
    history.push([ts, "pressure", 101_300 + 900 * Math.cos(phase * Math.PI)]);
  }
  for (let i = 0; i < history.length; i += 500) boiler.send(history.slice(i, i + 500));
  await boiler.idle();
  await boiler.close();

  const gauge = await client(url, secret, LAB_GROUP, EXTREME_DEVICE);
  const extreme: Reading[] = [];
  for (let ts = now - 20 * 60_000, i = 0; ts <= now - 1000; ts += 20_000, i++) {
    extreme.push([ts, "flow", -480_000_000 + 1_730_000_000 * Math.abs(Math.sin(i / 9))]);
    extreme.push([ts, "drift", 0.000_123 + 0.000_004 * Math.cos(i / 5)]);
  }
  gauge.send(extreme);
  await gauge.idle();
  await gauge.close();

  const probe = await client(url, secret, LONG_GROUP, LONG_DEVICE);
  probe.send(Array.from({ length: 30 }, (_, i): Reading => [now - (30 - i) * 20_000, "humidity", 61 + Math.sin(i / 4) * 3]));
  await probe.idle();
  await probe.close();

  // One batch per transition: each batch is evaluated on its own, so each raises or clears.
  const valve = await client(url, secret, GROUP, FLAPPING_DEVICE);
  const t0 = Date.now() - 40_000;
  for (let i = 0; i < 40; i++) {
    valve.send([[t0 + i * 1000, "vibration", i % 2 === 0 ? 7.5 : 1.2]]);
    await valve.idle();
  }
  const fleet = startDemoFleet({ url, secret });
  return {
    token,
    async stop() {
      await valve.close();
      await fleet.stop();
    },
  };
}

export interface PageSpec {
  name: string;
  /** Path to open (with the token when signed in). */
  path: string;
  signedIn: boolean;
  /** Waits until the page shows what the screenshot is for. */
  ready(page: Page): Promise<void>;
}

const T = 60_000;

/**
 * Polls a page expression until it is truthy. `page.waitForFunction` runs
 * its predicate through `eval` inside the page, which the dashboard's CSP
 * (no 'unsafe-eval') refuses; `page.evaluate` goes through the DevTools
 * protocol and is not subject to it.
 */
export async function waitForExpression(page: Page, expression: string, timeoutMs = T): Promise<void> {
  await waitFor(async () => Boolean(await page.evaluate(expression)), expression, timeoutMs, 100);
}

async function attrAtLeast(page: Page, selector: string, attr: string, n: number): Promise<void> {
  await waitForExpression(page, `Number(document.querySelector(${JSON.stringify(selector)})?.getAttribute(${JSON.stringify(attr)}) ?? "0") >= ${n}`);
}

export const PAGES: PageSpec[] = [
  {
    name: "home",
    path: "/",
    signedIn: true,
    ready: async (p) => {
      await p.locator(`[data-group="${GROUP}"] [data-testid=group-stats]`, { hasText: /devices/ }).waitFor({ timeout: T });
      // Every card has its answer.
      await waitForExpression(p, `[...document.querySelectorAll("[data-testid=group-stats]")].every((e) => e.textContent !== "…")`);
    },
  },
  {
    name: "group",
    path: `/groups/${GROUP}`,
    signedIn: true,
    ready: async (p) => {
      await p.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: T });
      await attrAtLeast(p, "[data-testid=rate-chart]", "data-points", 3);
      await p.locator(".vt-row canvas.spark").first().waitFor({ timeout: T });
      await p.locator("[data-testid=alert-list] .alert").first().waitFor({ timeout: T });
    },
  },
  {
    name: "alerts",
    path: `/groups/${GROUP}`,
    signedIn: true,
    ready: async (p) => {
      const summary = p.locator(`[data-testid=alert-list] .alert[data-count]:not([data-count="1"]) summary`).first();
      const open = p.locator("[data-testid=alert-list] details[open]");
      // The list is rebuilt every 10 s (relative times); a click on a row
      // being replaced is lost, so click until a row is open (it stays open).
      for (let i = 0; i < 5 && (await open.count()) === 0; i++) await summary.click({ timeout: T }).catch(() => {});
      await open.first().waitFor({ timeout: T });
    },
  },
  {
    name: "rules",
    path: `/groups/${GROUP}`,
    signedIn: true,
    ready: async (p) => {
      await p.getByTestId("tab-rules").click();
      await p.locator("[data-testid=rule]").first().waitFor({ timeout: T });
      await p.getByTestId("tab-rules").scrollIntoViewIfNeeded();
    },
  },
  {
    name: "device",
    path: `/groups/${GROUP}/devices/${HISTORY_DEVICE}`,
    signedIn: true,
    ready: async (p) => {
      await p.locator("[data-testid=metric-charts]:not([data-loading])").waitFor({ timeout: T });
      await attrAtLeast(p, '[data-testid=metric-chart][data-metric="temp"]', "data-points", 30);
    },
  },
  {
    name: "device-extreme",
    path: `/groups/${LAB_GROUP}/devices/${EXTREME_DEVICE}`,
    signedIn: true,
    ready: async (p) => {
      await p.locator("[data-testid=metric-charts]:not([data-loading])").waitFor({ timeout: T });
      await attrAtLeast(p, '[data-testid=metric-chart][data-metric="flow"]', "data-points", 10);
      await attrAtLeast(p, '[data-testid=metric-chart][data-metric="drift"]', "data-points", 10);
    },
  },
  {
    name: "device-long-names",
    path: `/groups/${LONG_GROUP}/devices/${LONG_DEVICE}`,
    signedIn: true,
    ready: async (p) => {
      await p.locator("[data-testid=metric-charts]:not([data-loading])").waitFor({ timeout: T });
      await attrAtLeast(p, '[data-testid=metric-chart][data-metric="humidity"]', "data-points", 5);
    },
  },
  {
    name: "device-live",
    path: `/groups/${GROUP}/devices/dev-01`,
    signedIn: true,
    ready: async (p) => {
      await p.locator("[data-testid=metric-charts]:not([data-loading])").waitFor({ timeout: T });
      await attrAtLeast(p, '[data-testid=metric-chart][data-metric="temp"]', "data-points", 1);
    },
  },
  {
    name: "signin",
    path: "/",
    signedIn: false,
    ready: async (p) => {
      await p.getByTestId("signin-message").waitFor({ timeout: T });
    },
  },
];

/** A label the layout check found overlapping another or cut off. */
export interface LayoutIssue {
  kind: "overlap" | "clipped" | "axis";
  text: string;
  detail: string;
}

// Runs in the page (a string, so the Node-side tsconfig needs no DOM types).
// DOM text: every visible text node's boxes must not intersect another's,
// and must lie inside every ancestor that clips (overflow other than
// visible), except in scrolling containers and in ellipsis-truncated
// elements that carry the full text as their title. Canvas axes: the layout
// the chart recorded (dashboard/src/charts/axes.ts) must have no two labels
// overlapping and none outside its room.
export const LAYOUT_CHECK = `(() => {
  const issues = [];
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const visible = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.display === "none" || cs.visibility === "hidden" || Number(cs.opacity) === 0) return false;
    }
    return true;
  };
  const ellipsisWithTitle = (el) => {
    for (let e = el; e; e = e.parentElement) {
      if (getComputedStyle(e).textOverflow === "ellipsis" && e.title && e.title.trim() !== "") return true;
    }
    return false;
  };
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent.trim();
    const el = n.parentElement;
    if (!text || !el || el.closest("script,style,option,select,textarea,[aria-hidden=true]") || !visible(el)) continue;
    // A closed <details> keeps its content laid out but not shown.
    const details = el.closest("details");
    if (details && !details.open && !el.closest("summary")) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    let rects = [...range.getClientRects()].filter((r) => r.width > 0.5 && r.height > 0.5);
    const trimmed = ellipsisWithTitle(el);
    let clipped = false;
    for (let a = el; a && a !== document.body && rects.length > 0; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.overflowX === "visible" && cs.overflowY === "visible") continue;
      const ar = a.getBoundingClientRect();
      // Scrolled out of a scrolling container is not cut off: only what shows counts.
      if (/auto|scroll/.test(cs.overflowX + cs.overflowY)) {
        rects = rects.flatMap((r) => {
          const l = Math.max(r.left, ar.left), t = Math.max(r.top, ar.top), rr = Math.min(r.right, ar.right), b = Math.min(r.bottom, ar.bottom);
          return rr - l > 0.5 && b - t > 0.5 ? [new DOMRect(l, t, rr - l, b - t)] : [];
        });
        continue;
      }
      const cut = rects.some((r) => r.left < ar.left - 1 || r.right > ar.right + 1 || r.top < ar.top - 1 || r.bottom > ar.bottom + 1);
      if (cut && !clipped && !trimmed) { issues.push({ kind: "clipped", text, detail: "cut by " + a.tagName.toLowerCase() + "." + [...a.classList].join(".") }); clipped = true; }
    }
    if (trimmed) {
      // Text cut short with an ellipsis shows only inside its element.
      const er = el.getBoundingClientRect();
      rects = rects.flatMap((r) => {
        const l = Math.max(r.left, er.left), rr = Math.min(r.right, er.right);
        return rr - l > 0.5 ? [new DOMRect(l, r.top, rr - l, r.height)] : [];
      });
    }
    for (const r of rects) boxes.push({ text, r, el });
    if (trimmed) continue;
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== "visible" && !/auto|scroll/.test(getComputedStyle(el).overflowX)) {
      issues.push({ kind: "clipped", text, detail: "scrollWidth " + el.scrollWidth + " > clientWidth " + el.clientWidth });
    }
  }
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      // Rects of one text node may repeat (a line box and its fragment).
      if (boxes[i].el === boxes[j].el && boxes[i].text === boxes[j].text) continue;
      const a = boxes[i].r, b = boxes[j].r;
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 2) issues.push({ kind: "overlap", text: boxes[i].text + " | " + boxes[j].text, detail: Math.round(w) + "x" + Math.round(h) + " px" });
    }
  }
  for (const chart of document.querySelectorAll("[data-axes]")) {
    const name = chart.getAttribute("data-metric") || chart.getAttribute("data-testid") || "chart";
    for (const axis of JSON.parse(chart.getAttribute("data-axes"))) {
      const ls = [...axis.labels].sort((p, q) => p.pos - q.pos);
      for (const l of ls) {
        if (axis.axis === "x" && (l.pos - l.width / 2 < 0 || l.pos + l.width / 2 > axis.room)) issues.push({ kind: "axis", text: l.text, detail: name + " x label outside the canvas" });
        if (axis.axis === "y" && l.width > axis.room) issues.push({ kind: "axis", text: l.text, detail: name + " y label " + l.width.toFixed(1) + " px in " + axis.room + " px" });
      }
      for (let k = 1; k < ls.length; k++) {
        const p = ls[k - 1], q = ls[k];
        const apart = axis.axis === "x" ? q.pos - q.width / 2 - (p.pos + p.width / 2) : q.pos - p.pos - 12;
        if (apart < 0) issues.push({ kind: "axis", text: p.text + " | " + q.text, detail: name + " " + axis.axis + " labels overlap" });
      }
    }
  }
  return issues;
})()`;

export interface Shot {
  page: string;
  width: number;
  file: string;
  issues: LayoutIssue[];
  /** Charts whose axes were drawn with labels on both axes (and so were checked). */
  charts: number;
}

const CHARTS_WITH_LABELS = `[...document.querySelectorAll("[data-axes]")].filter((c) => {
  const axes = JSON.parse(c.getAttribute("data-axes"));
  return axes.length === 2 && axes.every((a) => a.labels.length > 0);
}).length`;

/** Opens every page at every width, waits for its data, checks the layout and saves a full-page screenshot. */
export async function capturePages(browser: Browser, url: string, token: string, outDir: string, pages = PAGES): Promise<Shot[]> {
  mkdirSync(outDir, { recursive: true });
  const shots: Shot[] = [];
  for (const width of WIDTHS) {
    for (const spec of pages) {
      const ctx = await browser.newContext({ viewport: { width, height: width < 600 ? 844 : 900 }, deviceScaleFactor: 1 });
      try {
        const page = await ctx.newPage();
        const q = spec.signedIn ? `${spec.path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : "";
        await page.goto(`${url}${spec.path}${q}`);
        await spec.ready(page);
        // Two frames: whatever the last data scheduled is drawn. At the top
        // of the page, so the sticky top bar covers nothing.
        await page.evaluate("window.scrollTo(0, 0); new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(0))))");
        const issues = (await page.evaluate(LAYOUT_CHECK)) as LayoutIssue[];
        const charts = (await page.evaluate(CHARTS_WITH_LABELS)) as number;
        const file = join(outDir, `${spec.name}-${width}.png`);
        await page.screenshot({ path: file, fullPage: true });
        shots.push({ page: spec.name, width, file, issues, charts });
      } finally {
        await ctx.close();
      }
    }
  }
  return shots;
}

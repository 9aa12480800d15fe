/**
 * The dashboard's browser-facing defenses (docs/security.md, "The dashboard
 * in the browser"), against a real `wrangler dev` and Debian's Chromium:
 * the response headers of dashboard/public/_headers as wrangler serves them,
 * no source maps in the build, the page working under its CSP (styles,
 * uPlot charts, the live socket) with no violation, framing refused, metric
 * names such as `__proto__` shown like any other, the page's live-socket acks
 * (exactly the seq of the frame it got), and a link's token never silently
 * replacing the tab's.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceClient } from "../../client/index.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { deviceClient, sharedHub, uniqueGroup } from "../node/hub.ts";
import { eventually, launchBrowser, operatorToken, type BrowserHandle } from "./harness.ts";

/** Metric names that are also names of Object.prototype's members; each must show like "temp". */
const ODD_METRICS = ["__proto__", "constructor", "hasOwnProperty", "toString"];
const ODD_VALUES = [101.5, 202.5, 303.5, 404.5];
const DIST = join(ROOT, "dashboard", "dist");

const hub = sharedHub();
let browser: BrowserHandle;
let group: string;
let allToken: string;
let odd: DeviceClient | undefined;

/** Records every CSP violation the page reports (it runs before the page's own scripts). */
const RECORD_VIOLATIONS = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`;

async function newPage(): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.addInitScript(RECORD_VIOLATIONS);
  return { ctx, page: await ctx.newPage() };
}

const violations = (page: Page) => page.evaluate("window.__csp") as Promise<string[]>;
const storedToken = (page: Page) => page.evaluate("sessionStorage.getItem('telemetry-hub.token')") as Promise<string | null>;

beforeAll(async () => {
  group = uniqueGroup("sec");
  allToken = await operatorToken("*");
  odd = (await deviceClient(hub.url, group, "odd-1")).start();
  const now = Date.now();
  odd.send(ODD_METRICS.map((m, i) => [now, m, ODD_VALUES[i] ?? 0] as [number, string, number]));
  await odd.idle();
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await odd?.close();
}, 60_000);

describe("dashboard responses", () => {
  it("carry a CSP without unsafe-inline, frame-ancestors 'none', X-Frame-Options, nosniff and Referrer-Policy, on every page path and asset", async () => {
    const index = await (await fetch(`${hub.url}/`)).text();
    const script = /<script[^>]+src="([^"]+)"/.exec(index)?.[1];
    expect(script).toBeDefined();
    // The page itself, a client-side route (served from the same index.html) and the script.
    for (const path of ["/", `/groups/${group}/devices/odd-1`, String(script)]) {
      const res = await fetch(`${hub.url}${path}`);
      await res.arrayBuffer();
      expect(res.status, path).toBe(200);
      const csp = res.headers.get("content-security-policy") ?? "";
      expect(csp, path).toContain("default-src 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain("unsafe-inline");
      expect(csp, path).not.toContain("unsafe-eval");
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("referrer-policy"), path).toMatch(/^(no-referrer|same-origin)$/);
    }
    // The rules file is applied, never served.
    expect(await (await fetch(`${hub.url}/_headers`)).text()).not.toContain("Content-Security-Policy");
  });

  it("ship no source map", async () => {
    const files = readdirSync(join(DIST, "assets"));
    expect(files.filter((f) => f.endsWith(".map"))).toEqual([]);
    for (const f of files.filter((f) => f.endsWith(".js"))) {
      expect(readFileSync(join(DIST, "assets", f), "utf8"), f).not.toContain("sourceMappingURL");
    }
    expect(existsSync(join(DIST, "index.html"))).toBe(true);
    // What the hub answers for the map's old address is the page, not a map.
    const script = /<script[^>]+src="([^"]+)"/.exec(await (await fetch(`${hub.url}/`)).text())?.[1];
    const res = await fetch(`${hub.url}${String(script)}.map`);
    expect(await res.text()).not.toContain('"mappings"');
  });
});

describe("the page under its CSP", () => {
  it("styles, draws uPlot charts and goes live with no CSP violation; metrics named like Object.prototype's members show like any other", async () => {
    const { ctx, page } = await newPage();
    try {
      const frames: string[] = [];
      page.on("websocket", (ws) => ws.on("framereceived", (f) => typeof f.payload === "string" && frames.push(f.payload)));
      await page.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(allToken)}`);
      await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
      // The stylesheet applied: the top bar is laid out by style.css, not as a plain block.
      expect(await page.evaluate("getComputedStyle(document.querySelector('.topbar')).display")).toBe("flex");
      // The hub sends every name, "__proto__" included, as an ordinary JSON key.
      expect(frames.some((f) => f.includes('"__proto__":{'))).toBe(true);
      const row = page.locator('.vt-row[data-device="odd-1"]');
      await row.waitFor({ timeout: 20_000 });
      for (const [i, m] of ODD_METRICS.entries()) {
        await page.locator(`.vt-head [data-sort="m:${m}"]`).waitFor({ timeout: 10_000 });
        await row.locator(`[title="${m} ${ODD_VALUES[i]}"]`).waitFor({ timeout: 10_000 });
      }
      // A new value of an odd metric arrives through a summary, not only the snapshot.
      odd?.send([[Date.now(), "__proto__", 555.5]]);
      await row.locator('[title="__proto__ 555.5"]').waitFor({ timeout: 10_000 });
      // The drill-down: one uPlot chart per metric, each with its data.
      await page.goto(`${hub.url}/groups/${group}/devices/odd-1`);
      for (const m of ODD_METRICS) {
        const chart = page.locator(`[data-testid=metric-chart][data-metric="${m}"]`);
        await eventually(async () => (Number(await chart.getAttribute("data-points")) >= 1 ? true : undefined), 30_000, `${m} chart data`);
        expect(await chart.locator("canvas").count(), m).toBeGreaterThan(0);
      }
      expect(await violations(page)).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it("cannot be framed by another site", async () => {
    const { ctx, page } = await newPage();
    let attacker: Server | undefined;
    try {
      // A foreign page that frames the dashboard (clickjacking). It is served
      // from 127.0.0.1 too: Chromium would refuse a public page framing a
      // loopback one anyway (Private Network Access), which proves nothing.
      const html = `<iframe id="f" src="${hub.url}/groups/${group}" width="800" height="600"></iframe>`;
      attacker = createServer((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(html));
      const port = await new Promise<number>((resolve) => attacker?.listen(0, "127.0.0.1", () => resolve((attacker?.address() as AddressInfo).port)));
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.locator("#f").waitFor();
      // Chromium refuses it: the frame shows its own error page instead of the dashboard.
      const inner = await eventually(async () => page.frames().find((f) => f.url().startsWith("chrome-error:")), 20_000, "Chromium to refuse the frame");
      expect(await inner.locator("#app").count()).toBe(0);
      expect(page.frames().filter((f) => f.url().startsWith(hub.url))).toEqual([]);
    } finally {
      await ctx.close();
      await new Promise((resolve) => (attacker ? attacker.close(resolve) : resolve(undefined)));
    }
  });
});

describe("the page's live-socket acks", () => {
  it("acks each frame once, with exactly that frame's seq, after receiving it: only the seq the hub waits for", async () => {
    const { ctx, page } = await newPage();
    try {
      // Every frame in and out of the live socket, in the order the page saw them.
      const log: { dir: "in" | "out"; seq: number; type: string }[] = [];
      const seqOf = (payload: string | Buffer, dir: "in" | "out") => {
        if (typeof payload !== "string" || payload === "ping" || payload === "pong") return;
        const v = JSON.parse(payload) as { seq?: unknown; type?: unknown };
        log.push({ dir, seq: Number(v.seq), type: String(v.type) });
      };
      page.on("websocket", (ws) => {
        ws.on("framereceived", (f) => seqOf(f.payload, "in"));
        ws.on("framesent", (f) => seqOf(f.payload, "out"));
      });
      await page.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(allToken)}`);
      await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
      // A few batches, each waited for on the page, so several summaries arrive.
      for (const value of [1.25, 2.25, 3.25]) {
        odd?.send([[Date.now(), "toString", value]]);
        await page.locator(`.vt-row[data-device="odd-1"] [title="toString ${value}"]`).waitFor({ timeout: 10_000 });
      }
      const received = log.filter((e) => e.dir === "in");
      expect(received.length).toBeGreaterThanOrEqual(2);
      // Each ack answers the frame just received; no ack runs ahead or repeats.
      let awaited: number | null = null;
      for (const e of log) {
        if (e.dir === "in") {
          expect(awaited, "a frame arrived while the previous one was unacked").toBeNull();
          awaited = e.seq;
        } else {
          expect(e).toEqual({ dir: "out", seq: awaited, type: "ack" });
          awaited = null;
        }
      }
    } finally {
      await ctx.close();
    }
  });
});

describe("a ?token= link", () => {
  it("does not replace the tab's token without asking; the operator keeps it or takes the link's", async () => {
    const { ctx, page } = await newPage();
    try {
      const groupToken = await operatorToken(group);
      await page.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(groupToken)}`);
      await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
      expect(await page.getByTestId("link-token").count()).toBe(0);

      // The same token again: nothing to ask.
      await page.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(groupToken)}`);
      await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
      expect(await page.getByTestId("link-token").count()).toBe(0);

      // Another token: the page asks, and keeps working with the tab's token meanwhile.
      await page.goto(`${hub.url}/?token=${encodeURIComponent(allToken)}`);
      await page.getByTestId("link-token").waitFor({ timeout: 10_000 });
      expect(page.url()).not.toContain("token");
      expect(await storedToken(page)).toBe(groupToken);
      await page.getByTestId("link-token-keep").click();
      await page.getByTestId("link-token").waitFor({ state: "detached" });
      expect(await storedToken(page)).toBe(groupToken);
      // A reload does not bring the link's token back: it was never stored.
      await page.reload();
      await page.locator("#app > *").first().waitFor();
      expect(await page.getByTestId("link-token").count()).toBe(0);
      expect(await storedToken(page)).toBe(groupToken);

      // Again, and this time the operator takes it: the page starts over as the new token.
      await page.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(allToken)}`);
      await page.getByTestId("link-token-use").click();
      expect(await storedToken(page)).toBe(allToken);
      await page.getByTestId("link-token").waitFor({ state: "detached" });
      await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
      // The all-groups token lists the groups, which the group token could not.
      await page.goto(`${hub.url}/`);
      await page.locator(`[data-group="${group}"]`).waitFor({ timeout: 20_000 });
      expect(await violations(page)).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});

/**
 * The operator dashboard in headless Chromium, against a real `wrangler dev`
 * fed by the simulator: the page loads with the token from the URL and hides
 * it, live numbers change, a drill-down chart renders with data, a rule the
 * simulated signal crosses raises an alert on screen (and a gateway refused
 * past a budget shows as the gateway's), a wrong token shows the
 * sign-in message, and without the live socket the page falls back to
 * polling. Screenshots go to test-artifacts/dashboard/.
 */
import { readFileSync } from "node:fs";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceClient } from "../../client/index.ts";
import { GatewayClient } from "../../bridge/gateway-client.ts";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import type { GatewayReading, Reading } from "../../schema/protocol.ts";
import { gatewayToken } from "../tokens.ts";
import { deviceClient, sharedHub, uniqueGroup } from "../node/hub.ts";
import { eventually, launchBrowser, operatorToken, screenshot, startFleet, withTimeout, type BrowserHandle, type FleetHandle } from "./harness.ts";
import { waitForExpression } from "../../scripts/screenshot-pages.ts";

const DEVICES = 8;

const hub = sharedHub();
let fleet: FleetHandle | undefined;
let browser: BrowserHandle;
let group: string;
let token: string;
let context: BrowserContext;
let page: Page;
let gone: DeviceClient | undefined;
const consoleText: string[] = [];

beforeAll(async () => {
  group = uniqueGroup("ui");
  token = await operatorToken("*");
  // A rule the simulated temperature (about 20 °C) always crosses.
  const put = await fetch(`${hub.url}/v1/groups/${group}/rules`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ rules: [{ id: "warm", metric: "temp", op: ">", threshold: 0, forMs: 0 }], offlineAfterMs: 0 }),
  });
  expect(put.status, await put.text()).toBe(200);
  // One device with an hour of history that then disconnects: it must show
  // as offline, and its drill-down has a full hour of one-minute buckets.
  gone = (await deviceClient(hub.url, group, "gone-1")).start();
  const now = Date.now();
  const history: Reading[] = [];
  for (let ts = now - 60 * 60_000; ts <= now; ts += 10_000) {
    const phase = (ts - now) / (20 * 60_000);
    history.push([ts, "temp", 18.5 + 3 * Math.sin(phase * Math.PI) + ((ts / 10_000) % 5) * 0.2]);
    history.push([ts, "humidity", 45 + 8 * Math.cos(phase * Math.PI)]);
  }
  gone.send(history);
  await gone.idle();
  await gone.close();
  gone = undefined;
  fleet = startFleet(hub.url, group, {
    devices: DEVICES,
    metrics: ["temp", "humidity"],
    rate: 2,
    // Now and then a malformed batch, so rejections show on the page.
    faults: { malformedRate: 0.05 },
  });
  browser = await launchBrowser();
  context = await browser.browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
  page = await context.newPage();
  page.on("console", (m) => consoleText.push(m.text()));
}, 180_000);

afterAll(async () => {
  await context?.close().catch(() => {});
  await browser?.close();
  await gone?.close();
  await fleet?.stop();
}, 60_000);

describe("dashboard", () => {
  it("takes the token from the URL, keeps it out of the address bar, and shows the groups page", async () => {
    const groupRequests: string[] = [];
    page.on("request", (r) => {
      const m = /\/v1\/groups\/([^/?]+)/.exec(new URL(r.url()).pathname);
      if (m?.[1]) groupRequests.push(decodeURIComponent(m[1]));
    });
    await page.goto(`${hub.url}/?token=${encodeURIComponent(token)}`);
    await page.getByRole("heading", { name: "Groups", level: 1 }).waitFor();
    expect(page.url()).not.toContain("token");
    expect(await page.evaluate("sessionStorage.getItem('telemetry-hub.token')")).toBe(token);
    // The groups the hub lists (GET /v1/groups), each with its devices; no
    // group the hub does not know is asked about (that would create it).
    await page.locator(`[data-group="${group}"] [data-testid=group-stats]`, { hasText: /devices yet|devices ·/ }).waitFor({ timeout: 20_000 });
    const listed = (await (await fetch(`${hub.url}/v1/groups`, { headers: { authorization: `Bearer ${token}` } })).json()) as { groups: { id: string }[] };
    const known = new Set(listed.groups.map((g) => g.id));
    expect(groupRequests.filter((g) => !known.has(g))).toEqual([]);
    expect(await page.locator('[data-group="demo"]').count()).toBe(0);
    await screenshot(page, "home");
    // Opening a group by name.
    await page.locator("#group-input").fill(group);
    await page.getByRole("button", { name: "Open" }).click();
    await page.waitForURL(`**/groups/${group}`);
  });

  it("shows the fleet live: totals, devices, offline and rejecting devices, and numbers that change", async () => {
    await page.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 30_000 });
    await page.locator("[data-testid=kpi-online]", { hasText: `${DEVICES} / ${DEVICES + 1}` }).waitFor({ timeout: 30_000 });
    await page.locator('.vt-row.is-offline[data-device="gone-1"]').waitFor();
    const readings = page.locator("[data-testid=kpi-readings]");
    await eventually(async () => (Number((await readings.textContent()) ?? "0") > 0 ? true : undefined), 30_000, "readings/s above 0");
    // Live numbers change: the latest values in the visible rows move as summaries arrive.
    const cells = page.locator(".vt-row:not([hidden]) .vt-cell.num");
    const before = (await cells.allTextContents()).join("|");
    await eventually(async () => ((await cells.allTextContents()).join("|") !== before ? true : undefined), 15_000, "table values to change");
    // The readings/s chart has points; sparklines are drawn.
    await eventually(async () => (Number(await page.locator("[data-testid=rate-chart]").getAttribute("data-points")) >= 2 ? true : undefined), 10_000, "rate chart points");
    expect(await page.locator("[data-testid=rate-chart] canvas").count()).toBeGreaterThan(0);
    // A device with rejected batches stands out (the simulator sends malformed frames now and then).
    await page.locator(".vt-row.is-rejecting, .vt-row.is-alerting").first().waitFor({ timeout: 60_000 });
    await eventually(async () => (Number(await page.locator("[data-testid=kpi-rejected]").textContent()) > 0 ? true : undefined), 60_000, "rejected batches");
    await screenshot(page, "group");
  });

  it("shows a committed batch on the page within a second", async () => {
    const probe = (await deviceClient(hub.url, group, "probe-1")).start();
    try {
      probe.send([[Date.now(), "temp", 1]]);
      await probe.idle();
      await page.locator('.vt-row[data-device="probe-1"]').waitFor({ timeout: 10_000 });
      const latencies: number[] = [];
      for (const value of [111.25, 222.25, 333.25]) {
        // The page notes the moment the value is on screen; Node notes when the batch was sent.
        // (The statement ends in `0`, or evaluate would wait for the promise.)
        await page.evaluate(`window.__seen = new Promise((resolve) => {
          const check = () => document.querySelector('.vt-row[data-device="probe-1"]')?.textContent?.includes("${value}");
          const obs = new MutationObserver(() => { if (check()) { obs.disconnect(); resolve(Date.now()); } });
          obs.observe(document.body, { subtree: true, childList: true, characterData: true });
        }); 0`);
        const sentAt = Date.now();
        probe.send([[sentAt, "temp", value]]);
        const seenAt = (await withTimeout(page.evaluate("window.__seen"), 10_000, `${value} to show on the page`)) as number;
        latencies.push(seenAt - sentAt);
        await probe.idle();
      }
      latencies.sort((x, y) => x - y);
      console.log(`batch sent -> value on screen: ${latencies.join(", ")} ms`);
      expect(latencies[1]).toBeLessThan(1000);
    } finally {
      await probe.close();
    }
  });

  it("raises an alert on screen when the simulated signal crosses a rule", async () => {
    const active = page.locator("[data-testid=alert-list] .alert-active", { hasText: "temp > 0" });
    await active.first().waitFor({ timeout: 30_000 });
    expect(Number(await page.locator("[data-testid=kpi-alerts]").textContent())).toBeGreaterThan(0);
    await page.locator(".vt-row.is-alerting").first().waitFor();
    // A gateway refused past a budget: its alert names the gateway, not a device row (one whole-batch refusal, nothing applied).
    const gw = new GatewayClient({ url: hub.url, group, gateway: "gw-1", token: await gatewayToken(group, "gw-1") }).start();
    const now = Date.now();
    gw.send(Array.from({ length: DEFAULT_LIMITS.maxMetricsPerDevice + 1 }, (_, i): GatewayReading => [now, `m${i}`, i, "behind-gw"]));
    await gw.idle();
    await gw.close();
    const budget = page.locator("[data-testid=alert-list] .alert-budget[data-peer-kind=gateway]");
    await budget.waitFor({ timeout: 10_000 });
    expect(await budget.getByTestId("alert-gateway").textContent()).toBe("gateway gw-1");
    expect(await budget.locator("a").count()).toBe(0);
    await screenshot(page, "alerts");
    // The rules tab shows the rule that raised it.
    await page.getByTestId("tab-rules").click();
    await expect.poll(() => page.locator("[data-testid=rule] input[aria-label='Rule id']").first().inputValue()).toBe("warm");
    await screenshot(page, "rules");
    await page.getByTestId("tab-alerts").click();
  });

  it("filters and sorts the device table", async () => {
    await page.getByTestId("device-filter").fill("gone");
    await expect.poll(() => page.locator(".vt-row:not([hidden])").count()).toBe(1);
    await page.getByTestId("device-filter").fill("");
    await page.getByTestId("status-filter").selectOption("offline");
    // gone-1, and probe-1 from the latency test.
    await expect.poll(() => page.locator(".vt-row:not([hidden])").count()).toBe(2);
    await page.getByTestId("status-filter").selectOption("all");
    await page.locator('.vt-head [data-sort="id"]').click();
    await expect.poll(() => page.locator(".vt-row:not([hidden])").count()).toBe(DEVICES + 2);
  });

  it("drills down into a device: a chart per metric with data, range picker, CSV export", async () => {
    await page.locator('.vt-row[data-device="dev-1"]').click();
    await page.waitForURL(`**/groups/${group}/devices/dev-1`);
    for (const metric of ["temp", "humidity"]) {
      const chart = page.locator(`[data-testid=metric-chart][data-metric="${metric}"]`);
      await eventually(async () => (Number(await chart.getAttribute("data-points")) >= 1 ? true : undefined), 30_000, `${metric} chart data`);
      expect(await chart.locator("canvas").count()).toBeGreaterThan(0);
    }
    // Drag across a chart to zoom in; double-click to see the whole range again.
    const over = page.locator('[data-testid=metric-chart][data-metric="temp"] .u-over');
    const box = await over.boundingBox();
    if (!box) throw new Error("the temp chart has no plot area");
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await expect.poll(() => page.locator('[data-testid=metric-chart][data-metric="temp"]').getAttribute("data-zoomed")).toBe("true");
    await over.dblclick();
    await expect.poll(() => page.locator('[data-testid=metric-chart][data-metric="temp"]').getAttribute("data-zoomed")).toBe("false");
    await page.locator('[data-range="15m"]').click();
    await expect.poll(() => page.locator('[data-range="15m"]').getAttribute("aria-pressed")).toBe("true");
    expect(page.url()).toContain("range=15m");
    await page.locator("[data-testid=metric-charts]:not([data-loading])").waitFor();
    await eventually(async () => (Number(await page.locator('[data-testid=metric-chart][data-metric="temp"]').getAttribute("data-points")) >= 1 ? true : undefined), 15_000, "temp chart data after the range change");
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-csv").click()]);
    const path = await download.path();
    const csv = readFileSync(path, "utf8").trim().split(/\r\n/);
    expect(csv[0]).toBe("group,device,metric,resolution,start,start_ms,count,avg,min,max,sum,last,source");
    expect(csv.length).toBeGreaterThan(1);
    expect(csv.some((l) => l.includes(",dev-1,temp,minute,"))).toBe(true);
    // Beside it, the raw readings of the same range from the archive (GET …/readings?format=csv).
    const [rawDownload] = await Promise.all([page.waitForEvent("download"), page.getByTestId("export-raw-csv").click()]);
    const raw = readFileSync(await rawDownload.path(), "utf8").trim().split("\n");
    expect(raw[0]).toBe("device,metric,ts,value,received,source,seq");
    expect(raw.length).toBeGreaterThan(1);
    expect(raw.slice(1).every((l) => l.startsWith("dev-1,"))).toBe(true);
    expect(await page.getByTestId("resolution").getAttribute("data-resolution")).toBe("minute");
    // 30 days is longer than minutes are kept: the hub answers hours, and the page says so.
    await page.locator('[data-range="30d"]').click();
    await expect.poll(() => page.getByTestId("resolution").getAttribute("data-resolution")).toBe("hour");
    await page.locator('[data-range="15m"]').click();
    await expect.poll(() => page.getByTestId("resolution").getAttribute("data-resolution")).toBe("minute");
    await screenshot(page, "device");
    // A device with an hour of history: a full chart with its min-max band.
    await page.goto(`${hub.url}/groups/${group}/devices/gone-1?range=1h`);
    await page.locator("[data-testid=metric-charts]:not([data-loading])").waitFor();
    await eventually(async () => (Number(await page.locator('[data-testid=metric-chart][data-metric="temp"]').getAttribute("data-points")) >= 60 ? true : undefined), 15_000, "an hour of temp buckets");
    await page.locator(".fact-bad", { hasText: "offline" }).waitFor();
    await screenshot(page, "device-history");
    await page.goto(`${hub.url}/groups/${group}/devices/dev-1`);
    // Back to the group keeps the same live session.
    await page.getByRole("link", { name: `← Back to ${group}` }).click();
    await page.locator('[data-testid=status][data-state="live"]').waitFor();
  });

  it("sends a command from the device page and shows its status change, and converges a configuration edited there", async () => {
    await page.goto(`${hub.url}/groups/${group}/devices/dev-2`);
    await page.getByTestId("commands").waitFor();
    await page.getByTestId("command-name").fill("set_rate");
    await page.getByTestId("command-args").fill('{"ms": 400}');
    await page.getByTestId("command-send").click();
    await page.locator('[data-testid=command-rows] tr[data-status="succeeded"]', { hasText: "set_rate" }).waitFor({ timeout: 15_000 });
    expect(await page.locator("[data-testid=command-rows] tr").first().textContent()).toContain('"sampleRateMs":400');
    await page.getByTestId("config-desired").fill('{"sampleRateMs": 500}');
    await page.getByTestId("config-save").click();
    await page.locator('[data-testid=config-sync][data-state="ok"]').waitFor({ timeout: 15_000 });
    expect(await page.getByTestId("config-reported").textContent()).toContain('"sampleRateMs": 500');
    await screenshot(page, "device-downlink");
  });

  it("never writes the token to the console", () => {
    expect(consoleText.filter((t) => t.includes(token))).toEqual([]);
  });
});

describe("sign-in", () => {
  it("a wrong token shows the sign-in message, and a right one opens the group", async () => {
    const ctx = await browser.browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/groups/${group}?token=not-a-valid-token`);
      const message = p.getByTestId("signin-message");
      await message.waitFor({ timeout: 20_000 });
      expect(await message.textContent()).toContain("refused");
      expect(p.url()).not.toContain("token");
      await screenshot(p, "signin-wrong-token");
      await p.locator("#token-input").fill(token);
      await p.getByRole("button", { name: "Sign in" }).click();
      await p.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 20_000 });
      // Sign out forgets the token in this tab.
      await p.getByRole("button", { name: "Sign out" }).click();
      await p.getByTestId("signin-message").filter({ hasText: "signed out" }).waitFor();
      expect(await p.evaluate("sessionStorage.getItem('telemetry-hub.token')")).toBeNull();
    } finally {
      await ctx.close();
    }
  });

  it("no token at all shows the sign-in message, on a group and on the groups page", async () => {
    const ctx = await browser.browser.newContext();
    try {
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/groups/${group}`);
      await p.getByTestId("signin-message").waitFor({ timeout: 20_000 });
      expect(await p.getByTestId("signin-message").textContent()).toContain("needs an operator token");
      await screenshot(p, "signin-no-token");
      await p.goto(`${hub.url}/`);
      await p.getByTestId("signin-message").filter({ hasText: "needs an operator token" }).waitFor({ timeout: 20_000 });
    } finally {
      await ctx.close();
    }
  });

  it("a group token goes straight to its group from /", async () => {
    const ctx = await browser.browser.newContext();
    try {
      const p = await ctx.newPage();
      const groupToken = await operatorToken(group);
      // Visit the group once (remembered as recent), then open / with the group token.
      await p.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(groupToken)}`);
      await p.locator('[data-testid=status][data-state="live"]').waitFor({ timeout: 20_000 });
      // The page learns the token's group: it opened this one and may not list the others.
      await waitForExpression(p, `sessionStorage.getItem("telemetry-hub.token-group") === ${JSON.stringify(group)}`, 20_000);
      await p.goto(`${hub.url}/`);
      await p.waitForURL(`**/groups/${group}`, { timeout: 20_000 });
    } finally {
      await ctx.close();
    }
  });
});

describe("degraded", () => {
  it("falls back to polling REST when the live socket is unavailable", async () => {
    const ctx = await browser.browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      // Every live socket is refused, as by a hub or proxy without it.
      await ctx.routeWebSocket(/\/live/, (ws) => ws.close({ code: 1011, reason: "unavailable" }));
      const p = await ctx.newPage();
      await p.goto(`${hub.url}/groups/${group}?token=${encodeURIComponent(token)}`);
      await p.locator('[data-testid=status][data-state="polling"]').waitFor({ timeout: 30_000 });
      await p.locator("[data-testid=kpi-online]", { hasText: `${DEVICES} / ${DEVICES + 2}` }).waitFor({ timeout: 20_000 });
      await eventually(async () => (Number(await p.locator("[data-testid=kpi-readings]").textContent()) > 0 ? true : undefined), 20_000, "polled readings/s");
      await screenshot(p, "group-polling");
    } finally {
      await ctx.close();
    }
  });
});

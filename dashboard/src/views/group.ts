/**
 * `/groups/{group}`: the fleet overview. Totals, readings/s over the last
 * 15 minutes, the device table, and a side panel with alerts and rules.
 * Everything redraws at most once per animation frame.
 */
import { RateChart } from "../charts/rate-chart.ts";
import type { GroupSession } from "../session.ts";
import type { GroupStore } from "../store.ts";
import { frameScheduler, h, setText, toggleClass } from "../util/dom.ts";
import { fmtInt, fmtRate } from "../util/format.ts";
import { AlertsPanel } from "./alerts.ts";
import { StatusPill, topBar } from "./chrome.ts";
import { RulesEditor } from "./rules.ts";
import { DeviceTable } from "./table.ts";

export interface GroupContext {
  signOut(): void;
}

interface Kpi {
  el: HTMLElement;
  value: HTMLElement;
  note: HTMLElement;
}

function kpi(label: string, testid: string): Kpi {
  const value = h("div", { class: "kpi-value", "data-testid": testid }, "–");
  const note = h("div", { class: "kpi-note muted small" });
  return { el: h("div", { class: "kpi card" }, h("div", { class: "kpi-label muted small" }, label), value, note), value, note };
}

export function mountGroup(root: HTMLElement, session: GroupSession, ctx: GroupContext): () => void {
  const store = session.store;
  const status = new StatusPill();
  const online = kpi("Devices online", "kpi-online");
  const readings = kpi("Readings/s", "kpi-readings");
  const batches = kpi("Batches/s", "kpi-batches");
  const rejected = kpi("Rejected batches", "kpi-rejected");
  const alertsKpi = kpi("Active alerts", "kpi-alerts");
  const chart = new RateChart();
  const scheduler = frameScheduler(() => render());
  const table = new DeviceTable(store, () => scheduler.schedule(), (metric) => void session.backfill(metric));
  const alerts = new AlertsPanel(store);
  const rules = new RulesEditor(session);

  const tabAlerts = h("button", { class: "tab", type: "button", role: "tab", "aria-selected": "true", "data-testid": "tab-alerts" }, "Alerts");
  const tabRules = h("button", { class: "tab", type: "button", role: "tab", "aria-selected": "false", "data-testid": "tab-rules" }, "Rules");
  const selectTab = (which: "alerts" | "rules") => {
    tabAlerts.setAttribute("aria-selected", String(which === "alerts"));
    tabRules.setAttribute("aria-selected", String(which === "rules"));
    alerts.el.hidden = which !== "alerts";
    rules.el.hidden = which !== "rules";
  };
  tabAlerts.addEventListener("click", () => selectTab("alerts"));
  tabRules.addEventListener("click", () => selectTab("rules"));
  selectTab("alerts");

  root.replaceChildren(
    topBar([{ text: "Groups", href: "/" }, { text: store.group }], ctx.signOut, status.el),
    h(
      "main",
      { class: "page page-group" },
      h("div", { class: "title-row" }, h("h1", { class: "page-title" }, store.group), h("span", { class: "muted small", "data-testid": "source-note" })),
      h("div", { class: "kpis" }, online.el, readings.el, batches.el, rejected.el, alertsKpi.el),
      h("section", { class: "card chart-card" }, h("div", { class: "card-head" }, h("h2", null, "Readings per second"), h("span", { class: "muted small" }, "last 15 minutes")), chart.el),
      h(
        "div",
        { class: "split" },
        table.el,
        h("aside", { class: "card side-panel" }, h("div", { class: "tabs", role: "tablist" }, tabAlerts, tabRules), alerts.el, rules.el),
      ),
    ),
  );
  const sourceNote = root.querySelector<HTMLElement>("[data-testid=source-note]");

  function renderKpis(s: GroupStore, now: number): void {
    const t = s.currentTotals(now);
    const devices = Math.max(t.devices, s.devices.size);
    setText(online.value, devices === 0 ? "–" : `${fmtInt(t.online)} / ${fmtInt(devices)}`);
    const offline = devices - t.online;
    setText(online.note, offline > 0 ? `${fmtInt(offline)} offline` : devices > 0 ? "all online" : "no devices yet");
    toggleClass(online.el, "kpi-bad", offline > 0);
    setText(readings.value, s.source === "none" ? "–" : fmtRate(t.readingsPerSec));
    setText(readings.note, s.source === "poll" ? "estimated from polling" : s.isIdle(now) ? "idle" : "10 s average");
    setText(batches.value, s.source === "none" ? "–" : fmtRate(t.batchesPerSec));
    setText(batches.note, s.source === "poll" ? "estimated from polling" : "10 s average");
    const codes = Object.entries(t.rejected).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    const total = codes.reduce((n, [, c]) => n + c, 0);
    setText(rejected.value, s.source === "poll" && total === 0 ? "–" : fmtInt(total));
    setText(rejected.note, codes.length > 0 ? codes.map(([c, n]) => `${c} ${fmtInt(n)}`).join(" · ") : s.source === "poll" ? "needs live updates" : "since the hub started");
    rejected.el.title = "Rejected batches by error code since the group's Durable Object started";
    toggleClass(rejected.el, "kpi-warn", total > 0);
    const active = [...s.alerts.values()].filter((a) => a.clearedAt === null).length;
    setText(alertsKpi.value, s.alertsAvailable === false && s.alerts.size === 0 ? "–" : fmtInt(active));
    setText(alertsKpi.note, active > 0 ? "see the alerts panel" : "none active");
    toggleClass(alertsKpi.el, "kpi-alert", active > 0);
    if (sourceNote) {
      setText(sourceNote, s.source === "poll" ? "Live updates are unavailable; the page polls the hub every few seconds." : "");
    }
  }

  let lastChartKey = "";
  let changedDevices = true;
  let changedAlerts = true;
  let changedRules = true;
  function render(): void {
    const now = Date.now();
    status.update(store, now);
    renderKpis(store, now);
    const rh = store.rateHistory;
    const chartKey = `${rh.ts.length}|${rh.ts[rh.ts.length - 1] ?? 0}`;
    if (chartKey !== lastChartKey) {
      lastChartKey = chartKey;
      chart.update(rh);
    }
    if (changedDevices || changedAlerts) table.invalidate();
    table.render(now);
    alerts.render(now);
    if (changedRules) rules.render();
    changedDevices = changedAlerts = changedRules = false;
  }

  const unsubscribe = store.subscribe((changes) => {
    if (changes.has("devices")) changedDevices = true;
    if (changes.has("alerts")) changedAlerts = true;
    if (changes.has("rules")) changedRules = true;
    scheduler.schedule();
  });
  // Once a second: the readings/s chart's new point (sampled by the session), relative times, idle detection.
  const tick = window.setInterval(() => {
    changedDevices = true;
    scheduler.schedule();
  }, 1000);
  scheduler.schedule();

  return () => {
    unsubscribe();
    window.clearInterval(tick);
    scheduler.cancel();
    chart.destroy();
    table.destroy();
  };
}

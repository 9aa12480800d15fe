/**
 * `/groups/{group}/devices/{device}`: one chart per metric from the
 * aggregates REST endpoint (minute buckets for short ranges; hours or days,
 * as the hub's `resolution=auto` picks, for long ones), with live values
 * appended to the current bucket as summaries arrive; every minute the last
 * few buckets are read again so the chart settles on the hub's exact numbers.
 */
import { RESOLUTION_MS, type Resolution } from "../../../schema/api.ts";
import { fetchAggregates, fetchRawCsv, isAuthError } from "../api.ts";
import { MetricChart, type Point } from "../charts/metric-chart.ts";
import type { Latest } from "../hub/types.ts";
import { groupHref } from "../router.ts";
import type { GroupSession } from "../session.ts";
import { download, toCsv } from "../util/csv.ts";
import { frameScheduler, h, setText, toggleClass } from "../util/dom.ts";
import { fmtAgo, fmtInt, fmtRate, fmtTime, fmtValue } from "../util/format.ts";
import { AlertsPanel } from "./alerts.ts";
import { DownlinkPanel } from "./downlink.ts";
import { StatusPill, topBar } from "./chrome.ts";

export const RANGES = [
  // Fitted to the data there is (the default): from just before the device's
  // first minute within the last 7 days, at least FIT_MIN_MS, up to now.
  { id: "fit", label: "Fit", ms: 7 * 24 * 60 * 60_000 },
  { id: "15m", label: "15 min", ms: 15 * 60_000 },
  { id: "1h", label: "1 h", ms: 60 * 60_000 },
  { id: "24h", label: "24 h", ms: 24 * 60 * 60_000 },
  { id: "7d", label: "7 d", ms: 7 * 24 * 60 * 60_000 },
  { id: "30d", label: "30 d", ms: 30 * 24 * 60 * 60_000 },
  { id: "1y", label: "1 y", ms: 365 * 24 * 60 * 60_000 },
  // Everything the hub keeps, from the device's oldest day bucket on.
  { id: "all", label: "All", ms: 0 },
] as const;
type RangeId = (typeof RANGES)[number]["id"];
/** Look-backs "Fit" tries, shortest first, until the data starts inside one. */
const FIT_SPANS = [60 * 60_000, 24 * 60 * 60_000, 7 * 24 * 60 * 60_000];
const FIT_MIN_MS = 3 * 60_000;

interface MetricView {
  metric: string;
  chart: MetricChart;
  card: HTMLElement;
  latest: HTMLElement;
  note: HTMLElement;
  points: Map<number, Point>;
  truncated: boolean;
}

export interface DeviceContext {
  signOut(): void;
}

function rangeFromUrl(): RangeId {
  const r = new URLSearchParams(window.location.search).get("range");
  return RANGES.find((x) => x.id === r)?.id ?? "fit";
}

export function mountDevice(root: HTMLElement, session: GroupSession, device: string, ctx: DeviceContext): () => void {
  const store = session.store;
  const group = store.group;
  let range: RangeId = rangeFromUrl();
  /** Start of the fitted window (ranges "fit" and "all"), once the data is loaded. */
  let fitFrom: number | null = null;
  /** The resolution of the buckets shown (the hub's pick for ranges other than "fit"). */
  let shown: Resolution = "minute";
  let abort = new AbortController();
  const views = new Map<string, MetricView>();
  const status = new StatusPill();
  const alerts = new AlertsPanel(store, device);
  const downlink = new DownlinkPanel(session, device);
  const scheduler = frameScheduler(() => render());
  const chartsEl = h("div", { class: "metric-charts", "data-testid": "metric-charts" });
  const message = h("p", { class: "muted", "data-testid": "device-message" }, "Loading…");
  const facts = h("dl", { class: "facts", "data-testid": "device-facts" });
  const rangeButtons = RANGES.map((r) => {
    const b = h("button", { class: "seg", type: "button", "data-range": r.id, "aria-pressed": String(r.id === range), title: r.id === "fit" ? "From the device's first reading (within 7 days) to now" : r.id === "all" ? "Everything the hub keeps of this device" : "" }, r.label);
    b.addEventListener("click", () => setRange(r.id));
    return b;
  });
  const resolutionNote = h("span", { class: "muted small", "data-testid": "resolution" }, "Average per minute, with the min-max band");
  const exportBtn = h("button", { class: "btn", type: "button", "data-testid": "export-csv", on: { click: () => exportCsv() } }, "Export CSV");
  const rawBtn = h(
    "button",
    { class: "btn", type: "button", "data-testid": "export-raw-csv", title: "Every reading of the range, from the raw archive", on: { click: () => void exportRawCsv() } },
    "Export raw CSV",
  );

  root.replaceChildren(
    topBar([{ text: "Groups", href: "/" }, { text: group, href: groupHref(group) }, { text: device }], ctx.signOut, status.el),
    h(
      "main",
      { class: "page page-device" },
      h("div", { class: "title-row" }, h("h1", { class: "page-title" }, device), h("a", { class: "btn btn-quiet btn-back", href: groupHref(group), title: `Back to ${group}` }, "← Back to ", group)),
      facts,
      h(
        "div",
        { class: "toolbar device-toolbar" },
        h("div", { class: "segmented", role: "group", "aria-label": "Time range" }, ...rangeButtons),
        exportBtn,
        rawBtn,
        resolutionNote,
      ),
      message,
      chartsEl,
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", null, "Alerts for this device")), alerts.el),
      downlink.commandsCard,
      downlink.configCard,
    ),
  );

  function rangeMs(): number {
    return RANGES.find((r) => r.id === range)?.ms ?? 3_600_000;
  }

  function bucketMs(): number {
    return RESOLUTION_MS[shown];
  }

  /** Where the chart's time axis starts. */
  function windowFrom(now: number): number {
    if (range === "fit" || range === "all") return fitFrom ?? now - FIT_MIN_MS;
    return now - rangeMs();
  }

  function setRange(id: RangeId): void {
    if (id === range) return;
    range = id;
    for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b.dataset.range === id));
    const url = new URL(window.location.href);
    url.searchParams.set("range", id);
    window.history.replaceState(null, "", url.pathname + url.search);
    void load();
  }

  function viewFor(metric: string): MetricView {
    let v = views.get(metric);
    if (v) return v;
    const chart = new MetricChart(metric);
    const latest = h("span", { class: "metric-latest" });
    const note = h("span", { class: "muted small" });
    const card = h(
      "section",
      { class: "card metric-card", "data-metric": metric },
      h("div", { class: "card-head" }, h("h2", null, metric), latest, note),
      chart.el,
    );
    v = { metric, chart, card, latest, note, points: new Map(), truncated: false };
    views.set(metric, v);
    const order = [...views.keys()].sort();
    chartsEl.replaceChildren(...order.map((m) => views.get(m)?.card).filter((c): c is HTMLElement => c !== undefined));
    return v;
  }

  /** Reads buckets of `from` (undefined: all there are) to `to` into a view; `auto` sets the resolution shown. */
  async function fetchInto(v: MetricView, from: number | undefined, to: number, signal: AbortSignal, resolution: Resolution | "auto"): Promise<void> {
    const q = { device, metric: v.metric, to, resolution, ...(from === undefined ? {} : { from }) };
    const r = await fetchAggregates(group, q, signal);
    if (signal.aborted) return;
    if (resolution === "auto") shown = r.resolution;
    const len = RESOLUTION_MS[r.resolution];
    for (const start of v.points.keys()) if ((from === undefined || start > from - len) && start < to) v.points.delete(start);
    for (const b of r.buckets) v.points.set(b.start, { ...b, live: false });
    v.truncated ||= r.truncated;
  }

  /** Metrics of this device: from the live state, else from its recent buckets. */
  async function discoverMetrics(signal: AbortSignal): Promise<string[]> {
    const known = [...(store.devices.get(device)?.latest.keys() ?? [])];
    if (known.length > 0) return known;
    const lookBack = range === "fit" ? (FIT_SPANS[1] ?? 0) : rangeMs();
    const { buckets } = await fetchAggregates(group, { device, resolution: "auto", ...(range === "all" ? {} : { from: Date.now() - lookBack }) }, signal);
    return [...new Set(buckets.map((b) => b.metric))];
  }

  async function load(): Promise<void> {
    abort.abort();
    abort = new AbortController();
    const signal = abort.signal;
    const to = Date.now();
    const from = to - rangeMs();
    for (const v of views.values()) {
      v.points.clear();
      v.truncated = false;
    }
    setText(message, "Loading…");
    chartsEl.dataset.loading = "true";
    exportBtn.disabled = true;
    try {
      const metrics = await discoverMetrics(signal);
      shown = "minute";
      if (range === "fit") await loadFitted(metrics, to, signal);
      else await Promise.all(metrics.map((m) => fetchInto(viewFor(m), range === "all" ? undefined : from, to, signal, "auto")));
      if (range === "all") fitAll(to);
      if (signal.aborted) return;
      setText(message, views.size === 0 ? "No readings from this device in this time range." : "");
    } catch (err) {
      if (signal.aborted) return;
      if (isAuthError(err)) session.handleRestError(err);
      else setText(message, `Could not load the history: ${err instanceof Error ? err.message : String(err)}`);
    }
    delete chartsEl.dataset.loading;
    exportBtn.disabled = false;
    scheduler.schedule();
  }

  /** Range "all": the window starts a little before the oldest bucket there is. */
  function fitAll(to: number): void {
    let first: number | null = null;
    for (const v of views.values()) for (const start of v.points.keys()) if (first === null || start < first) first = start;
    fitFrom = first === null ? to - FIT_MIN_MS : Math.min(first - (to - first) * 0.02, to - FIT_MIN_MS);
  }

  /** Range "fit" (minute buckets): reads ever longer look-backs until the data starts inside one, then fits the window to it. */
  async function loadFitted(metrics: string[], to: number, signal: AbortSignal): Promise<void> {
    let first: number | null = null;
    for (const [i, span] of FIT_SPANS.entries()) {
      const from = to - span;
      await Promise.all(metrics.map((m) => fetchInto(viewFor(m), from, to, signal, "minute")));
      if (signal.aborted) return;
      first = null;
      for (const v of views.values()) for (const start of v.points.keys()) if (first === null || start < first) first = start;
      // Data that starts well inside this look-back is all there is.
      if ((first !== null && first > from + span * 0.05) || i === FIT_SPANS.length - 1) break;
    }
    if (first === null) fitFrom = to - FIT_MIN_MS;
    else fitFrom = Math.min(first - Math.max(30_000, (to - first) * 0.04), to - FIT_MIN_MS);
  }

  /** Re-reads the last minutes so live approximations give way to the hub's exact buckets. */
  async function refreshRecent(): Promise<void> {
    const to = Date.now();
    try {
      await Promise.all([...views.values()].map((v) => fetchInto(v, to - 3 * bucketMs(), to, abort.signal, shown)));
      scheduler.schedule();
    } catch (err) {
      if (isAuthError(err)) session.handleRestError(err);
    }
  }

  function onSample(dev: string, metric: string, l: Latest): void {
    if (dev !== device) return;
    const v = viewFor(metric);
    const start = Math.floor(l.ts / bucketMs()) * bucketMs();
    if (start + bucketMs() <= windowFrom(Date.now())) return;
    const p = v.points.get(start);
    if (!p) v.points.set(start, { start, count: 1, sum: l.value, min: l.value, max: l.value, last: l.value, live: true });
    else {
      // A sample of the bucket, not every reading: min, max and last are
      // exact for what was seen; the average is corrected by the next re-read.
      p.count += 1;
      p.sum += l.value;
      p.min = Math.min(p.min, l.value);
      p.max = Math.max(p.max, l.value);
      p.last = l.value;
      p.live = true;
    }
    if (message.textContent !== "" && message.textContent !== "Loading…") setText(message, "");
    scheduler.schedule();
  }

  function sortedPoints(v: MetricView, from: number): Point[] {
    return [...v.points.values()].filter((p) => p.start + bucketMs() > from).sort((a, b) => a.start - b.start);
  }

  function render(): void {
    const now = Date.now();
    status.update(store, now);
    renderFacts(now);
    const from = windowFrom(now);
    for (const v of views.values()) {
      const pts = sortedPoints(v, from);
      v.chart.setData(pts, from, now);
      const l = store.devices.get(device)?.latest.get(v.metric);
      setText(v.latest, l ? fmtValue(l.value) : "");
      v.latest.title = l ? `latest, ${fmtTime(l.ts, now)}` : "";
      setText(v.note, v.truncated ? "more buckets than one request returns; showing the first" : pts.length === 0 ? "no data in this range" : `${fmtInt(pts.length)} ${shown}${pts.length === 1 ? "" : "s"}`);
    }
    resolutionNote.dataset.resolution = shown;
    setText(resolutionNote, `Average per ${shown}, with the min-max band`);
    alerts.render(now);
  }

  function renderFacts(now: number): void {
    const d = store.devices.get(device);
    const rows: [string, string, string?][] = d
      ? [
          ["Status", d.online ? "online" : "offline", d.online ? "ok" : "bad"],
          ["Last seen", d.lastSeen !== null ? `${fmtAgo(d.lastSeen, now)} (${fmtTime(d.lastSeen, now)})` : "never"],
          ["Readings/s", fmtRate(store.deviceRate(d, now))],
          ["Readings", fmtInt(d.readings)],
          ["Last seq", fmtInt(d.lastSeq)],
          [
            "Rejected",
            d.rejected && d.rejected.count > 0
              ? `${fmtInt(d.rejected.count)}${d.rejected.lastCode ? `, last ${d.rejected.lastCode}` : ""}${d.rejected.lastAt !== null ? ` ${fmtAgo(d.rejected.lastAt, now)}` : ""}`
              : "none",
            store.hasRecentRejection(d, now) ? "warn" : undefined,
          ],
        ]
      : [["Status", store.devices.size > 0 ? "not in this group yet" : "waiting for data…"]];
    facts.replaceChildren(
      ...rows.map(([k, val, tone]) => h("div", { class: `fact${tone ? ` fact-${tone}` : ""}` }, h("dt", { class: "muted small" }, k), h("dd", null, val))),
    );
    toggleClass(facts, "is-offline", d !== undefined && !d.online);
  }

  function exportCsv(): void {
    const now = Date.now();
    const from = windowFrom(now);
    const rows: (string | number | null)[][] = [];
    for (const m of [...views.keys()].sort()) {
      const v = views.get(m);
      if (!v) continue;
      for (const p of sortedPoints(v, from)) {
        rows.push([group, device, m, shown, new Date(p.start).toISOString(), p.start, p.count, p.count > 0 ? p.sum / p.count : null, p.min, p.max, p.sum, p.last, p.live ? "live" : "hub"]);
      }
    }
    const header = ["group", "device", "metric", "resolution", "start", "start_ms", "count", "avg", "min", "max", "sum", "last", "source"];
    const stamp = new Date(now).toISOString().replaceAll(":", "-").slice(0, 19);
    download(`${group}_${device}_${range}_${stamp}.csv`, toCsv(header, rows));
  }

  /** The raw readings of the chosen range, as the hub writes them (GET …/readings?format=csv). */
  async function exportRawCsv(): Promise<void> {
    const now = Date.now();
    rawBtn.setAttribute("disabled", "");
    try {
      const { csv, truncated } = await fetchRawCsv(group, device, windowFrom(now), now + 1, abort.signal);
      const stamp = new Date(now).toISOString().replaceAll(":", "-").slice(0, 19);
      download(`${group}_${device}_${range}_raw_${stamp}.csv`, csv);
      rawBtn.title = truncated ? "The range held more readings than one export; this file has the first ones. Choose a shorter range." : "Every reading of the range, from the raw archive";
      toggleClass(rawBtn, "is-truncated", truncated);
    } catch (err) {
      if (isAuthError(err)) ctx.signOut();
      else setText(message, `Raw export failed: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      rawBtn.removeAttribute("disabled");
    }
  }

  const unsubscribe = store.subscribe(() => scheduler.schedule());
  const unSample = store.onSample(onSample);
  let lastMinute = Math.floor(Date.now() / RESOLUTION_MS.minute);
  const tick = window.setInterval(() => {
    const minute = Math.floor((Date.now() - 3000) / RESOLUTION_MS.minute);
    if (minute !== lastMinute) {
      lastMinute = minute;
      void refreshRecent();
    }
    scheduler.schedule();
  }, 1000);
  void load();
  downlink.start();

  return () => {
    abort.abort();
    downlink.stop();
    unsubscribe();
    unSample();
    window.clearInterval(tick);
    scheduler.cancel();
    for (const v of views.values()) v.chart.destroy();
  };
}

/**
 * The device table: sortable, filterable, and virtualized, so a group of
 * thousands of devices costs only the ~30 rows on screen. Rows are a fixed
 * pool of elements moved and refilled as the list scrolls or changes.
 */
import { drawSparkline, SPARK_H, SPARK_W } from "../charts/sparkline.ts";
import { chartTheme } from "../charts/theme.ts";
import { deviceHref } from "../router.ts";
import { HISTORY_MS, type DeviceState, type GroupStore } from "../store.ts";
import { frameScheduler, h, setText, toggleClass } from "../util/dom.ts";
import { fmtAgo, fmtInt, fmtRate, fmtValue } from "../util/format.ts";

const ROW_H = 40;
const OVERSCAN = 6;
/** Metrics beyond this many share one "more" column. */
const MAX_METRIC_COLUMNS = 4;

type SortKey = "status" | "id" | "lastSeen" | "rate" | "rejected" | `m:${string}`;
type StatusFilter = "all" | "online" | "offline" | "rejecting" | "alerting";

interface Row {
  el: HTMLAnchorElement;
  name: HTMLElement;
  state: HTMLElement;
  badge: HTMLElement;
  lastSeen: HTMLElement;
  rate: HTMLElement;
  metrics: HTMLElement[];
  more: HTMLElement;
  spark: HTMLCanvasElement;
  rejected: HTMLElement;
  drawn: string;
}

export class DeviceTable {
  readonly el: HTMLElement;
  private readonly store: GroupStore;
  private readonly onSparkMetric: (metric: string) => void;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly head: HTMLElement;
  private readonly count: HTMLElement;
  private readonly sparkSelect: HTMLSelectElement;
  private readonly empty: HTMLElement;
  private rows: Row[] = [];
  private list: DeviceState[] = [];
  private listDirty = true;
  private columns: string[] = [];
  private sortKey: SortKey = "status";
  private sortDir: 1 | -1 = 1;
  private filter = "";
  private statusFilter: StatusFilter = "all";
  private sparkMetric = "";
  private readonly colors = chartTheme();
  private readonly onScroll: () => void;

  private readonly scrollScheduler = frameScheduler(() => this.render(Date.now()));

  constructor(store: GroupStore, requestRender: () => void, onSparkMetric: (metric: string) => void) {
    this.store = store;
    this.onSparkMetric = onSparkMetric;
    const filterInput = h("input", {
      class: "input input-sm",
      type: "search",
      placeholder: "Filter devices…",
      "aria-label": "Filter devices by name",
      "data-testid": "device-filter",
    });
    filterInput.addEventListener("input", () => {
      this.filter = filterInput.value.trim().toLowerCase();
      this.invalidate();
      requestRender();
    });
    const statusSelect = h(
      "select",
      { class: "input input-sm", "aria-label": "Show devices", "data-testid": "status-filter" },
      ...(["all", "online", "offline", "rejecting", "alerting"] as const).map((v) =>
        h("option", { value: v }, v === "all" ? "All devices" : v === "rejecting" ? "Rejected readings" : v === "alerting" ? "With active alerts" : v[0]?.toUpperCase() + v.slice(1)),
      ),
    );
    statusSelect.addEventListener("change", () => {
      this.statusFilter = statusSelect.value as StatusFilter;
      this.invalidate();
      requestRender();
    });
    this.sparkSelect = h("select", { class: "input input-sm", "aria-label": "Sparkline metric", "data-testid": "spark-metric" });
    this.sparkSelect.addEventListener("change", () => {
      this.sparkMetric = this.sparkSelect.value;
      this.onSparkMetric(this.sparkMetric);
      this.buildHead();
      this.invalidate();
      requestRender();
    });
    this.count = h("span", { class: "muted small", "data-testid": "device-count" });
    this.head = h("div", { class: "vt-head", role: "row" });
    this.spacer = h("div", { class: "vt-spacer" });
    this.empty = h("div", { class: "vt-empty muted", hidden: true });
    this.viewport = h("div", { class: "vt-viewport", role: "rowgroup", tabindex: "-1" }, this.spacer);
    this.onScroll = () => this.scrollScheduler.schedule();
    this.viewport.addEventListener("scroll", this.onScroll, { passive: true });
    this.el = h(
      "section",
      { class: "card device-table", "aria-label": "Devices", "data-testid": "device-table" },
      h(
        "div",
        { class: "card-head" },
        h("h2", null, "Devices"),
        h("div", { class: "toolbar" }, filterInput, statusSelect, h("label", { class: "muted small" }, "Sparkline ", this.sparkSelect), this.count),
      ),
      h("div", { class: "vt", role: "table", "aria-label": "Devices" }, this.head, this.viewport, this.empty),
    );
  }

  /** The device set or values changed: re-filter and re-sort on the next render. */
  invalidate(): void {
    this.listDirty = true;
  }

  render(now: number): void {
    // Layout reads first, then only writes: one layout per frame, not one per row.
    const height = this.viewport.clientHeight || 480;
    const scrollTop = this.viewport.scrollTop;
    this.syncColumns();
    if (this.listDirty) {
      this.list = this.sorted(this.filtered(now), now);
      this.listDirty = false;
      this.spacer.style.height = `${this.list.length * ROW_H}px`;
      const total = this.store.devices.size;
      const shown = this.list.length === total ? `${fmtInt(total)} devices` : `${fmtInt(this.list.length)} of ${fmtInt(total)} devices`;
      // The hub lists at most LIVE_MAX_DEVICES devices live (docs/protocol.md, "Bounds of the live view").
      const omitted = this.store.omittedDevices;
      setText(this.count, omitted > 0 ? `${shown} (${fmtInt(omitted)} more not shown live)` : shown);
      this.empty.hidden = this.list.length > 0;
      setText(
        this.empty,
        total === 0
          ? this.store.source === "none"
            ? "Waiting for the hub…"
            : "No device has connected to this group yet. Devices appear here once they connect."
          : "No device matches the filter.",
      );
    }
    // A list that just got shorter (a filter) leaves scrollTop past its end
    // until the browser clamps it and fires a scroll event a frame later: draw
    // where it will be clamped to, so the rows never blank for that frame.
    const top = Math.min(scrollTop, Math.max(0, this.list.length * ROW_H - height));
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.list.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    const needed = last - first;
    while (this.rows.length < needed) this.rows.push(this.makeRow());
    const alerting = this.store.activeAlertsByDevice();
    for (let i = 0; i < this.rows.length; i++) {
      const row = this.rows[i];
      if (!row) continue;
      const d = this.list[first + i];
      if (i >= needed || !d) {
        row.el.hidden = true;
        continue;
      }
      row.el.hidden = false;
      this.fillRow(row, d, first + i, now, alerting.get(d.id) ?? 0);
    }
  }

  destroy(): void {
    this.viewport.removeEventListener("scroll", this.onScroll);
    this.scrollScheduler.cancel();
  }

  private syncColumns(): void {
    const metrics = [...this.store.metrics].sort();
    if (this.sparkMetric === "" && metrics.length > 0) {
      this.sparkMetric = metrics.includes("temp") ? "temp" : (metrics[0] ?? "");
      this.onSparkMetric(this.sparkMetric);
    }
    const cols = metrics.slice(0, MAX_METRIC_COLUMNS);
    if (cols.join("\u0000") === this.columns.join("\u0000") && this.sparkSelect.options.length === metrics.length) return;
    this.columns = cols;
    this.sparkSelect.replaceChildren(...metrics.map((m) => h("option", { value: m, selected: m === this.sparkMetric }, m)));
    const more = metrics.length > MAX_METRIC_COLUMNS;
    // Columns never shrink below what their labels and typical values need;
    // a narrow screen scrolls the table sideways instead of cutting them.
    const widths: [number, string][] = [
      [110, "minmax(110px, 1.5fr)"],
      [100, "100px"],
      [96, "96px"],
      [92, "92px"],
      ...cols.map((): [number, string] => [84, "minmax(84px, 1fr)"]),
      ...(more ? [[120, "minmax(120px, 1.2fr)"] as [number, string]] : []),
      [128, "128px"],
      [100, "minmax(100px, 0.9fr)"],
    ];
    this.el.style.setProperty("--vt-columns", widths.map((w) => w[1]).join(" "));
    this.el.style.setProperty("--vt-min-width", `${widths.reduce((n, w) => n + w[0], 0)}px`);
    for (const r of this.rows) r.el.remove();
    this.rows = [];
    this.buildHead();
    this.invalidate();
  }

  private buildHead(): void {
    const cell = (key: SortKey | null, label: string, cls = "") => {
      const sorted = key !== null && this.sortKey === key;
      const el = h(
        "div",
        {
          class: `vt-cell ${cls}${key ? " sortable" : ""}`,
          role: "columnheader",
          "aria-sort": sorted ? (this.sortDir === 1 ? "ascending" : "descending") : key ? "none" : null,
          tabindex: key ? "0" : null,
          "data-sort": key,
        },
        label,
        sorted ? h("span", { class: "sort-arrow", "aria-hidden": "true" }, this.sortDir === 1 ? " ▲" : " ▼") : null,
      );
      if (key) {
        const activate = () => {
          if (this.sortKey === key) this.sortDir = this.sortDir === 1 ? -1 : 1;
          else {
            this.sortKey = key;
            this.sortDir = key === "rate" || key === "rejected" || key === "lastSeen" ? -1 : 1;
          }
          this.buildHead();
          this.invalidate();
          this.onScroll();
        };
        el.addEventListener("click", activate);
        el.addEventListener("keydown", (ev) => {
          if (ev.key === "Enter" || ev.key === " ") {
            ev.preventDefault();
            activate();
          }
        });
      }
      return el;
    };
    const more = this.store.metrics.size > MAX_METRIC_COLUMNS;
    this.head.replaceChildren(
      ...[
      cell("id", "Device"),
      cell("status", "Status"),
      cell("lastSeen", "Last seen"),
      cell("rate", "Readings/s", "num"),
      ...this.columns.map((m) => cell(`m:${m}`, m, "num")),
      more ? cell(null, "Other metrics") : null,
      cell(null, this.sparkMetric ? `${this.sparkMetric}, 15 min` : "Trend"),
      cell("rejected", "Rejected"),
      ].filter((c): c is HTMLDivElement => c !== null),
    );
  }

  private makeRow(): Row {
    const c = (cls = "") => h("div", { class: `vt-cell ${cls}`, role: "cell" });
    const name = h("span", { class: "device-name" });
    const nameCell = h("div", { class: "vt-cell", role: "cell" }, h("span", { class: "dot", "aria-hidden": "true" }), name);
    const badge = h("span", { class: "badge" });
    const state = h("div", { class: "vt-cell", role: "cell" }, badge);
    const lastSeen = c("muted");
    const rate = c("num");
    const metrics = this.columns.map(() => c("num"));
    const more = c("muted small more");
    const spark = h("canvas", { class: "spark", width: SPARK_W, height: SPARK_H, "aria-hidden": "true" });
    spark.style.width = `${SPARK_W}px`;
    spark.style.height = `${SPARK_H}px`;
    const rejected = c("rejected");
    const el = h("a", { class: "vt-row", role: "row" }, nameCell, state, lastSeen, rate, ...metrics);
    if (this.store.metrics.size > MAX_METRIC_COLUMNS) el.append(more);
    el.append(h("div", { class: "vt-cell", role: "cell" }, spark), rejected);
    el.hidden = true;
    this.spacer.append(el);
    return { el, name, state, badge, lastSeen, rate, metrics, more, spark, rejected, drawn: "" };
  }

  private fillRow(row: Row, d: DeviceState, index: number, now: number, alerts: number): void {
    const rejecting = this.store.hasRecentRejection(d, now);
    const href = deviceHref(this.store.group, d.id);
    if (row.el.getAttribute("href") !== href) row.el.setAttribute("href", href);
    row.el.style.transform = `translateY(${index * ROW_H}px)`;
    row.el.dataset.device = d.id;
    toggleClass(row.el, "is-offline", !d.online);
    toggleClass(row.el, "is-rejecting", rejecting);
    toggleClass(row.el, "is-alerting", alerts > 0);
    setText(row.name, d.id);
    setTitle(row.name, d.id);
    const state = !d.online ? "offline" : alerts > 0 ? `${alerts} alert${alerts > 1 ? "s" : ""}` : rejecting ? "rejecting" : "online";
    const badgeClass = `badge badge-${!d.online ? "bad" : alerts > 0 ? "alert" : rejecting ? "warn" : "ok"}`;
    if (row.badge.className !== badgeClass) row.badge.className = badgeClass;
    setText(row.badge, state);
    setText(row.lastSeen, fmtAgo(d.lastSeen, now));
    setText(row.rate, fmtRate(this.store.deviceRate(d, now)));
    this.columns.forEach((m, i) => {
      const l = d.latest.get(m);
      const cell = row.metrics[i];
      if (!cell) return;
      setText(cell, l ? fmtCell(l.value) : "–");
      // The exact value, also when a long one is cut short with an ellipsis.
      setTitle(cell, l ? `${m} ${l.value}` : "");
    });
    if (this.store.metrics.size > MAX_METRIC_COLUMNS) {
      const rest = [...d.latest.entries()].filter(([m]) => !this.columns.includes(m)).map(([m, l]) => `${m} ${fmtValue(l.value)}`);
      setText(row.more, rest.join(" · "));
      setTitle(row.more, rest.join(" · "));
    }
    const r = d.rejected;
    setText(row.rejected, r && r.count > 0 ? `${fmtInt(r.count)}${r.lastCode ? ` · ${r.lastCode}` : ""}` : "–");
    row.rejected.title = r && r.lastAt !== null ? `last rejected ${fmtAgo(r.lastAt, now)}` : "";
    // Sparklines redraw when their device changed, or once a second as the window moves.
    const key = `${d.id}\u0000${d.version}\u0000${this.sparkMetric}\u0000${Math.floor(now / 1000)}`;
    if (row.drawn !== key) {
      row.drawn = key;
      drawSparkline(row.spark, d.spark.get(this.sparkMetric), HISTORY_MS, now, d.online ? this.colors.line : this.colors.muted);
    }
  }

  private filtered(now: number): DeviceState[] {
    const alerting = this.store.activeAlertsByDevice();
    const out: DeviceState[] = [];
    for (const d of this.store.devices.values()) {
      if (this.filter !== "" && !d.id.toLowerCase().includes(this.filter)) continue;
      switch (this.statusFilter) {
        case "online":
          if (!d.online) continue;
          break;
        case "offline":
          if (d.online) continue;
          break;
        case "rejecting":
          if (!this.store.hasRecentRejection(d, now)) continue;
          break;
        case "alerting":
          if (!alerting.has(d.id)) continue;
          break;
        case "all":
          break;
      }
      out.push(d);
    }
    return out;
  }

  private sorted(list: DeviceState[], now: number): DeviceState[] {
    const dir = this.sortDir;
    const key = this.sortKey;
    const alerting = this.store.activeAlertsByDevice();
    // Problems first: alerts, offline, rejected readings, then healthy devices.
    const sev = new Map<DeviceState, number>();
    if (key === "status") {
      for (const d of list) sev.set(d, alerting.has(d.id) ? 0 : !d.online ? 1 : this.store.hasRecentRejection(d, now) ? 2 : 3);
    }
    const severity = (d: DeviceState) => sev.get(d) ?? 3;
    const byId = (a: DeviceState, b: DeviceState) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    let cmp: (a: DeviceState, b: DeviceState) => number;
    if (key === "id") cmp = byId;
    else if (key === "status") cmp = (a, b) => severity(a) - severity(b);
    else if (key === "lastSeen") cmp = (a, b) => (a.lastSeen ?? -Infinity) - (b.lastSeen ?? -Infinity);
    else if (key === "rate") cmp = (a, b) => a.readingsPerSec - b.readingsPerSec;
    else if (key === "rejected") cmp = (a, b) => (a.rejected?.count ?? 0) - (b.rejected?.count ?? 0);
    else {
      const m = key.slice(2);
      cmp = (a, b) => (a.latest.get(m)?.value ?? -Infinity) - (b.latest.get(m)?.value ?? -Infinity);
    }
    return list.sort((a, b) => cmp(a, b) * dir || byId(a, b));
  }
}

function setTitle(el: HTMLElement, title: string): void {
  if (el.title !== title) el.title = title;
}

const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 2 });

/** A metric value for a table cell: compact from a million up ("1.25M"), so it fits its column. */
function fmtCell(v: number): string {
  return Math.abs(v) >= 1_000_000 ? compactFmt.format(v) : fmtValue(v);
}

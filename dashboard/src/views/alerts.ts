/** Alerts raised and cleared, newest first: pushed by the live socket, history from `GET /alerts`. */
import type { Alert } from "../hub/types.ts";
import { deviceHref } from "../router.ts";
import type { GroupStore } from "../store.ts";
import { h, setText } from "../util/dom.ts";
import { fmtAgo, fmtDuration, fmtTime, fmtValue } from "../util/format.ts";

const MAX_SHOWN = 200;

export function alertTitle(a: Alert): string {
  if (a.kind === "offline") return "Device offline";
  const cond = a.metric !== null && a.op !== null && a.threshold !== null ? `${a.metric} ${a.op} ${fmtValue(a.threshold)}` : (a.metric ?? a.kind);
  return a.ruleId !== null ? `${cond} (rule ${a.ruleId})` : cond;
}

export class AlertsPanel {
  readonly el: HTMLElement;
  private readonly list: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly store: GroupStore;
  private readonly device: string | null;
  private activeOnly = false;
  private lastKey = "";

  /** `device`: only that device's alerts (the drill-down). */
  constructor(store: GroupStore, device: string | null = null) {
    this.store = store;
    this.device = device;
    const toggle = h("input", { type: "checkbox", "data-testid": "alerts-active-only" });
    toggle.addEventListener("change", () => {
      this.activeOnly = toggle.checked;
      this.lastKey = "";
      this.render(Date.now());
    });
    this.summary = h("span", { class: "muted small", "data-testid": "alerts-summary" });
    this.list = h("ol", { class: "alert-list", "data-testid": "alert-list", "aria-live": "polite" });
    this.el = h(
      "section",
      { class: "alerts", "aria-label": "Alerts", "data-testid": "alerts" },
      h("div", { class: "panel-head" }, this.summary, h("label", { class: "muted small check" }, toggle, " Active only")),
      this.list,
    );
  }

  render(now: number): void {
    // Rebuild only when the alerts changed, or every 10 s for the relative times.
    const key = `${this.store.alertsVersion}|${this.activeOnly}|${Math.floor(now / 10_000)}`;
    if (key === this.lastKey) return;
    this.lastKey = key;
    const all = this.store.alertList().filter((a) => this.device === null || a.device === this.device);
    const active = all.filter((a) => a.clearedAt === null).length;
    setText(this.summary, all.length === 0 ? "" : `${active} active · ${all.length - active} cleared`);
    const shown = (this.activeOnly ? all.filter((a) => a.clearedAt === null) : all).slice(0, MAX_SHOWN);
    if (shown.length === 0) {
      const text =
        this.store.alertsAvailable === false && all.length === 0
          ? "This hub does not report alerts yet."
          : this.activeOnly
            ? "No active alerts."
            : this.device !== null
              ? "No alerts for this device."
              : "No alerts. Rules raise alerts when a metric crosses a threshold; a silent device raises an offline alert.";
      this.list.replaceChildren(h("li", { class: "alert-empty muted" }, text));
      return;
    }
    this.list.replaceChildren(...shown.map((a) => this.item(a, now)));
    if (all.length > shown.length && !this.activeOnly) {
      this.list.append(h("li", { class: "alert-empty muted small" }, `${all.length - shown.length} older alerts not shown`));
    }
  }

  private item(a: Alert, now: number): HTMLElement {
    const active = a.clearedAt === null;
    const device = a.device !== null && this.device === null ? h("a", { href: deviceHref(this.store.group, a.device) }, a.device) : null;
    return h(
      "li",
      { class: `alert ${active ? "alert-active" : "alert-cleared"} alert-${a.kind}`, "data-alert-id": a.id, "data-kind": a.kind },
      h("span", { class: `badge ${active ? "badge-alert" : "badge-quiet"}` }, active ? "active" : "cleared"),
      h(
        "div",
        { class: "alert-body" },
        h("div", { class: "alert-title" }, alertTitle(a), device ? " on " : "", device),
        h(
          "div",
          { class: "alert-times muted small" },
          h("time", { datetime: new Date(a.raisedAt).toISOString(), title: new Date(a.raisedAt).toISOString() }, `raised ${fmtTime(a.raisedAt, now)}`),
          a.value === null ? "" : a.kind === "offline" ? ` · silent for ${fmtDuration(a.value)}` : ` · value ${fmtValue(a.value)}`,
          a.clearedAt !== null
            ? h("span", null, ` · cleared ${fmtTime(a.clearedAt, now)} after ${fmtDuration(a.clearedAt - a.raisedAt)}`)
            : ` · ${fmtAgo(a.raisedAt, now)}`,
        ),
      ),
    );
  }
}

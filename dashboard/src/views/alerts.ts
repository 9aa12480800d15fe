/**
 * Alerts raised and cleared: pushed by the live socket, history from
 * `GET /alerts`. One row per device and rule (a flapping device would fill
 * the list with "cleared after 0 s"): its latest state and time and how
 * often it was raised, expandable to every raise and clear.
 */
import type { Alert } from "../hub/types.ts";
import { deviceHref } from "../router.ts";
import type { GroupStore } from "../store.ts";
import { h, setText } from "../util/dom.ts";
import { fmtAgo, fmtDuration, fmtInt, fmtTime, fmtValue } from "../util/format.ts";

const MAX_SHOWN = 200;
/** Raises listed under an expanded row. */
const MAX_HISTORY = 50;

/** Alerts of one device and rule, newest first. */
export interface AlertGroup {
  key: string;
  latest: Alert;
  alerts: Alert[];
  active: boolean;
}

/** Groups alerts per device and rule (offline alerts per device); active groups first, then by latest change. */
export function groupAlerts(alerts: readonly Alert[]): AlertGroup[] {
  const byKey = new Map<string, Alert[]>();
  for (const a of alerts) {
    const key = JSON.stringify([a.kind, a.ruleId, a.metric, a.peerKind ?? "device", a.device]);
    let list = byKey.get(key);
    if (!list) byKey.set(key, (list = []));
    list.push(a);
  }
  const changed = (a: Alert) => Math.max(a.raisedAt, a.clearedAt ?? 0);
  const groups = [...byKey].map(([key, list]): AlertGroup => {
    list.sort((x, y) => y.raisedAt - x.raisedAt || Number(y.id) - Number(x.id));
    const latest = list[0] as Alert;
    return { key, latest, alerts: list, active: list.some((a) => a.clearedAt === null) };
  });
  return groups.sort((x, y) => Number(y.active) - Number(x.active) || changed(y.latest) - changed(x.latest));
}

export function alertTitle(a: Alert): string {
  if (a.kind === "offline") return "Device offline";
  if (a.kind === "storage") return "Storage near its budget: oldest history pruned";
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
    const all = this.store.alertList().filter((a) => this.device === null || (a.device === this.device && a.peerKind !== "gateway"));
    const groups = groupAlerts(all);
    const active = groups.filter((g) => g.active).length;
    setText(this.summary, groups.length === 0 ? "" : `${active} active · ${groups.length - active} cleared`);
    const shown = (this.activeOnly ? groups.filter((g) => g.active) : groups).slice(0, MAX_SHOWN);
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
    // Rows the operator expanded stay expanded across rebuilds.
    const open = new Set([...this.list.querySelectorAll<HTMLDetailsElement>("details[open]")].map((d) => d.dataset.key));
    this.list.replaceChildren(...shown.map((g) => this.item(g, open.has(g.key), now)));
    if (groups.length > shown.length && !this.activeOnly) {
      this.list.append(h("li", { class: "alert-empty muted small" }, `${groups.length - shown.length} older alerts not shown`));
    }
  }

  private item(g: AlertGroup, expanded: boolean, now: number): HTMLElement {
    const a = g.latest;
    // A gateway has no device page: its (budget) alert names it as text.
    const device =
      !a.device || this.device !== null
        ? null
        : a.peerKind === "gateway"
          ? h("span", { class: "alert-peer", "data-testid": "alert-gateway" }, `gateway ${a.device}`)
          : h("a", { href: deviceHref(this.store.group, a.device) }, a.device);
    const raises = g.alerts.length;
    const li = h(
      "li",
      { class: `alert ${g.active ? "alert-active" : "alert-cleared"} alert-${a.kind}`, "data-alert-id": a.id, "data-kind": a.kind, "data-peer-kind": a.peerKind, "data-count": raises },
      h("span", { class: `badge ${g.active ? "badge-alert" : "badge-quiet"}` }, g.active ? "active" : "cleared"),
      // The hub held a change back: the value flaps around the threshold (docs/protocol.md, "Rules and alerts").
      a.flapping ? h("span", { class: "badge badge-warn", "data-testid": "alert-flapping", title: "changes held back: the value flaps around the threshold" }, "flapping") : "",
      h(
        "div",
        { class: "alert-body" },
        h("div", { class: "alert-title" }, alertTitle(a), device ? " on " : "", device),
        h("div", { class: "alert-times muted small" }, ...this.times(a, now)),
      ),
    );
    if (raises > 1) {
      const details = h(
        "details",
        { class: "alert-history", "data-key": g.key },
        h("summary", { class: "small" }, `raised ${fmtInt(raises)} times`, raises > MAX_HISTORY ? ` (latest ${MAX_HISTORY} listed)` : ""),
        h("ol", { class: "alert-history-list small muted" }, ...g.alerts.slice(0, MAX_HISTORY).map((x) => h("li", null, ...this.times(x, now)))),
      );
      details.open = expanded;
      li.querySelector(".alert-body")?.append(details);
    }
    return li;
  }

  /** "raised 12:04:05 · value 31.2 · cleared 12:05:00 after 55 s" */
  private times(a: Alert, now: number): (Node | string)[] {
    return [
      h("time", { datetime: new Date(a.raisedAt).toISOString(), title: new Date(a.raisedAt).toISOString() }, `raised ${fmtTime(a.raisedAt, now)}`),
      a.value === null ? "" : a.kind === "offline" ? ` · silent for ${fmtDuration(a.value)}` : ` · value ${fmtValue(a.value)}`,
      a.clearedAt !== null ? ` · cleared ${fmtTime(a.clearedAt, now)} after ${fmtDuration(a.clearedAt - a.raisedAt)}` : ` · ${fmtAgo(a.raisedAt, now)}`,
    ];
  }
}

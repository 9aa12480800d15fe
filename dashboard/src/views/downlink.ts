/**
 * The device page's downlink cards (docs/dashboard.md, "Commands and
 * configuration"): a form that queues a command, the device's command
 * history with each status as it changes, and an editor of the desired
 * configuration beside what the device reported, saying whether they agree.
 * Statuses are read again every second while a command or a configuration
 * waits for the device, and every few seconds otherwise.
 */
import type { CommandEntry, ConfigResponse } from "../../../schema/api.ts";
import { fetchCommands, fetchConfig, isAuthError, saveConfig, sendCommand } from "../api.ts";
import type { GroupSession } from "../session.ts";
import { h, setText } from "../util/dom.ts";
import { fmtTime } from "../util/format.ts";

const BUILT_IN = ["ping", "set_rate", "reboot"];
const TTLS = [
  { label: "1 min", ms: 60_000 },
  { label: "5 min", ms: 5 * 60_000 },
  { label: "1 h", ms: 3600_000 },
];
const BADGE: Record<CommandEntry["status"], string> = { queued: "quiet", delivered: "warn", succeeded: "ok", failed: "bad", expired: "quiet" };
const FAST_MS = 1000;
const SLOW_MS = 5000;

/** JSON with sorted keys, so two maps compare equal whatever their key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x,
  );
}

const short = (v: unknown): string => {
  const s = v === null || v === undefined ? "" : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}…` : s;
};

export class DownlinkPanel {
  readonly commandsCard: HTMLElement;
  readonly configCard: HTMLElement;
  private readonly group: string;
  private readonly device: string;
  private readonly session: GroupSession;
  private readonly name: HTMLInputElement;
  private readonly args: HTMLTextAreaElement;
  private readonly ttl: HTMLSelectElement;
  private readonly cmdMessage: HTMLElement;
  private readonly rows: HTMLElement;
  private readonly desired: HTMLTextAreaElement;
  private readonly reported: HTMLElement;
  private readonly sync: HTMLElement;
  private readonly cfgMessage: HTMLElement;
  private editing = false;
  private timer = 0;
  private abort = new AbortController();
  private stopped = false;

  constructor(session: GroupSession, device: string) {
    this.session = session;
    this.group = session.store.group;
    this.device = device;
    this.name = h("input", { class: "input input-sm", list: "command-names", value: "ping", "aria-label": "Command", "data-testid": "command-name", required: true });
    this.args = h("textarea", { class: "input input-sm dl-json", rows: 1, placeholder: 'args as JSON, e.g. {"ms": 500}', "aria-label": "Arguments (JSON)", "data-testid": "command-args" });
    this.ttl = h("select", { class: "input input-sm", "aria-label": "Time to live" }, ...TTLS.map((t, i) => h("option", { value: String(t.ms), selected: i === 1 }, t.label)));
    this.cmdMessage = h("p", { class: "form-msg small", role: "status", "data-testid": "command-message" });
    this.rows = h("tbody", { "data-testid": "command-rows" });
    const form = h(
      "form",
      { class: "dl-form", on: { submit: (ev) => void this.send(ev) } },
      h("datalist", { id: "command-names" }, ...BUILT_IN.map((n) => h("option", { value: n }))),
      this.name,
      this.args,
      this.ttl,
      h("button", { class: "btn btn-primary", type: "submit", "data-testid": "command-send" }, "Send"),
      this.cmdMessage,
    );
    const table = h(
      "table",
      { class: "dl-table" },
      h("thead", null, h("tr", null, h("th", null, "Command"), h("th", null, "Status"), h("th", null, "Queued"), h("th", null, "Finished"), h("th", null, "Answer"))),
      this.rows,
    );
    this.commandsCard = h("section", { class: "card", "data-testid": "commands" }, h("div", { class: "card-head" }, h("h2", null, "Commands")), form, h("div", { class: "dl-scroll" }, table));

    this.desired = h("textarea", { class: "input dl-json", rows: 4, spellcheck: "false", "aria-label": "Desired configuration (JSON)", "data-testid": "config-desired" });
    this.desired.addEventListener("input", () => (this.editing = true));
    this.reported = h("pre", { class: "dl-reported", "data-testid": "config-reported" });
    this.sync = h("span", { class: "badge badge-quiet", "data-testid": "config-sync" });
    this.cfgMessage = h("p", { class: "form-msg small", role: "status", "data-testid": "config-message" });
    this.configCard = h(
      "section",
      { class: "card", "data-testid": "config" },
      h("div", { class: "card-head" }, h("h2", null, "Configuration"), this.sync),
      h(
        "div",
        { class: "dl-config" },
        h("form", { class: "dl-col", on: { submit: (ev) => void this.save(ev) } }, h("label", { class: "muted small" }, "Desired"), this.desired, h("div", { class: "rules-actions" }, h("button", { class: "btn btn-primary", type: "submit", "data-testid": "config-save" }, "Save"), this.cfgMessage)),
        h("div", { class: "dl-col" }, h("span", { class: "muted small" }, "Reported by the device"), this.reported),
      ),
    );
  }

  start(): void {
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    window.clearTimeout(this.timer);
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    let waiting = false;
    try {
      const [commands, config] = await Promise.all([fetchCommands(this.group, this.device, this.abort.signal), fetchConfig(this.group, this.device, this.abort.signal)]);
      if (this.stopped) return;
      this.renderCommands(commands);
      this.renderConfig(config);
      waiting = commands.some((c) => c.status === "queued" || c.status === "delivered") || config.appliedVersion < config.version;
    } catch (err) {
      if (this.stopped) return;
      if (isAuthError(err)) this.session.handleRestError(err);
    }
    if (!this.stopped) this.timer = window.setTimeout(() => void this.refresh(), waiting ? FAST_MS : SLOW_MS);
  }

  private renderCommands(commands: CommandEntry[]): void {
    const now = Date.now();
    this.rows.replaceChildren(
      ...commands.map((c) =>
        h(
          "tr",
          { "data-command": c.id, "data-status": c.status },
          h("td", null, h("code", null, c.name), c.args === null ? "" : ` ${short(c.args)}`),
          h("td", null, h("span", { class: `badge badge-${BADGE[c.status]}` }, c.status)),
          h("td", { class: "muted small" }, fmtTime(c.createdAt, now)),
          h("td", { class: "muted small" }, c.completedAt === null ? "" : fmtTime(c.completedAt, now)),
          h("td", { class: "small" }, c.error ?? short(c.result)),
        ),
      ),
    );
    if (commands.length === 0) this.rows.replaceChildren(h("tr", null, h("td", { colspan: 5, class: "muted small" }, "No commands yet.")));
  }

  private renderConfig(c: ConfigResponse): void {
    if (!this.editing) this.desired.value = JSON.stringify(c.desired, null, 2);
    setText(this.reported, c.reported === null ? "nothing reported yet" : JSON.stringify(c.reported, null, 2));
    const agree = c.reported !== null && canonical(c.reported) === canonical(c.desired);
    const [text, tone] =
      c.version === 0 ? ["not set", "quiet"] : c.appliedVersion < c.version ? [`pending: v${c.appliedVersion} of v${c.version} applied`, "warn"] : agree ? [`in sync, v${c.version}`, "ok"] : [`v${c.version} applied, reported differs`, "bad"];
    setText(this.sync, text);
    this.sync.className = `badge badge-${tone}`;
    this.sync.dataset.state = tone;
  }

  private async send(ev: Event): Promise<void> {
    ev.preventDefault();
    let args: unknown;
    try {
      args = this.args.value.trim() === "" ? undefined : JSON.parse(this.args.value);
    } catch {
      setText(this.cmdMessage, "Arguments must be JSON.");
      return;
    }
    try {
      await sendCommand(this.group, this.device, { name: this.name.value.trim(), args, ttlMs: Number(this.ttl.value) });
      setText(this.cmdMessage, "");
      this.args.value = "";
    } catch (err) {
      if (isAuthError(err)) this.session.handleRestError(err);
      else setText(this.cmdMessage, err instanceof Error ? err.message : String(err));
    }
    void this.refresh();
  }

  private async save(ev: Event): Promise<void> {
    ev.preventDefault();
    let desired: unknown;
    try {
      desired = JSON.parse(this.desired.value);
    } catch {
      desired = null;
    }
    if (desired === null || typeof desired !== "object" || Array.isArray(desired)) {
      setText(this.cfgMessage, "The configuration must be a JSON object.");
      return;
    }
    try {
      const version = await saveConfig(this.group, this.device, desired as Record<string, unknown>);
      this.editing = false;
      setText(this.cfgMessage, `Saved as version ${version}.`);
    } catch (err) {
      if (isAuthError(err)) this.session.handleRestError(err);
      else setText(this.cfgMessage, err instanceof Error ? err.message : String(err));
    }
    void this.refresh();
  }
}

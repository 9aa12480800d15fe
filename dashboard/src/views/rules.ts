/** A small editor for the group's threshold rules (`GET/PUT /v1/groups/{group}/rules`). */
import { HubError, isAuthError, putRules } from "../api.ts";
import { RULE_OPS, validateRules, type Rule, type RuleSet } from "../hub/types.ts";
import { MAX_RULES } from "../../../schema/rules.ts";
import type { GroupSession } from "../session.ts";
import { h, setText } from "../util/dom.ts";


interface RuleRow {
  el: HTMLElement;
  id: HTMLInputElement;
  metric: HTMLInputElement;
  op: HTMLSelectElement;
  threshold: HTMLInputElement;
  device: HTMLInputElement;
  forSec: HTMLInputElement;
}

export class RulesEditor {
  readonly el: HTMLElement;
  private readonly session: GroupSession;
  private readonly body: HTMLElement;
  private readonly offline: HTMLInputElement;
  private readonly message: HTMLElement;
  private readonly saveBtn: HTMLButtonElement;
  private rows: RuleRow[] = [];
  private editing = false;
  private shown: RuleSet | null = null;

  constructor(session: GroupSession) {
    this.session = session;
    this.body = h("div", { class: "rules-rows" });
    this.offline = h("input", { class: "input input-sm", type: "number", min: "0", step: "1", "aria-label": "Offline after (seconds)", "data-testid": "offline-after" });
    this.offline.addEventListener("input", () => this.markEditing());
    this.message = h("p", { class: "form-msg small", role: "status", "data-testid": "rules-message" });
    this.saveBtn = h("button", { class: "btn btn-primary", type: "submit" }, "Save rules");
    const form = h(
      "form",
      { class: "rules-form", on: { submit: (ev) => void this.save(ev) } },
      h("p", { class: "muted small rules-intro" }, "An alert is raised when a device's metric meets the condition for the given time, and cleared by the first reading that does not."),
      this.body,
      h(
        "div",
        { class: "rules-actions" },
        h("button", { class: "btn", type: "button", on: { click: () => this.addRow(null, true) } }, "Add rule"),
        h("label", { class: "muted small" }, "Offline alert after (s, 0 = off) ", this.offline),
      ),
      h(
        "div",
        { class: "rules-actions" },
        this.saveBtn,
        h("button", { class: "btn btn-quiet", type: "button", on: { click: () => this.reset() } }, "Discard changes"),
        this.message,
      ),
    );
    this.el = h("section", { class: "rules", "aria-label": "Rules", "data-testid": "rules" }, form);
  }

  render(): void {
    const rules = this.session.store.rules;
    if (this.session.store.alertsAvailable === false && !rules) {
      this.el.replaceChildren(h("p", { class: "muted" }, "This hub does not support rules yet."));
      return;
    }
    if (rules && rules !== this.shown) {
      if (this.editing) setText(this.message, "The rules changed on the hub; discard your changes to see them.");
      else this.fill(rules);
    }
  }

  private fill(rules: RuleSet): void {
    this.shown = rules;
    this.rows = [];
    this.body.replaceChildren();
    for (const r of rules.rules) this.addRow(r, false);
    this.offline.value = String(Math.round(rules.offlineAfterMs / 1000));
    this.editing = false;
  }

  private reset(): void {
    this.editing = false;
    setText(this.message, "");
    if (this.session.store.rules) this.fill(this.session.store.rules);
  }

  private markEditing(): void {
    this.editing = true;
    setText(this.message, "");
  }

  private addRow(rule: Rule | null, focus: boolean): void {
    if (this.rows.length >= MAX_RULES) {
      setText(this.message, `At most ${MAX_RULES} rules per group.`);
      return;
    }
    const input = (attrs: Record<string, string>) => {
      const el = h("input", { class: "input input-sm", ...attrs });
      el.addEventListener("input", () => this.markEditing());
      return el;
    };
    const id = input({ "aria-label": "Rule id", placeholder: "hot", value: rule?.id ?? `rule-${this.rows.length + 1}` });
    const metric = input({ "aria-label": "Metric", placeholder: "temp", value: rule?.metric ?? "" });
    const op = h("select", { class: "input input-sm", "aria-label": "Comparison" }, ...RULE_OPS.map((o) => h("option", { value: o, selected: o === (rule?.op ?? ">") }, o)));
    op.addEventListener("change", () => this.markEditing());
    const threshold = input({ "aria-label": "Threshold", type: "number", step: "any", value: rule ? String(rule.threshold) : "" });
    const device = input({ "aria-label": "Device (optional)", placeholder: "all devices", value: rule?.device ?? "" });
    const forSec = input({ "aria-label": "Holds for (seconds)", type: "number", min: "0", step: "any", value: String((rule?.forMs ?? 0) / 1000) });
    const row: RuleRow = { el: h("div", { class: "rule-card", "data-testid": "rule" }), id, metric, op, threshold, device, forSec };
    const remove = h("button", { class: "btn-icon", type: "button", title: "Remove rule", "aria-label": "Remove rule" }, "×");
    remove.addEventListener("click", () => {
      this.rows = this.rows.filter((r) => r !== row);
      row.el.remove();
      this.markEditing();
    });
    const field = (caption: string, el: HTMLElement, cls = "") => h("label", { class: `rule-field ${cls}` }, h("span", { class: "muted small" }, caption), el);
    row.el.append(
      field("Rule id", id),
      field("Metric", metric),
      field("Op", op),
      field("Threshold", threshold),
      field("Device (empty: all)", device, "rule-device"),
      field("For (s)", forSec),
      remove,
    );
    this.rows.push(row);
    this.body.append(row.el);
    if (focus) {
      this.markEditing();
      metric.focus();
    }
  }

  /**
   * The form as a rule set, or the first problem found. The hub's own
   * validator checks it (schema/rules.ts), so the page and the hub agree.
   */
  private collect(): RuleSet | string {
    const offlineSec = Number(this.offline.value || "0");
    if (!Number.isFinite(offlineSec) || offlineSec < 0 || (offlineSec > 0 && offlineSec < 10)) {
      return "Offline alert after: 0 (off) or at least 10 seconds.";
    }
    const body = {
      rules: this.rows.map((r) => {
        const rule: Record<string, unknown> = {
          id: r.id.value.trim(),
          metric: r.metric.value.trim(),
          op: r.op.value,
          threshold: r.threshold.value.trim() === "" ? null : Number(r.threshold.value),
          forMs: Math.round(Number(r.forSec.value || "0") * 1000),
        };
        const device = r.device.value.trim();
        if (device !== "") rule.device = device;
        return rule;
      }),
      offlineAfterMs: Math.round(offlineSec * 1000),
    };
    const checked = validateRules(body);
    if (checked.ok) return checked.doc;
    // "rules[2].threshold must be ..." reads better as "Rule 3: threshold must be ...".
    return checked.message.replace(/^rules\[(\d+)\]\.?/, (_m, i: string) => `Rule ${Number(i) + 1}: `).replace(/forMs/, "'for'");
  }

  private async save(ev: Event): Promise<void> {
    ev.preventDefault();
    const set = this.collect();
    if (typeof set === "string") {
      setText(this.message, set);
      this.message.dataset.kind = "error";
      return;
    }
    this.saveBtn.disabled = true;
    try {
      const saved = await putRules(this.session.group, set);
      this.editing = false;
      this.session.store.setRules(saved, true);
      this.fill(saved);
      setText(this.message, `Saved ${saved.rules.length} rule${saved.rules.length === 1 ? "" : "s"}.`);
      this.message.dataset.kind = "ok";
    } catch (err) {
      if (isAuthError(err)) {
        this.session.handleRestError(err);
        return;
      }
      setText(this.message, err instanceof HubError ? `The hub refused the rules: ${err.message}` : "Could not save the rules.");
      this.message.dataset.kind = "error";
    } finally {
      this.saveBtn.disabled = false;
    }
  }
}

/** Page chrome shared by the views: the top bar, the connection status, the sign-in message. */
import { clearToken, setToken } from "../token.ts";
import type { GroupStore } from "../store.ts";
import { h, setText } from "../util/dom.ts";
import { fmtAgo } from "../util/format.ts";

export interface Crumb {
  text: string;
  href?: string;
}

export function topBar(crumbs: Crumb[], onSignOut: (() => void) | null, ...right: Node[]): HTMLElement {
  const trail = h("nav", { class: "crumbs", "aria-label": "Breadcrumb" });
  trail.append(
    h("a", { class: "brand", href: "/", "aria-label": "Telemetry Hub" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), h("span", { class: "brand-text" }, "Telemetry Hub")),
  );
  crumbs.forEach((c, i) => {
    trail.append(h("span", { class: "crumb-sep", "aria-hidden": "true" }, "/"));
    // The title shows a name the narrow layout cut short with an ellipsis;
    // the first crumb ("Groups") is short and never cut.
    const cls = `crumb${i === 0 ? " crumb-root" : ""}`;
    trail.append(c.href ? h("a", { class: cls, href: c.href, title: c.text }, c.text) : h("span", { class: `${cls} crumb-current`, "aria-current": "page", title: c.text }, c.text));
  });
  const actions = h("div", { class: "topbar-actions" }, ...right);
  if (onSignOut) {
    actions.append(
      h("button", { class: "btn btn-quiet", type: "button", title: "Forget the token in this tab", on: { click: onSignOut } }, "Sign out"),
    );
  }
  return h("header", { class: "topbar" }, trail, actions);
}

/** "● Live · updated 2 s ago", "Reconnecting…", "Polling", ... */
export class StatusPill {
  readonly el = h("div", { class: "status", role: "status", "data-testid": "status" });
  private readonly dot = h("span", { class: "status-dot", "aria-hidden": "true" });
  private readonly label = h("span", { class: "status-label" });
  private readonly detail = h("span", { class: "status-detail" });

  constructor() {
    this.el.append(this.dot, this.label, this.detail);
  }

  update(store: GroupStore, now = Date.now()): void {
    const s = store.status;
    let cls = "connecting";
    let label = "Connecting…";
    let detail = "";
    switch (s.state) {
      case "live":
        cls = store.isIdle(now) ? "idle" : "live";
        label = store.isIdle(now) ? "Live · idle" : "Live";
        detail = store.lastUpdate > 0 ? `updated ${fmtAgo(store.lastUpdate, now)}` : "";
        break;
      case "reconnecting":
        cls = "warn";
        label = "Reconnecting…";
        detail = store.lastUpdate > 0 ? `last update ${fmtAgo(store.lastUpdate, now)}` : "";
        break;
      case "polling":
        cls = "warn";
        label = "Polling";
        detail = store.lastUpdate > 0 ? `updated ${fmtAgo(store.lastUpdate, now)}` : "";
        this.el.title = s.reason;
        break;
      case "error":
        cls = "bad";
        label = "Hub unreachable";
        this.el.title = s.message;
        break;
      case "signin":
        cls = "bad";
        label = "Signed out";
        break;
      case "connecting":
        break;
    }
    this.el.dataset.state = s.state;
    this.el.className = `status status-${cls}`;
    setText(this.label, label);
    setText(this.detail, detail);
  }
}

/** The sign-in message: why the page cannot show data, and a field for a token. */
export function signInView(message: string, onToken: () => void): HTMLElement {
  const input = h("input", {
    id: "token-input",
    class: "input",
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "Operator token",
    required: true,
    "aria-describedby": "signin-help",
  });
  const form = h(
    "form",
    {
      class: "signin-form",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const token = input.value.trim();
          if (token === "") return;
          setToken(token);
          onToken();
        },
      },
    },
    h("label", { for: "token-input", class: "label" }, "Operator token"),
    h("div", { class: "row" }, input, h("button", { class: "btn btn-primary", type: "submit" }, "Sign in")),
  );
  const card = h(
    "section",
    { class: "signin card", "data-testid": "signin", "aria-labelledby": "signin-title" },
    lockIcon(),
    h("h1", { id: "signin-title" }, "Sign in to Telemetry Hub"),
    h("p", { class: "signin-message", "data-testid": "signin-message" }, message),
    form,
    h(
      "p",
      { id: "signin-help", class: "muted small" },
      "An operator token opens one group (",
      h("code", null, "operator:<group>"),
      ") or all groups (",
      h("code", null, "operator:*"),
      "). ",
      h("code", null, "npm start"),
      " prints a dashboard link that carries one; ",
      h("code", null, "npm run token -- operator '*'"),
      " prints a token. The token is kept in this browser tab only.",
    ),
  );
  queueMicrotask(() => input.focus());
  return h("main", { class: "page page-narrow" }, card);
}

function lockIcon(): HTMLElement {
  const el = h("div", { class: "signin-icon", "aria-hidden": "true" });
  el.innerHTML =
    '<svg width="28" height="28" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
    '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/></svg>';
  return el;
}

export function signOut(then: () => void): void {
  clearToken();
  then();
}

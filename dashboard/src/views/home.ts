/**
 * `/`: the groups this operator may see. The hub cannot list groups yet, so
 * the page offers recently opened groups (localStorage), the demo groups of
 * `npm start`, and a field to open any group by name. Each card asks the hub
 * for the group's devices; a token that opens exactly one of them and is
 * refused the others is a group token, and the page goes straight there.
 */
import { ID_PATTERN } from "../../../schema/protocol.ts";
import { fetchDevices, fetchGroups, HubError, isAuthError } from "../api.ts";
import { groupHref, navigate } from "../router.ts";
import { getToken, getTokenGroup, setTokenGroup } from "../token.ts";
import { h, setText } from "../util/dom.ts";
import { fmtAgo, fmtInt } from "../util/format.ts";
import { forgetGroup, recentGroups } from "../util/recent.ts";
import { signInView, topBar } from "./chrome.ts";

export const DEMO_GROUPS = ["demo", "factory-a", "greenhouse"];
const PROBE_CONCURRENCY = 4;

type Probe = { state: "ok"; devices: number; online: number } | { state: "denied" } | { state: "error"; message: string };

export interface HomeContext {
  signOut(): void;
  rerender(): void;
}

export function mountHome(root: HTMLElement, ctx: HomeContext): () => void {
  const scoped = getTokenGroup();
  if (scoped !== null) {
    navigate(groupHref(scoped), { replace: true });
    return () => {};
  }
  const abort = new AbortController();
  const input = h("input", {
    id: "group-input",
    class: "input",
    name: "group",
    placeholder: "Group name, e.g. plant-1",
    autocomplete: "off",
    spellcheck: "false",
    pattern: ID_PATTERN.source.slice(1, -1),
    required: true,
  });
  const error = h("p", { class: "form-error", role: "alert" });
  const open = h(
    "form",
    {
      class: "open-group card",
      on: {
        submit: (ev) => {
          ev.preventDefault();
          const g = input.value.trim();
          if (!ID_PATTERN.test(g)) {
            setText(error, "A group name is 1 to 64 letters, digits, '_', '.' or '-'.");
            return;
          }
          navigate(groupHref(g));
        },
      },
    },
    h("label", { class: "label", for: "group-input" }, "Open a group"),
    h("div", { class: "row" }, input, h("button", { class: "btn btn-primary", type: "submit" }, "Open")),
    error,
  );
  const notice = h("div", { class: "home-notice" });
  const recentList = h("div", { class: "group-grid", "data-testid": "recent-groups" });
  const suggestList = h("div", { class: "group-grid", "data-testid": "suggested-groups" });
  const recentSection = h("section", { class: "home-section" }, h("h2", null, "Recently opened"), recentList);
  const suggestSection = h("section", { class: "home-section" }, h("h2", null, "Suggestions"), suggestList);

  const recents = recentGroups();
  const names = new Set(recents.map((r) => r.group));
  const suggestions = DEMO_GROUPS.filter((g) => !names.has(g));
  const cards = new Map<string, HTMLElement>();
  for (const r of recents) {
    const card = groupCard(r.group, `opened ${fmtAgo(r.openedAt)}`, () => {
      forgetGroup(r.group);
      card.remove();
      if (recentList.childElementCount === 0) recentSection.hidden = true;
    });
    cards.set(r.group, card);
    recentList.append(card);
  }
  recentSection.hidden = recents.length === 0;
  for (const g of suggestions) {
    const card = groupCard(g, "demo group", null);
    cards.set(g, card);
    suggestList.append(card);
  }
  suggestSection.hidden = suggestions.length === 0;

  root.replaceChildren(
    topBar([{ text: "Groups" }], ctx.signOut),
    h(
      "main",
      { class: "page page-home" },
      h("h1", { class: "page-title" }, "Groups"),
      notice,
      open,
      recentSection,
      suggestSection,
    ),
  );
  queueMicrotask(() => input.focus());

  void (async () => {
    // A hub that can list groups wins over recents and suggestions.
    try {
      const listed = await fetchGroups(abort.signal);
      if (listed) {
        for (const g of listed) {
          if (cards.has(g)) continue;
          const card = groupCard(g, "", null);
          cards.set(g, card);
          suggestList.prepend(card);
        }
        suggestSection.hidden = cards.size === 0;
      }
    } catch (err) {
      if (isAuthError(err)) return void showDenied();
    }
    const results = await probeAll([...cards.keys()], abort.signal, (g, p) => {
      const card = cards.get(g);
      if (card) fillCard(card, p);
    });
    if (abort.signal.aborted) return;
    const ok = [...results].filter(([, p]) => p.state === "ok").map(([g]) => g);
    const denied = [...results].filter(([, p]) => p.state === "denied").length;
    if (ok.length === 1 && denied > 0 && ok[0] !== undefined) {
      // A token for exactly one group: go there.
      setTokenGroup(ok[0]);
      navigate(groupHref(ok[0]), { replace: true });
    } else if (ok.length === 0 && denied > 0 && denied === results.size) {
      showDenied();
    }
  })();

  function showDenied(): void {
    const signin = signInView(
      getToken() === null
        ? "This dashboard needs an operator token."
        : "The hub refused this token for every group listed here. If it is a token for one group, open that group by name above; otherwise sign in with another token.",
      ctx.rerender,
    );
    notice.replaceChildren(...signin.childNodes);
  }

  return () => abort.abort();
}

function groupCard(group: string, note: string, onForget: (() => void) | null): HTMLElement {
  const card = h(
    "div",
    { class: "group-card", "data-group": group },
    h("a", { class: "group-card-link", href: groupHref(group) }, h("span", { class: "group-name" }, group)),
    h("span", { class: "group-stats muted", "data-testid": "group-stats" }, "…"),
    note ? h("span", { class: "group-note muted small" }, note) : null,
  );
  if (onForget) {
    card.append(
      h("button", { class: "btn-icon", type: "button", title: `Forget ${group}`, "aria-label": `Forget ${group}`, on: { click: onForget } }, "×"),
    );
  }
  return card;
}

function fillCard(card: HTMLElement, p: Probe): void {
  const stats = card.querySelector(".group-stats");
  if (!stats) return;
  card.dataset.state = p.state;
  if (p.state === "ok") {
    const offline = p.devices - p.online;
    setText(
      stats,
      p.devices === 0 ? "no devices yet" : `${fmtInt(p.devices)} devices · ${fmtInt(p.online)} online${offline > 0 ? ` · ${fmtInt(offline)} offline` : ""}`,
    );
  } else if (p.state === "denied") {
    setText(stats, "no access with this token");
  } else {
    setText(stats, p.message);
  }
}

async function probeAll(groups: string[], signal: AbortSignal, onResult: (g: string, p: Probe) => void): Promise<Map<string, Probe>> {
  const results = new Map<string, Probe>();
  const queue = [...groups];
  async function worker(): Promise<void> {
    for (let g = queue.shift(); g !== undefined; g = queue.shift()) {
      let p: Probe;
      try {
        const devices = await fetchDevices(g, signal);
        p = { state: "ok", devices: devices.length, online: devices.filter((d) => d.online === true).length };
      } catch (err) {
        if (signal.aborted) return;
        p = isAuthError(err) ? { state: "denied" } : { state: "error", message: err instanceof HubError ? err.message : "unreachable" };
      }
      results.set(g, p);
      onResult(g, p);
    }
  }
  await Promise.all(Array.from({ length: PROBE_CONCURRENCY }, worker));
  return results;
}

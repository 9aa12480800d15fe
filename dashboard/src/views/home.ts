/**
 * `/`: the groups this operator may see. An all-groups token (or Cloudflare
 * Access) gets the hub's list (`GET /v1/groups`: groups that exist). A
 * one-group token cannot list groups: once the page knows its group it goes
 * straight there; until then it offers the groups opened in this browser
 * (they exist: opening them created them) and a field to open one by name.
 * The page never asks about a group that may not exist: any request to a
 * group creates its Durable Object.
 */
import { ID_PATTERN } from "../../../schema/protocol.ts";
import { fetchDevices, fetchGroups, HubError, isAuthError } from "../api.ts";
import { groupHref, navigate } from "../router.ts";
import { getToken, getTokenGroup, setTokenGroup } from "../token.ts";
import { h, setText } from "../util/dom.ts";
import { fmtAgo, fmtInt } from "../util/format.ts";
import { forgetGroup, recentGroups } from "../util/recent.ts";
import { signInView, topBar } from "./chrome.ts";

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
  const list = h("div", { class: "group-grid", "data-testid": "group-list" });
  const listTitle = h("h2", null, "Groups");
  const listNote = h("p", { class: "muted small home-list-note" });
  const listSection = h("section", { class: "home-section" }, listTitle, listNote, list);
  listSection.hidden = true;
  const cards = new Map<string, HTMLElement>();
  const opened = new Map(recentGroups().map((r) => [r.group, r.openedAt]));

  root.replaceChildren(
    topBar([{ text: "Groups" }], ctx.signOut),
    h("main", { class: "page page-home" }, h("h1", { class: "page-title" }, "Groups"), notice, open, listSection),
  );
  queueMicrotask(() => input.focus());

  function addCard(group: string, forgettable: boolean): void {
    const at = opened.get(group);
    const card = groupCard(group, at !== undefined ? `opened ${fmtAgo(at)}` : "", forgettable ? () => {
      forgetGroup(group);
      card.remove();
      cards.delete(group);
      if (cards.size === 0) listSection.hidden = true;
    } : null);
    cards.set(group, card);
    list.append(card);
    listSection.hidden = false;
  }

  void (async () => {
    let listed: string[] | null = null;
    try {
      listed = await fetchGroups(abort.signal);
    } catch (err) {
      if (abort.signal.aborted) return;
      setText(listNote, `The hub did not list its groups: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (abort.signal.aborted) return;
    if (listed) {
      setText(listTitle, "Groups on this hub");
      if (listed.length === 0) {
        setText(listNote, "None yet: a group appears here once a device or gateway has connected to it.");
        listSection.hidden = false;
      }
      // Recently opened first, then by name (the hub's order).
      const order = [...listed].sort((x, y) => (opened.get(y) ?? 0) - (opened.get(x) ?? 0));
      for (const g of order) addCard(g, false);
    } else {
      if (getToken() === null) return void showDenied();
      setTitleForToken();
      for (const [g] of [...opened].sort((x, y) => y[1] - x[1])) addCard(g, true);
      if (cards.size === 0) return;
    }
    const results = await probeAll([...cards.keys()], abort.signal, (g, p) => {
      const card = cards.get(g);
      if (card) fillCard(card, p);
    });
    if (abort.signal.aborted || listed) return;
    const ok = [...results].filter(([, p]) => p.state === "ok").map(([g]) => g);
    const denied = [...results].filter(([, p]) => p.state === "denied").length;
    // A token that cannot list groups and opens exactly one of them is that group's token.
    if (ok.length === 1 && denied === results.size - 1 && ok[0] !== undefined) {
      setTokenGroup(ok[0]);
      navigate(groupHref(ok[0]), { replace: true });
    } else if (ok.length === 0 && denied > 0 && denied === results.size) {
      showDenied();
    }
  })();

  function setTitleForToken(): void {
    setText(listTitle, "Recently opened");
    setText(listNote, "The hub lists its groups only for an all-groups token. A token for one group opens it by name above (or here, if you opened it before); a wrong one is refused there.");
    listSection.hidden = false;
  }

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
      p.devices === 0 ? "no devices yet" : `${fmtInt(p.devices)} device${p.devices === 1 ? "" : "s"} · ${fmtInt(p.online)} online${offline > 0 ? ` · ${fmtInt(offline)} offline` : ""}`,
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

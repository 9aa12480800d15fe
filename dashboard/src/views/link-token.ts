/**
 * The choice a link with another token asks for (token.ts): the tab keeps
 * working with its current token behind this notice until the operator picks
 * one, so following a link never changes who the page acts as unnoticed.
 */
import { h } from "../util/dom.ts";

export interface LinkTokenChoice {
  /** The group the current token is known to be limited to, if the page learned it. */
  currentGroup: string | null;
  useLink(): void;
  keepCurrent(): void;
}

export function linkTokenNotice(choice: LinkTokenChoice): HTMLElement {
  const scope = choice.currentGroup !== null ? ` (it opens group "${choice.currentGroup}")` : "";
  const el = h(
    "section",
    { class: "link-token", role: "alertdialog", "aria-labelledby": "link-token-title", "data-testid": "link-token" },
    h("h2", { id: "link-token-title" }, "This link carries a different token"),
    h(
      "p",
      null,
      `This tab is signed in with another operator token${scope}. The page keeps using it until you choose. `,
      "Use the link's token only if you expected this link; it may open other groups than yours.",
    ),
  );
  const done = (fn: () => void) => () => {
    el.remove();
    fn();
  };
  el.append(
    h(
      "div",
      { class: "row" },
      h("button", { class: "btn", type: "button", "data-testid": "link-token-keep", on: { click: done(choice.keepCurrent) } }, "Keep the current token"),
      h("button", { class: "btn btn-quiet", type: "button", "data-testid": "link-token-use", on: { click: done(choice.useLink) } }, "Use the link's token"),
    ),
  );
  return el;
}

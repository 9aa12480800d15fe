/** A small element builder: plain DOM, no framework. */

type Child = Node | string | number | null | undefined | false;
type Handlers = { [E in keyof HTMLElementEventMap]?: (ev: HTMLElementEventMap[E]) => void };

export interface Props {
  class?: string;
  on?: Handlers;
  /** Attributes (set with setAttribute); null or false leaves one out. */
  [attr: string]: string | number | boolean | null | undefined | Handlers;
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (k === "on") continue;
      if (v === null || v === undefined || v === false || typeof v === "object") continue;
      el.setAttribute(k, v === true ? "" : String(v));
    }
    const on = props.on;
    if (on) {
      for (const [type, fn] of Object.entries(on)) {
        if (typeof fn === "function") el.addEventListener(type, fn as EventListener);
      }
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

/** Sets text only when it changed (cheap for rows redrawn every frame). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

export function toggleClass(el: Element, cls: string, on: boolean): void {
  if (el.classList.contains(cls) !== on) el.classList.toggle(cls, on);
}

/**
 * Coalesces work into the next animation frame: however many updates arrive
 * in between, `fn` runs once per frame. A hidden tab gets no frames; the
 * work then waits (the live socket's acks do not depend on it).
 */
export function frameScheduler(fn: () => void): { schedule(): void; cancel(): void } {
  let id = 0;
  return {
    schedule() {
      if (id !== 0) return;
      id = requestAnimationFrame(() => {
        id = 0;
        fn();
      });
    },
    cancel() {
      if (id !== 0) cancelAnimationFrame(id);
      id = 0;
    },
  };
}

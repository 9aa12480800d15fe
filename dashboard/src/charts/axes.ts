/**
 * Axis label layout for the uPlot charts. uPlot draws labels on a canvas
 * and sizes axes by fixed numbers, so long values ("1,013.75") were clipped
 * and time labels ran into each other. Here every size and spacing comes
 * from the formatted labels' measured widths:
 *
 * - y axis: as wide as its widest label (plus tick and gap), labels compact
 *   ("12.5K") with just enough decimals to tell neighbours apart;
 * - x axis (time): ticks at least the widest label plus a gap apart, one
 *   line per label, and a label that would stick out of the canvas is left
 *   out.
 *
 * The layout of the last draw is kept per chart ({@link axisLayout}) so the
 * browser test checks exactly what was drawn.
 */
import type uPlot from "uplot";
import { chartTheme } from "./theme.ts";

/** The font the axes draw with (uPlot's own default is the same size). */
export const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const TICK = 6;
const GAP = 5;
/** Least space between two neighbouring x labels, px. */
export const LABEL_GAP = 14;

let measureCtx: CanvasRenderingContext2D | null = null;

/** Width of `text` in the axis font, CSS px. */
export function labelWidth(text: string): number {
  measureCtx ??= document.createElement("canvas").getContext("2d");
  if (!measureCtx) return text.length * 7;
  measureCtx.font = AXIS_FONT;
  return measureCtx.measureText(text).width;
}

/** Width a y axis needs for these labels: the widest, the tick, the gap and a pixel of slack each side. */
export function yAxisSize(labels: readonly (string | null | undefined)[]): number {
  let widest = 0;
  for (const l of labels) if (l) widest = Math.max(widest, labelWidth(l));
  return Math.ceil(widest) + TICK + GAP + 4;
}

const compactFmts = new Map<number, Intl.NumberFormat>();
const plainFmts = new Map<number, Intl.NumberFormat>();

function fmtWith(cache: Map<number, Intl.NumberFormat>, digits: number, compact: boolean): Intl.NumberFormat {
  let f = cache.get(digits);
  if (!f) {
    f = new Intl.NumberFormat(undefined, compact ? { notation: "compact", maximumFractionDigits: digits } : { maximumFractionDigits: digits, minimumFractionDigits: 0 });
    cache.set(digits, f);
  }
  return f;
}

/**
 * Tick labels for numbers: compact from 10,000 up ("12K", "1.25M"), and the
 * fewest decimals (up to 10) that keep neighbouring ticks distinct.
 */
export function numberLabels(splits: readonly number[]): string[] {
  const big = splits.some((v) => Math.abs(v) >= 10_000);
  const cache = big ? compactFmts : plainFmts;
  let labels: string[] = [];
  for (let digits = 0; digits <= 10; digits++) {
    const f = fmtWith(cache, digits, big);
    labels = splits.map((v) => f.format(v));
    if (new Set(labels).size === labels.length) break;
  }
  return labels;
}

const DAY_MS = 86_400_000;
const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const minuteFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const secondFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

/** The format for ticks `incrMs` apart: dates from a day up, seconds only when ticks are under a minute apart. */
function timeFormat(incrMs: number): Intl.DateTimeFormat {
  if (incrMs >= DAY_MS) return dateFmt;
  return incrMs < 60_000 ? secondFmt : minuteFmt;
}

/** Time tick labels (splits in seconds, as uPlot's time scale has them); a tick at a day's start shows the date. */
export function timeLabels(splits: readonly number[], incrS: number): string[] {
  const fmt = timeFormat(incrS * 1000);
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const midnight = d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0;
    return midnight && fmt !== dateFmt ? dateFmt.format(d) : fmt.format(d);
  });
}

/** Widest hour:minute or date label, measured on sample times of day and dates (the usual tick labels). */
function widestTimeLabel(): number {
  let widest = 0;
  for (const hour of [0, 10, 12, 22, 23]) {
    const d = new Date(2026, 8, 28, hour, 58, 58);
    widest = Math.max(widest, labelWidth(minuteFmt.format(d)), labelWidth(dateFmt.format(d)));
  }
  return widest;
}

/** One axis as drawn: for the layout check in the browser tests. */
export interface AxisLayout {
  axis: "x" | "y";
  /** x: the canvas width; y: the axis width. */
  room: number;
  labels: { text: string; pos: number; width: number }[];
}

const layouts = new WeakMap<HTMLElement, AxisLayout[]>();

/** The axes of the chart in `el` as last drawn. */
export function axisLayout(el: HTMLElement): AxisLayout[] {
  return layouts.get(el) ?? [];
}

/** What every axis shares: the theme's colours, the measured font, ticks and gap. */
function themedAxis(): uPlot.Axis {
  const t = chartTheme();
  return {
    stroke: t.axis,
    font: AXIS_FONT,
    grid: { stroke: t.grid, width: 1 },
    ticks: { stroke: t.grid, size: TICK },
    gap: GAP,
  };
}

/** A time x axis whose labels never overlap or leave the canvas. */
export function timeAxis(): uPlot.Axis {
  return {
    ...themedAxis(),
    size: 12 + TICK + GAP + 8,
    // Ticks far enough apart for the usual labels; wider ones (with seconds)
    // are thinned out below, so no two labels ever overlap.
    // (Roomier where the plot has room for four or more ticks anyway.)
    space: (_u, _i, _min, _max, plotDim) => {
      const widest = widestTimeLabel();
      return Math.max(widest + LABEL_GAP, Math.min(widest + 3 * LABEL_GAP, plotDim / 4));
    },
    values: (u, splits, _i, _space, incr) => {
      const labels = timeLabels(splits, incr);
      const left = u.bbox.left / devicePixelRatio;
      let lastRight = -Infinity;
      return labels.map((text, i) => {
        const x = left + u.valToPos(splits[i] ?? 0, "x");
        const half = labelWidth(text) / 2;
        // A label centred on a tick near the edge would be cut by the canvas;
        // one too close to the label before it is left out.
        if (x - half < 0 || x + half > u.width || x - half < lastRight + LABEL_GAP / 2) return "";
        lastRight = x + half;
        return text;
      });
    },
  };
}

/** A value y axis sized to its widest label. */
export function valueAxis(): uPlot.Axis {
  return {
    ...themedAxis(),
    size: (_u, values) => yAxisSize(values ?? []),
    values: (_u, splits) => numberLabels(splits),
  };
}

/** A draw hook that records what the axes drew (see {@link axisLayout}). */
export function recordAxes(el: HTMLElement): (u: uPlot) => void {
  return (u) => {
    const out: AxisLayout[] = [];
    const left = u.bbox.left / devicePixelRatio;
    const top = u.bbox.top / devicePixelRatio;
    u.axes.forEach((a, i) => {
      const internal = a as uPlot.Axis & { _splits?: number[]; _values?: (string | null)[]; _size?: number };
      const splits = internal._splits ?? [];
      const values = internal._values ?? [];
      const scale = a.scale ?? (i === 0 ? "x" : "y");
      const labels = splits.flatMap((s, j) => {
        const text = values[j];
        if (!text) return [];
        const pos = i === 0 ? left + u.valToPos(s, scale) : top + u.valToPos(s, scale);
        return [{ text, pos, width: labelWidth(text) }];
      });
      out.push(i === 0 ? { axis: "x", room: u.width, labels } : { axis: "y", room: (internal._size ?? 0) - TICK - GAP, labels });
    });
    layouts.set(el, out);
    el.dataset.axes = JSON.stringify(out);
  };
}

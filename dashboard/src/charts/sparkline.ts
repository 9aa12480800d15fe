/** A tiny canvas line of one series over a fixed time window (the device table's sparklines). */
import type { Series } from "../store.ts";

/** Shortest window: a new device's first minutes are not squeezed into the right edge. */
const MIN_WINDOW_MS = 2 * 60_000;

/** The time window a chart of `first..now` shows: at least 2 minutes, at most `maxMs`. */
export function chartWindow(first: number | undefined, now: number, maxMs: number): number {
  return Math.min(maxMs, Math.max(MIN_WINDOW_MS, first === undefined ? 0 : now - first));
}

/** CSS size of a sparkline; fixed, so drawing never reads layout (no forced reflow per row). */
export const SPARK_W = 108;
export const SPARK_H = 24;

export function drawSparkline(
  canvas: HTMLCanvasElement,
  series: Series | undefined,
  maxWindowMs: number,
  now: number,
  color: string,
): void {
  const dpr = window.devicePixelRatio || 1;
  const w = SPARK_W;
  const hgt = SPARK_H;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  if (!series || series.ts.length === 0) return;
  const windowMs = chartWindow(series.ts[0], now, maxWindowMs);
  const from = now - windowMs;
  let first = 0;
  while (first < series.ts.length && (series.ts[first] ?? 0) < from) first++;
  if (first >= series.ts.length) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = first; i < series.v.length; i++) {
    const v = series.v[i] ?? 0;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const pad = 2;
  const x = (t: number) => ((t - from) / windowMs) * (w - pad * 2) + pad;
  const y = (v: number) => hgt - pad - ((v - lo) / (hi - lo)) * (hgt - pad * 2);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.25;
  ctx.lineJoin = "round";
  ctx.beginPath();
  for (let i = first; i < series.ts.length; i++) {
    const px = x(series.ts[i] ?? 0);
    const py = y(series.v[i] ?? 0);
    if (i === first) ctx.moveTo(px, py);
    else ctx.lineTo(px, py);
  }
  ctx.stroke();
  const last = series.ts.length - 1;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(x(series.ts[last] ?? 0), y(series.v[last] ?? 0), 1.8, 0, Math.PI * 2);
  ctx.fill();
}

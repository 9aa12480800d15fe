/** A tiny canvas line of one series over a fixed time window (the device table's sparklines). */
import type { Series } from "../store.ts";

/** Shortest window: a young series spans the sparkline rather than a strip at its right edge. */
const MIN_WINDOW_MS = 30_000;

/** The time window a chart of `first..now` shows: fitted to the data, at least 30 s, at most `maxMs`. */
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
  const pts = binSeries(series, from, sparkBinMs(windowMs));
  if (pts.length === 0) return;
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of pts) {
    lo = Math.min(lo, p[1]);
    hi = Math.max(hi, p[1]);
  }
  if (hi - lo < 1e-9) {
    hi += 1;
    lo -= 1;
  }
  const pad = 2;
  const x = (t: number) => ((t - from) / windowMs) * (w - pad * 2) + pad;
  const y = (v: number) => hgt - pad - ((v - lo) / (hi - lo)) * (hgt - pad * 2);
  const xy = pts.map(([t, v]): [number, number] => [x(t), y(v)]);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.25;
  ctx.lineJoin = "round";
  ctx.lineCap = "round";
  ctx.beginPath();
  traceSmooth(ctx, xy);
  ctx.stroke();
  const last = xy[xy.length - 1];
  if (!last) return;
  ctx.fillStyle = color;
  ctx.beginPath();
  ctx.arc(last[0], last[1], 1.8, 0, Math.PI * 2);
  ctx.fill();
}

/** Bin width for a window: one minute over 15 minutes (as the backfilled averages), finer for a young device. */
export function sparkBinMs(windowMs: number): number {
  return Math.min(60_000, Math.max(5_000, Math.round(windowMs / 15)));
}

/**
 * The series as one point per bin from `from` on: the mean value at the mean
 * time of the bin's samples. A 108-px line of a 15-minute window cannot show
 * more; raw live samples every 2 s were drawn as a jagged vertical tail after
 * the smooth minute averages. The newest bin is still filling, and as a mean
 * (not a sum) it never drops.
 */
export function binSeries(series: Series, from: number, binMs: number): [number, number][] {
  const out: [number, number][] = [];
  let bin = Number.NaN;
  let n = 0;
  let sumT = 0;
  let sumV = 0;
  const flush = () => {
    if (n > 0) out.push([sumT / n, sumV / n]);
    n = sumT = sumV = 0;
  };
  for (let i = 0; i < series.ts.length; i++) {
    const t = series.ts[i] ?? 0;
    if (t < from) continue;
    const b = Math.floor(t / binMs);
    if (b !== bin) {
      flush();
      bin = b;
    }
    n++;
    sumT += t;
    sumV += series.v[i] ?? 0;
  }
  flush();
  return out;
}

/** A line through the points, rounded at each one (quadratic curves through the midpoints). */
function traceSmooth(ctx: CanvasRenderingContext2D, xy: readonly [number, number][]): void {
  const first = xy[0];
  if (!first) return;
  ctx.moveTo(first[0], first[1]);
  if (xy.length < 3) {
    for (const [px, py] of xy.slice(1)) ctx.lineTo(px, py);
    return;
  }
  for (let i = 1; i < xy.length - 1; i++) {
    const [cx, cy] = xy[i] ?? first;
    const [nx, ny] = xy[i + 1] ?? first;
    ctx.quadraticCurveTo(cx, cy, (cx + nx) / 2, (cy + ny) / 2);
  }
  const last = xy[xy.length - 1] ?? first;
  ctx.lineTo(last[0], last[1]);
}

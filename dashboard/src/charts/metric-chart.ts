/**
 * One metric of one device over a time range (uPlot): the per-minute average
 * (sum / count) as a line inside a band from the minute's min to its max.
 * Minutes without readings leave a gap.
 */
import uPlot from "uplot";
import type { AggregateBucket } from "../../../schema/api.ts";
import { BUCKET_MS } from "../../../schema/protocol.ts";
import { fmtValue } from "../util/format.ts";
import { recordAxes, timeAxis, valueAxis } from "./axes.ts";
import { chartTheme } from "./theme.ts";

/** One bucket of a series as the chart holds it. */
export type Point = Omit<AggregateBucket, "device" | "metric"> & {
  /** Built from live values since the last REST read (replaced by the hub's exact bucket later). */
  live: boolean;
};

export function toAligned(points: Point[]): uPlot.AlignedData {
  const x: number[] = [];
  const avg: (number | null)[] = [];
  const min: (number | null)[] = [];
  const max: (number | null)[] = [];
  let prev: number | null = null;
  for (const p of points) {
    if (prev !== null && p.start - prev > BUCKET_MS) {
      x.push((prev + BUCKET_MS) / 1000);
      avg.push(null);
      min.push(null);
      max.push(null);
    }
    x.push(p.start / 1000);
    avg.push(p.count > 0 ? p.sum / p.count : null);
    min.push(p.min);
    max.push(p.max);
    prev = p.start;
  }
  return [x, avg, min, max];
}

export class MetricChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly resize: ResizeObserver;
  private range: [number, number] = [0, 1];
  /** The operator dragged across the chart to zoom in; double-click returns to the whole range. */
  private zoomed = false;
  readonly metric: string;

  constructor(metric: string) {
    this.metric = metric;
    this.el = document.createElement("div");
    this.el.className = "chart chart-metric";
    this.el.dataset.metric = metric;
    this.el.dataset.testid = "metric-chart";
    this.resize = new ResizeObserver(() => {
      if (this.plot && this.el.clientWidth > 0) this.plot.setSize({ width: this.el.clientWidth, height: 220 });
    });
    this.resize.observe(this.el);
    // Runs after uPlot's own double-click handler (which zooms out to the data).
    this.el.addEventListener("dblclick", () => {
      this.zoomed = false;
      this.el.dataset.zoomed = "false";
      this.applyRange();
    });
  }

  private applyRange(): void {
    if (this.plot && !this.zoomed) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
  }

  setData(points: Point[], from: number, to: number): void {
    this.range = [from / 1000, to / 1000];
    const data = toAligned(points);
    this.el.dataset.points = String(points.length);
    if (this.plot) {
      this.plot.setData(data);
      this.applyRange();
      return;
    }
    const t = chartTheme();
    const fmt = (_u: uPlot, v: number | null) => (v === null || v === undefined ? "–" : fmtValue(v));
    const opts: uPlot.Options = {
      width: Math.max(200, this.el.clientWidth),
      height: 220,
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true, auto: false } },
      hooks: {
        draw: [recordAxes(this.el)],
        setSelect: [
          (u) => {
            if (u.select.width > 1) {
              this.zoomed = true;
              this.el.dataset.zoomed = "true";
            }
          },
        ],
      },
      axes: [timeAxis(), valueAxis()],
      series: [
        {},
        // Points show by themselves where data is sparse (a lone minute would otherwise be invisible).
        { label: "avg", stroke: t.line, width: 2, value: fmt },
        { label: "min", stroke: t.bandEdge, width: 1, value: fmt, points: { show: false } },
        { label: "max", stroke: t.bandEdge, width: 1, value: fmt, points: { show: false } },
      ],
      bands: [{ series: [3, 2], fill: t.band }],
    };
    this.plot = new uPlot(opts, data, this.el);
    this.applyRange();
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

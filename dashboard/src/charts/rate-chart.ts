/**
 * The group's readings/s over the last 15 minutes (uPlot): the hub's
 * history in 10-second slots (GET /rates), then live samples once a second.
 */
import uPlot from "uplot";
import { HISTORY_MS, type Series } from "../store.ts";
import { recordAxes, timeAxis, valueAxis } from "./axes.ts";
import { chartTheme } from "./theme.ts";

export class RateChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly resize: ResizeObserver;

  constructor() {
    this.el = document.createElement("div");
    this.el.className = "chart chart-rate";
    this.el.dataset.testid = "rate-chart";
    this.resize = new ResizeObserver(() => {
      if (this.plot && this.el.clientWidth > 0) this.plot.setSize({ width: this.el.clientWidth, height: this.height() });
    });
    this.resize.observe(this.el);
  }

  private height(): number {
    return Math.max(120, this.el.clientHeight || 160);
  }

  update(series: Series): void {
    const data: uPlot.AlignedData = [series.ts.map((t) => t / 1000), series.v.slice()];
    this.el.dataset.points = String(series.ts.length);
    if (!this.plot) {
      if (this.el.clientWidth === 0) return;
      const t = chartTheme();
      const opts: uPlot.Options = {
        width: this.el.clientWidth,
        height: this.height(),
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: {
            time: true,
            range: () => {
              const now = Date.now();
              return [(now - HISTORY_MS) / 1000, now / 1000];
            },
          },
          y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] },
        },
        axes: [timeAxis(), valueAxis()],
        hooks: { draw: [recordAxes(this.el)] },
        series: [{}, { label: "readings/s", stroke: t.line, width: 2, fill: t.band, points: { show: false } }],
      };
      this.plot = new uPlot(opts, data, this.el);
      return;
    }
    this.plot.setData(data);
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

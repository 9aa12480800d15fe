/** Chart colours come from the CSS custom properties, so charts follow the page's theme. */

export interface ChartTheme {
  line: string;
  band: string;
  bandEdge: string;
  axis: string;
  grid: string;
  bad: string;
  muted: string;
}

export function chartTheme(): ChartTheme {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    line: v("--chart-line", "#4f9dff"),
    band: v("--chart-band", "rgba(79,157,255,0.18)"),
    bandEdge: v("--chart-band-edge", "rgba(79,157,255,0.45)"),
    axis: v("--text-muted", "#8b95a5"),
    grid: v("--chart-grid", "rgba(255,255,255,0.07)"),
    bad: v("--bad", "#ff5d5d"),
    muted: v("--text-muted", "#8b95a5"),
  };
}

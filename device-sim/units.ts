/** Parsing of the simulator's option values: durations and rates. */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** "250ms", "30s", "5m", "2h", "1d"; a bare number is seconds. Returns ms, or null. */
export function parseDuration(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|min|h|d)?$/.exec(s.trim());
  if (!m?.[1]) return null;
  const unit = DURATION_UNITS[m[2] ?? "s"];
  if (unit === undefined) return null;
  return Math.round(Number(m[1]) * unit);
}

/** "5/s", "10/min", "2/h", "0.5/s"; a bare number is per second. Returns events per second, or null. */
export function parseRate(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(?:\/(ms|s|m|min|h|d))?$/.exec(s.trim());
  if (!m?.[1]) return null;
  const unit = DURATION_UNITS[m[2] ?? "s"];
  if (unit === undefined) return null;
  return (Number(m[1]) * 1000) / unit;
}

/** Formats a rate for people: 1234567 -> "1.23M". */
export function si(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(1);
}

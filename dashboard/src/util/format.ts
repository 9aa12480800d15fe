/** Number and time formatting for the page (the browser's locale). */

const valueFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const rateFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });

const smallFmt = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 3 });

export function fmtValue(v: number): string {
  if (Math.abs(v) >= 100_000) return intFmt.format(v);
  // Two decimals would show 0.000123 as "0".
  if (v !== 0 && Math.abs(v) < 0.01) return smallFmt.format(v);
  return valueFmt.format(v);
}

export function fmtRate(v: number): string {
  return v >= 100 ? intFmt.format(v) : rateFmt.format(v);
}

export function fmtInt(v: number): string {
  return intFmt.format(v);
}

/** "12:04:05" today, "Nov 3, 12:04:05" on another day. */
export function fmtTime(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  return new Date(now).toDateString() === d.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

/** "now", "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function fmtAgo(ms: number | null, now = Date.now()): string {
  if (ms === null) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return "now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** "45 s", "12 min", "3 h 5 min". */
export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return m > 0 ? `${h} h ${m} min` : `${h} h`;
}

/**
 * The bridge's logs: one JSON object per line on stderr. Bad payloads and
 * unmatched topics can arrive thousands of times a second, so those go
 * through {@link Logger.limited}, which keeps a few lines per key and
 * interval and reports how many it swallowed.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
type Fields = Record<string, string | number | boolean | undefined>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(s: string): s is LogLevel {
  return s in RANK;
}

interface Window {
  start: number;
  shown: number;
  suppressed: number;
}

export class Logger {
  private readonly min: number;
  private readonly write: (line: string) => void;
  private readonly windows = new Map<string, Window>();
  private readonly burst: number;
  private readonly intervalMs: number;

  constructor(opts: { level?: LogLevel; write?: (line: string) => void; burst?: number; intervalMs?: number } = {}) {
    this.min = RANK[opts.level ?? "info"];
    this.write = opts.write ?? ((line) => process.stderr.write(`${line}\n`));
    this.burst = opts.burst ?? 5;
    this.intervalMs = opts.intervalMs ?? 10_000;
  }

  log(level: LogLevel, event: string, fields: Fields = {}): void {
    if (RANK[level] < this.min) return;
    this.write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
  }

  debug(event: string, fields?: Fields): void {
    this.log("debug", event, fields);
  }
  info(event: string, fields?: Fields): void {
    this.log("info", event, fields);
  }
  warn(event: string, fields?: Fields): void {
    this.log("warn", event, fields);
  }
  error(event: string, err: unknown, fields: Fields = {}): void {
    const detail = err instanceof Error ? err.message : String(err);
    this.log("error", event, { ...fields, error: detail });
  }

  /**
   * At most `burst` lines per `key` per interval; the first line after a
   * quiet spell carries `suppressed`, the count of lines dropped before it.
   */
  limited(key: string, level: LogLevel, event: string, fields: Fields = {}): void {
    const now = Date.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.intervalMs) {
      const suppressed = w?.suppressed ?? 0;
      w = { start: now, shown: 0, suppressed: 0 };
      this.windows.set(key, w);
      if (suppressed > 0) fields = { ...fields, suppressed };
    }
    if (w.shown >= this.burst) {
      w.suppressed++;
      return;
    }
    w.shown++;
    this.log(level, event, fields);
  }
}

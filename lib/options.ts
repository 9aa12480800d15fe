/**
 * One option-parsing style for every command-line tool (the simulator, the
 * bridge, npm start, the token CLI, chaos, the benchmarks, screenshots):
 * node:util's parseArgs declares the flags; this module turns its errors and
 * the tools' own checks into one {@link OptionError}, checks numbers one way,
 * and prints a refusal one way: the reason, the usage, exit code 2.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A bad option: the tool prints it with its usage and exits 2. */
export class OptionError extends Error {}

/** parseArgs, strict, with its errors (unknown flag, missing value) as {@link OptionError}. */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new OptionError(err instanceof Error ? err.message : String(err));
  }
}

export interface NumberRule {
  min: number;
  /** Default: no upper bound. */
  max?: number;
  /** Whole numbers only (default true). */
  integer?: boolean;
}

/** `raw` as a number within the rule, else an {@link OptionError} naming `--name`. */
export function numberOption(name: string, raw: string, rule: NumberRule): number {
  const integer = rule.integer ?? true;
  const max = rule.max ?? Infinity;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < rule.min || n > max || (integer && !Number.isInteger(n))) {
    const range = max === Infinity ? `of at least ${rule.min}` : `from ${rule.min} to ${max}`;
    throw new OptionError(`--${name} must be ${integer ? "an integer" : "a number"} ${range}, got '${raw}'`);
  }
  return n;
}

/**
 * Runs `parse`; an {@link OptionError} is printed to stderr, followed by
 * `usage` when given, and the process exits 2. Other errors propagate.
 */
export function orExit<T>(parse: () => T, usage?: string): T {
  try {
    return parse();
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    process.stderr.write(`${err.message}\n${usage ?? ""}`);
    process.exit(2);
  }
}

/** The `-h, --help` flag, for {@link parseCli}. */
export const HELP_FLAG = { type: "boolean", short: "h", default: false } as const;

/**
 * A tool's flags from the command line: on a bad flag, the reason and
 * `usage` and exit 2; on `-h`/`--help` (declare it with {@link HELP_FLAG}),
 * `usage` on stdout and exit 0, before any other check.
 */
export function parseCli<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>>["values"] {
  const { values } = orExit(() => parseFlags(config), usage);
  const flags: { help?: unknown } = values;
  if (flags.help === true) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return values;
}

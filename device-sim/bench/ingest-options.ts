/** `npm run bench:ingest` options: the usage text and the checked values (lib/options.ts). */
import { numberOption, parseFlags } from "../../lib/options.ts";
import { METRIC_COUNT } from "./readings.ts";

export const USAGE = `usage: npm run bench:ingest -- [options]

  --duration N    seconds per measurement window (default 10)
  --warmup N      seconds of saturation before measuring it (default 3)
  --devices N     device sockets in the group (default 10)
  --batch N       readings per batch (default 100; rounded down to whole ticks of 4 metrics)
  --in-flight N   unacked batches per device at saturation (default 32)
  --rate-limit    keep the hub's per-device rate limits (PEER_READINGS_PER_SEC and the
                  work budgets); by default the bench turns them off to measure what the group can take
  --json          print the result as JSON on stdout
  --profile       after each saturation window, profile the hub's isolate and
                  this process for a few more seconds and list the hottest functions
  --profile-out D also write the .cpuprofile files (open in Chrome DevTools) to directory D
  -h, --help      this text
`;

export interface IngestOptions {
  /** Seconds per measurement window. */
  durationS: number;
  warmupS: number;
  devices: number;
  /** Readings per batch as asked for. */
  batch: number;
  /** ReadingSource emits whole ticks of every metric: the batch size actually sent. */
  readingsPerBatch: number;
  inFlight: number;
  json: boolean;
  keepRateLimit: boolean;
  profile: boolean;
  profileOut: string | undefined;
  /** Length of a profiling window, s. */
  profileS: number;
}

/** The options, or null for --help (asked before any check, as every tool does); throws OptionError on a bad option. */
export function parseIngestOptions(argv: string[]): IngestOptions | null {
  const { values: args } = parseFlags({
    args: argv,
    options: {
      duration: { type: "string", default: "10" },
      warmup: { type: "string", default: "3" },
      devices: { type: "string", default: "10" },
      batch: { type: "string", default: "100" },
      "in-flight": { type: "string", default: "32" },
      json: { type: "boolean", default: false },
      "rate-limit": { type: "boolean", default: false },
      profile: { type: "boolean", default: false },
      "profile-out": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (args.help) return null;
  const durationS = numberOption("duration", args.duration, { min: 1, max: 600, integer: false });
  const batch = numberOption("batch", args.batch, { min: 4, max: 5000 });
  const profileOut = args["profile-out"];
  return {
    durationS,
    warmupS: numberOption("warmup", args.warmup, { min: 0, max: 120, integer: false }),
    devices: numberOption("devices", args.devices, { min: 1, max: 1000 }),
    batch,
    readingsPerBatch: Math.max(1, Math.floor(batch / METRIC_COUNT)) * METRIC_COUNT,
    inFlight: numberOption("in-flight", args["in-flight"], { min: 1, max: 1024 }),
    json: args.json,
    keepRateLimit: args["rate-limit"],
    profile: args.profile || profileOut !== undefined,
    profileOut,
    profileS: Math.min(5, durationS),
  };
}

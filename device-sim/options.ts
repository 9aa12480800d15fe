/** Command line options of `npm run sim`, with their help text and checks. */
import { readDevSecret } from "../harness/dev-secret.ts";
import { OptionError, parseFlags } from "../lib/options.ts";
import type { SimConfig } from "./engine.ts";
import { fleetFromOptions, FleetError, readFleetFile } from "./fleet.ts";
import { readReplay, ReplayError } from "./replay.ts";
import { NO_FAULTS } from "./sim-device.ts";
import { loadState, StateError } from "./state.ts";
import { parseDuration, parseRate } from "./units.ts";

export const HELP = `Telemetry Hub device simulator

usage: npm run sim -- [options]

Hub
  --url URL              hub base URL (default http://127.0.0.1:8787)
  --secret S             HUB_SECRET used to sign device and operator tokens
                         (default: $HUB_SECRET, else the development secret in .dev.vars)

Fleet (generated)
  --groups N             number of groups (default 2)
  --prefix P             group ids are P-1 .. P-N (default sim-<random>, or the state file's)
  --devices N            devices per group (default 10)
  --metrics a,b,c        metrics per device (default temp,humidity); temp, humidity and
                         pressure have realistic presets, other names a generic 0-100 signal
  --rate R               samples per device, e.g. 5/s, 10/min, or max (keep the in-flight
                         window full); each sample is one reading per metric (default 1/s)
  --fleet FILE           fleet file (JSON) with mixed device kinds; see docs/simulator.md
  --seed N               seed for signals and faults (default 1): same seed, same readings

Run length
  --duration D           how long to generate, e.g. 30s, 5m (default 30s)
  --readings N           stop after generating N readings in all
  --drain-timeout D      at the end, wait this long for outstanding acks (default 30s)
  --http-timeout D       how long each REST call to the hub (preflight, lastSeq, --verify)
                         keeps retrying a busy hub before the run fails (default 60s)

Batching and buffering
  --batch-ms MS          send a batch at least this often (default 100)
  --batch-readings N     ...or as soon as it holds N readings (default 100)
  --max-in-flight N      unacked batches per socket (default 32)
  --buffer N             offline buffer per device, in batches (default 1000)
  --connect-rate R       new connections per second while the fleet comes up (default 2000/s)
  --frames F             cbatch (compact columns, the default) or batch (protocol v1, for a
                         hub without compact batches)
  --float32              generate values as float32: 4 bytes a value on the wire instead of 8

Faults (rates are per device)
  --drop-rate R          drop the connection, e.g. 2/min
  --offline-rate R       go offline (buffering) for --offline-for, e.g. 1/min
  --offline-for D        how long a device stays offline (default 10s)
  --malformed-rate R     send malformed frames; each must come back as an error frame
  --resend-rate R        resend an already acked batch; the hub must ack it as a duplicate
  --clock-skew D         each device's clock is off by up to +-D (e.g. 30s)
  --late-fraction F      fraction 0..1 of readings delivered late by --late-by
  --late-by D            how late (default 5m)

Commands and configuration (downlink)
  --downlink             devices opt in to downlink: they run the built-in commands ping,
                         set_rate ({"ms": N}) and reboot (drops and reopens the socket), and
                         apply a sampleRateMs configuration
  --command-rate R       queue commands for the run's own devices, per device, e.g. 1/min
                         (implies --downlink); with --verify, every one must reach a final
                         status and run exactly once
  --command-drop-rate F  fraction 0..1 of commands during which the device drops its socket
                         (its result is lost, or it is still running when the hub resends it)
  --command-ttl D        time to live of the queued commands (default 1m)

Record and replay
  --record FILE          write every generated reading to FILE (JSON lines)
  --replay FILE          replay a recording (.jsonl) or a CSV with a header naming the
                         timestamp, device, metric, value (and optional group) columns
  --replay-group G       group for rows without one (default replay)
  --speed X              replay speed: 1 = original, 10 = ten times faster, max = as fast
                         as the hub acks (default 1)
  --replay-time T        shift (default: move timestamps by whole minutes so no reading is
                         stamped later than it is sent: at --speed 1 the recording starts
                         now, at max it ends now) or original

State, report, proof
  --state FILE           keep per-device seqs, unacked batches and expectations here; a
                         stopped and resumed run continues where it left off
  --verify               at the end, compare the hub's aggregates with what was acked,
                         bucket by bucket (minutes, hours and days); exit 1 on any difference
  --json                 print the summary as JSON on stdout
  --no-progress          no progress line
  -h, --help             this help

Exit codes: 0 done (and verified, with --verify); 1 --verify found differences, or
acked work was left unacked; 2 bad options; 3 hub unreachable or rejecting the
simulator's tokens (checked before any device connects); 4 nothing was acked, or
--verify could not read the hub. Every case but 2 prints the summary and the reason.
`;


function need<T>(v: T | null, what: string): T {
  if (v === null) throw new OptionError(what);
  return v;
}

function positiveInt(s: string, name: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < 1) throw new OptionError(`${name} must be a positive integer, got '${s}'`);
  return n;
}

export interface CliOptions {
  config: SimConfig;
  json: boolean;
  help: boolean;
}

export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): CliOptions {
  const parsed = parseFlags({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      url: { type: "string", default: "http://127.0.0.1:8787" },
      secret: { type: "string" },
      groups: { type: "string", default: "2" },
      prefix: { type: "string" },
      devices: { type: "string", default: "10" },
      metrics: { type: "string", default: "temp,humidity" },
      rate: { type: "string", default: "1/s" },
      fleet: { type: "string" },
      seed: { type: "string", default: "1" },
      duration: { type: "string" },
      readings: { type: "string" },
      "drain-timeout": { type: "string", default: "30s" },
      "http-timeout": { type: "string", default: "60s" },
      "batch-ms": { type: "string", default: "100" },
      "batch-readings": { type: "string", default: "100" },
      "max-in-flight": { type: "string", default: "32" },
      buffer: { type: "string", default: "1000" },
      "connect-rate": { type: "string", default: "2000/s" },
      frames: { type: "string", default: "cbatch" },
      float32: { type: "boolean", default: false },
      "drop-rate": { type: "string" },
      "offline-rate": { type: "string" },
      "offline-for": { type: "string", default: "10s" },
      "malformed-rate": { type: "string" },
      "resend-rate": { type: "string" },
      "clock-skew": { type: "string" },
      "late-fraction": { type: "string" },
      "late-by": { type: "string", default: "5m" },
      downlink: { type: "boolean", default: false },
      "command-rate": { type: "string" },
      "command-drop-rate": { type: "string" },
      "command-ttl": { type: "string", default: "1m" },
      record: { type: "string" },
      replay: { type: "string" },
      "replay-group": { type: "string", default: "replay" },
      speed: { type: "string", default: "1" },
      "replay-time": { type: "string", default: "shift" },
      state: { type: "string" },
      verify: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      "no-progress": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const o = parsed.values;
  const help = o.help === true;
  const rate = (name: string, v: string | undefined): number => (v === undefined ? 0 : need(parseRate(v), `${name} must be a rate like 2/min, got '${v}'`));
  const duration = (name: string, v: string): number => need(parseDuration(v), `${name} must be a duration like 30s or 5m, got '${v}'`);

  const secret = o.secret ?? env.HUB_SECRET ?? readDevSecret();
  if (!secret && !help) throw new OptionError("no HUB_SECRET: pass --secret, set HUB_SECRET, or run `npm start` once to create .dev.vars");

  let url: URL;
  try {
    url = new URL(o.url ?? "");
  } catch {
    throw new OptionError(`--url must be a URL, got '${o.url}'`);
  }
  if (!["http:", "https:", "ws:", "wss:"].includes(url.protocol)) throw new OptionError("--url must be http(s):// or ws(s)://");

  let statePrefix: string | undefined;
  if (o.state) {
    try {
      statePrefix = loadState(o.state)?.prefix;
    } catch (err) {
      if (err instanceof StateError) throw new OptionError(err.message);
      throw err;
    }
  }
  const prefix = o.prefix ?? statePrefix ?? `sim-${Math.random().toString(36).slice(2, 6)}`;
  if (!/^[A-Za-z0-9_.-]{1,50}$/.test(prefix)) throw new OptionError("--prefix must match [A-Za-z0-9_.-]{1,50}");

  const metrics = (o.metrics ?? "").split(",").map((m) => m.trim());
  if (metrics.length === 0 || metrics.some((m) => !/^[A-Za-z0-9_.:-]{1,64}$/.test(m))) {
    throw new OptionError(`--metrics must be a comma-separated list of metric names, got '${o.metrics}'`);
  }
  const deviceRate = o.rate === "max" ? Infinity : need(parseRate(o.rate ?? ""), `--rate must be like 5/s, 10/min or max, got '${o.rate}'`);
  if (!(deviceRate > 0)) throw new OptionError("--rate must be above zero");

  if (o.fleet && o.replay) throw new OptionError("--fleet and --replay cannot be combined");
  let fleet = null;
  let replay = null;
  try {
    if (o.replay) replay = readReplay(o.replay, o["replay-group"] ?? "replay");
    else if (o.fleet) fleet = readFleetFile(o.fleet, prefix);
    else {
      fleet = fleetFromOptions({
        groups: positiveInt(o.groups ?? "", "--groups"),
        prefix,
        devices: positiveInt(o.devices ?? "", "--devices"),
        metrics,
        rate: deviceRate,
      });
    }
  } catch (err) {
    if (err instanceof FleetError || err instanceof ReplayError) throw new OptionError(err.message);
    throw err;
  }
  if (replay && replay.rows.length === 0) throw new OptionError(`--replay ${o.replay}: no usable rows (${replay.problems.join("; ")})`);

  const speed = o.speed === "max" ? Infinity : Number(o.speed);
  if (!(speed > 0)) throw new OptionError(`--speed must be a positive number or max, got '${o.speed}'`);
  if (o["replay-time"] !== "shift" && o["replay-time"] !== "original") throw new OptionError("--replay-time must be shift or original");
  const lateFraction = o["late-fraction"] === undefined ? 0 : Number(o["late-fraction"]);
  if (!(lateFraction >= 0 && lateFraction <= 1)) throw new OptionError("--late-fraction must be between 0 and 1");

  if (o.frames !== "cbatch" && o.frames !== "batch") throw new OptionError(`--frames must be cbatch or batch, got '${o.frames}'`);
  const commandRate = rate("--command-rate", o["command-rate"]);
  const dropFraction = o["command-drop-rate"] === undefined ? 0 : Number(o["command-drop-rate"]);
  if (!(dropFraction >= 0 && dropFraction <= 1)) throw new OptionError("--command-drop-rate must be between 0 and 1");
  const downlink = o.downlink === true || commandRate > 0 ? { commandRate, dropFraction, ttlMs: duration("--command-ttl", o["command-ttl"] ?? "") } : null;
  if (downlink && replay) throw new OptionError("--downlink and --command-rate need a generated fleet, not --replay");

  const durationMs = o.duration !== undefined ? duration("--duration", o.duration) : o.readings !== undefined || replay ? null : 30_000;
  const config: SimConfig = {
    url: url.toString().replace(/\/$/, ""),
    secret: secret ?? "",
    fleet,
    replay,
    speed,
    replayTime: o["replay-time"],
    prefix,
    seed: positiveInt(o.seed ?? "", "--seed"),
    durationMs,
    maxReadings: o.readings !== undefined ? positiveInt(o.readings, "--readings") : null,
    policy: { batchMs: positiveInt(o["batch-ms"] ?? "", "--batch-ms"), batchReadings: positiveInt(o["batch-readings"] ?? "", "--batch-readings") },
    maxInFlight: positiveInt(o["max-in-flight"] ?? "", "--max-in-flight"),
    bufferBatches: positiveInt(o.buffer ?? "", "--buffer"),
    faults: {
      ...NO_FAULTS,
      dropRate: rate("--drop-rate", o["drop-rate"]),
      offlineRate: rate("--offline-rate", o["offline-rate"]),
      offlineForMs: duration("--offline-for", o["offline-for"] ?? ""),
      malformedRate: rate("--malformed-rate", o["malformed-rate"]),
      resendRate: rate("--resend-rate", o["resend-rate"]),
      clockSkewMs: o["clock-skew"] === undefined ? 0 : duration("--clock-skew", o["clock-skew"]),
      lateFraction,
      lateByMs: duration("--late-by", o["late-by"] ?? ""),
    },
    statePath: o.state ?? null,
    recordPath: o.record ?? null,
    verify: o.verify === true,
    drainTimeoutMs: duration("--drain-timeout", o["drain-timeout"] ?? ""),
    httpTimeoutMs: duration("--http-timeout", o["http-timeout"] ?? ""),
    preflight: true,
    connectRate: need(parseRate(o["connect-rate"] ?? ""), "--connect-rate must be a rate like 2000/s"),
    progress: o["no-progress"] !== true,
    frames: o.frames,
    float32: o.float32 === true,
    downlink,
  };
  return { config, json: o.json === true, help };
}

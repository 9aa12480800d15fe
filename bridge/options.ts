/**
 * Bridge options from, in rising precedence: defaults, a JSON config file
 * (`--config FILE` or BRIDGE_CONFIG), BRIDGE_* environment variables, and
 * command-line flags. One table below defines all three spellings, the help
 * text and the checks, so they cannot drift apart.
 */
import { readFileSync } from "node:fs";
import { OptionError, parseFlags } from "../lib/options.ts";
import { DEFAULT_LIMITS } from "../schema/limits.ts";
import { isValidId } from "../schema/protocol.ts";
import { parseBrokerUsers, type BrokerUser } from "./broker-auth.ts";
import { isLogLevel, type LogLevel } from "./log.ts";
import { DEFAULT_TOPICS } from "./mapping.ts";

export interface BridgeConfig {
  mqttUrl: string;
  mqttUsername: string | null;
  mqttPassword: string | null;
  mqttVersion: 4 | 5 | "auto";
  /** Fixed MQTT client id (the persistent session's name); default `hub-bridge-{gateway}`. */
  clientId: string | null;
  topics: string[];
  /** Group for templates without {group}. */
  group: string | null;
  hubUrl: string;
  gateway: string;
  /** group -> gateway token */
  tokens: Record<string, string>;
  batchMs: number;
  batchReadings: number;
  window: number;
  hubWindow: number;
  backoffMaxMs: number;
  keepaliveSec: number;
  sessionExpirySec: number;
  httpHost: string;
  /** null: no ops endpoint; 0: any free port. */
  httpPort: number | null;
  /** Port of the in-process broker; null: none. */
  embeddedBroker: number | null;
  embeddedHost: string;
  /** PEM files: with both, the embedded broker speaks MQTT over TLS only (the bridge itself connects on a loopback port of its own). */
  embeddedTlsCert: string | null;
  embeddedTlsKey: string | null;
  /** Who may use the embedded broker (a users file, or inline in the config file). */
  brokerUsers: ReadonlyMap<string, BrokerUser> | null;
  /** Let clients without a user name into the embedded broker, for every group (loopback only). */
  brokerAllowAnonymous: boolean;
  logLevel: LogLevel;
  /** Frame type of batches to the hub: compact columns (default) or protocol v1, for a hub that predates them. */
  frames: "cbatch" | "batch";
  /** Send values as float32 (rounded), only where the sensors' precision allows it. */
  float32: boolean;
  /** Carry commands and configuration to the sensors (docs/bridge.md, "Commands and configuration"). */
  downlink: boolean;
}

export const DEFAULTS: Readonly<BridgeConfig> = {
  mqttUrl: "mqtt://127.0.0.1:1883",
  mqttUsername: null,
  mqttPassword: null,
  mqttVersion: "auto",
  clientId: null,
  topics: [...DEFAULT_TOPICS],
  group: null,
  hubUrl: "http://127.0.0.1:8787",
  gateway: "mqtt-bridge",
  tokens: {},
  batchMs: 50,
  batchReadings: 100,
  window: 10_000,
  hubWindow: 32,
  backoffMaxMs: 5_000,
  keepaliveSec: 30,
  sessionExpirySec: 7 * 24 * 3600,
  httpHost: "127.0.0.1",
  httpPort: 9464,
  embeddedBroker: null,
  embeddedHost: "127.0.0.1",
  embeddedTlsCert: null,
  embeddedTlsKey: null,
  brokerUsers: null,
  brokerAllowAnonymous: false,
  logLevel: "info",
  frames: "cbatch",
  float32: false,
  downlink: false,
};

type Kind = "string" | "nullable" | "int" | "list" | "tokens" | "version" | "level" | "port" | "id" | "users" | "bool" | "frames";

interface Spec {
  key: keyof BridgeConfig;
  flag: string;
  env: string;
  kind: Kind;
  arg: string;
  help: string;
  min?: number;
  max?: number;
}

const SPECS: readonly Spec[] = [
  { key: "mqttUrl", flag: "mqtt", env: "BRIDGE_MQTT_URL", kind: "string", arg: "URL", help: "broker URL (mqtt://, mqtts://, ws://)" },
  { key: "mqttUsername", flag: "mqtt-username", env: "BRIDGE_MQTT_USERNAME", kind: "nullable", arg: "NAME", help: "broker user name" },
  { key: "mqttPassword", flag: "mqtt-password", env: "BRIDGE_MQTT_PASSWORD", kind: "nullable", arg: "PASS", help: "broker password (prefer the environment)" },
  { key: "mqttVersion", flag: "mqtt-version", env: "BRIDGE_MQTT_VERSION", kind: "version", arg: "5|4|auto", help: "MQTT 5, 3.1.1 (4), or auto: 5, else 3.1.1" },
  { key: "clientId", flag: "client-id", env: "BRIDGE_CLIENT_ID", kind: "nullable", arg: "ID", help: "fixed MQTT client id of the persistent session (default hub-bridge-{gateway})" },
  { key: "topics", flag: "topic", env: "BRIDGE_TOPICS", kind: "list", arg: "TEMPLATE", help: `topic template, repeatable (env: comma-separated); default ${DEFAULT_TOPICS.join(" and ")}` },
  { key: "group", flag: "group", env: "BRIDGE_GROUP", kind: "id", arg: "GROUP", help: "group for templates without {group}" },
  { key: "hubUrl", flag: "hub", env: "BRIDGE_HUB_URL", kind: "string", arg: "URL", help: "hub base URL" },
  { key: "gateway", flag: "gateway", env: "BRIDGE_GATEWAY", kind: "id", arg: "ID", help: "this bridge's gateway id; unique per bridge" },
  { key: "tokens", flag: "token", env: "BRIDGE_TOKENS", kind: "tokens", arg: "GROUP=TOKEN", help: "gateway token for a group, repeatable (env: comma-separated); npm run token -- gateway <group> <gateway>" },
  { key: "batchMs", flag: "batch-ms", env: "BRIDGE_BATCH_MS", kind: "int", arg: "MS", help: "send a group's batch this long after its first reading", min: 1, max: 10_000 },
  { key: "batchReadings", flag: "batch-readings", env: "BRIDGE_BATCH_READINGS", kind: "int", arg: "N", help: "or once it holds this many readings", min: 1, max: DEFAULT_LIMITS.maxReadingsPerBatch },
  { key: "window", flag: "window", env: "BRIDGE_WINDOW", kind: "int", arg: "N", help: "messages received and not yet PUBACKed, at most (the in-flight window)", min: 1, max: 65_535 },
  { key: "hubWindow", flag: "hub-window", env: "BRIDGE_HUB_WINDOW", kind: "int", arg: "N", help: "batches awaiting the hub's ack per group socket", min: 1, max: 1000 },
  { key: "backoffMaxMs", flag: "backoff-max-ms", env: "BRIDGE_BACKOFF_MAX_MS", kind: "int", arg: "MS", help: "longest wait between hub reconnects", min: 100, max: 600_000 },
  { key: "keepaliveSec", flag: "keepalive", env: "BRIDGE_KEEPALIVE", kind: "int", arg: "S", help: "MQTT keep-alive, seconds", min: 5, max: 65_535 },
  { key: "sessionExpirySec", flag: "session-expiry", env: "BRIDGE_SESSION_EXPIRY", kind: "int", arg: "S", help: "MQTT 5 session expiry, seconds: how long the broker queues for an absent bridge", min: 60, max: 4_294_967_295 },
  { key: "httpHost", flag: "http-host", env: "BRIDGE_HTTP_HOST", kind: "string", arg: "HOST", help: "address of /healthz and /metrics" },
  { key: "httpPort", flag: "http-port", env: "BRIDGE_HTTP_PORT", kind: "port", arg: "PORT|off", help: "port of /healthz and /metrics (0: any free port)" },
  { key: "embeddedBroker", flag: "embedded-broker", env: "BRIDGE_EMBEDDED_BROKER", kind: "port", arg: "[PORT]", help: "run an in-process MQTT broker (aedes) on PORT (default 1883) and bridge from it" },
  { key: "embeddedHost", flag: "embedded-host", env: "BRIDGE_EMBEDDED_HOST", kind: "string", arg: "HOST", help: "address of the embedded broker (0.0.0.0 for sensors on the network)" },
  { key: "embeddedTlsCert", flag: "embedded-tls-cert", env: "BRIDGE_EMBEDDED_TLS_CERT", kind: "nullable", arg: "FILE", help: "PEM certificate (chain): the embedded broker speaks MQTT over TLS only" },
  { key: "embeddedTlsKey", flag: "embedded-tls-key", env: "BRIDGE_EMBEDDED_TLS_KEY", kind: "nullable", arg: "FILE", help: "PEM private key of that certificate" },
  { key: "brokerUsers", flag: "broker-users", env: "BRIDGE_BROKER_USERS", kind: "users", arg: "FILE", help: "users of the embedded broker: JSON of user -> { password: scrypt hash, groups } (docs/bridge.md)" },
  { key: "brokerAllowAnonymous", flag: "broker-allow-anonymous", env: "BRIDGE_BROKER_ALLOW_ANONYMOUS", kind: "bool", arg: "", help: "let clients without a user name publish to every group (embedded broker on a loopback address only)" },
  { key: "frames", flag: "frames", env: "BRIDGE_FRAMES", kind: "frames", arg: "cbatch|batch", help: "batches to the hub as compact columns (cbatch, default) or protocol v1 (batch, for an older hub)" },
  { key: "float32", flag: "float32", env: "BRIDGE_FLOAT32", kind: "bool", arg: "", help: "send values as float32, rounded: 4 bytes a value instead of 8 where sensors' precision allows it" },
  { key: "downlink", flag: "downlink", env: "BRIDGE_DOWNLINK", kind: "bool", arg: "", help: "carry commands and configuration from the hub to the sensors, on devices/{group}/{device}/... topics" },
  { key: "logLevel", flag: "log-level", env: "BRIDGE_LOG_LEVEL", kind: "level", arg: "LEVEL", help: "debug, info, warn or error" },
];

// The one OptionError of every CLI (lib/options.ts); the bridge CLI and its tests take it from here.
export { OptionError };

export function usage(): string {
  const lines = ["usage: npm run bridge -- [options]", "", "Options (flag, environment variable, config file key):"];
  for (const s of SPECS) {
    lines.push(`  --${s.flag} ${s.arg}`.padEnd(34) + s.help);
    lines.push(`${" ".repeat(34)}env ${s.env}, config "${s.key}"; default ${JSON.stringify(DEFAULTS[s.key])}`);
  }
  lines.push(`  hash-password`.padEnd(34) + "(command) read a password on stdin, print its hash for --broker-users");
  lines.push(`  --config FILE`.padEnd(34) + "JSON file with any of the keys above (env BRIDGE_CONFIG)");
  lines.push(`  -h, --help`.padEnd(34) + "this text");
  lines.push("", "Precedence: flags, then environment, then config file, then defaults. See docs/bridge.md.");
  return lines.join("\n");
}

function bad(where: string, what: string): never {
  throw new OptionError(`${where}: ${what}`);
}

function integer(raw: unknown): number {
  if (typeof raw === "number") return raw;
  return typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
}

/**
 * Converts one raw value to the option's type: text from argv or the
 * environment, or anything JSON from the config file, so it arrives unknown.
 */
function convert(s: Spec, raw: unknown, where: string): BridgeConfig[keyof BridgeConfig] {
  switch (s.kind) {
    case "string":
      if (typeof raw !== "string" || raw === "") return bad(where, "expected text");
      return raw;
    case "nullable":
      if (raw === null) return null;
      if (typeof raw !== "string") return bad(where, "expected text");
      return raw === "" ? null : raw;
    case "id":
      if (raw === null && s.key === "group") return null;
      if (typeof raw !== "string" || !isValidId(raw)) return bad(where, "expected an id matching [A-Za-z0-9_.-]{1,64}");
      return raw;
    case "int": {
      const n = integer(raw);
      if (!Number.isSafeInteger(n) || n < (s.min ?? 0) || n > (s.max ?? Number.MAX_SAFE_INTEGER)) {
        return bad(where, `expected an integer from ${s.min ?? 0} to ${s.max ?? "2^53"}`);
      }
      return n;
    }
    case "port": {
      if (raw === null || raw === "off") return null;
      const n = integer(raw);
      if (!Number.isInteger(n) || n < 0 || n > 65_535) return bad(where, "expected a TCP port (0-65535) or off");
      return n;
    }
    case "version":
      if (raw === "auto") return "auto";
      if (raw === 4 || raw === "4" || raw === "3.1.1") return 4;
      if (raw === 5 || raw === "5") return 5;
      return bad(where, "expected 5, 4 or auto");
    case "bool":
      if (raw === true || raw === "1" || raw === "true" || raw === "yes") return true;
      if (raw === false || raw === "0" || raw === "false" || raw === "no") return false;
      return bad(where, "expected true or false");
    case "users": {
      if (raw === null) return null;
      let json: unknown = raw;
      if (typeof raw === "string") {
        try {
          json = JSON.parse(readFileSync(raw, "utf8"));
        } catch (err) {
          return bad(where, `${raw}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      try {
        return parseBrokerUsers(json, typeof raw === "string" ? raw : "users");
      } catch (err) {
        return bad(where, err instanceof Error ? err.message : String(err));
      }
    }
    case "level":
      if (typeof raw !== "string" || !isLogLevel(raw)) return bad(where, "expected debug, info, warn or error");
      return raw;
    case "frames":
      if (raw !== "cbatch" && raw !== "batch") return bad(where, "expected cbatch or batch");
      return raw;
    case "list": {
      const items: unknown[] = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : bad(where, "expected a list of text");
      const out = items.map((x) => (typeof x === "string" ? x.trim() : bad(where, "expected a list of text"))).filter((x) => x !== "");
      if (out.length === 0) return bad(where, "expected at least one item");
      return out;
    }
    case "tokens": {
      let pairs: [string, unknown][];
      if (typeof raw === "string") pairs = raw.split(",").map((p) => splitPair(p, where));
      else if (Array.isArray(raw)) pairs = raw.map((p: unknown) => (typeof p === "string" ? splitPair(p, where) : bad(where, "expected GROUP=TOKEN")));
      else if (typeof raw === "object" && raw !== null) pairs = Object.entries(raw);
      else return bad(where, "expected GROUP=TOKEN pairs");
      const out: Record<string, string> = {};
      for (const [g, t] of pairs) {
        if (!isValidId(g)) return bad(where, `'${g}' is not a group id`);
        if (typeof t !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(t)) return bad(where, `the token for '${g}' is not a 43-character base64url token`);
        out[g] = t;
      }
      return out;
    }
  }
}

function splitPair(p: string, where: string): [string, string] {
  const i = p.indexOf("=");
  if (i <= 0) return bad(where, `expected GROUP=TOKEN, got '${p.trim().slice(0, 80)}'`);
  return [p.slice(0, i).trim(), p.slice(i + 1).trim()];
}

function set(cfg: BridgeConfig, key: keyof BridgeConfig, value: BridgeConfig[keyof BridgeConfig]): void {
  // convert() returns the type of the spec's kind, and SPECS pairs each key
  // with the kind of its type; TypeScript cannot follow that through the table.
  (cfg as unknown as Record<string, unknown>)[key] = value;
}

export interface Parsed {
  config: BridgeConfig;
  help: boolean;
}

/**
 * Parses argv (without node and script) and env into a config. Throws
 * {@link OptionError} with a message for the user on anything invalid.
 */
export function parseOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Parsed {
  // `--embedded-broker` takes an optional port, which parseArgs cannot express.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--embedded-broker" && !/^\d+$/.test(argv[i + 1] ?? "")) args.push("--embedded-broker=1883");
    else args.push(a);
  }
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  };
  for (const s of SPECS) options[s.flag] = s.kind === "bool" ? { type: "boolean" } : { type: "string", multiple: s.kind === "list" || s.kind === "tokens" };
  const values: Record<string, string | boolean | (string | boolean)[] | undefined> = parseFlags({ args, options, allowPositionals: false, strict: true }).values;
  if (values.help === true) return { config: { ...DEFAULTS }, help: true };

  const cfg: BridgeConfig = { ...DEFAULTS, topics: [...DEFAULTS.topics], tokens: {} };
  const file = typeof values.config === "string" ? values.config : env.BRIDGE_CONFIG;
  if (file) {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new OptionError(`--config ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new OptionError(`${file}: expected a JSON object`);
    for (const [k, v] of Object.entries(json)) {
      const s = SPECS.find((x) => x.key === k);
      if (!s) throw new OptionError(`${file}: unknown key '${k}'`);
      set(cfg, s.key, convert(s, v, `${file}: "${k}"`));
    }
  }
  for (const s of SPECS) {
    const v = env[s.env];
    if (v !== undefined && v !== "") set(cfg, s.key, convert(s, v, s.env));
  }
  for (const s of SPECS) {
    const v = values[s.flag];
    if (v === true && s.kind === "bool") set(cfg, s.key, true);
    if (v === undefined || typeof v === "boolean") continue;
    // Repeated flags: the last wins, except for lists and tokens, which collect.
    const items = Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [v];
    const raw: string | string[] = s.kind === "tokens" ? items : items.join(",");
    set(cfg, s.key, convert(s, raw, `--${s.flag}`));
  }
  for (const u of [cfg.mqttUrl, cfg.hubUrl]) {
    try {
      new URL(u);
    } catch {
      throw new OptionError(`not a URL: '${u}'`);
    }
  }
  checkBrokerAccess(cfg);
  return { config: cfg, help: false };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/**
 * An embedded broker that admits no one would be useless, and one that
 * admits anyone on the network would let anyone write to every group the
 * bridge holds a token for. Throws {@link OptionError} for either.
 */
export function checkBrokerAccess(cfg: BridgeConfig): void {
  if (cfg.embeddedBroker === null) return;
  if ((cfg.embeddedTlsCert === null) !== (cfg.embeddedTlsKey === null)) {
    throw new OptionError("--embedded-tls-cert and --embedded-tls-key go together");
  }
  if (cfg.brokerAllowAnonymous && !LOOPBACK.test(cfg.embeddedHost)) {
    throw new OptionError(`--broker-allow-anonymous is for a loopback --embedded-host only, not '${cfg.embeddedHost}': give sensors credentials with --broker-users FILE`);
  }
  if (!cfg.brokerAllowAnonymous && (cfg.brokerUsers === null || cfg.brokerUsers.size === 0)) {
    throw new OptionError("the embedded broker needs --broker-users FILE (docs/bridge.md, \"Embedded broker\"), or --broker-allow-anonymous on 127.0.0.1");
  }
}

/**
 * From MQTT topics and payloads to hub readings (docs/bridge.md, "Mapping").
 *
 * Topic templates name levels with placeholders, e.g.
 * `sensors/{group}/{device}/{metric}`; each placeholder is a whole level and
 * becomes `+` in the subscription filter. Payloads are decoded strictly: a
 * message either yields readings that the hub will accept, or a drop reason.
 * Everything decoded stays `unknown` until checked here.
 */
import { decodeCbor } from "../schema/cbor.ts";
import { DEFAULT_LIMITS, type Limits } from "../schema/limits.ts";
import { ID_PATTERN, METRIC_PATTERN, type Reading } from "../schema/protocol.ts";
import { isMap, validateDeviceBatch } from "../schema/validate.ts";

export const DEFAULT_TOPICS: readonly string[] = ["sensors/{group}/{device}/{metric}", "sensors/{group}/{device}"];

type Level = { kind: "literal"; text: string } | { kind: "any" } | { kind: "group" | "device" | "metric" };

export interface TopicTemplate {
  source: string;
  /** The MQTT subscription filter: placeholders become `+`. */
  filter: string;
  levels: readonly Level[];
  /** The group for topics whose template has no `{group}`. */
  group: string | null;
  hasMetric: boolean;
}

export interface TopicMatch {
  group: string;
  device: string;
  /** Absent for device-level topics, whose payload names the metrics. */
  metric?: string;
}

/** Why a message was not forwarded (the `reason` label of the drop counter). */
export type DropReason =
  | "unmatched_topic"
  | "bad_topic"
  | "bad_payload"
  | "bad_timestamp"
  | "too_many_readings"
  | "retained"
  | "no_token"
  | "hub_rejected";

export const DROP_REASONS: readonly DropReason[] = [
  "unmatched_topic",
  "bad_topic",
  "bad_payload",
  "bad_timestamp",
  "too_many_readings",
  "retained",
  "no_token",
  "hub_rejected",
];

/** Parses a template; throws with a message fit for the command line when it is not usable. */
export function parseTemplate(source: string, defaultGroup: string | null): TopicTemplate {
  const parts = source.split("/");
  const levels: Level[] = [];
  const seen = new Set<string>();
  for (const p of parts) {
    const m = /^\{(group|device|metric)\}$/.exec(p);
    if (m) {
      const kind = m[1] as "group" | "device" | "metric";
      if (seen.has(kind)) throw new Error(`topic template '${source}' has {${kind}} twice`);
      seen.add(kind);
      levels.push({ kind });
    } else if (p === "+") {
      levels.push({ kind: "any" });
    } else if (p.includes("{") || p.includes("}") || p.includes("+") || p.includes("#")) {
      throw new Error(`topic template '${source}': a placeholder or wildcard must be a whole level ('${p}')`);
    } else {
      levels.push({ kind: "literal", text: p });
    }
  }
  if (!seen.has("device")) throw new Error(`topic template '${source}' has no {device}`);
  if (!seen.has("group") && defaultGroup === null) {
    throw new Error(`topic template '${source}' has no {group}; set a default group (--group)`);
  }
  const filter = levels.map((l) => (l.kind === "literal" ? l.text : "+")).join("/");
  return { source, filter, levels, group: seen.has("group") ? null : defaultGroup, hasMetric: seen.has("metric") };
}

/**
 * Two templates overlap when one topic could match both; the broker may then
 * deliver it twice (once per subscription), which would count it twice.
 */
export function overlap(a: TopicTemplate, b: TopicTemplate): boolean {
  if (a.levels.length !== b.levels.length) return false;
  return a.levels.every((la, i) => {
    const lb = b.levels[i];
    if (!lb || la.kind !== "literal" || lb.kind !== "literal") return true;
    return la.text === lb.text;
  });
}

export function parseTemplates(sources: readonly string[], defaultGroup: string | null): TopicTemplate[] {
  const out = sources.map((s) => parseTemplate(s, defaultGroup));
  for (let i = 0; i < out.length; i++) {
    for (let j = i + 1; j < out.length; j++) {
      const a = out[i];
      const b = out[j];
      if (a && b && overlap(a, b)) throw new Error(`topic templates '${a.source}' and '${b.source}' overlap`);
    }
  }
  return out;
}

/**
 * What to subscribe to. When every template starts with the same literal
 * level L, `L/#`: one subscription, and topics under L that fit no template
 * still arrive and are counted as unmatched rather than never seen. Else
 * each template's own filter; those never overlap (parseTemplates checks),
 * so the broker delivers each message once.
 */
export function subscriptionFilters(templates: readonly TopicTemplate[]): string[] {
  const first = templates[0]?.levels[0];
  if (first?.kind === "literal" && templates.every((t) => {
    const l = t.levels[0];
    return l?.kind === "literal" && l.text === first.text;
  })) {
    return [`${first.text}/#`];
  }
  return templates.map((t) => t.filter);
}

/**
 * Remembers topic matches: sensors publish to the same few topics over and
 * over, and splitting and testing each topic again showed up in profiles.
 * Cleared when full, so a flood of distinct topics cannot grow it.
 */
export class TopicMatcher {
  private readonly templates: readonly TopicTemplate[];
  private readonly cache = new Map<string, TopicMatch | "bad" | null>();
  private readonly max: number;

  constructor(templates: readonly TopicTemplate[], max = 10_000) {
    this.templates = templates;
    this.max = max;
  }

  match(topic: string): TopicMatch | "bad" | null {
    let m = this.cache.get(topic);
    if (m === undefined) {
      m = matchTopic(this.templates, topic);
      if (this.cache.size >= this.max) this.cache.clear();
      this.cache.set(topic, m);
    }
    return m;
  }
}

/** The first template the topic matches; `bad` when it matches but a level is not a valid id or metric. */
export function matchTopic(templates: readonly TopicTemplate[], topic: string): TopicMatch | "bad" | null {
  const parts = topic.split("/");
  for (const t of templates) {
    if (t.levels.length !== parts.length) continue;
    let group = t.group ?? "";
    let device = "";
    let metric: string | undefined;
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      const l = t.levels[i];
      const p = parts[i] ?? "";
      if (!l) ok = false;
      else if (l.kind === "literal") ok = l.text === p;
      else if (l.kind === "group") group = p;
      else if (l.kind === "device") device = p;
      else if (l.kind === "metric") metric = p;
    }
    if (!ok) continue;
    if (!ID_PATTERN.test(group) || !ID_PATTERN.test(device)) return "bad";
    if (metric !== undefined && !METRIC_PATTERN.test(metric)) return "bad";
    return metric === undefined ? { group, device } : { group, device, metric };
  }
  return null;
}

type Failure = { ok: false; reason: DropReason; detail: string };
export type Decoded = { ok: true; readings: Reading[] } | Failure;
/** Readings as read from a payload, before the validator has typed them. */
type Candidate = { ok: true; readings: unknown[] } | Failure;

const NUMBER_TEXT = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function fail(reason: DropReason, detail: string): Failure {
  return { ok: false, reason, detail };
}

/** Limits the bridge checks readings against before they travel: the hub's defaults. */
export type PayloadLimits = Pick<Limits, "maxReadingsPerBatch" | "maxFutureMs" | "maxPastMs">;

/**
 * Decodes a payload into readings. `receivedAt` is the timestamp of readings
 * that carry none. The result passes the hub's own batch validator (with
 * the default limits), so a forwarded message is never what gets a batch
 * rejected.
 */
export function decodePayload(
  payload: Uint8Array,
  metric: string | undefined,
  receivedAt: number,
  limits: PayloadLimits = DEFAULT_LIMITS,
): Decoded {
  if (payload.length === 0) return fail("bad_payload", "empty payload");
  const first = payload[0] ?? 0;
  let readings: unknown[];
  // 0xa0-0xbf start a CBOR map; no JSON or number text starts with those bytes.
  if (first >= 0xa0 && first <= 0xbf) {
    const r = decodeCborBatch(payload);
    if (!r.ok) return r;
    readings = r.readings;
  } else {
    const text = decodeText(payload);
    if (text === null) return fail("bad_payload", "payload is neither UTF-8 text nor a CBOR map");
    if (metric !== undefined && NUMBER_TEXT.test(text)) {
      // The common case, a plain number, needs no validator: its ts is the
      // receive time, the topic match checked the metric, and the value is
      // checked here.
      const value = Number(text);
      if (!Number.isFinite(value)) return fail("bad_payload", "number out of range");
      return { ok: true, readings: [[receivedAt, metric, value]] };
    }
    const r = metric === undefined ? decodeDeviceJson(text, receivedAt) : decodeMetricText(text, metric, receivedAt);
    if (!r.ok) return r;
    readings = r.readings;
  }
  if (readings.length > limits.maxReadingsPerBatch) {
    return fail("too_many_readings", `${readings.length} readings exceed ${limits.maxReadingsPerBatch}`);
  }
  const v = validateDeviceBatch({ type: "batch", seq: 1, readings }, { now: receivedAt, limits });
  if (!v.ok) return fail(v.code === "timestamp_out_of_range" ? "bad_timestamp" : "bad_payload", v.message);
  return { ok: true, readings: v.frame.readings };
}

/** Trimmed text of a UTF-8 payload, or null when it is not valid UTF-8. */
function decodeText(payload: Uint8Array): string | null {
  try {
    return utf8.decode(payload).trim();
  } catch {
    return null;
  }
}

/** `{"value": 71.5, "ts": 1732300000000}` (plain numbers are handled in decodePayload). */
function decodeMetricText(text: string, metric: string, receivedAt: number): Candidate {
  if (!text.startsWith("{")) return fail("bad_payload", "payload is not a number or a JSON object");
  const obj = parseJsonObject(text);
  if (!obj) return fail("bad_payload", "payload is not a JSON object");
  const value = obj.value;
  if (typeof value !== "number") return fail("bad_payload", "'value' must be a number");
  const ts = readTs(obj, receivedAt);
  if (ts === null) return fail("bad_timestamp", "'ts' must be integer milliseconds since the epoch");
  return { ok: true, readings: [[ts, metric, value]] };
}

/** `{"temp": 21.5, "hum": 40, "ts": 1732300000000}`: every key but `ts` is a metric. */
function decodeDeviceJson(text: string, receivedAt: number): Candidate {
  if (!text.startsWith("{")) return fail("bad_payload", "a device topic needs a JSON object of metric to number");
  const obj = parseJsonObject(text);
  if (!obj) return fail("bad_payload", "payload is not a JSON object");
  const ts = readTs(obj, receivedAt);
  if (ts === null) return fail("bad_timestamp", "'ts' must be integer milliseconds since the epoch");
  const readings: Reading[] = [];
  for (const [key, value] of Object.entries(obj)) {
    if (key === "ts") continue;
    if (!METRIC_PATTERN.test(key)) return fail("bad_payload", `metric '${key.slice(0, 64)}' must match [A-Za-z0-9_.:-]{1,64}`);
    if (typeof value !== "number") return fail("bad_payload", `metric '${key}' must have a number value`);
    readings.push([ts, key, value]);
  }
  if (readings.length === 0) return fail("bad_payload", "no metrics in the object");
  return { ok: true, readings };
}

/** A CBOR map in the protocol's batch shape: `{readings: [[ts, metric, value], ...]}`; `type` and `seq` are optional. */
function decodeCborBatch(payload: Uint8Array): Candidate {
  const d = decodeCbor(payload);
  if (!d.ok) return fail("bad_payload", `malformed CBOR: ${d.message}`);
  if (!isMap(d.value)) return fail("bad_payload", "CBOR payload must be a map");
  const type = d.value.type;
  if (type !== undefined && type !== "batch") return fail("bad_payload", "CBOR map 'type' must be 'batch'");
  const readings = d.value.readings;
  if (!Array.isArray(readings) || readings.length === 0) return fail("bad_payload", "CBOR map needs a non-empty 'readings' array");
  // Each reading's shape is checked by the hub's validator in decodePayload.
  return { ok: true, readings };
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  return isMap(v) ? v : null;
}

/** The object's `ts`, or `fallback` when absent; null when present but not integer milliseconds. */
function readTs(obj: Record<string, unknown>, fallback: number): number | null {
  const ts = obj.ts;
  if (ts === undefined) return fallback;
  return typeof ts === "number" && Number.isSafeInteger(ts) ? ts : null;
}

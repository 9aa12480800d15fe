/**
 * Downlink (docs/protocol.md, "Downlink"): the validators of what devices
 * and gateways answer (`command_result`, `config_applied`), of what the hub
 * sends them (`command`, `config`, read by the device client), and the
 * check that a value is plain JSON, which every stored args, result,
 * desired and reported value must be (they come back over REST as JSON).
 */
import { encodeCbor, type CborValue } from "./cbor.ts";
import { ErrorCode, ID_PATTERN, type CommandFrame, type ConfigFrame, type DownlinkReplyFrame } from "./protocol.ts";
import { isMap, reject, type Validated } from "./validated.ts";

/** Longest `error` text a device may send with a failed command. */
export const MAX_COMMAND_ERROR = 1024;
/** Deepest nesting accepted in args, results and configurations. */
export const MAX_JSON_DEPTH = 32;

/** The two answers a device may send, by type. */
export function isDownlinkReplyType(type: unknown): type is DownlinkReplyFrame["type"] {
  return type === "command_result" || type === "config_applied";
}

/**
 * True for a value JSON can carry unchanged: null, booleans, finite
 * numbers, text, arrays and plain maps of them, nested at most
 * {@link MAX_JSON_DEPTH} deep. Byte strings, tags and non-finite numbers
 * (which CBOR has and JSON has not) are refused.
 */
export function isJsonValue(v: unknown, depth = 0): boolean {
  if (v === null || typeof v === "boolean" || typeof v === "string") return true;
  if (typeof v === "number") return Number.isFinite(v);
  if (depth >= MAX_JSON_DEPTH) return false;
  if (Array.isArray(v)) return v.every((x) => isJsonValue(x, depth + 1));
  if (isMap(v)) return Object.values(v).every((x) => isJsonValue(x, depth + 1));
  return false;
}

/** Size of a JSON value as the hub sends it (CBOR bytes): what the args limit counts. */
export function cborSize(v: unknown): number {
  // Only called on values isJsonValue accepted, which are CBOR values.
  return encodeCbor(v as CborValue).length;
}

/**
 * Validates a `command_result` or `config_applied` (device or gateway; a
 * gateway's must name its device). Malformed fields are `bad_frame`.
 */
export function validateDownlinkReply(v: Record<string, unknown>, gateway: boolean): Validated<DownlinkReplyFrame> {
  const device = v.device;
  let named: string | undefined;
  if (gateway) {
    if (typeof device !== "string" || !ID_PATTERN.test(device)) return reject(ErrorCode.BadDevice, "a gateway's downlink answer must name its device");
    named = device;
  }
  if (v.type === "command_result") {
    const { id, ok, result, error } = v;
    if (typeof id !== "string" || !ID_PATTERN.test(id)) return reject(ErrorCode.BadFrame, "command_result: id must be a command id");
    if (typeof ok !== "boolean") return reject(ErrorCode.BadFrame, "command_result: ok must be true or false");
    if (result !== undefined && !isJsonValue(result)) return reject(ErrorCode.BadFrame, "command_result: result must be a JSON value");
    if (error !== undefined && (typeof error !== "string" || error.length > MAX_COMMAND_ERROR)) {
      return reject(ErrorCode.BadFrame, `command_result: error must be text of at most ${MAX_COMMAND_ERROR} characters`);
    }
    const frame: DownlinkReplyFrame = { type: "command_result", id, ok };
    if (result !== undefined) frame.result = result;
    if (typeof error === "string") frame.error = error;
    if (named !== undefined) frame.device = named;
    return { ok: true, frame };
  }
  const { version, reported } = v;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
    return reject(ErrorCode.BadFrame, "config_applied: version must be an integer of at least 1");
  }
  if (reported !== undefined && !(isMap(reported) && isJsonValue(reported))) return reject(ErrorCode.BadFrame, "config_applied: reported must be a JSON map");
  const frame: DownlinkReplyFrame = { type: "config_applied", version };
  if (reported !== undefined) frame.reported = reported;
  if (named !== undefined) frame.device = named;
  return { ok: true, frame };
}

/** Client side: a hub `command` frame, or null if malformed. */
export function validateCommandFrame(v: Record<string, unknown>): CommandFrame | null {
  const { id, name, args, expiresAt, device } = v;
  if (typeof id !== "string" || typeof name !== "string" || typeof expiresAt !== "number") return null;
  const frame: CommandFrame = { type: "command", id, name, args: args ?? null, expiresAt };
  if (typeof device === "string") frame.device = device;
  return frame;
}

/** Client side: a hub `config` frame, or null if malformed. */
export function validateConfigFrame(v: Record<string, unknown>): ConfigFrame | null {
  const { version, desired, device } = v;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1 || !isMap(desired)) return null;
  const frame: ConfigFrame = { type: "config", version, desired };
  if (typeof device === "string") frame.device = device;
  return frame;
}

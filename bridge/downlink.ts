/**
 * Downlink through the bridge (docs/bridge.md, "Commands and
 * configuration"). With `--downlink` the bridge's gateway sockets opt in,
 * and the hub sends them the commands and configuration of devices that
 * have no socket of their own. The bridge publishes them under each device
 * (QoS 1; configuration retained, so a sensor that connects later gets the
 * latest), and maps what the sensor publishes back to `command_result` and
 * `config_applied` on the group's gateway socket:
 *
 *   devices/{group}/{device}/commands          hub -> sensor  {"id", "name", "args", "expiresAt"}
 *   devices/{group}/{device}/commands/result   sensor -> hub  {"id", "ok", "result"?, "error"?}
 *   devices/{group}/{device}/config            hub -> sensor  {"version", "desired"}  (retained)
 *   devices/{group}/{device}/config/applied    sensor -> hub  {"version", "reported"?}
 *
 * The hub resends a command until its result arrives, so a sensor sees a
 * command again after a lost result: it must remember the ids it ran and
 * publish the stored result again, as DeviceClient does.
 */
import type { CborValue } from "../schema/cbor.ts";
import { validateDownlinkReply } from "../schema/downlink.ts";
import { isValidId, type CommandFrame, type ConfigFrame } from "../schema/protocol.ts";
import { isMap } from "../schema/validate.ts";
import type { Logger } from "./log.ts";

/** The first level of every downlink topic (apart from the readings' `sensors/...`). */
export const DOWNLINK_ROOT = "devices";

/** What the bridge subscribes to for answers, at QoS 1. */
export const DOWNLINK_FILTERS: readonly string[] = [`${DOWNLINK_ROOT}/+/+/commands/result`, `${DOWNLINK_ROOT}/+/+/config/applied`];

/** A device's downlink topics. */
export function downlinkTopics(group: string, device: string): { commands: string; result: string; config: string; applied: string } {
  const base = `${DOWNLINK_ROOT}/${group}/${device}`;
  return { commands: `${base}/commands`, result: `${base}/commands/result`, config: `${base}/config`, applied: `${base}/config/applied` };
}

/** The group of a downlink topic (or filter without wildcards in the group), for the embedded broker's access rules; null otherwise. */
export function downlinkGroup(topic: string): string | null {
  const [root, group, device, ...rest] = topic.split("/");
  if (root !== DOWNLINK_ROOT || group === undefined || !isValidId(group) || device === undefined) return null;
  const tail = rest.join("/");
  return ["commands", "commands/result", "config", "config/applied", "#", "+", "+/result", "+/applied"].includes(tail) ? group : null;
}

/** An answer topic: its group, device and kind; null for any other topic. */
export function parseAnswerTopic(topic: string): { group: string; device: string; kind: "command_result" | "config_applied" } | null {
  const m = /^devices\/([^/]+)\/([^/]+)\/(commands\/result|config\/applied)$/.exec(topic);
  if (!m || !isValidId(m[1] ?? "") || !isValidId(m[2] ?? "")) return null;
  return { group: m[1] ?? "", device: m[2] ?? "", kind: m[3] === "commands/result" ? "command_result" : "config_applied" };
}

export interface DownlinkRelayHost {
  /** Publishes at QoS 1 on the bridge's broker connection. */
  publish(topic: string, payload: string, retain: boolean): Promise<void>;
  /** Sends a frame on the group's gateway socket; false when it is not open. */
  reply(group: string, frame: CborValue): boolean;
  log: Logger;
}

/** Counted outcomes of downlink through the bridge. */
export interface DownlinkCounts {
  published: number;
  publishFailed: number;
  answered: number;
  /** Answers that were not JSON of the right shape, or could not reach the hub (the hub resends the command). */
  answersDropped: number;
}

export class DownlinkRelay {
  readonly counts: DownlinkCounts = { published: 0, publishFailed: 0, answered: 0, answersDropped: 0 };
  private readonly host: DownlinkRelayHost;

  constructor(host: DownlinkRelayHost) {
    this.host = host;
  }

  /** A `command` or `config` frame from a group's gateway socket: published to its device's topic. */
  fromHub(group: string, frame: CommandFrame | ConfigFrame): void {
    const device = frame.device;
    if (device === undefined || !isValidId(device)) return;
    const t = downlinkTopics(group, device);
    const [topic, body, retain] =
      frame.type === "command"
        ? [t.commands, { id: frame.id, name: frame.name, args: frame.args, expiresAt: frame.expiresAt }, false]
        : [t.config, { version: frame.version, desired: frame.desired }, true];
    this.host.publish(topic, JSON.stringify(body), retain).then(
      () => void this.counts.published++,
      (err: unknown) => {
        // Not published: the hub sends it again after the gateway's next hello.
        this.counts.publishFailed++;
        this.host.log.limited("downlink.publish", "warn", "downlink.publish_failed", { topic, error: err instanceof Error ? err.message : String(err) });
      },
    );
  }

  /** A message on an answer topic: sent to the hub as the device's answer. Returns false for any other topic. */
  fromSensor(topic: string, payload: Buffer): boolean {
    const where = parseAnswerTopic(topic);
    if (!where) return false;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString("utf8"));
    } catch {
      body = null;
    }
    const checked = isMap(body) ? validateDownlinkReply({ ...body, type: where.kind, device: where.device }, true) : null;
    if (!checked?.ok) {
      this.counts.answersDropped++;
      this.host.log.limited("downlink.answer", "warn", "downlink.bad_answer", { topic: topic.slice(0, 200), detail: checked ? checked.message : "payload is not a JSON object" });
      return true;
    }
    // The validator checked every field is plain JSON: a CBOR value.
    if (this.host.reply(where.group, checked.frame as unknown as CborValue)) this.counts.answered++;
    else this.counts.answersDropped++;
    return true;
  }
}

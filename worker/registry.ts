/**
 * The list of groups, for `GET /v1/groups` (the dashboard's home page). A
 * group Durable Object cannot be enumerated, so each group registers itself
 * here when a device or gateway first connects to it after a wake. One
 * instance (named "groups"); its writes are rare, its reads small.
 */
import { DurableObject } from "cloudflare:workers";
import { isValidId } from "../schema/protocol.ts";
import { log } from "./log.ts";

/** One entry of `GET /v1/groups`. */
export interface GroupEntry {
  id: string;
  /** When the group was first seen, ms. */
  firstSeen: number;
}

/** Name of the single registry instance. */
export const REGISTRY_NAME = "groups";

export class GroupRegistry extends DurableObject<Env> {
  /** Records a group; idempotent. */
  async add(group: string, now: number): Promise<void> {
    if (!isValidId(group)) return;
    const key = `g:${group}`;
    if ((await this.ctx.storage.get(key)) === undefined) await this.ctx.storage.put(key, now);
  }

  /** Every registered group, sorted by id. */
  async list(): Promise<GroupEntry[]> {
    const entries = await this.ctx.storage.list<number>({ prefix: "g:" });
    return [...entries].map(([key, firstSeen]) => ({ id: key.slice(2), firstSeen }));
  }
}

/**
 * A group's side of the registry: lists the group once per wake, the first
 * time a device or gateway connects. Best effort: a failure is logged and
 * retried at the next connect; it never holds up a connection.
 */
export class Registration {
  private readonly env: Env;
  private readonly ctx: DurableObjectState;
  private done = false;

  constructor(env: Env, ctx: DurableObjectState) {
    this.env = env;
    this.ctx = ctx;
  }

  note(group: string, now: number): void {
    if (this.done) return;
    this.done = true;
    const failed = (err: unknown) => {
      this.done = false;
      log.error("group.register", err, { group });
    };
    try {
      this.ctx.waitUntil(this.env.REGISTRY.getByName(REGISTRY_NAME).add(group, now).catch(failed));
    } catch (err) {
      failed(err);
    }
  }
}

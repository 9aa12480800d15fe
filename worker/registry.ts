/**
 * The list of groups, for `GET /v1/groups` (the dashboard's home page). A
 * group Durable Object cannot be enumerated, so each group registers itself
 * here when a device or gateway first connects to it after a wake. One
 * instance (named "groups"); its writes are rare, its reads small.
 */
import { DurableObject } from "cloudflare:workers";
import { isValidId } from "../schema/protocol.ts";

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

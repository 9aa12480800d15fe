/**
 * Who may use the embedded broker, and for what (docs/bridge.md, "Embedded
 * broker: credentials and access"). Sensors log in with a user name and
 * password from the users file; each user may publish to the topics of its
 * groups only, and subscribe only under those groups. The bridge logs in
 * with a random credential of this process, and only it may use the bridge's
 * client id (or any `hub-bridge-` id): otherwise anyone could take over its
 * persistent session and PUBACK its queue away from the hub.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { Client, PublishPacket, Subscription } from "aedes";
import { isValidId } from "../schema/protocol.ts";
import { downlinkGroup } from "./downlink.ts";
import type { TopicTemplate } from "./mapping.ts";

/** One broker user: its scrypt password hash and the groups it may publish to (`*`: any). */
export interface BrokerUser {
  passwordHash: string;
  groups: readonly string[];
}

/** Client ids with this prefix are the bridge's own (the default is `hub-bridge-{gateway}`). */
export const BRIDGE_CLIENT_PREFIX = "hub-bridge-";

// scrypt's cost: about 35 ms and 16 MB per check on a small machine, paid once per CONNECT.
const COST = { N: 16_384, r: 8, p: 1 };
const KEY_BYTES = 32;
const HASH_FORMAT = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{43})$/;

function derive(password: Buffer | string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$salt$key` (base64url), the form the users file stores. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, COST.N, COST.r, COST.p);
  return `scrypt$${COST.N}$${COST.r}$${COST.p}$${salt.toString("base64url")}$${key.toString("base64url")}`;
}

/** True when `password` matches `hash` (compared in constant time). */
export async function verifyPassword(password: Buffer | string, hash: string): Promise<boolean> {
  const m = HASH_FORMAT.exec(hash);
  if (!m) return false;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const key = await derive(password, Buffer.from(m[4] ?? "", "base64url"), N, r, p);
  return timingSafeEqual(key, Buffer.from(m[5] ?? "", "base64url"));
}

/** Checks a hash's shape and cost, so that a bad users file fails at start, not at the first CONNECT. */
function hashProblem(hash: string): string | null {
  const m = HASH_FORMAT.exec(hash);
  if (!m) return "is not an scrypt hash from `npm run -s bridge -- hash-password`";
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Powers of two only (scrypt's rule); bounded so that one CONNECT cannot take seconds or a gigabyte.
  if (N < 1024 || N > 1_048_576 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return "has scrypt parameters out of range";
  return null;
}

/**
 * Validates the users file's JSON: `{ "<user>": { "password": "<scrypt hash>",
 * "groups": ["plant-1", ...] } }`. Throws with a message naming `where`.
 */
export function parseBrokerUsers(raw: unknown, where: string): Map<string, BrokerUser> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected a JSON object of user name to { password, groups }`);
  const out = new Map<string, BrokerUser>();
  for (const [name, entry] of Object.entries(raw)) {
    const at = `${where}: user '${name.slice(0, 64)}'`;
    if (name === "" || name.length > 256) throw new Error(`${at}: a user name has 1 to 256 characters`);
    if (typeof entry !== "object" || entry === null) throw new Error(`${at}: expected { "password": ..., "groups": [...] }`);
    const { password, groups, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new Error(`${at}: unknown key '${extra}'`);
    if (typeof password !== "string") throw new Error(`${at}: "password" must be an scrypt hash`);
    const problem = hashProblem(password);
    if (problem) throw new Error(`${at}: "password" ${problem}`);
    if (!Array.isArray(groups) || groups.length === 0) throw new Error(`${at}: "groups" must list at least one group (or "*")`);
    for (const g of groups) {
      if (g !== "*" && (typeof g !== "string" || !isValidId(g))) throw new Error(`${at}: '${String(g)}' is not a group id or "*"`);
    }
    out.set(name, { passwordHash: password, groups: groups as string[] });
  }
  return out;
}

/** Why the broker refused something: the `reason` label of `bridge_broker_refused_total`. */
export type RefusalReason = "anonymous" | "bad_credentials" | "client_id" | "publish" | "subscribe";
export const REFUSAL_REASONS: readonly RefusalReason[] = ["anonymous", "bad_credentials", "client_id", "publish", "subscribe"];

type Identity = { kind: "bridge" } | { kind: "sensor"; user: string | null; groups: ReadonlySet<string> | "*" };

export interface BrokerPolicyOptions {
  users: ReadonlyMap<string, BrokerUser>;
  /** Clients without a user name are let in, as a user of every group. */
  allowAnonymous: boolean;
  templates: readonly TopicTemplate[];
  /** The only client id, with the only credential, the bridge connects with. */
  bridgeClientId: string;
  onRefused(reason: RefusalReason, detail: Record<string, string>): void;
}

type AuthError = Error & { returnCode: 2 | 4 | 5 };

function refusal(returnCode: 2 | 4 | 5, message: string): AuthError {
  return Object.assign(new Error(message), { returnCode });
}

/** The aedes handlers that enforce the users file. */
export class BrokerPolicy {
  /** The bridge's own credential: random per process, never written anywhere. */
  readonly bridgeUsername = `${BRIDGE_CLIENT_PREFIX}internal`;
  readonly bridgePassword = randomBytes(32).toString("base64url");
  private readonly bridgeDigest = createHash("sha256").update(this.bridgePassword).digest();
  private readonly identities = new WeakMap<Client, Identity>();
  private readonly opts: BrokerPolicyOptions;
  /** Checked for unknown users too, so a reply's timing does not tell which user names exist. */
  private readonly decoy: Promise<string> = hashPassword(randomBytes(16).toString("base64url"));

  constructor(opts: BrokerPolicyOptions) {
    this.opts = opts;
  }

  readonly authenticate = (
    client: Client,
    username: Readonly<string | undefined>,
    password: Readonly<Buffer | undefined>,
    done: (error: AuthError | null, success: boolean | null) => void,
  ): void => {
    this.identify(client.id, username, password).then(
      (id) => {
        if (typeof id === "string") {
          done(refusal(id === "client_id" ? 2 : id === "anonymous" ? 5 : 4, `refused: ${id}`), false);
          return;
        }
        this.identities.set(client, id);
        done(null, true);
      },
      (err: unknown) => done(refusal(5, err instanceof Error ? err.message : String(err)), false),
    );
  };

  private async identify(clientId: string, username: string | undefined, password: Buffer | undefined): Promise<Identity | RefusalReason> {
    const refuse = (reason: RefusalReason): RefusalReason => {
      this.opts.onRefused(reason, { clientId: clientId.slice(0, 100), username: (username ?? "").slice(0, 100) });
      return reason;
    };
    if (username === this.bridgeUsername) {
      const given = createHash("sha256").update(password ?? Buffer.alloc(0)).digest();
      if (!timingSafeEqual(given, this.bridgeDigest)) return refuse("bad_credentials");
      return clientId === this.opts.bridgeClientId ? { kind: "bridge" } : refuse("client_id");
    }
    if (clientId === this.opts.bridgeClientId || clientId.startsWith(BRIDGE_CLIENT_PREFIX)) return refuse("client_id");
    if (username === undefined) return this.opts.allowAnonymous ? { kind: "sensor", user: null, groups: "*" } : refuse("anonymous");
    const user = this.opts.users.get(username);
    const ok = await verifyPassword(password ?? Buffer.alloc(0), user?.passwordHash ?? (await this.decoy));
    if (!user || !ok) return refuse("bad_credentials");
    return { kind: "sensor", user: username, groups: user.groups.includes("*") ? "*" : new Set(user.groups) };
  }

  /**
   * Sensors publish only to their groups' topics (readings, and answers on
   * their downlink topics); the bridge only to downlink topics (commands and
   * configuration). A refusal closes the connection (MQTT 3.1.1 has no negative PUBACK).
   */
  readonly authorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void => {
    const id = client ? this.identities.get(client) : undefined;
    const down = downlinkGroup(packet.topic);
    const group = topicGroup(this.opts.templates, packet.topic) ?? down;
    if ((id?.kind === "sensor" && group !== null && mayUse(id.groups, group)) || (id?.kind === "bridge" && down !== null)) {
      callback(null);
      return;
    }
    this.opts.onRefused("publish", { clientId: (client?.id ?? "").slice(0, 100), topic: packet.topic.slice(0, 200) });
    callback(new Error(`publish to '${packet.topic.slice(0, 200)}' not authorized`));
  };

  /** The bridge subscribes to what its templates need; a sensor only under its own groups (for downlink to its devices). */
  readonly authorizeSubscribe = (client: Client, sub: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void): void => {
    const id = this.identities.get(client);
    const down = downlinkGroup(sub.topic);
    const sensorMay = id?.kind === "sensor" && (filterWithinGroups(this.opts.templates, sub.topic, id.groups) || (down !== null && mayUse(id.groups, down)));
    if (id?.kind === "bridge" || sensorMay) {
      callback(null, sub);
      return;
    }
    this.opts.onRefused("subscribe", { clientId: client.id.slice(0, 100), topic: sub.topic.slice(0, 200) });
    // A null subscription is refused in the SUBACK (0x80); the connection stays.
    callback(null, null);
  };
}

function mayUse(groups: ReadonlySet<string> | "*", group: string): boolean {
  return groups === "*" || groups.has(group);
}

/**
 * The group a topic belongs to: from the first template whose literal
 * levels and length fit it, even when its device or metric level is not a
 * valid id, so that the bridge still counts such a message of the sensor's
 * own group (`bad_topic`) instead of the broker refusing it.
 */
export function topicGroup(templates: readonly TopicTemplate[], topic: string): string | null {
  const parts = topic.split("/");
  for (const t of templates) {
    if (t.levels.length !== parts.length) continue;
    let group = t.group;
    const fits = t.levels.every((l, i) => {
      if (l.kind === "literal") return l.text === parts[i];
      if (l.kind === "group") group = parts[i] ?? null;
      return true;
    });
    if (fits && group !== null && isValidId(group)) return group;
  }
  return null;
}

/**
 * A filter lies within the user's groups when, for some template, it spells
 * the template's levels up to its group literally (no wildcard) and that
 * group is allowed: `sensors/plant-1/#` yes, `sensors/+/boiler-1/temp` or
 * `#` no. For a template without `{group}` (the bridge's `--group`), its
 * leading literal levels must be spelled out.
 */
export function filterWithinGroups(templates: readonly TopicTemplate[], filter: string, groups: ReadonlySet<string> | "*"): boolean {
  if (filter.startsWith("$")) return false;
  const parts = filter.split("/");
  return templates.some((t) => {
    const at = t.levels.findIndex((l) => l.kind === "group");
    const fixed = at === -1 ? t.levels.findIndex((l) => l.kind !== "literal") : at + 1;
    const prefix = fixed === -1 ? t.levels.length : fixed;
    for (let i = 0; i < prefix; i++) {
      const l = t.levels[i];
      const p = parts[i];
      if (l === undefined || p === undefined || p === "#" || p === "+") return false;
      if (l.kind === "literal" && l.text !== p) return false;
    }
    const group = at === -1 ? t.group : (parts[at] ?? "");
    return group !== null && isValidId(group) && mayUse(groups, group);
  });
}

/**
 * SQLite for the downlink stage: the command queue and each device's
 * configuration, through Drizzle. Args, results and configurations are
 * stored as JSON text (they were checked to be plain JSON on the way in).
 */
import { and, asc, desc, eq, inArray, lte, min, sql } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import type { CommandEntry, CommandStatus, ConfigResponse } from "../../../schema/api.ts";
import { commands, deviceConfigs, type CommandRow } from "../../../schema/tables.ts";

/** Statuses of a command still waiting for its device. */
export const OPEN: readonly CommandStatus[] = ["queued", "delivered"];
const FINAL: readonly CommandStatus[] = ["succeeded", "failed", "expired"];
/** Ids per `IN (...)` list: a Durable Object query takes at most 100 bound parameters. */
const ID_CHUNK = 90;

const parse = (s: string | null): unknown => (s === null ? null : JSON.parse(s));

function toStatus(s: string): CommandStatus {
  return (OPEN as readonly string[]).includes(s) || (FINAL as readonly string[]).includes(s) ? (s as CommandStatus) : "failed";
}

/** A command row as the REST routes answer it. */
export function toEntry(r: CommandRow): CommandEntry {
  return {
    id: r.id,
    name: r.name,
    args: parse(r.args),
    status: toStatus(r.status),
    createdAt: r.createdAt,
    deliveredAt: r.deliveredAt,
    completedAt: r.completedAt,
    expiresAt: r.expiresAt,
    result: parse(r.result),
    error: r.error,
  };
}

/** A new command as queued. */
export interface NewCommand {
  id: string;
  device: string;
  name: string;
  args: unknown;
  createdAt: number;
  expiresAt: number;
}

export class DownlinkStore {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  insert(c: NewCommand): CommandRow {
    return this.db
      .insert(commands)
      .values({ id: c.id, device: c.device, name: c.name, args: JSON.stringify(c.args), status: "queued", createdAt: c.createdAt, expiresAt: c.expiresAt })
      .returning()
      .get();
  }

  /** Commands of a device still waiting (queued or delivered, expired or not). */
  countOpen(device: string): number {
    const r = this.db
      .select({ n: sql<number>`count(*)` })
      .from(commands)
      .where(and(eq(commands.device, device), inArray(commands.status, OPEN)))
      .get();
    return r?.n ?? 0;
  }

  /** Waiting commands not yet expired, oldest first: of one device, or of every device (what a gateway may carry). */
  pending(now: number, device?: string): CommandRow[] {
    const who = device === undefined ? undefined : eq(commands.device, device);
    return this.db
      .select()
      .from(commands)
      .where(and(who, inArray(commands.status, OPEN), sql`${commands.expiresAt} > ${now}`))
      .orderBy(asc(commands.createdAt), sql`rowid`)
      .all();
  }

  markDelivered(ids: readonly string[], now: number): void {
    for (let i = 0; i < ids.length; i += ID_CHUNK) {
      this.db
        .update(commands)
        .set({ status: "delivered", deliveredAt: now })
        .where(and(inArray(commands.id, ids.slice(i, i + ID_CHUNK)), inArray(commands.status, OPEN)))
        .run();
    }
  }

  get(id: string): CommandRow | undefined {
    return this.db.select().from(commands).where(eq(commands.id, id)).get();
  }

  /** A device's commands, newest first. */
  list(device: string, limit: number): CommandRow[] {
    return this.db.select().from(commands).where(eq(commands.device, device)).orderBy(desc(commands.createdAt), sql`rowid desc`).limit(limit).all();
  }

  /** Gives a waiting command its final status; the updated row, or undefined if it was not waiting. */
  finish(id: string, status: "succeeded" | "failed", now: number, result: unknown, error: string | null): CommandRow | undefined {
    return this.db
      .update(commands)
      .set({ status, completedAt: now, result: result === undefined ? null : JSON.stringify(result), error })
      .where(and(eq(commands.id, id), inArray(commands.status, OPEN)))
      .returning()
      .get();
  }

  /** Expires up to `limit` waiting commands due at `now`; returns them. */
  expireDue(now: number, limit: number): CommandRow[] {
    const due = this.db
      .select({ id: commands.id })
      .from(commands)
      .where(and(inArray(commands.status, OPEN), lte(commands.expiresAt, now)))
      .limit(Math.min(limit, ID_CHUNK))
      .all()
      .map((r) => r.id);
    if (due.length === 0) return [];
    return this.db.update(commands).set({ status: "expired", completedAt: now }).where(inArray(commands.id, due)).returning().all();
  }

  /** When the next waiting command expires, or null. */
  nextExpiry(): number | null {
    const r = this.db.select({ at: min(commands.expiresAt) }).from(commands).where(inArray(commands.status, OPEN)).get();
    return r?.at ?? null;
  }

  /** Keeps the newest `keep` finished commands of a device, deleting older ones. */
  prune(device: string, keep: number): void {
    const cutoff = this.db
      .select({ createdAt: commands.createdAt })
      .from(commands)
      .where(and(eq(commands.device, device), inArray(commands.status, FINAL)))
      .orderBy(desc(commands.createdAt))
      .limit(1)
      .offset(keep)
      .get();
    if (!cutoff) return;
    this.db
      .delete(commands)
      .where(and(eq(commands.device, device), inArray(commands.status, FINAL), lte(commands.createdAt, cutoff.createdAt)))
      .run();
  }

  config(device: string): ConfigResponse {
    const r = this.db.select().from(deviceConfigs).where(eq(deviceConfigs.device, device)).get();
    if (!r) return { desired: {}, version: 0, reported: null, appliedVersion: 0 };
    return { desired: parse(r.desired) as Record<string, unknown>, version: r.version, reported: parse(r.reported) as Record<string, unknown> | null, appliedVersion: r.appliedVersion };
  }

  /** Stores a new desired configuration; returns its version (one more than the last). */
  putConfig(device: string, desired: Record<string, unknown>, now: number): number {
    const text = JSON.stringify(desired);
    const r = this.db
      .insert(deviceConfigs)
      .values({ device, desired: text, version: 1, updatedAt: now })
      .onConflictDoUpdate({ target: deviceConfigs.device, set: { desired: text, version: sql`${deviceConfigs.version} + 1`, updatedAt: now } })
      .returning({ version: deviceConfigs.version })
      .get();
    return r.version;
  }

  /** Devices whose desired version is ahead of the applied one. */
  unappliedConfigs(): string[] {
    return this.db
      .select({ device: deviceConfigs.device })
      .from(deviceConfigs)
      .where(sql`${deviceConfigs.appliedVersion} < ${deviceConfigs.version}`)
      .all()
      .map((r) => r.device);
  }

  /** Records that a device applied `version` (only if newer than what it reported before). */
  applied(device: string, version: number, reported: Record<string, unknown> | undefined, now: number): void {
    const set: Partial<typeof deviceConfigs.$inferInsert> = { appliedVersion: version, updatedAt: now };
    if (reported !== undefined) set.reported = JSON.stringify(reported);
    this.db
      .update(deviceConfigs)
      .set(set)
      .where(and(eq(deviceConfigs.device, device), sql`${deviceConfigs.appliedVersion} < ${version}`))
      .run();
  }
}

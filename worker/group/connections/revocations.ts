/**
 * Revoked devices and gateways (docs/security.md, "Revocation"). A revoked
 * peer still holds a validly signed token, so the check has to live here,
 * in the group, not in the Worker: it is refused at connect, and its open
 * socket is closed the moment it is revoked.
 *
 * The in-memory set is a cache of the table, loaded on first use after a wake.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { revocations } from "../../../schema/tables.ts";
import type { PeerKind } from "../peer.ts";

export interface Revocation {
  kind: PeerKind;
  id: string;
  revokedAt: number;
}

export class Revocations {
  private readonly db: DrizzleSqliteDODatabase;
  private cache: Set<string> | null = null;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  private set(): Set<string> {
    this.cache ??= new Set(this.db.select().from(revocations).all().map((r) => `${r.kind}:${r.id}`));
    return this.cache;
  }

  isRevoked(kind: PeerKind, id: string): boolean {
    return this.set().has(`${kind}:${id}`);
  }

  list(): Revocation[] {
    return this.db
      .select()
      .from(revocations)
      .orderBy(revocations.kind, revocations.id)
      .all()
      .map((r) => ({ kind: r.kind === "gateway" ? "gateway" : "device", id: r.id, revokedAt: r.revokedAt }));
  }

  revoke(kind: PeerKind, id: string, now: number): Revocation {
    this.db.insert(revocations).values({ kind, id, revokedAt: now }).onConflictDoNothing().run();
    this.set().add(`${kind}:${id}`);
    const row = this.db.select().from(revocations).where(and(eq(revocations.kind, kind), eq(revocations.id, id))).get();
    return { kind, id, revokedAt: row?.revokedAt ?? now };
  }

  /** Returns whether there was a revocation to lift. */
  restore(kind: PeerKind, id: string): boolean {
    const existed = this.isRevoked(kind, id);
    this.db.delete(revocations).where(and(eq(revocations.kind, kind), eq(revocations.id, id))).run();
    this.set().delete(`${kind}:${id}`);
    return existed;
  }
}

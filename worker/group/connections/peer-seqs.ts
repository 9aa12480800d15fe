/**
 * Operator resets of a peer's lastSeq (docs/protocol.md, "Resetting a
 * seq"), with their audit trail. A seq pushed to the top of its range
 * (or far past where a device numbers) would leave the id unable to send;
 * the operator sets it back, and every reset is kept with who asked, when,
 * and the old and new values.
 *
 * The group commit caches each peer's highest seq: the caller runs `reset`
 * through the ingest stage's `resetSeq`, which commits pending batches first
 * and drops that cache after.
 */
import { and, desc, eq } from "drizzle-orm";
import type { DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { devices, gateways, seqResets } from "../../../schema/tables.ts";
import type { Peer } from "../peer.ts";

/** One audited reset. */
export interface SeqReset {
  at: number;
  by: string;
  oldSeq: number;
  newSeq: number;
}

/** A peer's stored seq and its most recent resets, newest first. */
export interface PeerSeq {
  lastSeq: number;
  resets: SeqReset[];
}

/** Resets kept in an answer (the table keeps them all). */
const RESETS_SHOWN = 50;

export class PeerSeqs {
  private readonly db: DrizzleSqliteDODatabase;

  constructor(db: DrizzleSqliteDODatabase) {
    this.db = db;
  }

  /** The peer's lastSeq and resets; null if it never connected. */
  get(peer: Peer): PeerSeq | null {
    const table = peer.kind === "device" ? devices : gateways;
    const row = this.db.select({ lastSeq: table.lastSeq }).from(table).where(eq(table.id, peer.id)).get();
    if (!row) return null;
    const resets = this.db
      .select({ at: seqResets.at, by: seqResets.by, oldSeq: seqResets.oldSeq, newSeq: seqResets.newSeq })
      .from(seqResets)
      .where(and(eq(seqResets.kind, peer.kind), eq(seqResets.peer, peer.id)))
      .orderBy(desc(seqResets.id))
      .limit(RESETS_SHOWN)
      .all();
    return { lastSeq: row.lastSeq, resets };
  }

  /** Sets the peer's lastSeq and records who did it, in one transaction; null if it never connected. */
  reset(peer: Peer, newSeq: number, by: string, now: number): PeerSeq | null {
    const table = peer.kind === "device" ? devices : gateways;
    const done = this.db.transaction((tx) => {
      const row = tx.select({ lastSeq: table.lastSeq }).from(table).where(eq(table.id, peer.id)).get();
      if (!row) return false;
      tx.update(table).set({ lastSeq: newSeq }).where(eq(table.id, peer.id)).run();
      tx.insert(seqResets).values({ kind: peer.kind, peer: peer.id, oldSeq: row.lastSeq, newSeq, by, at: now }).run();
      return true;
    });
    return done ? this.get(peer) : null;
  }
}

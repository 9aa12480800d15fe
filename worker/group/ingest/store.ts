/**
 * The group's SQLite, through Drizzle. All writes of a group commit happen
 * in one `transactionSync`, so a batch's buckets (minute, hour and day:
 * history/writer.ts) and its device's (or gateway's) lastSeq are durable
 * together or not at all.
 */
import { asc, eq, sql } from "drizzle-orm";
import { drizzle, type DrizzleSqliteDODatabase } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import migrations from "../../../schema/migrations/migrations.js";
import { devices, gateways } from "../../../schema/tables.ts";
import { BucketWriter, type GroupDb } from "../history/writer.ts";
import { PEER_KINDS, type ByKind, type Peer } from "../peer.ts";
import type { Collapsed, PeerDelta } from "./collapse.ts";

export { SumOverflow } from "../history/writer.ts";

/** Peer rows per multi-row upsert: 6 bound parameters each, and a Durable Object query takes at most 100. */
const PEER_CHUNK = 16;
const NO_DELTA: PeerDelta = { lastSeq: 0, readings: 0, batches: 0 };

export interface DeviceSummary {
  id: string;
  lastSeq: number;
  lastSeen: number;
  readings: number;
}


/** A device or gateway row of placeholders; both first and last seen are the commit's `now`. */
function peerRow(id: string, seq: string, readings: string, batches: string) {
  return {
    id: sql.placeholder(id),
    lastSeq: sql.placeholder(seq),
    lastSeen: sql.placeholder("now"),
    firstSeen: sql.placeholder("now"),
    readings: sql.placeholder(readings),
    batches: sql.placeholder(batches),
  };
}

/** How a commit's counters merge into an existing device or gateway row (`excluded.*` is the new one). */
function mergePeer(t: typeof devices | typeof gateways) {
  return {
    lastSeq: sql`max(${t.lastSeq}, excluded.last_seq)`,
    lastSeen: sql`excluded.last_seen`,
    readings: sql`${t.readings} + excluded.readings`,
    batches: sql`${t.batches} + excluded.batches`,
  };
}

/** The statements of one peer table; devices and gateways have the same columns. */
function peerStatements(db: DrizzleSqliteDODatabase, t: typeof devices | typeof gateways) {
  return {
    upsertOne: db
      .insert(t)
      .values(peerRow("id", "lastSeq", "readings", "batches"))
      .onConflictDoUpdate({ target: t.id, set: mergePeer(t) })
      .prepare(),
    // A commit of gateway batches touches many devices; one statement per
    // PEER_CHUNK rows costs less than one per row.
    upsertChunk: db
      .insert(t)
      .values(Array.from({ length: PEER_CHUNK }, (_, i) => peerRow(`id${i}`, `s${i}`, `r${i}`, `b${i}`)))
      .onConflictDoUpdate({ target: t.id, set: mergePeer(t) })
      .prepare(),
    selectLastSeq: db
      .select({ lastSeq: t.lastSeq })
      .from(t)
      .where(eq(t.id, sql.placeholder("id")))
      .prepare(),
  };
}

type PeerStatements = ReturnType<typeof peerStatements>;

export class Store {
  /** Shared with the other stages' stores (alerts, live). */
  readonly db: GroupDb;
  // Prepared once per object: the ingest path runs these statements for every
  // collapsed row, and building the upsert through the query builder each
  // time cost more than executing it (see docs/benchmarks.md). The runtime
  // caches the compiled SQLite statement by text.
  /** Bucket writes of every resolution (history/writer.ts), in the commit's transaction. */
  readonly buckets: BucketWriter;
  private readonly peers: ByKind<PeerStatements>;

  /** `rollups: false` (minute buckets only) and `counts: false` (no bucket counts) are bench:history's baselines, never the hub's. */
  constructor(storage: DurableObjectStorage, rollups = true, counts = true) {
    this.db = drizzle(storage, { logger: false });
    this.buckets = new BucketWriter(this.db, rollups, counts);
    this.peers = { device: peerStatements(this.db, devices), gateway: peerStatements(this.db, gateways) };
  }

  /** Applies the drizzle-kit migrations that this database has not seen yet. */
  async migrate(): Promise<void> {
    await migrate(this.db, migrations);
  }

  /** Highest seq applied for a device or gateway (0 if none). */
  lastSeq(peer: Peer): number {
    return this.peers[peer.kind].selectLastSeq.get({ id: peer.id })?.lastSeq ?? 0;
  }

  /** Records a connect: creates the peer's row if it is new, otherwise marks it seen. */
  touch(peer: Peer, now: number): void {
    this.peers[peer.kind].upsertOne.run({ id: peer.id, lastSeq: 0, now, readings: 0, batches: 0 });
  }

  /**
   * Commits one group commit's worth of collapsed batches in a single
   * transaction, together with whatever `also` writes (alerts, counters).
   */
  commit(c: Collapsed, now: number, also?: () => void): void {
    try {
      this.db.transaction(() => {
        also?.();
        for (const kind of PEER_KINDS) this.upsertPeers(this.peers[kind], c.peers[kind], now);
        this.buckets.write(c.aggregates);
      });
    } catch (err) {
      this.buckets.forget();
      throw err;
    }
  }

  private upsertPeers(st: PeerStatements, deltas: Map<string, PeerDelta>, now: number): void {
    const rows = [...deltas];
    const full = rows.length - (rows.length % PEER_CHUNK);
    for (let base = 0; base < full; base += PEER_CHUNK) {
      const params: Record<string, string | number> = { now };
      for (let i = 0; i < PEER_CHUNK; i++) {
        const [id, d] = rows[base + i] ?? ["", NO_DELTA];
        params[`id${i}`] = id;
        params[`s${i}`] = d.lastSeq;
        params[`r${i}`] = d.readings;
        params[`b${i}`] = d.batches;
      }
      st.upsertChunk.run(params);
    }
    for (let k = full; k < rows.length; k++) {
      const [id, d] = rows[k] ?? ["", NO_DELTA];
      st.upsertOne.run({ id, lastSeq: d.lastSeq, now, readings: d.readings, batches: d.batches });
    }
  }

  listDevices(): DeviceSummary[] {
    return this.db
      .select({ id: devices.id, lastSeq: devices.lastSeq, lastSeen: devices.lastSeen, readings: devices.readings })
      .from(devices)
      .orderBy(asc(devices.id))
      .all();
  }
}

/**
 * The group's readings/s over the last 15 minutes, for the dashboard's chart
 * (`GET /v1/groups/{group}/rates`): readings applied per 10-second slot of
 * hub receive time, in a ring of 90 slots.
 *
 * Each slot is a key in the object's synchronous KV storage (part of its
 * SQLite database), written inside the group commit's transaction, so the
 * counts are durable with the batches they count: hibernation, eviction and
 * restarts lose nothing. The in-memory copy is only a cache, re-read on first
 * use after a wake. Storage stays bounded: a slot's key is its position in
 * the ring, so a new slot overwrites the one 15 minutes older.
 */
import type { RatesResponse } from "../../../schema/api.ts";

/** Slot length, ms. */
export const RATE_SLOT_MS = 10_000;
/** Slots kept: 15 minutes. */
export const RATE_SLOTS = 90;
const PREFIX = "rate:";

export class RateHistory {
  private readonly kv: SyncKvStorage;
  /** Slot start (ms) -> readings; null until read from storage. */
  private slots: Map<number, number> | null = null;

  constructor(kv: SyncKvStorage) {
    this.kv = kv;
  }

  private load(): Map<number, number> {
    if (this.slots) return this.slots;
    const slots = new Map<number, number>();
    for (const [, value] of this.kv.list<unknown>({ prefix: PREFIX })) {
      // Stored as [slotStart, count]; anything else is not ours to trust.
      if (!Array.isArray(value) || value.length !== 2) continue;
      const [start, count] = value as unknown[];
      if (typeof start === "number" && typeof count === "number") slots.set(start, count);
    }
    this.slots = slots;
    return slots;
  }

  /** The transaction `add` wrote in rolled back: read the counts from storage again. */
  forget(): void {
    this.slots = null;
  }

  /** Counts `n` applied readings at hub time `now`. Call inside the commit's transaction. */
  add(n: number, now: number): void {
    if (n <= 0) return;
    const slots = this.load();
    const start = Math.floor(now / RATE_SLOT_MS) * RATE_SLOT_MS;
    const count = (slots.get(start) ?? 0) + n;
    const index = (start / RATE_SLOT_MS) % RATE_SLOTS;
    const displaced = start - RATE_SLOTS * RATE_SLOT_MS;
    slots.delete(displaced);
    slots.set(start, count);
    this.kv.put(`${PREFIX}${index}`, [start, count]);
  }

  /** The last 15 minutes, one count per slot, oldest first; slots without readings are 0. */
  series(now: number): RatesResponse {
    const slots = this.load();
    const last = Math.floor(now / RATE_SLOT_MS) * RATE_SLOT_MS;
    const from = last - (RATE_SLOTS - 1) * RATE_SLOT_MS;
    const readings: number[] = [];
    for (let t = from; t <= last; t += RATE_SLOT_MS) readings.push(slots.get(t) ?? 0);
    for (const start of slots.keys()) if (start < from) slots.delete(start);
    return { stepMs: RATE_SLOT_MS, from, at: now, readings };
  }
}

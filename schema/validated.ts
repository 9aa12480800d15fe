/**
 * What every validator returns, and the one test of "is this a map": shared
 * by the v1 validators (./validate.ts) and the compact-batch validator
 * (./cbatch.ts), which validate.ts dispatches to.
 */
import { MAX_SEQ, type ErrorCode } from "./protocol.ts";
import type { Limits } from "./limits.ts";

/** A rejected frame: the error frame the hub sends back. */
export interface Rejection {
  ok: false;
  code: ErrorCode;
  message: string;
  /** The frame's seq, when it could be read. */
  seq?: number;
}

export type Validated<T> = { ok: true; frame: T } | Rejection;

/** Clock window a batch is checked against. */
export interface TimeWindow {
  now: number;
  limits: Pick<Limits, "maxReadingsPerBatch" | "maxFutureMs" | "maxPastMs">;
}

/**
 * True for a decoded top-level item the hub treats as a map: a plain object.
 * Arrays, byte strings and Maps are objects too, and so is what cbor-x makes
 * of a tagged item (a Date, Set, Error, typed array or Tag); none is a map.
 */
export function isMap(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** A {@link Rejection}, carrying `seq` once the frame's seq has been read. */
export function reject(code: ErrorCode, message: string, seq?: number): Rejection {
  return seq === undefined ? { ok: false, code, message } : { ok: false, code, message, seq };
}

/** A seq: an integer from 1 to 2^53 - 1. */
export function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 1 && v <= MAX_SEQ;
}

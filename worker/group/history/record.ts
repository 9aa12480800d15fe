/**
 * What a row costs on its B-tree page, computed from SQLite's record format
 * (https://www.sqlite.org/fileformat2.html#record_format and "B-tree
 * Pages"): a header of one serial type per column, the column bodies, and
 * per cell the payload's size as a varint and a 2-byte cell pointer. The
 * packer compares plain minute rows against the parts that would replace
 * them with it, value by value, instead of a rule of thumb.
 */

/** Bytes of `n` as an SQLite varint. */
function varintBytes(n: number): number {
  let bytes = 1;
  for (let v = n; v >= 0x80 && bytes < 9; v = Math.floor(v / 0x80)) bytes++;
  return bytes;
}

/** Body bytes of an integer (serial types 1-6; 0 and 1 take none, types 8 and 9). */
function intBody(v: number): number {
  if (v === 0 || v === 1) return 0;
  const a = v < 0 ? -v - 1 : v;
  return a < 0x80 ? 1 : a < 0x8000 ? 2 : a < 0x800000 ? 3 : a < 0x80000000 ? 4 : a < 2 ** 47 ? 6 : 8;
}

/** A column's value as stored: an integer, a REAL, or a blob. */
export type Cell = { int: number } | { real: number } | { blob: number };

/** Body bytes and serial type's varint bytes of one column. */
function columnBytes(c: Cell): { body: number; type: number } {
  if ("int" in c) return { body: intBody(c.int), type: 1 };
  if ("blob" in c) return { body: c.blob, type: varintBytes(c.blob * 2 + 12) };
  // A REAL column stores an integral value that fits 6 bytes as an integer (SQLite's MEM_IntReal).
  const v = c.real;
  return Number.isInteger(v) && Math.abs(v) < 2 ** 47 ? { body: intBody(v), type: 1 } : { body: 8, type: 1 };
}

/** The record's payload bytes (header and bodies). */
export function payloadBytes(columns: readonly Cell[]): number {
  let header = 0;
  let body = 0;
  for (const c of columns) {
    const b = columnBytes(c);
    header += b.type;
    body += b.body;
  }
  return varintBytes(header + 1) + header + body;
}

/** SQLite's page size on a Durable Object (and SQLite's default). */
const PAGE = 4096;
/** The most and least of its payload an index B-tree cell keeps on its page ("B-tree Pages": X and M, with U = PAGE). */
export const MAX_LOCAL = Math.floor(((PAGE - 12) * 64) / 255) - 23;
const MIN_LOCAL = Math.floor(((PAGE - 12) * 32) / 255) - 23;

/**
 * The bytes a row of an index B-tree (a WITHOUT ROWID table) takes: its
 * leaf cell (the payload's size as a varint, the payload kept on the page,
 * the cell pointer) and, past MAX_LOCAL, the 4-byte overflow pointer and
 * every overflow page the rest of it fills.
 */
export function cellBytes(columns: readonly Cell[]): number {
  const p = payloadBytes(columns);
  if (p <= MAX_LOCAL) return varintBytes(p) + p + 2;
  const k = MIN_LOCAL + ((p - MIN_LOCAL) % (PAGE - 4));
  const local = k <= MAX_LOCAL ? k : MIN_LOCAL;
  return varintBytes(p) + local + 4 + 2 + Math.ceil((p - local) / (PAGE - 4)) * PAGE;
}

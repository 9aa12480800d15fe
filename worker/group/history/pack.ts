/**
 * The packed form of one series' closed hour of minute buckets
 * (docs/history.md, "Packed hours"): up to 60 buckets in one blob instead
 * of 60 rows. Exact: every field comes back bit for bit (float64 by its
 * bits, -0 included).
 *
 * Layout: a version byte (1); a 64-bit little-endian bitmap of the minutes
 * present (bit m: minute m of the hour); then per present minute, in order:
 * a flags byte (bit 0: min equals sum, bit 1: max equals sum, bit 2: last
 * equals sum, all bitwise; a one-reading minute sets all three), count,
 * first offset and last minus first offset as unsigned varints, then sum
 * XORed with the previous minute's sum, and min, max and last (those not
 * flagged) XORed with this minute's sum. An XOR is written as in Gorilla
 * (https://www.vldb.org/pvldb/vol8/p1816-teller.pdf), by bytes: a header
 * (leading zero bytes << 4 | trailing zero bytes) and the bytes between;
 * slowly moving values share sign, exponent and high mantissa, so they take
 * a few bytes instead of eight.
 *
 * An hour whose blob would exceed MAX_PART_BYTES is split into parts of
 * consecutive minutes (`packParts`), each a blob of this same layout holding
 * only its minutes, so that every part's row stays on its B-tree page
 * (docs/history.md, "Packed hours", has the arithmetic).
 */

/** One minute bucket of a packed hour: `minute` 0-59 within the hour, offsets in ms from the minute's start. */
export interface PackedMinute {
  minute: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  firstOff: number;
  lastOff: number;
  last: number;
}

const VERSION = 1;

class Writer {
  private buf = new Uint8Array(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.length++] = b;
  }

  varint(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a varint: ${n}`);
    let v = n;
    while (v >= 0x80) {
      this.byte((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.byte(v);
  }

  /** The XOR of two float64s' bits, by bytes. */
  xor(a: Bits, b: Bits): void {
    const x = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 8; i++) x[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
    let lead = 0;
    while (lead < 8 && x[lead] === 0) lead++;
    if (lead === 8) {
      this.byte(0x80);
      return;
    }
    let trail = 0;
    while (x[7 - trail] === 0) trail++;
    this.byte((lead << 4) | trail);
    for (let i = lead; i < 8 - trail; i++) this.byte(x[i] ?? 0);
  }

  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

class Reader {
  private readonly buf: Uint8Array;
  private at = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  byte(): number {
    const b = this.buf[this.at++];
    if (b === undefined) throw new RangeError("packed hour ends early");
    return b;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.byte();
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
  }

  xor(base: Bits): Bits {
    const h = this.byte();
    const out: Bits = [...base];
    if (h === 0x80) return out;
    const lead = h >> 4;
    const trail = h & 0x0f;
    for (let i = lead; i < 8 - trail; i++) out[i] = (base[i] ?? 0) ^ this.byte();
    return out;
  }

  get done(): boolean {
    return this.at === this.buf.length;
  }
}

/** A float64's 8 bytes, big-endian (sign and exponent first, so shared high bits lead). */
type Bits = number[];

const scratch = new DataView(new ArrayBuffer(8));

function bitsOf(v: number): Bits {
  scratch.setFloat64(0, v);
  return [0, 1, 2, 3, 4, 5, 6, 7].map((i) => scratch.getUint8(i));
}

const ZERO = bitsOf(0);

function valueOf(b: Bits): number {
  for (let i = 0; i < 8; i++) scratch.setUint8(i, b[i] ?? 0);
  return scratch.getFloat64(0);
}

function same(a: Bits, b: Bits): boolean {
  for (let i = 0; i < 8; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Packs the minute buckets of one hour (any order, minutes distinct). */
export function packHour(minutes: readonly PackedMinute[]): Uint8Array {
  const sorted = [...minutes].sort((a, b) => a.minute - b.minute);
  const w = new Writer();
  w.byte(VERSION);
  let lo = 0;
  let hi = 0;
  for (const m of sorted) {
    if (!Number.isInteger(m.minute) || m.minute < 0 || m.minute > 59) throw new RangeError(`minute ${m.minute} is not 0-59`);
    if (m.minute < 32) lo |= 1 << m.minute;
    else hi |= 1 << (m.minute - 32);
  }
  for (const word of [lo, hi]) for (let i = 0; i < 4; i++) w.byte((word >>> (8 * i)) & 0xff);
  let prevSum = ZERO;
  for (const m of sorted) prevSum = writeMinute(w, m, prevSum);
  return w.bytes();
}

/** A version byte and the 8-byte bitmap: what every part costs before its minutes. */
const HEADER_BYTES = 9;

/** Writes one minute after the minute whose sum is `prevSum`; returns this minute's sum. */
function writeMinute(w: Writer, m: PackedMinute, prevSum: Bits): Bits {
  const sum = bitsOf(m.sum);
  const min = bitsOf(m.min);
  const max = bitsOf(m.max);
  const last = bitsOf(m.last);
  const flags = (same(min, sum) ? 1 : 0) | (same(max, sum) ? 2 : 0) | (same(last, sum) ? 4 : 0);
  w.byte(flags);
  w.varint(m.count);
  w.varint(m.firstOff);
  w.varint(m.lastOff - m.firstOff);
  w.xor(sum, prevSum);
  if (!(flags & 1)) w.xor(min, sum);
  if (!(flags & 2)) w.xor(max, sum);
  if (!(flags & 4)) w.xor(last, sum);
  return sum;
}

/**
 * Largest blob of one part. A part's row is its record header (7 bytes),
 * series id, first and last minute index (4 bytes each at most), minute
 * count and this blob: at most 920 bytes of payload, under the 1,002 that
 * an index B-tree cell (a WITHOUT ROWID row) keeps on a 4,096-byte page
 * before spilling the rest into an overflow page of its own
 * (https://www.sqlite.org/fileformat2.html, "B-tree Pages": maxLocal =
 * (U-12)*64/255-23).
 */
export const MAX_PART_BYTES = 900;

/** One part of a packed hour: its minutes (in order) and their blob. */
export interface PackedPart {
  minutes: PackedMinute[];
  data: Uint8Array;
}

/**
 * Packs the minute buckets of one hour into as few parts of consecutive
 * minutes as keep each blob within `maxBytes`, of about equal size (one
 * part when the hour fits). Each part starts its XOR chain anew.
 */
export function packParts(minutes: readonly PackedMinute[], maxBytes = MAX_PART_BYTES): PackedPart[] {
  const sorted = [...minutes].sort((a, b) => a.minute - b.minute);
  const whole = packHour(sorted);
  if (whole.length <= maxBytes) return [{ minutes: sorted, data: whole }];
  // Close a part once it reaches an even share of the whole, never past maxBytes.
  const target = whole.length / Math.ceil(whole.length / maxBytes);
  const w = new Writer();
  const cost = (m: PackedMinute, prev: Bits): number => {
    w.reset();
    writeMinute(w, m, prev);
    return w.length;
  };
  const groups: PackedMinute[][] = [];
  let part: PackedMinute[] = [];
  let size = HEADER_BYTES;
  let prev = ZERO;
  for (const m of sorted) {
    let c = cost(m, prev);
    if (part.length > 0 && size + c > maxBytes) {
      groups.push(part);
      part = [];
      size = HEADER_BYTES;
      c = cost(m, ZERO);
    }
    part.push(m);
    size += c;
    prev = bitsOf(m.sum);
    if (size >= target) {
      groups.push(part);
      part = [];
      size = HEADER_BYTES;
      prev = ZERO;
    }
  }
  if (part.length > 0) groups.push(part);
  return groups.map((g) => ({ minutes: g, data: packHour(g) }));
}

/** The minute buckets of a packed hour, in minute order. */
export function unpackHour(data: Uint8Array): PackedMinute[] {
  const r = new Reader(data);
  const version = r.byte();
  if (version !== VERSION) throw new RangeError(`packed hour of unknown version ${version}`);
  const present: number[] = [];
  for (let word = 0; word < 2; word++) {
    let v = 0;
    for (let i = 0; i < 4; i++) v |= r.byte() << (8 * i);
    for (let b = 0; b < 32; b++) if (v & (1 << b)) present.push(word * 32 + b);
  }
  const out: PackedMinute[] = [];
  let prevSum = ZERO;
  for (const minute of present) {
    const flags = r.byte();
    const count = r.varint();
    const firstOff = r.varint();
    const lastOff = firstOff + r.varint();
    const sum = r.xor(prevSum);
    const min = flags & 1 ? sum : r.xor(sum);
    const max = flags & 2 ? sum : r.xor(sum);
    const last = flags & 4 ? sum : r.xor(sum);
    out.push({ minute, count, sum: valueOf(sum), min: valueOf(min), max: valueOf(max), firstOff, lastOff, last: valueOf(last) });
    prevSum = sum;
  }
  if (!r.done) throw new RangeError("packed hour has trailing bytes");
  return out;
}

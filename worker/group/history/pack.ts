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
  let prevSum = bitsOf(0);
  for (const m of sorted) {
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
    prevSum = sum;
  }
  return w.bytes();
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
  let prevSum = bitsOf(0);
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

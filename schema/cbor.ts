/**
 * Plain RFC 8949 CBOR for protocol frames.
 *
 * Encoding is hand-written so that what goes on the wire is exactly the core
 * data model any CBOR library reads (cbor2, tinycbor, cborg, ...): maps with
 * text keys, arrays, text, integers as major types 0/1 with the shortest
 * head, non-integers as float64, booleans and null. No tags, no records, no
 * indefinite lengths. cbor-x's default encoder, by contrast, writes integers
 * above 2^32 (millisecond timestamps) as floats and can emit its own
 * record extension.
 *
 * Decoding uses cbor-x with its extensions turned off; the result is
 * `unknown` and must go through a validator in ./validate.ts.
 */
import { Decoder } from "cbor-x";

/** Values the encoder accepts. */
export type CborValue =
  | number
  | string
  | boolean
  | null
  | undefined
  | readonly CborValue[]
  | { readonly [key: string]: CborValue };

const textEncoder = new TextEncoder();

class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  head(major: number, n: number): void {
    this.ensure(9);
    const m = major << 5;
    if (n < 24) {
      this.buf[this.pos++] = m | n;
    } else if (n < 0x100) {
      this.buf[this.pos++] = m | 24;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = m | 25;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else if (n < 0x100000000) {
      this.buf[this.pos++] = m | 26;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    } else {
      this.buf[this.pos++] = m | 27;
      this.view.setUint32(this.pos, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 4, n >>> 0);
      this.pos += 8;
    }
  }
  text(s: string): void {
    // Short ASCII strings (metric names, keys) are the common case; copy them
    // byte by byte instead of paying TextEncoder's call overhead.
    const len = s.length;
    if (len < 64) {
      let ascii = true;
      for (let i = 0; i < len; i++) {
        if (s.charCodeAt(i) > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        this.head(3, len);
        this.ensure(len);
        for (let i = 0; i < len; i++) this.buf[this.pos++] = s.charCodeAt(i);
        return;
      }
    }
    const bytes = textEncoder.encode(s);
    this.head(3, bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }
  number(n: number): void {
    if (Number.isSafeInteger(n)) {
      if (n >= 0) this.head(0, n);
      else this.head(1, -1 - n);
      return;
    }
    this.ensure(9);
    this.buf[this.pos++] = 0xfb;
    this.view.setFloat64(this.pos, n);
    this.pos += 8;
  }
  value(v: CborValue): void {
    switch (typeof v) {
      case "number":
        this.number(v);
        return;
      case "string":
        this.text(v);
        return;
      case "boolean":
        this.ensure(1);
        this.buf[this.pos++] = v ? 0xf5 : 0xf4;
        return;
      case "undefined":
        this.ensure(1);
        this.buf[this.pos++] = 0xf6;
        return;
      case "object":
        if (v === null) {
          this.ensure(1);
          this.buf[this.pos++] = 0xf6;
        } else if (Array.isArray(v)) {
          const arr = v as readonly CborValue[];
          this.head(4, arr.length);
          for (const item of arr) this.value(item);
        } else {
          const obj = v as { readonly [key: string]: CborValue };
          const keys = Object.keys(obj).filter((k) => obj[k] !== undefined);
          this.head(5, keys.length);
          for (const k of keys) {
            this.text(k);
            this.value(obj[k]);
          }
        }
        return;
      default:
        throw new TypeError(`cannot encode ${typeof v} as protocol CBOR`);
    }
  }
}

/**
 * Encodes a value as plain RFC 8949 CBOR (see the module comment for the
 * subset). Map entries whose value is `undefined` are omitted.
 */
export function encodeCbor(value: CborValue, sizeHint = 256): Uint8Array {
  const w = new Writer(sizeHint);
  w.value(value);
  return w.buf.subarray(0, w.pos);
}

// cbor-x extensions are all off: no records (which also need `new Function`,
// unavailable in Workers), no structured clone, no string bundling. 64-bit
// integers decode as numbers so validators see one numeric type; values above
// 2^53 lose precision and are rejected by the validators' safe-integer checks.
// maxArraySize / maxMapSize are not per-instance in cbor-x; a frame is already
// bounded by the frame size limit, which bounds the decoded size too.
// (`int64AsNumber` is read by decode.js but missing from cbor-x's typings.)
const decoderOptions = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsNumber: true,
  structuredClone: false,
  bundleStrings: false,
  sequential: false,
};
const decoder = new Decoder(decoderOptions);

/** Result of {@link decodeCbor}. */
export type DecodeResult = { ok: true; value: unknown } | { ok: false; message: string };

/**
 * Decodes exactly one CBOR item that must fill the whole input. Never
 * throws: malformed input yields `{ ok: false }`.
 */
export function decodeCbor(bytes: Uint8Array): DecodeResult {
  try {
    return { ok: true, value: decoder.decode(bytes) as unknown };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : "malformed CBOR" };
  }
}

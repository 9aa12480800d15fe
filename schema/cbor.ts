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
import { Decoder, addExtension } from "cbor-x";
import { decodeTypedArray, TYPED_ARRAY_TAGS } from "./cbatch-tags.ts";

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

/**
 * Writes plain CBOR into a growable buffer. Exported for encoders of
 * particular frames (schema/cbatch-encode.ts) that write heads and typed
 * arrays directly; everything else uses {@link encodeCbor}.
 */
export class CborWriter {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  // Small enough for V8 to inline at every call site; growing is the rare path.
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }
  grow(n: number): void {
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
    const buf = this.buf;
    if (n < 24) {
      buf[this.pos++] = m | n;
    } else if (n < 0x100) {
      buf[this.pos] = m | 24;
      buf[this.pos + 1] = n;
      this.pos += 2;
    } else if (n < 0x10000) {
      buf[this.pos] = m | 25;
      this.view.setUint16(this.pos + 1, n);
      this.pos += 3;
    } else if (n < 0x100000000) {
      buf[this.pos] = m | 26;
      this.view.setUint32(this.pos + 1, n);
      this.pos += 5;
    } else {
      buf[this.pos] = m | 27;
      this.view.setUint32(this.pos + 1, Math.floor(n / 0x100000000));
      this.view.setUint32(this.pos + 5, n >>> 0);
      this.pos += 9;
    }
  }
  text(s: string): void {
    // Short ASCII strings (metric names, keys) are the common case; copy them
    // byte by byte instead of paying TextEncoder's call overhead.
    const len = s.length;
    if (len < 24) {
      // One byte of head, then the bytes; give up on the first non-ASCII character.
      this.ensure(1 + len);
      const buf = this.buf;
      const at = this.pos;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[at + 1 + i] = c;
      }
      if (i === len) {
        buf[at] = 0x60 | len;
        this.pos = at + 1 + len;
        return;
      }
    } else if (len < 64) {
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
        const buf = this.buf;
        const at = this.pos;
        for (let i = 0; i < len; i++) buf[at + i] = s.charCodeAt(i);
        this.pos = at + len;
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
    this.buf[this.pos] = 0xfb;
    this.view.setFloat64(this.pos + 1, n);
    this.pos += 9;
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
          this.array(v as readonly CborValue[]);
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
  /**
   * Starts an RFC 8746 typed array of `n` elements of `width` bytes: writes
   * the tag and the byte string's head, reserves the bytes and returns where
   * they start, for the caller to fill through `view`.
   */
  typed(tag: number, n: number, width: number): number {
    this.head(6, tag);
    this.head(2, n * width);
    this.ensure(n * width);
    const at = this.pos;
    this.pos += n * width;
    return at;
  }
  array(arr: readonly CborValue[]): void {
    const len = arr.length;
    this.head(4, len);
    for (let i = 0; i < len; i++) {
      const item = arr[i];
      // Numbers and texts (readings' fields) without the generic dispatch; the
      // bytes are the same either way.
      if (typeof item === "number") this.number(item);
      else if (typeof item === "string") this.text(item);
      else if (Array.isArray(item)) this.array(item as readonly CborValue[]);
      else this.value(item);
    }
  }
}

/** Largest scratch buffer kept between calls; a bigger one (a huge frame) is dropped after use. */
const MAX_KEPT_SCRATCH = 1 << 20;
/**
 * Encoding writes into one reused scratch buffer and copies the result out,
 * so each call allocates exactly one buffer of the exact size. (Allocating
 * a fresh growable buffer per call cost more than the encoding itself on
 * the device client's hot path: docs/benchmarks.md.) Encoding never yields,
 * so one scratch writer serves every call.
 */
let scratch: CborWriter | null = null;

/**
 * Encodes a value as plain RFC 8949 CBOR (see the module comment for the
 * subset). Map entries whose value is `undefined` are omitted.
 * `sizeHint` is the expected size in bytes; it only saves regrowing.
 */
export function encodeCbor(value: CborValue, sizeHint = 256): Uint8Array {
  let w = scratch;
  scratch = null;
  if (!w) w = new CborWriter(Math.max(4096, sizeHint));
  w.pos = 0;
  try {
    if (sizeHint > w.buf.length) w.grow(sizeHint);
    w.value(value);
    return w.buf.slice(0, w.pos);
  } finally {
    if (w.buf.length <= MAX_KEPT_SCRATCH) scratch = w;
  }
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

/**
 * Tags are not part of the protocol (docs/protocol.md, "Device socket").
 * Most tags decode to objects no validator accepts (a Date, a Set, a Tag),
 * but these would hand a validator plain values or build objects first:
 * 28/29 (shared values: a reading could reference another's text or
 * number), 55799 (self-described CBOR: the value itself) and 27 (a generic
 * object, built as an Error with a stack trace). cbor-x's tag table is
 * global to the module, so they are refused here, once, for every decoder
 * in the process: such a frame is malformed. The RFC 8746 typed-array tags
 * stay, decoded by ./cbatch-tags.ts: compact batches use them
 * (docs/protocol.md, "Compact batches").
 */
export const REFUSED_TAGS = [27, 28, 29, 55799] as const;
/** cbor-x wants an encodable class with each extension; nothing ever makes one. */
class RefusedTag {}
/** Installs the decoder of one tag; encodeCbor never writes tags, so the encode side only refuses. */
function decodeTag(tag: number, decode: (content: unknown) => unknown): void {
  addExtension({
    Class: RefusedTag,
    tag,
    encode: () => {
      throw new Error(`CBOR tag ${tag} is not written`);
    },
    decode,
  });
}
for (const tag of REFUSED_TAGS) {
  decodeTag(tag, () => {
    throw new Error(`CBOR tag ${tag} is not allowed`);
  });
}
for (const tag of TYPED_ARRAY_TAGS) decodeTag(tag, (content) => decodeTypedArray(tag, content));

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

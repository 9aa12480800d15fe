/**
 * How a frame's RFC 8746 typed arrays (tags 64-87,
 * https://www.rfc-editor.org/rfc/rfc8746) decode. Compact batches accept
 * five of them (CbatchTag); cbor-x on its own would also turn big-endian
 * and signed tags into typed arrays a validator could not tell apart
 * (tag 65, uint16 big-endian, becomes a Uint16Array like tag 69), and would
 * silently drop the odd trailing byte of a byte string whose length is not
 * a whole number of elements when it happens to be aligned (and fail the
 * whole frame when not). Here every typed-array tag decodes to either one
 * of the five arrays, exactly, or a {@link RefusedTypedArray} that the
 * validator answers with `bad_series`. schema/cbor.ts installs these.
 */
import { CbatchTag } from "./protocol.ts";

/** A typed array the protocol does not take: an unlisted tag, or a byte string of the wrong length. `reason` names the tag. */
export class RefusedTypedArray {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

type TypedArray = Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array;

/** An accepted tag: element width, a view over aligned bytes, and a little-endian read for big-endian machines. */
interface Kind {
  width: number;
  view(buf: ArrayBufferLike, offset: number, n: number): TypedArray;
  readLE(dv: DataView, n: number): TypedArray;
}

const ACCEPTED = new Map<number, Kind>([
  [CbatchTag.Uint8, { width: 1, view: (b, o, n) => new Uint8Array(b, o, n), readLE: (dv, n) => Uint8Array.from({ length: n }, (_, k) => dv.getUint8(k)) }],
  [CbatchTag.Uint16LE, { width: 2, view: (b, o, n) => new Uint16Array(b, o, n), readLE: (dv, n) => Uint16Array.from({ length: n }, (_, k) => dv.getUint16(2 * k, true)) }],
  [CbatchTag.Uint32LE, { width: 4, view: (b, o, n) => new Uint32Array(b, o, n), readLE: (dv, n) => Uint32Array.from({ length: n }, (_, k) => dv.getUint32(4 * k, true)) }],
  [CbatchTag.Float32LE, { width: 4, view: (b, o, n) => new Float32Array(b, o, n), readLE: (dv, n) => Float32Array.from({ length: n }, (_, k) => dv.getFloat32(4 * k, true)) }],
  [CbatchTag.Float64LE, { width: 8, view: (b, o, n) => new Float64Array(b, o, n), readLE: (dv, n) => Float64Array.from({ length: n }, (_, k) => dv.getFloat64(8 * k, true)) }],
]);

/** The RFC 8746 typed-array tags, 64 to 87 (tag 40's multi-dimensional arrays are not read at all). */
export const TYPED_ARRAY_TAGS: readonly number[] = Array.from({ length: 24 }, (_, i) => 64 + i);

/** Every machine the hub and its clients run on is little-endian; a big-endian one reads the LE tags through a DataView. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Decodes the content of typed-array tag `tag` (a byte string, if well-formed). */
export function decodeTypedArray(tag: number, content: unknown): TypedArray | RefusedTypedArray {
  const kind = ACCEPTED.get(tag);
  if (!kind) return new RefusedTypedArray(`tag ${tag} is not one of 64, 69, 70, 85, 86`);
  if (!(content instanceof Uint8Array)) return new RefusedTypedArray(`tag ${tag} must hold a byte string`);
  const { width } = kind;
  if (content.byteLength % width !== 0) return new RefusedTypedArray(`tag ${tag} holds ${content.byteLength} bytes, not a multiple of ${width}`);
  const n = content.byteLength / width;
  if (!LITTLE_ENDIAN && width > 1) return kind.readLE(new DataView(content.buffer, content.byteOffset, content.byteLength), n);
  // A view when aligned (no copy); otherwise a copy into a fresh, aligned
  // ArrayBuffer. Not content.slice(): on a Node Buffer that is a view of the
  // same memory; and not a small typed array's .buffer, which V8 must first
  // move off its heap (that made this the decoder's slowest step).
  if (content.byteOffset % width === 0) return kind.view(content.buffer, content.byteOffset, n);
  const copy = new ArrayBuffer(content.byteLength);
  new Uint8Array(copy).set(content);
  return kind.view(copy, 0, n);
}

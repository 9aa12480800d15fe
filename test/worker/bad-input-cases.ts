/**
 * Bad input for a device socket, as one table: each case is a frame and the
 * exact outcome (close code, error frame or pong). unit/frames.test.ts
 * runs every case against the frame path without sockets; bad-input.test.ts
 * sends a representative dozen through real sockets.
 */
import { encode as cborgEncode } from "cborg";
import { encodeCbor, type CborValue } from "../../schema/cbor.ts";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { CloseCode, ErrorCode } from "../../schema/protocol.ts";
import { makeReadings } from "./readings.ts";

/** The limits the cases are built for: the defaults, which wrangler.jsonc sets (bad-input.test.ts checks the two agree). */
export const LIMITS = DEFAULT_LIMITS;
const MINUTE = 60_000;
const DAY = 24 * 3600_000;

type Input = string | Uint8Array;
export type Outcome =
  | { kind: "close"; code: number }
  | { kind: "error"; code: ErrorCode; seq?: number }
  | { kind: "pong" };

export interface Case {
  name: string;
  /** Built when the case runs, so timestamps are relative to the hub's clock then. */
  input: () => Input;
  expect: Outcome;
}

const closeWith = (code: number): Outcome => ({ kind: "close", code });
const errorNoSeq = (code: ErrorCode): Outcome => ({ kind: "error", code });
const errorSeq2 = (code: ErrorCode): Outcome => ({ kind: "error", code, seq: 2 });

/** A recent, valid timestamp. */
const recent = (): number => Date.now() - MINUTE;

/** A batch that is valid except for `fields` (a field set to undefined is left out). */
function batch(fields: Record<string, CborValue>): Uint8Array {
  return encodeCbor({ type: "batch", seq: 2, readings: [[recent(), "temp", 1]], ...fields });
}

/** A seq-2 batch whose only reading is `r`. */
function withReading(r: CborValue): Uint8Array {
  return batch({ readings: [r] });
}

/** A batch of `n` good readings with `bad` at index `at`. */
function withBadAt(n: number, at: number, bad: CborValue): Uint8Array {
  const readings: CborValue[] = makeReadings(n, "mixed");
  readings[at] = bad;
  return batch({ readings });
}

/** A valid seq-`seq` batch padded with an unknown field to exactly `size` bytes. */
export function paddedBatch(seq: number, size: number): Uint8Array {
  const frame = { type: "batch", seq, readings: [[recent(), "temp", 1]], pad: "" };
  const base = encodeCbor(frame).length; // "" costs a 1-byte head
  const padLen = size - base + 1 - 5; // text of 65536 .. 2^32-1 bytes has a 5-byte head
  const out = encodeCbor({ ...frame, pad: "x".repeat(padLen) }, size);
  if (out.length !== size) throw new Error(`padded frame is ${out.length} bytes, wanted ${size}`);
  return out;
}

export const goodBatch = encodeCbor({ type: "batch", seq: 2, readings: [[Date.now(), "temp", 1]] });

export const cases: Case[] = [
  // Not CBOR: close 1007.
  { name: "bytes ff 00", input: () => Uint8Array.of(0xff, 0x00), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "lone break byte ff", input: () => Uint8Array.of(0xff), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "empty binary frame", input: () => new Uint8Array(0), expect: closeWith(CloseCode.InvalidPayload) },
  {
    name: "truncated map",
    input: () => {
      const full = batch({});
      return full.subarray(0, full.length - 3);
    },
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    name: "map header promising more entries than present",
    input: () => Uint8Array.of(0xa3, 0x64, ...new TextEncoder().encode("type"), 0x65, ...new TextEncoder().encode("batch")),
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    name: "trailing garbage after a valid batch",
    input: () => {
      const full = batch({});
      const out = new Uint8Array(full.length + 1);
      out.set(full);
      out[full.length] = 0x00;
      return out;
    },
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    name: "two valid items back to back",
    input: () => {
      const one = batch({});
      const out = new Uint8Array(one.length * 2);
      out.set(one);
      out.set(one, one.length);
      return out;
    },
    expect: closeWith(CloseCode.InvalidPayload),
  },

  // Text frames other than "ping": close 1003.
  { name: "text 'hello'", input: () => "hello", expect: closeWith(CloseCode.UnsupportedData) },
  { name: "text 'PING'", input: () => "PING", expect: closeWith(CloseCode.UnsupportedData) },
  { name: "text 'ping\\n'", input: () => "ping\n", expect: closeWith(CloseCode.UnsupportedData) },
  { name: "empty text frame", input: () => "", expect: closeWith(CloseCode.UnsupportedData) },
  {
    name: "text frame holding a JSON batch",
    input: () => JSON.stringify({ type: "batch", seq: 2, readings: [[recent(), "temp", 1]] }),
    expect: closeWith(CloseCode.UnsupportedData),
  },

  // Well-formed CBOR whose top-level item is not a map: close 1007.
  { name: "CBOR array", input: () => encodeCbor(["batch", 2]), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR integer", input: () => encodeCbor(42), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR negative integer", input: () => encodeCbor(-1), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR float", input: () => encodeCbor(1.5), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR text", input: () => encodeCbor("batch"), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR null", input: () => encodeCbor(null), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR true", input: () => encodeCbor(true), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR undefined", input: () => Uint8Array.of(0xf7), expect: closeWith(CloseCode.InvalidPayload) },
  { name: "CBOR byte string", input: () => Uint8Array.of(0x43, 1, 2, 3), expect: closeWith(CloseCode.InvalidPayload) },
  {
    // tag 1 (epoch date) around an integer: a decoder may turn it into a Date object.
    name: "CBOR tagged epoch date",
    input: () => Uint8Array.of(0xc1, 0x1a, 0x65, 0x00, 0x00, 0x00),
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    // tag 258 (set) around an empty array: a decoder may turn it into a Set object.
    name: "CBOR tagged set",
    input: () => Uint8Array.of(0xd9, 0x01, 0x02, 0x80),
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    // tag 86 (float64 little-endian typed array) around 8 bytes: a decoder may make a Float64Array.
    name: "CBOR tagged typed array",
    input: () => Uint8Array.of(0xd8, 0x56, 0x48, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f),
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    // tag 259 (map with any keys): a decoder may make a Map.
    name: "CBOR tagged Map",
    input: () => Uint8Array.of(0xd9, 0x01, 0x03, 0xa1, 0x01, 0x02),
    expect: closeWith(CloseCode.InvalidPayload),
  },
  {
    // An unassigned tag (4000) around an otherwise valid batch: a tag, not a map.
    name: "unknown CBOR tag around a valid batch",
    input: () => {
      const inner = batch({});
      const out = new Uint8Array(inner.length + 3);
      out.set([0xd9, 0x0f, 0xa0]);
      out.set(inner, 3);
      return out;
    },
    expect: closeWith(CloseCode.InvalidPayload),
  },

  // Larger than the frame limit: close 1009, even though the batch inside is valid.
  {
    name: "valid batch one byte over the frame limit",
    input: () => paddedBatch(2, LIMITS.maxFrameBytes + 1),
    expect: closeWith(CloseCode.MessageTooBig),
  },

  // No text type: bad_frame. Other type: unknown_type. Neither carries seq.
  { name: "map without type", input: () => batch({ type: undefined }), expect: errorNoSeq(ErrorCode.BadFrame) },
  { name: "type is a number", input: () => batch({ type: 1 }), expect: errorNoSeq(ErrorCode.BadFrame) },
  { name: "type is null", input: () => batch({ type: null }), expect: errorNoSeq(ErrorCode.BadFrame) },
  { name: "empty map", input: () => encodeCbor({}), expect: errorNoSeq(ErrorCode.BadFrame) },
  { name: "type 'hello'", input: () => batch({ type: "hello" }), expect: errorNoSeq(ErrorCode.UnknownType) },
  { name: "type 'foo'", input: () => batch({ type: "foo" }), expect: errorNoSeq(ErrorCode.UnknownType) },
  { name: "type 'ack'", input: () => batch({ type: "ack" }), expect: errorNoSeq(ErrorCode.UnknownType) },
  { name: "type 'Batch'", input: () => batch({ type: "Batch" }), expect: errorNoSeq(ErrorCode.UnknownType) },

  // seq: bad_seq without a seq field.
  { name: "seq missing", input: () => batch({ seq: undefined }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq 0", input: () => batch({ seq: 0 }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq -1", input: () => batch({ seq: -1 }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq 1.5", input: () => batch({ seq: 1.5 }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq as text", input: () => batch({ seq: "2" }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq null", input: () => batch({ seq: null }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq true", input: () => batch({ seq: true }), expect: errorNoSeq(ErrorCode.BadSeq) },
  { name: "seq 2^53 as float64", input: () => batch({ seq: 2 ** 53 }), expect: errorNoSeq(ErrorCode.BadSeq) },
  {
    name: "seq 2^53 as uint64",
    input: () => cborgEncode({ type: "batch", seq: 2n ** 53n, readings: [[recent(), "temp", 1]] }),
    expect: errorNoSeq(ErrorCode.BadSeq),
  },
  {
    name: "seq 2^64-1 as uint64",
    input: () => cborgEncode({ type: "batch", seq: 2n ** 64n - 1n, readings: [[recent(), "temp", 1]] }),
    expect: errorNoSeq(ErrorCode.BadSeq),
  },

  // readings: bad_readings with seq echoed.
  { name: "readings missing", input: () => batch({ readings: undefined }), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "readings is text", input: () => batch({ readings: "x" }), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "readings is a map", input: () => batch({ readings: {} }), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "readings is a number", input: () => batch({ readings: 5 }), expect: errorSeq2(ErrorCode.BadReadings) },
  { name: "readings empty", input: () => batch({ readings: [] }), expect: errorSeq2(ErrorCode.BadReadings) },
  {
    name: "one reading over the per-batch limit",
    input: () => batch({ readings: makeReadings(LIMITS.maxReadingsPerBatch + 1) }),
    expect: errorSeq2(ErrorCode.TooManyReadings),
  },

  // A reading that is not [ts, metric, value].
  { name: "reading is a number", input: () => withReading(5), expect: errorSeq2(ErrorCode.BadReading) },
  { name: "reading is a map", input: () => withReading({ ts: recent() }), expect: errorSeq2(ErrorCode.BadReading) },
  { name: "reading is empty", input: () => withReading([]), expect: errorSeq2(ErrorCode.BadReading) },
  { name: "reading with 2 elements", input: () => withReading([recent(), "temp"]), expect: errorSeq2(ErrorCode.BadReading) },
  {
    name: "reading with 4 elements",
    input: () => withReading([recent(), "temp", 1, 2]),
    expect: errorSeq2(ErrorCode.BadReading),
  },

  // Timestamps.
  { name: "ts as float", input: () => withReading([recent() + 0.5, "temp", 1]), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "ts as text", input: () => withReading([String(recent()), "temp", 1]), expect: errorSeq2(ErrorCode.BadTimestamp) },
  { name: "ts null", input: () => withReading([null, "temp", 1]), expect: errorSeq2(ErrorCode.BadTimestamp) },
  {
    name: "ts 10 minutes in the future",
    input: () => withReading([Date.now() + 10 * MINUTE, "temp", 1]),
    expect: errorSeq2(ErrorCode.TimestampOutOfRange),
  },
  {
    name: "ts 8 days in the past",
    input: () => withReading([Date.now() - 8 * DAY, "temp", 1]),
    expect: errorSeq2(ErrorCode.TimestampOutOfRange),
  },
  { name: "ts 0", input: () => withReading([0, "temp", 1]), expect: errorSeq2(ErrorCode.TimestampOutOfRange) },

  // Metrics.
  { name: "metric empty", input: () => withReading([recent(), "", 1]), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "metric with a space", input: () => withReading([recent(), "bad metric", 1]), expect: errorSeq2(ErrorCode.BadMetric) },
  {
    name: "metric of 65 chars",
    input: () => withReading([recent(), "m".repeat(65), 1]),
    expect: errorSeq2(ErrorCode.BadMetric),
  },
  { name: "metric with a slash", input: () => withReading([recent(), "a/b", 1]), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "metric non-ASCII", input: () => withReading([recent(), "température", 1]), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "metric is a number", input: () => withReading([recent(), 7, 1]), expect: errorSeq2(ErrorCode.BadMetric) },
  { name: "metric null", input: () => withReading([recent(), null, 1]), expect: errorSeq2(ErrorCode.BadMetric) },

  // Values. NaN and the infinities go out as CBOR float64 (encodeCbor writes non-integers that way).
  { name: "value NaN", input: () => withReading([recent(), "temp", NaN]), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "value Infinity", input: () => withReading([recent(), "temp", Infinity]), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "value -Infinity", input: () => withReading([recent(), "temp", -Infinity]), expect: errorSeq2(ErrorCode.BadValue) },
  {
    name: "value NaN as float16",
    input: () => {
      const out = withReading([recent(), "temp", 0]);
      // The value 0 is the frame's last byte; replace it with half-precision NaN (f9 7e 00).
      const patched = new Uint8Array(out.length + 2);
      patched.set(out.subarray(0, out.length - 1));
      patched.set([0xf9, 0x7e, 0x00], out.length - 1);
      return patched;
    },
    expect: errorSeq2(ErrorCode.BadValue),
  },
  { name: "value as text", input: () => withReading([recent(), "temp", "1"]), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "value null", input: () => withReading([recent(), "temp", null]), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "value true", input: () => withReading([recent(), "temp", true]), expect: errorSeq2(ErrorCode.BadValue) },
  { name: "value is an array", input: () => withReading([recent(), "temp", [1]]), expect: errorSeq2(ErrorCode.BadValue) },

  // One bad reading among good ones rejects the whole batch.
  {
    name: "bad value as the last of 100 readings",
    input: () => withBadAt(100, 99, [recent(), "mixed", NaN]),
    expect: errorSeq2(ErrorCode.BadValue),
  },
  {
    name: "bad metric in the middle of 100 readings",
    input: () => withBadAt(100, 57, [recent(), "bad metric", 1]),
    expect: errorSeq2(ErrorCode.BadMetric),
  },
  {
    name: "future ts in the middle of 100 readings",
    input: () => withBadAt(100, 50, [Date.now() + 10 * MINUTE, "mixed", 1]),
    expect: errorSeq2(ErrorCode.TimestampOutOfRange),
  },
  {
    name: "2-element reading as the last of 100 readings",
    input: () => withBadAt(100, 99, [recent(), "mixed"]),
    expect: errorSeq2(ErrorCode.BadReading),
  },

  // Keep-alive: answered, socket stays open.
  { name: "text 'ping'", input: () => "ping", expect: { kind: "pong" } },
];

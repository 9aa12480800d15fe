/**
 * Interop with a different CBOR library. Frames built with cborg (which
 * writes integers above 2^32 as uint64 and floats in their shortest exact
 * width) are accepted, and every frame the hub sends decodes with cborg's
 * strict decoder into the expected plain object. The socket here is raw: it
 * never goes through the cbor-x decoding of helpers.ts.
 */
import { decode, encode, type DecodeOptions } from "cborg";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { ErrorCode, PROTOCOL_VERSION } from "../../schema/protocol.ts";
import {
  aggregates,
  bucketAgo,
  deviceToken,
  lastSeqOf,
  openSocket,
  uniqueGroup,
  withTimeout,
} from "./helpers.ts";

/** cborg with every leniency off: minimal heads only, no indefinite lengths, undefined, NaN, Infinity, bigints or duplicate keys. */
const STRICT: DecodeOptions = {
  strict: true,
  allowIndefinite: false,
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: false,
  rejectDuplicateMapKeys: true,
  useMaps: false,
};

/** Client end of a device socket that keeps frames as raw bytes (or text). */
class RawSocket {
  readonly ws: WebSocket;
  private inbox: (Uint8Array | string)[] = [];
  private waiters: ((v: Uint8Array | string) => void)[] = [];
  readonly closed: Promise<number>;

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
    ws.addEventListener("message", (e) => {
      const data: unknown = e.data;
      let frame: Uint8Array | string;
      if (typeof data === "string") frame = data;
      else if (Object.prototype.toString.call(data) === "[object ArrayBuffer]") frame = new Uint8Array(data as ArrayBuffer);
      else throw new Error(`unexpected frame type ${Object.prototype.toString.call(data)}`);
      const w = this.waiters.shift();
      if (w) w(frame);
      else this.inbox.push(frame);
    });
    ws.binaryType = "arraybuffer";
    ws.accept();
  }

  next(timeoutMs = 5000): Promise<Uint8Array | string> {
    const queued = this.inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), timeoutMs, "a frame");
  }

  /** The next frame, which must be binary, decoded with cborg's strict decoder. */
  async nextStrict(): Promise<unknown> {
    const frame = await this.next();
    if (typeof frame === "string") throw new Error(`expected a binary frame, got text ${JSON.stringify(frame)}`);
    const value: unknown = decode(frame, STRICT);
    // Byte-exact: re-encoding the decoded value with cborg (map keys kept in
    // the hub's order) gives the very same bytes, so integers went out as
    // integers with the shortest head, not as floats.
    expect(encode(value, { mapSorter: () => 0 })).toEqual(frame);
    return value;
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  close(): void {
    this.ws.close(1000, "done");
  }
}

async function connectRaw(group: string, device: string): Promise<RawSocket> {
  const res = await openSocket(`/v1/groups/${group}/devices/${device}/ws`, await deviceToken(group, device));
  if (res.status !== 101 || !res.webSocket) throw new Error(`expected 101, got ${res.status}: ${await res.text()}`);
  return new RawSocket(res.webSocket);
}

/** First byte of cborg's encoding of `n`: tells which CBOR head or float width it used. */
const head = (n: number): number => encode(n)[0] ?? -1;

describe("plain CBOR from another library (cborg)", () => {
  it("uses uint64 heads for ms timestamps and large seqs, and the shortest float widths", () => {
    // Guards the test below: if cborg changed how it writes these, it would no longer prove much.
    expect(head(Date.now())).toBe(0x1b); // uint64
    expect(head(2 ** 32 + 7)).toBe(0x1b);
    expect(head(Number.MAX_SAFE_INTEGER)).toBe(0x1b);
    expect(head(-4)).toBe(0x23); // negative int
    expect(head(21.5)).toBe(0xf9); // float16
    expect(head(100000.5)).toBe(0xfa); // float32
    expect(head(0.1)).toBe(0xfb); // float64
  });

  it("accepts cborg frames and every hub frame decodes strictly into the expected plain object", async () => {
    const group = uniqueGroup("cborg");
    const device = "cb-1";
    const sock = await connectRaw(group, device);
    expect(await sock.nextStrict()).toStrictEqual({ type: "hello", v: PROTOCOL_VERSION, lastSeq: 0 });

    const t0 = bucketAgo(2);
    const seq = 2 ** 32 + 7;
    const batch = encode({
      type: "batch",
      seq,
      readings: [
        [t0 + 1000, "temp", 21.5],
        [t0 + 3000, "temp", 100000.5],
        [t0 + 2000, "temp", -4],
        [t0 + 4000, "hum", 0.1],
        [t0 + 5000, "count", 2 ** 40],
      ],
    });
    sock.send(batch);
    expect(await sock.nextStrict()).toStrictEqual({ type: "ack", seq });

    // Replay: acked as a duplicate.
    sock.send(batch);
    expect(await sock.nextStrict()).toStrictEqual({ type: "ack", seq, dup: true });

    expect(await aggregates(group)).toEqual([
      { device, metric: "count", start: t0, count: 1, sum: 2 ** 40, min: 2 ** 40, max: 2 ** 40, last: 2 ** 40 },
      { device, metric: "hum", start: t0, count: 1, sum: 0.1, min: 0.1, max: 0.1, last: 0.1 },
      { device, metric: "temp", start: t0, count: 3, sum: 100018, min: -4, max: 100000.5, last: 100000.5 },
    ]);
    expect(await lastSeqOf(group, device)).toBe(seq);

    // Error frame with seq.
    sock.send(encode({ type: "batch", seq: seq + 1, readings: [] }));
    expect(await sock.nextStrict()).toStrictEqual({
      type: "error",
      seq: seq + 1,
      code: ErrorCode.BadReadings,
      message: expect.stringMatching(/.+/),
    });
    // Error frames without seq.
    sock.send(encode({ type: "nope" }));
    expect(await sock.nextStrict()).toStrictEqual({
      type: "error",
      code: ErrorCode.UnknownType,
      message: expect.stringMatching(/.+/),
    });
    sock.send(encode({ type: "batch", seq: 0, readings: [[t0, "temp", 1]] }));
    expect(await sock.nextStrict()).toStrictEqual({
      type: "error",
      code: ErrorCode.BadSeq,
      message: expect.stringMatching(/.+/),
    });

    // The largest seq a device may use (MAX_SEQ, 2^48 by default: an 8-byte integer).
    sock.send(encode({ type: "batch", seq: DEFAULT_LIMITS.maxSeq, readings: [[t0 + 6000, "temp", 1]] }));
    expect(await sock.nextStrict()).toStrictEqual({ type: "ack", seq: DEFAULT_LIMITS.maxSeq });
    sock.close();

    const again = await connectRaw(group, device);
    expect(await again.nextStrict()).toStrictEqual({ type: "hello", v: PROTOCOL_VERSION, lastSeq: DEFAULT_LIMITS.maxSeq });
    again.close();
  });

  it("accepts cborg frames with float64-only encoding and keeps the ping/pong text exchange", async () => {
    const group = uniqueGroup("cborg64");
    const sock = await connectRaw(group, "cb-2");
    expect(await sock.nextStrict()).toStrictEqual({ type: "hello", v: PROTOCOL_VERSION, lastSeq: 0 });
    const t0 = bucketAgo(1);
    sock.send(encode({ type: "batch", seq: 1, readings: [[t0 + 10, "v", 1.5], [t0 + 20, "v", 2.25]] }, { float64: true }));
    expect(await sock.nextStrict()).toStrictEqual({ type: "ack", seq: 1 });
    sock.ws.send("ping");
    expect(await sock.next()).toBe("pong");
    expect(await aggregates(group)).toEqual([
      { device: "cb-2", metric: "v", start: t0, count: 2, sum: 3.75, min: 1.5, max: 2.25, last: 2.25 },
    ]);
    sock.close();
  });
});

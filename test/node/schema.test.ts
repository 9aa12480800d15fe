/** The protocol module on its own: plain CBOR, validators, limits and tokens. */
import { decode as cborgDecode, encode as cborgEncode } from "cborg";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";
import { DEFAULT_LIMITS, readLimits } from "../../schema/limits.ts";
import { deviceSubject, gatewaySubject, operatorSubject, signToken, verifyToken } from "../../schema/token.ts";
import { validateHubFrame } from "../../schema/validate.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("encodeCbor", () => {
  it("writes integers as CBOR integers in their shortest head, never as floats", () => {
    expect(hex(encodeCbor(0))).toBe("00");
    expect(hex(encodeCbor(23))).toBe("17");
    expect(hex(encodeCbor(24))).toBe("1818");
    expect(hex(encodeCbor(65535))).toBe("19ffff");
    expect(hex(encodeCbor(2 ** 32))).toBe("1b0000000100000000");
    expect(hex(encodeCbor(1732300000123))).toBe("1b0000019355204b7b");
    for (const n of [0, 1, 23, 24, 255, 256, 65536, 2 ** 31, 2 ** 53 - 1, -24, -25, -(2 ** 53 - 1)]) {
      expect(hex(encodeCbor(n)), String(n)).toBe(hex(cborgEncode(n)));
    }
    expect(hex(encodeCbor(-1))).toBe("20");
    expect(hex(encodeCbor(-(2 ** 40)))).toBe("3b000000ffffffffff");
    expect(hex(encodeCbor(Number.MAX_SAFE_INTEGER))).toBe("1b001fffffffffffff");
  });

  it("writes other numbers as float64", () => {
    expect(hex(encodeCbor(1.5))).toBe("fb3ff8000000000000");
    expect(hex(encodeCbor(Number.NaN))).toBe("fb7ff8000000000000");
    expect(hex(encodeCbor(Number.POSITIVE_INFINITY))).toBe("fb7ff0000000000000");
  });

  it("produces frames a strict independent decoder reads back exactly", () => {
    const frame = {
      type: "batch",
      seq: 2 ** 40 + 7,
      readings: [
        [1732300000123, "temp", 21.5],
        [1732300000200, "power.l1:kW", -3],
        [1732300000300, "ünïcode-is-not-a-valid-metric-but-encodes", 0.1],
      ],
    };
    const bytes = encodeCbor(frame);
    // cborg rejects anything non-canonical-ish it does not understand (tags, undefined, ...).
    expect(cborgDecode(bytes, { useMaps: false, strict: true })).toEqual(frame);
    expect(decodeCbor(bytes)).toEqual({ ok: true, value: frame });
  });

  it("omits undefined map values and encodes null, booleans and nested maps", () => {
    const bytes = encodeCbor({ a: undefined, b: null, c: true, d: false, e: { f: [] } });
    expect(cborgDecode(bytes)).toEqual({ b: null, c: true, d: false, e: { f: [] } });
  });
});

describe("decodeCbor", () => {
  it("reads frames from another encoder, including 64-bit integers as numbers", () => {
    const bytes = cborgEncode({ type: "batch", seq: 5_000_000_000, readings: [[1732300000123, "t", 1]] });
    expect(decodeCbor(bytes)).toEqual({ ok: true, value: { type: "batch", seq: 5_000_000_000, readings: [[1732300000123, "t", 1]] } });
  });

  it("never throws on malformed input", () => {
    for (const bad of [[0xff], [0xa1], [0x61], [0xa1, 0x61, 0x61], [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0x01, 0x02]]) {
      const r = decodeCbor(new Uint8Array(bad));
      expect(r.ok, `input ${hex(new Uint8Array(bad))}`).toBe(false);
    }
  });
});

describe("CBOR tags", () => {
  const valid = { type: "batch", seq: 1, readings: [[1732300000123, "t", 1]] };
  /** `valid` with its one reading's value (1) wrapped as `tag(1)`, or `tag(reading)` for tags around arrays. */
  function withTag(head: number[], item: number[]): Uint8Array {
    const plain = cborgEncode(valid);
    // The reading's value is the frame's last byte (0x01): replace it with the tagged item.
    return Uint8Array.from([...plain.subarray(0, plain.length - 1), ...head, ...item]);
  }

  it("refuses shared values (28/29), self-described CBOR (55799) and generic objects (27) as malformed", () => {
    expect(decodeCbor(withTag([], [0x01]))).toEqual({ ok: true, value: valid });
    // 28(1): a shareable 1; 29(0) would reference it from another reading.
    expect(decodeCbor(withTag([0xd8, 28], [0x01])).ok).toBe(false);
    expect(decodeCbor(withTag([0xd8, 29], [0x00])).ok).toBe(false);
    expect(decodeCbor(withTag([0xd9, 0xd9, 0xf7], [0x01])).ok).toBe(false);
    expect(decodeCbor(withTag([0xd8, 27], [0x82, 0x61, 0x45, 0x01])).ok).toBe(false);
    // Around the whole frame, too.
    expect(decodeCbor(Uint8Array.from([0xd9, 0xd9, 0xf7, ...cborgEncode(valid)])).ok).toBe(false);
  });

  it("keeps the RFC 8746 typed arrays compact batches use", () => {
    const r = decodeCbor(Uint8Array.from([0xd8, 86, 0x48, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]));
    expect(r.ok && r.value instanceof Float64Array && r.value[0] === 1).toBe(true);
  });
});

describe("validateHubFrame", () => {
  it("accepts the hub's frames and ignores unknown ones", () => {
    expect(validateHubFrame({ type: "hello", v: 1, lastSeq: 0 })).toEqual({ type: "hello", v: 1, lastSeq: 0 });
    expect(validateHubFrame({ type: "ack", seq: 3, dup: true, extra: 1 })).toEqual({ type: "ack", seq: 3, dup: true });
    expect(validateHubFrame({ type: "error", code: "new_code_from_the_future", message: "m" })).toEqual({
      type: "error",
      code: "new_code_from_the_future",
      message: "m",
    });
    expect(validateHubFrame({ type: "ack", seq: -1 })).toBeNull();
    expect(validateHubFrame({ type: "summary" })).toBeNull();
    expect(validateHubFrame([1, 2])).toBeNull();
  });
});

describe("readLimits", () => {
  it("uses defaults, reads vars, and refuses a malformed var", () => {
    expect(readLimits({})).toEqual(DEFAULT_LIMITS);
    expect(readLimits({ MAX_READINGS_PER_BATCH: "10", GROUP_COMMIT_MS: "0" })).toMatchObject({
      maxReadingsPerBatch: 10,
      groupCommitMs: 0,
    });
    expect(() => readLimits({ MAX_FRAME_BYTES: "1MiB" })).toThrow(/MAX_FRAME_BYTES/);
    expect(() => readLimits({ MAX_PAST_MS: "-1" })).toThrow(/MAX_PAST_MS/);
  });
});

describe("tokens", () => {
  it("match HMAC-SHA256 computed independently (openssl), base64url without padding", async () => {
    // printf 'device:g/d' | openssl dgst -sha256 -hmac abc -binary | base64 | tr '+/' '-_' | tr -d '='
    expect(await signToken("abc", deviceSubject("g", "d"))).toBe("kMdDG-dq73TRZk4fFmJZTig-0Xh03_tNFkAk7U9b5_M");
    // printf 'gateway:g/w' | openssl dgst -sha256 -hmac abc -binary | base64 | tr '+/' '-_' | tr -d '='
    expect(await signToken("abc", gatewaySubject("g", "w"))).toBe("ahx3DGkt1ucorrXAH3PYwnR7JEmt3APmzObmKzvqKhI");
  });

  it("verify only the exact subject under the exact secret", async () => {
    const t = await signToken("s1", operatorSubject("plant"));
    expect(await verifyToken("s1", operatorSubject("plant"), t)).toBe(true);
    expect(await verifyToken("s2", operatorSubject("plant"), t)).toBe(false);
    expect(await verifyToken("s1", operatorSubject("*"), t)).toBe(false);
    expect(await verifyToken("s1", operatorSubject("plant"), `${t}=`)).toBe(false);
    expect(await verifyToken("s1", operatorSubject("plant"), "")).toBe(false);
    expect(await verifyToken("s1", operatorSubject("plant"), t.slice(0, -1) + (t.endsWith("A") ? "B" : "A"))).toBe(false);
  });

  it("accept one spelling only: the last character's two unused bits must be zero", async () => {
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 0; i < 20; i++) {
      const t = await signToken("s1", deviceSubject("g", `d${i}`));
      const last = alphabet.indexOf(t.slice(-1));
      expect(last % 4, t).toBe(0);
      expect(await verifyToken("s1", deviceSubject("g", `d${i}`), t)).toBe(true);
      // The same 32 bytes, spelled with the unused bits set: each refused.
      for (let bits = 1; bits < 4; bits++) {
        expect(await verifyToken("s1", deviceSubject("g", `d${i}`), t.slice(0, -1) + alphabet[last + bits])).toBe(false);
      }
    }
  });
});

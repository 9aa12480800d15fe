/**
 * Random and hostile frames over a real device socket: every one ends in an
 * error frame or a close with a protocol code, never an internal error, and
 * nothing already stored changes.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { aggregates, connectDevice, lastSeqOf, makeReadings, uniqueGroup, type TestSocket } from "./helpers.ts";

const HOSTILE: number[][] = [
  [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // array of 2^64-1 elements
  [0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00], // map of 2^32 pairs
  [0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // text of 2^63 bytes
  [0xa1, 0x64, 0x74, 0x79, 0x70, 0x65, 0x62, 0xc3, 0x28], // {type: invalid UTF-8}
  [0xbf, 0x64, 0x74, 0x79, 0x70, 0x65, 0x65, 0x62, 0x61, 0x74, 0x63, 0x68, 0xff], // indefinite {type: "batch"}
  [0xa2, 0x64, 0x74, 0x79, 0x70, 0x65, 0x65, 0x62, 0x61, 0x74, 0x63, 0x68, 0x63, 0x73, 0x65, 0x71, 0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0], // seq as a bignum
  [0xd8, 0x69, 0xa0], // cbor-x record tag around a map
  [0xd9, 0x01, 0x02, 0x80], // Set tag
  [0xc1, 0x1a, 0x5f, 0x00, 0x00, 0x00], // date tag
  new Array(20_000).fill(0x81), // deep nesting
];

async function expectRejectedOrClosed(sock: TestSocket): Promise<"error" | number> {
  const frame = sock.next(5000).then((f) => ({ f }));
  const closed = sock.closed.then((c) => ({ c }));
  const r = await Promise.race([frame, closed]);
  if ("c" in r) return r.c.code;
  const f = r.f as { type?: string; code?: string };
  if (f.type !== "error" || f.code === "internal") throw new Error(`unexpected frame ${JSON.stringify(f)}`);
  return "error";
}

describe("socket fuzzing", () => {
  it("random and hostile frames are refused with protocol codes and change nothing", async () => {
    const group = uniqueGroup();
    let { sock } = await connectDevice(group, "fz");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(10) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    const before = await aggregates(group);

    const random = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 200 }), { seed: 42, numRuns: 150 });
    const frames = [...HOSTILE.map((h) => new Uint8Array(h)), ...random];
    const outcomes: Record<string, number> = {};
    for (const bytes of frames) {
      sock.sendRaw(bytes);
      const outcome = await expectRejectedOrClosed(sock);
      outcomes[String(outcome)] = (outcomes[String(outcome)] ?? 0) + 1;
      if (outcome !== "error") {
        expect([1003, 1007, 1009]).toContain(outcome);
        ({ sock } = await connectDevice(group, "fz"));
      }
    }
    expect(Object.keys(outcomes).length).toBeGreaterThan(1);
    expect(await aggregates(group)).toEqual(before);
    expect(await lastSeqOf(group, "fz")).toBe(1);
    sock.close();
  }, 60_000);
});

/**
 * Issue #12, finding 7 (seq): a seq above MAX_SEQ (2^48 by default) is
 * refused with `bad_seq` and changes nothing, so one frame cannot push an
 * id to 2^53 - 1, after which it could send nothing; and an operator can
 * set a peer's lastSeq back, audited.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { ErrorCode } from "../../schema/protocol.ts";
import { connectDevice, connectGateway, deviceToken, getJson, lastSeqOf, makeReadings, operatorToken, uniqueGroup } from "./helpers.ts";

const MAX_SEQ = DEFAULT_LIMITS.maxSeq;

async function putSeq(group: string, kind: string, id: string, body: string, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/peers/${kind}/${id}/seq`, {
    method: "PUT",
    headers: { authorization: `Bearer ${token ?? (await operatorToken(group))}`, "content-type": "application/json" },
    body,
  });
  return { status: res.status, body: await res.json() };
}

describe("seq cap", () => {
  it("refuses a seq above MAX_SEQ with bad_seq (with its seq), leaving lastSeq as it was", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "d1");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    for (const seq of [Number.MAX_SAFE_INTEGER, MAX_SEQ + 1]) {
      sock.send({ type: "batch", seq, readings: makeReadings(1) });
      expect(await sock.next()).toMatchObject({ type: "error", seq, code: ErrorCode.BadSeq });
    }
    expect(await lastSeqOf(group, "d1")).toBe(1);
    // The device goes on where it was.
    sock.send({ type: "batch", seq: 2, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    // A seq numbered by millisecond timestamps stays far below the cap.
    sock.send({ type: "batch", seq: Date.now(), readings: makeReadings(1) });
    expect(await sock.next()).toMatchObject({ type: "ack" });
    sock.close();
  });

  it("caps a gateway's seq the same way", async () => {
    const group = uniqueGroup();
    const { sock } = await connectGateway(group, "w1");
    sock.send({ type: "batch", seq: MAX_SEQ + 1, readings: [[Date.now(), "t", 1, "a"]] });
    expect(await sock.next()).toMatchObject({ type: "error", seq: MAX_SEQ + 1, code: ErrorCode.BadSeq });
    sock.close();
  });
});

describe("PUT /v1/groups/{group}/peers/{kind}/{id}/seq", () => {
  it("sets lastSeq for the open socket and the next hello, and keeps an audit readable back", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "d1");
    for (let seq = 1; seq <= 5; seq++) {
      sock.send({ type: "batch", seq, readings: makeReadings(1) });
      expect(await sock.next()).toEqual({ type: "ack", seq });
    }
    const before = Date.now();
    const put = await putSeq(group, "device", "d1", '{"lastSeq": 2}');
    expect(put.status).toBe(200);
    const r = put.body as { resets: { at: number }[] };
    expect(r).toEqual({ kind: "device", id: "d1", lastSeq: 2, resets: [{ at: expect.any(Number), by: "operator token", oldSeq: 5, newSeq: 2 }] });
    expect(r.resets[0]?.at).toBeGreaterThanOrEqual(before);
    // The cached highest seq went with it: seq 3 on the same socket is applied again, not a duplicate.
    sock.send({ type: "batch", seq: 3, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 3 });
    sock.close();
    const again = await connectDevice(group, "d1");
    expect(again.lastSeq).toBe(3);
    again.sock.close();
    const read = await getJson(`/v1/groups/${group}/peers/device/d1/seq`, await operatorToken(group));
    expect(read).toMatchObject({ status: 200, body: { kind: "device", id: "d1", lastSeq: 3, resets: [{ oldSeq: 5, newSeq: 2 }] } });
  });

  it("unbricks an id whose seq reached 2^53 - 1", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "stuck");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(1) });
    await sock.next();
    expect((await putSeq(group, "device", "stuck", JSON.stringify({ lastSeq: Number.MAX_SAFE_INTEGER }))).status).toBe(200);
    sock.send({ type: "batch", seq: 2, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2, dup: true });
    expect((await putSeq(group, "device", "stuck", '{"lastSeq": 0}')).status).toBe(200);
    sock.send({ type: "batch", seq: 2, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    sock.close();
  });

  it("is an operator action on a peer that exists, with a body {lastSeq: N}", async () => {
    const group = uniqueGroup();
    (await connectDevice(group, "d1")).sock.close();
    expect((await putSeq(group, "device", "d1", '{"lastSeq": 1}', await deviceToken(group, "d1"))).status).toBe(401);
    expect((await putSeq(group, "device", "d1", '{"lastSeq": 1}', await operatorToken(uniqueGroup()))).status).toBe(401);
    expect(await putSeq(group, "device", "nobody", '{"lastSeq": 1}')).toMatchObject({ status: 404, body: { error: "not_found" } });
    expect(await putSeq(group, "gateway", "d1", '{"lastSeq": 1}')).toMatchObject({ status: 404, body: { error: "not_found" } });
    expect((await putSeq(group, "sensor", "d1", '{"lastSeq": 1}')).status).toBe(404);
    for (const bad of ["", "nope", "{}", '{"lastSeq": -1}', '{"lastSeq": 1.5}', `{"lastSeq": ${2 ** 53}}`, '{"lastSeq": "1"}']) {
      expect(await putSeq(group, "device", "d1", bad), bad).toMatchObject({ status: 400, body: { error: "bad_body" } });
    }
    expect(await lastSeqOf(group, "d1")).toBe(0);
  });
});

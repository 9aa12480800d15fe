/**
 * Issue #12, finding 1: revocation and replacement are enforced per frame.
 * The attacker's client accepts its socket half-open (`allowHalfOpen`), so
 * it never answers the hub's close (4001 or 4003) and keeps writing.
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encodeCbor, type CborValue } from "../../schema/cbor.ts";
import { waitFor } from "../../harness/wait.ts";
import { aggregates, connectDevice, deviceToken, gatewayToken, lastSeqOf, makeReadings, openLive, openSocket, operatorToken, uniqueGroup } from "./helpers.ts";

/** A client that ignores the hub's close: the socket stays half-open and it keeps sending. */
class StubbornSocket {
  readonly ws: WebSocket;
  closeCode: number | null = null;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("close", (e) => {
      this.closeCode = e.code;
    });
    ws.binaryType = "arraybuffer";
    ws.accept({ allowHalfOpen: true });
  }

  send(frame: CborValue): void {
    this.ws.send(encodeCbor(frame));
  }
}

async function stubborn(path: string, token: string): Promise<StubbornSocket> {
  const res = await openSocket(path, token);
  if (res.status !== 101 || !res.webSocket) throw new Error(`expected 101, got ${res.status}`);
  return new StubbornSocket(res.webSocket);
}

async function revoke(group: string, kind: string, id: string): Promise<void> {
  const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/revocations/${kind}/${id}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${await operatorToken(group)}` },
  });
  expect(res.status).toBe(200);
}

const readingsIn = async (group: string): Promise<number> => (await aggregates(group)).reduce((n, b) => n + b.count, 0);

describe("per-frame enforcement of replacement and revocation", () => {
  it("drops and counts the frames of a replaced socket that ignores 4001", async () => {
    const group = uniqueGroup();
    const live = await openLive(group);
    const old = await stubborn(`/v1/groups/${group}/devices/d1/ws`, await deviceToken(group, "d1"));
    const fresh = await connectDevice(group, "d1");
    await waitFor(() => old.closeCode === 4001, "the old socket to see 4001", 5000);
    // The replaced client writes on: a batch far ahead, which would move lastSeq.
    old.send({ type: "batch", seq: 1000, readings: makeReadings(3) });
    const f = await live.until((fr) => ((fr.totals as { rejected: Record<string, number> }).rejected.replaced ?? 0) >= 1);
    expect((f.totals as { rejected: Record<string, number> }).rejected.replaced).toBe(1);
    // Nothing of it applied: the live socket's batch still gets seq 1 acked, not a dup.
    fresh.sock.send({ type: "batch", seq: 1, readings: makeReadings(2) });
    expect(await fresh.sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await lastSeqOf(group, "d1")).toBe(1);
    expect(await readingsIn(group)).toBe(2);
    fresh.sock.close();
  });

  it("drops the frames of a revoked device that ignores 4003", async () => {
    const group = uniqueGroup();
    const live = await openLive(group);
    const sock = await stubborn(`/v1/groups/${group}/devices/stolen/ws`, await deviceToken(group, "stolen"));
    await revoke(group, "device", "stolen");
    await waitFor(() => sock.closeCode === 4003, "the revoked socket to see 4003", 5000);
    sock.send({ type: "batch", seq: 1, readings: makeReadings(4) });
    await live.until((fr) => ((fr.totals as { rejected: Record<string, number> }).rejected.revoked ?? 0) >= 1);
    expect(await readingsIn(group)).toBe(0);
  });

  it("refuses a revoked gateway's frames for any device", async () => {
    const group = uniqueGroup();
    const live = await openLive(group);
    const gw = await stubborn(`/v1/groups/${group}/gateways/site-1/ws`, await gatewayToken(group, "site-1"));
    await revoke(group, "gateway", "site-1");
    await waitFor(() => gw.closeCode === 4003, "the revoked gateway to see 4003", 5000);
    gw.send({ type: "batch", seq: 1, readings: [[Date.now(), "temp", 20, "a"], [Date.now(), "temp", 21, "b"]] });
    await live.until((fr) => ((fr.totals as { rejected: Record<string, number> }).rejected.revoked ?? 0) >= 1);
    expect(await readingsIn(group)).toBe(0);
  });

  it("stops counting replaced sockets against MAX_PEER_SOCKETS at once (60 in the tests)", async () => {
    const group = uniqueGroup();
    const token = await deviceToken(group, "greedy");
    // One device token opens 60 sockets, each replacing the one before, and ignores every 4001.
    const socks: StubbornSocket[] = [];
    for (let i = 0; i < 60; i++) socks.push(await stubborn(`/v1/groups/${group}/devices/greedy/ws`, token));
    const other = await connectDevice(group, "honest");
    other.sock.send({ type: "batch", seq: 1, readings: makeReadings(1) });
    expect(await other.sock.next()).toEqual({ type: "ack", seq: 1 });
    other.sock.close();
    for (const s of socks) s.ws.close(1000, "done");
  });
});

/**
 * Gateway sockets: auth, exactly-once per gateway seq (replay, reconnect,
 * eviction), per-reading device validation, and aggregates attributed to
 * each reading's device. And one peer model: a gateway's rejections are
 * reported as the gateway's, never as a device's, whether the validator or
 * the rate limit refused the batch; a device's stay on the device's row.
 */
import { SELF, env, evictDurableObject, listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor, type CborValue } from "../../schema/cbor.ts";
import { readLimits } from "../../schema/limits.ts";
import { ErrorCode } from "../../schema/protocol.ts";
import type { PeerSender } from "../../worker/group/ingest/frames.ts";
import { Ingest } from "../../worker/group/ingest/ingest.ts";
import { Store } from "../../worker/group/ingest/store.ts";
import type { Peer } from "../../worker/group/peer.ts";
import { deviceSubject, gatewaySubject, operatorSubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import {
  aggregates,
  bucketAgo,
  connectDevice,
  connectGateway as connectGw,
  devices,
  gatewayToken as gatewayTokenOf,
  makeReadings,
  openLive,
  openSocket,
  TestSocket,
  uniqueGroup,
} from "./helpers.ts";

const GATEWAY = "bridge-1";
const gatewayPath = (g: string, w = GATEWAY): string => `/v1/groups/${g}/gateways/${w}/ws`;

const connectGateway = (group: string, gateway = GATEWAY) => connectGw(group, gateway);
const gatewayToken = (group: string, gateway = GATEWAY) => gatewayTokenOf(group, gateway);

async function isListed(group: string): Promise<boolean> {
  const id = env.GROUPS.idFromName(group);
  return (await listDurableObjectIds(env.GROUPS)).some((x) => x.equals(id));
}

const sum = (bs: { sum: number }[]): number => bs.reduce((s, b) => s + b.sum, 0);
const count = (bs: { count: number }[]): number => bs.reduce((n, b) => n + b.count, 0);

describe("gateway socket", () => {
  it("answers 401 to missing, wrong and misused tokens, 400 to a bad gateway id, 426 without upgrade; none reach a group", async () => {
    const group = uniqueGroup("gwauth");
    const other = uniqueGroup("other");
    const cases: [string, string | undefined][] = [
      ["no token", undefined],
      ["device token of the same name", await signToken(TEST_SECRET, deviceSubject(group, GATEWAY))],
      ["operator token", await signToken(TEST_SECRET, operatorSubject(group))],
      ["operator:* token", await signToken(TEST_SECRET, operatorSubject("*"))],
      ["gateway token of another group", await gatewayToken(other)],
      ["gateway token of another gateway", await gatewayToken(group, "bridge-2")],
      ["gateway token under another secret", await signToken("another-secret", gatewaySubject(group, GATEWAY))],
      ["right shape, wrong MAC", "A".repeat(43)],
      ["truncated", (await gatewayToken(group)).slice(0, 42)],
    ];
    for (const [name, token] of cases) {
      const res = await openSocket(gatewayPath(group), token);
      expect(res.status, name).toBe(401);
      expect(await res.json(), name).toStrictEqual({ error: "unauthorized", message: expect.any(String) });
    }
    // A gateway token does not open the device socket of the same name.
    const asDevice = await openSocket(`/v1/groups/${group}/devices/${GATEWAY}/ws`, await gatewayToken(group));
    expect(asDevice.status).toBe(401);
    await asDevice.body?.cancel();

    const badId = await openSocket(gatewayPath(group, "bad%20id"), await gatewayToken(group));
    expect(badId.status).toBe(400);
    expect(await badId.json()).toMatchObject({ error: "bad_gateway" });
    const noUpgrade = await SELF.fetch(`http://hub.test${gatewayPath(group)}`, {
      headers: { authorization: `Bearer ${await gatewayToken(group)}` },
    });
    expect(noUpgrade.status).toBe(426);
    await noUpgrade.body?.cancel();
    expect(await isListed(group)).toBe(false);

    // Control: the right token by header and by query.
    for (const res of [
      await openSocket(gatewayPath(group), await gatewayToken(group)),
      await SELF.fetch(`http://hub.test${gatewayPath(group)}?token=${await gatewayToken(group)}`, { headers: { upgrade: "websocket" } }),
    ]) {
      expect(res.status).toBe(101);
      if (!res.webSocket) throw new Error("no socket");
      const sock = new TestSocket(res.webSocket);
      expect(await sock.next()).toEqual({ type: "hello", v: 1, lastSeq: 0 });
      sock.close();
    }
  });

  it("attributes readings to their devices, lists them, and leaves their own lastSeq alone", async () => {
    const group = uniqueGroup("gwagg");
    const t0 = bucketAgo(2);
    // A native device that is also reported through the gateway.
    const native = await connectDevice(group, "boiler-1");
    native.sock.send({ type: "batch", seq: 7, readings: [[t0 + 100, "temp", 60]] });
    expect(await native.sock.next()).toEqual({ type: "ack", seq: 7 });

    const { sock, lastSeq } = await connectGateway(group);
    expect(lastSeq).toBe(0);
    sock.send({
      type: "batch",
      seq: 1,
      readings: [
        [t0 + 1000, "temp", 71.5, "boiler-1"],
        [t0 + 2000, "temp", 72, "boiler-1"],
        [t0 + 1500, "hum", 40, "room-2"],
        [t0 + 61_000, "temp", 5, "room-2"],
      ],
    });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await aggregates(group)).toEqual([
      { device: "boiler-1", metric: "temp", start: t0, count: 3, sum: 203.5, min: 60, max: 72, last: 72 },
      { device: "room-2", metric: "hum", start: t0, count: 1, sum: 40, min: 40, max: 40, last: 40 },
      { device: "room-2", metric: "temp", start: t0 + 60_000, count: 1, sum: 5, min: 5, max: 5, last: 5 },
    ]);
    const listed = await devices(group);
    expect(listed).toEqual([
      { id: "boiler-1", lastSeq: 7, lastSeen: expect.any(Number), online: true, readings: 3 },
      { id: "room-2", lastSeq: 0, lastSeen: expect.any(Number), online: false, readings: 2 },
    ]);
    // The native device continues its own sequence; the gateway's seq 1 did not touch it.
    native.sock.send({ type: "batch", seq: 8, readings: [[t0 + 200, "temp", 1]] });
    expect(await native.sock.next()).toEqual({ type: "ack", seq: 8 });
    native.sock.send({ type: "batch", seq: 1, readings: [[t0 + 300, "temp", 1]] });
    expect(await native.sock.next()).toEqual({ type: "ack", seq: 1, dup: true });
    sock.close();
    native.sock.close();
  });

  it("applies each gateway seq once: replays, reconnects and eviction", async () => {
    const group = uniqueGroup("gwonce");
    const stub = env.GROUPS.getByName(group);
    const t0 = bucketAgo(3);
    const batch = (seq: number, n: number): [number, string, number, string][] =>
      Array.from({ length: n }, (_, i) => [t0 + seq * 100 + i, "power", seq * 10 + i, `meter-${i % 3}`]);

    const first = await connectGateway(group);
    for (let seq = 1; seq <= 5; seq++) first.sock.send({ type: "batch", seq, readings: batch(seq, 6) });
    // Replayed in the same group commit as its original.
    first.sock.send({ type: "batch", seq: 5, readings: batch(5, 6) });
    for (let seq = 1; seq <= 5; seq++) expect(await first.sock.next()).toEqual({ type: "ack", seq });
    expect(await first.sock.next()).toEqual({ type: "ack", seq: 5, dup: true });
    const after5 = await aggregates(group);
    expect(count(after5)).toBe(30);

    // A second connection replaces the first and learns lastSeq from hello.
    const second = await connectGateway(group);
    expect(second.lastSeq).toBe(5);
    expect((await first.sock.closedWithin()).code).toBe(4001);
    second.sock.send({ type: "batch", seq: 3, readings: batch(3, 6) });
    expect(await second.sock.next()).toEqual({ type: "ack", seq: 3, dup: true });

    // Evicted: the seq cache is gone, SQLite and the hibernated socket remain.
    await evictDurableObject(stub);
    second.sock.send({ type: "batch", seq: 5, readings: batch(5, 6) });
    expect(await second.sock.next()).toEqual({ type: "ack", seq: 5, dup: true });
    await evictDurableObject(stub);
    second.sock.send({ type: "batch", seq: 6, readings: batch(6, 6) });
    expect(await second.sock.next()).toEqual({ type: "ack", seq: 6 });
    await evictDurableObject(stub);
    const third = await connectGateway(group);
    expect(third.lastSeq).toBe(6);

    const all = await aggregates(group);
    expect(count(all)).toBe(36);
    let expected = 0;
    for (let seq = 1; seq <= 6; seq++) for (let i = 0; i < 6; i++) expected += seq * 10 + i;
    expect(sum(all)).toBe(expected);
    // Two readings per meter per batch, six batches.
    expect((await devices(group)).map((d) => [d.id, d.readings, d.lastSeq])).toEqual([
      ["meter-0", 12, 0],
      ["meter-1", 12, 0],
      ["meter-2", 12, 0],
    ]);
    third.sock.close();
  });

  it("updates many devices in one commit (multi-row device upserts) without touching their lastSeq", async () => {
    const group = uniqueGroup("gwmany");
    const t0 = bucketAgo(1);
    // A native device among them, with a seq of its own.
    const native = await connectDevice(group, "m-07");
    native.sock.send({ type: "batch", seq: 41, readings: [[t0, "temp", 1]] });
    expect(await native.sock.next()).toEqual({ type: "ack", seq: 41 });
    const { sock } = await connectGateway(group);
    // 40 devices: two full chunks of 16 and 8 single rows, twice.
    const batch = (k: number): [number, string, number, string][] =>
      Array.from({ length: 80 }, (_, i) => [t0 + k * 100 + i, "temp", i, `m-${String(i % 40).padStart(2, "0")}`]);
    sock.send({ type: "batch", seq: 1, readings: batch(1) });
    sock.send({ type: "batch", seq: 2, readings: batch(2) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    const listed = await devices(group);
    expect(listed).toHaveLength(40);
    for (const d of listed) {
      expect(d.readings, d.id).toBe(d.id === "m-07" ? 5 : 4);
      expect(d.lastSeq, d.id).toBe(d.id === "m-07" ? 41 : 0);
    }
    expect(count(await aggregates(group))).toBe(161);
    sock.close();
    native.sock.close();
  });

  it("rejects a whole batch when a reading has no valid device, and applies nothing of it", async () => {
    const group = uniqueGroup("gwbad");
    const t = bucketAgo(1);
    const { sock } = await connectGateway(group);
    const cases: [CborValue[], string, string][] = [
      [[[t, "temp", 1, "ok"], [t, "temp", 2]], "bad_reading", "reading 1"],
      [[[t, "temp", 1, "ok"], [t, "temp", 2, "bad id"]], "bad_device", "reading 1"],
      [[[t, "temp", 1, ""]], "bad_device", "reading 0"],
      [[[t, "temp", 1, 42]], "bad_device", "reading 0"],
      [[[t, "temp", 1, null]], "bad_device", "reading 0"],
      [[[t, "temp", 1, "x".repeat(65)]], "bad_device", "reading 0"],
      [[[t, "temp", 1, "ok", "extra"]], "bad_reading", "reading 0"],
      [[[t, "bad metric", 1, "ok"]], "bad_metric", "reading 0"],
      [[[t, "temp", "1", "ok"]], "bad_value", "reading 0"],
    ];
    let seq = 1;
    for (const [readings, code, where] of cases) {
      sock.send({ type: "batch", seq, readings });
      const frame = (await sock.next()) as { type: string; seq: number; code: string; message: string };
      expect(frame, code).toEqual({ type: "error", seq, code, message: expect.stringContaining(where) });
      seq++;
    }
    // Nothing of the rejected batches was applied, and the socket still works.
    sock.send({ type: "batch", seq, readings: [[t, "temp", 9, "ok"]] });
    expect(await sock.next()).toEqual({ type: "ack", seq });
    expect(await aggregates(group)).toMatchObject([{ device: "ok", metric: "temp", count: 1, sum: 9 }]);
    expect((await devices(group)).map((d) => d.id)).toEqual(["ok"]);
    sock.close();
  });
});

interface LiveDevice {
  id: string;
  rejected: { count: number; lastCode: string | null };
}
interface Totals {
  rejected: Record<string, number>;
}

describe("peer reporting", () => {
  it("counts a gateway's validation rejection in the live totals without inventing a device for it", async () => {
    const group = uniqueGroup("peers");
    const live = await openLive(group);
    live.ack(await live.frame(0));
    const gw = await connectGateway(group, "gw-1");
    gw.sock.send({ type: "batch", seq: 1, readings: [[Date.now(), "temp", 1, "bad id!"]] });
    expect(await gw.sock.next()).toMatchObject({ type: "error", seq: 1, code: ErrorCode.BadDevice });

    const s = await live.until((f) => ((f.totals as Totals | undefined)?.rejected[ErrorCode.BadDevice] ?? 0) === 1, 1);
    expect((s.devices as LiveDevice[]).map((d) => d.id)).not.toContain("gw-1");

    // A device's rejection lands on its own row as well.
    const dev = await connectDevice(group, "gw-1");
    dev.sock.send({ type: "batch", seq: 1, readings: [[Date.now(), "bad metric", 1]] });
    expect(await dev.sock.next()).toMatchObject({ type: "error", code: ErrorCode.BadMetric });
    const d = await live.until((f) => (f.devices as LiveDevice[] | undefined)?.some((x) => x.id === "gw-1" && x.rejected.count === 1) ?? false);
    expect((d.devices as LiveDevice[]).find((x) => x.id === "gw-1")?.rejected.lastCode).toBe(ErrorCode.BadMetric);
    // The gateway's rejection never reached the devices table either.
    expect((await devices(group)).map((x) => x.id)).toEqual(["gw-1"]);
    live.ws.close(1000, "done");
    gw.sock.close();
    dev.sock.close();
  });

  it("reports a rate-limited gateway as a gateway (the ingest stage with a one-reading bucket)", async () => {
    const group = uniqueGroup("peers");
    const stub = env.GROUPS.getByName(group);
    // The object's own constructor migrates the database this stage uses.
    const reported = await runInDurableObject(stub, (_hub, state) => {
      const limits = { ...readLimits({ ...env }), peerReadingsPerSec: 1, peerBurstReadings: 1, groupCommitMs: 0 };
      const out: { peer: Peer; code: string }[] = [];
      const ingest = new Ingest<null>(new Store(state.storage), limits, {
        name: () => group,
        hasPendingWork: () => false,
        inCommit: () => null,
        afterCommit: () => {},
        afterFailure: () => {},
        rejected: (peer, code) => out.push({ peer, code }),
        overBudget: () => {},
        downlink: () => null,
        storageFull: () => null,
      });
      const sent: unknown[] = [];
      const sender = (peer: Peer): PeerSender => ({
        peer,
        send: (data) => {
          const d = decodeCbor(data);
          sent.push(d.ok ? d.value : d);
          return true;
        },
        close: () => {},
      });
      const gateway = sender({ kind: "gateway", id: "gw-1" });
      const now = Date.now();
      const frame = (seq: number) => encodeCbor({ type: "batch", seq, readings: [[now, "t", 1, "dev-a"], [now, "t", 2, "dev-b"]] }).slice().buffer;
      ingest.connect(gateway.peer, now);
      ingest.onMessage(gateway, frame(1)); // the bucket's one reading lets a full batch through once
      ingest.onMessage(gateway, frame(2));
      return { out, sent };
    });
    expect(reported.sent).toEqual([
      { type: "ack", seq: 1 },
      { type: "error", seq: 2, code: ErrorCode.RateLimited, message: expect.any(String), retryAfterMs: expect.any(Number) },
    ]);
    expect(reported.out).toEqual([{ peer: { kind: "gateway", id: "gw-1" }, code: ErrorCode.RateLimited }]);
  });

  it("gives a device and a gateway of the same name separate sequences", async () => {
    const group = uniqueGroup("peers");
    const dev = await connectDevice(group, "same");
    dev.sock.send({ type: "batch", seq: 5, readings: makeReadings(2) });
    expect(await dev.sock.next()).toEqual({ type: "ack", seq: 5 });
    const gw = await connectGateway(group, "same");
    expect(gw.lastSeq).toBe(0);
    gw.sock.send({ type: "batch", seq: 1, readings: [[Date.now(), "temp", 1, "same"]] });
    expect(await gw.sock.next()).toEqual({ type: "ack", seq: 1 });
    // The gateway's reading counts for the device, whose own lastSeq stays 5.
    expect(await devices(group)).toMatchObject([{ id: "same", lastSeq: 5, readings: 3 }]);
    dev.sock.close();
    gw.sock.close();
  });
});

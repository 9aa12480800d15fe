/**
 * One peer model: a gateway's rejections are reported as the gateway's,
 * never as a device's, whether the validator or the rate limit refused the
 * batch; a device's stay on the device's row.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";
import { readLimits } from "../../schema/limits.ts";
import { ErrorCode } from "../../schema/protocol.ts";
import type { PeerSender } from "../../worker/group/ingest/frames.ts";
import { Ingest } from "../../worker/group/ingest/ingest.ts";
import { Store } from "../../worker/group/ingest/store.ts";
import type { Peer } from "../../worker/group/peer.ts";
import { connectDevice, connectGateway, devices, makeReadings, openLive, uniqueGroup } from "./helpers.ts";

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

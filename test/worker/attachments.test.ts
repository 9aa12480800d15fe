/**
 * Socket attachments: today's versioned form, its size, and sockets that
 * were open across a deploy still carrying the old one-letter form.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { fromAttachment, MAX_ATTACHMENT_BYTES, toAttachment, type SocketRole } from "../../worker/group/connections/attachment.ts";
import { connectDevice, connectGateway, devices, makeReadings, openLive, uniqueGroup } from "./helpers.ts";

const LONGEST_ID = "x".repeat(64);

describe("attachments", () => {
  it("round-trip every role, stay far below the runtime's 2 KB, and refuse what they cannot trust", () => {
    const roles: SocketRole[] = [
      { kind: "peer", peer: { kind: "device", id: LONGEST_ID }, connectedAt: Number.MAX_SAFE_INTEGER },
      { kind: "peer", peer: { kind: "gateway", id: "bridge-1" }, connectedAt: 1 },
      { kind: "dashboard", connectedAt: 2 },
    ];
    for (const role of roles) {
      const a = toAttachment(role);
      expect(JSON.stringify(a).length).toBeLessThan(MAX_ATTACHMENT_BYTES / 8);
      expect(fromAttachment(structuredClone(a))).toEqual(role);
    }
    expect(toAttachment(roles[0] as SocketRole)).toEqual({ v: 1, kind: "device", id: LONGEST_ID, connectedAt: Number.MAX_SAFE_INTEGER });
    for (const bad of [null, 7, "device", {}, { v: 2, kind: "device", id: "a", connectedAt: 1 }, { v: 1, kind: "device", id: "bad id", connectedAt: 1 },
      { v: 1, kind: "sensor", id: "a", connectedAt: 1 }, { v: 1, kind: "gateway", id: "a" }, { k: "device", g: "g", t: 1 }, { k: "gateway", g: "g", d: "a", t: 1 }]) {
      expect(fromAttachment(bad), JSON.stringify(bad)).toBeNull();
    }
  });

  it("reads the one-letter attachments of sockets accepted before versioning", () => {
    expect(fromAttachment({ k: "device", g: "grp", d: "dev-1", t: 5 })).toEqual({ kind: "peer", peer: { kind: "device", id: "dev-1" }, connectedAt: 5 });
    expect(fromAttachment({ k: "gateway", g: "grp", w: "gw-1", t: 6 })).toEqual({ kind: "peer", peer: { kind: "gateway", id: "gw-1" }, connectedAt: 6 });
    expect(fromAttachment({ k: "live", g: "grp", t: 7 })).toEqual({ kind: "dashboard", connectedAt: 7 });
  });

  it("keeps serving sockets that carry the old form across a deploy (an eviction), and rewrites them", async () => {
    const group = uniqueGroup("attach");
    const stub = env.GROUPS.getByName(group);
    const dev = await connectDevice(group, "old-dev");
    const gw = await connectGateway(group, "old-gw");
    const live = await openLive(group);
    live.ack(await live.frame(0));

    // What the previous version wrote, and the name the object knows itself by.
    const name = await runInDurableObject(stub, (_hub, state) => {
      for (const ws of state.getWebSockets()) {
        const [tag] = state.getTags(ws);
        if (tag === "live") ws.serializeAttachment({ k: "live", g: group, t: 1 });
        else if (tag?.startsWith("d:")) ws.serializeAttachment({ k: "device", g: group, d: tag.slice(2), t: 1 });
        else if (tag?.startsWith("w:")) ws.serializeAttachment({ k: "gateway", g: group, w: tag.slice(2), t: 1 });
      }
      return state.id.name;
    });
    expect(name).toBe(group);
    await evictDurableObject(stub);

    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(2) });
    expect(await dev.sock.next()).toEqual({ type: "ack", seq: 1 });
    gw.sock.send({ type: "batch", seq: 1, readings: [[Date.now(), "temp", 1, "via-gw"]] });
    expect(await gw.sock.next()).toEqual({ type: "ack", seq: 1 });
    expect(await devices(group)).toMatchObject([
      { id: "old-dev", online: true, readings: 2 },
      { id: "via-gw", online: false, readings: 1 },
    ]);
    // The dashboard is still a dashboard: it gets the summary of those batches.
    await live.until((f) => (f.devices as { id: string }[] | undefined)?.some((d) => d.id === "via-gw") ?? false, 1);

    const stored = await runInDurableObject(stub, (_hub, state) => state.getWebSockets().map((ws) => ws.deserializeAttachment() as unknown));
    expect(stored).toHaveLength(3);
    expect(stored).toEqual(expect.arrayContaining([
      { v: 1, kind: "device", id: "old-dev", connectedAt: 1 },
      { v: 1, kind: "gateway", id: "old-gw", connectedAt: 1 },
      { v: 1, kind: "dashboard", id: "", connectedAt: 1 },
    ]));
    live.ws.close(1000, "done");
    dev.sock.close();
    gw.sock.close();
  });
});

/**
 * End to end against a real `wrangler dev` started by the test: the device
 * client, reconnects, a hub restart on the same state, REST and auth over
 * real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { Reading } from "../../schema/protocol.ts";
import { waitFor } from "../../harness/wait.ts";
import { buckets, deviceClient, operatorGet, startTestHub, uniqueGroup, type TestHub } from "./hub.ts";

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t?.stop();
});

/**
 * `n` readings of `metric` with distinct integer values, 1 ms apart from ten
 * minutes before the test file started. However fast a test sends, reading
 * `k` has timestamp `BASE + k`, so no timestamp runs ahead of real time
 * (600,000 readings would be needed to reach the present) and none falls
 * outside the hub's window however slow the machine is.
 */
const BASE = Date.now() - 10 * 60_000;
function readings(n: number, offset: number, metric = "temp"): Reading[] {
  const out: Reading[] = [];
  for (let i = 0; i < n; i++) out.push([BASE + offset + i, metric, offset + i]);
  return out;
}

function total(bs: { count: number }[]): number {
  return bs.reduce((n, b) => n + b.count, 0);
}

describe("hub under wrangler dev", () => {
  it("ingests batches from the device client and serves them over REST", async () => {
    const group = uniqueGroup();
    const client = (await deviceClient(t.url, group, "dev-a")).start();
    let acked = 0;
    client.on("ack", (_seq, dup) => {
      if (!dup) acked++;
    });
    for (let b = 0; b < 20; b++) client.send(readings(50, b * 50));
    await client.idle();
    expect(acked).toBe(20);
    const bs = await buckets(t.url, group);
    expect(total(bs)).toBe(1000);
    expect(bs.reduce((s, b) => s + b.sum, 0)).toBe((999 * 1000) / 2);
    const { body } = await operatorGet(t.url, `/v1/groups/${group}/devices`, group);
    expect(body).toEqual({
      devices: [{ id: "dev-a", lastSeq: 20, lastSeen: expect.any(Number), online: true, readings: 1000 }],
    });
    await client.close();
  });

  it("resends unacked batches after dropped connections, applying each exactly once", async () => {
    const group = uniqueGroup();
    const client = (await deviceClient(t.url, group, "flaky", { maxInFlight: 8 })).start();
    let disconnects = 0;
    client.on("disconnect", () => disconnects++);
    for (let b = 0; b < 200; b++) {
      client.send(readings(10, b * 10));
      if (b % 40 === 20) {
        while (client.state !== "open") await new Promise((r) => setTimeout(r, 5));
        client.dropConnection();
      }
      if (b % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await client.idle();
    expect(disconnects).toBe(5);
    const bs = await buckets(t.url, group);
    expect(total(bs)).toBe(2000);
    expect(bs.reduce((s, b) => s + b.sum, 0)).toBe((1999 * 2000) / 2);
    await client.close();
  });

  it("continues above lastSeq when a device restarts without saved state", async () => {
    const group = uniqueGroup();
    const first = (await deviceClient(t.url, group, "amnesiac")).start();
    for (let b = 0; b < 5; b++) first.send(readings(10, b * 10));
    await first.idle();
    await first.close();
    // Same device, no saved seq: the client waits for hello and numbers from lastSeq + 1.
    const second = (await deviceClient(t.url, group, "amnesiac")).start();
    const acks: [number, boolean][] = [];
    second.on("ack", (seq, dup) => acks.push([seq, dup]));
    second.send(readings(10, 50));
    await second.idle();
    expect(acks).toEqual([[6, false]]);
    expect(total(await buckets(t.url, group))).toBe(60);
    await second.close();
  });

  it("survives a hub restart mid-stream with nothing lost or doubled", async () => {
    const group = uniqueGroup();
    const devices = ["r1", "r2", "r3"];
    const clients = await Promise.all(
      devices.map(async (d) => (await deviceClient(t.url, group, d, { ackTimeoutMs: 3000 })).start()),
    );
    let disconnects = 0;
    for (const c of clients) c.on("disconnect", () => disconnects++);
    // Keep batches flowing while the hub goes down and comes back; the
    // phases wait on what the clients observe, not on the clock.
    let acked = 0;
    for (const c of clients) c.on("ack", () => acked++);
    let b = 0;
    const sender = setInterval(() => {
      for (const c of clients) c.send(readings(20, b * 20));
      b++;
    }, 5);
    await waitFor(() => acked >= 30, "batches acked before the restart");
    await t.restart();
    const ackedAfterRestart = acked;
    await waitFor(() => acked >= ackedAfterRestart + 30, "batches acked after the restart");
    clearInterval(sender);
    await Promise.all(clients.map((c) => c.idle()));
    expect(disconnects).toBeGreaterThanOrEqual(3);
    const n = b * 20;
    const bs = await buckets(t.url, group);
    for (const d of devices) {
      const mine = bs.filter((x) => x.device === d);
      expect(total(mine)).toBe(n);
      expect(mine.reduce((s, x) => s + x.sum, 0)).toBe(((n - 1) * n) / 2);
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  it("keeps tokens out of the hub's logs, also when sent as ?token=", async () => {
    const group = uniqueGroup();
    const client = (await deviceClient(t.url, group, "quiet", { tokenInQuery: true })).start();
    client.send(readings(5, 0));
    await client.idle();
    const bad = await fetch(`${t.url}/v1/groups/${group}/devices?token=${client.opts.token}`);
    expect(bad.status).toBe(401);
    await client.close();
    await waitFor(() => t.hub.output().includes(group), "the hub to log the group");
    expect(t.hub.output()).not.toContain(client.opts.token);
  });

  it("rejects bad requests with JSON errors before they reach a group", async () => {
    const group = uniqueGroup();
    const noUpgrade = await fetch(`${t.url}/v1/groups/${group}/devices/d/ws`);
    expect(noUpgrade.status).toBe(426);
    expect(await noUpgrade.json()).toMatchObject({ error: "upgrade_required" });
    const badId = await fetch(`${t.url}/v1/groups/bad%20id/devices`);
    expect(badId.status).toBe(400);
    const noToken = await fetch(`${t.url}/v1/groups/${group}/devices`);
    expect(noToken.status).toBe(401);
    expect(await noToken.json()).toMatchObject({ error: "unauthorized" });
    // A socket with a wrong token fails the handshake with 401.
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${t.url.replace("http", "ws")}/v1/groups/${group}/devices/d/ws?token=AAAA`);
      ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.on("open", () => resolve(101));
      ws.on("error", () => undefined);
    });
    expect(status).toBe(401);
  });
});

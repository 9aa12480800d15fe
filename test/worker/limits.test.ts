/** Socket limits per group (vitest.config.ts sets MAX_PEER_SOCKETS=60 and MAX_DASHBOARD_SOCKETS=20 for tests). */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { connectDevice, deviceToken, openSocket, operatorToken, uniqueGroup, type TestSocket } from "./helpers.ts";

describe("socket limits", () => {
  it("refuses the device socket past the group's limit with 503 too_many_sockets, but a reconnect replaces its own", async () => {
    const group = uniqueGroup();
    const socks: TestSocket[] = [];
    for (let i = 0; i < 60; i++) socks.push((await connectDevice(group, `d${i}`)).sock);
    const over = await openSocket(`/v1/groups/${group}/devices/d60/ws`, await deviceToken(group, "d60"));
    expect(over.status).toBe(503);
    expect(over.headers.get("retry-after")).toBe("30");
    expect(await over.json()).toMatchObject({ error: "too_many_sockets" });
    // A device already connected may reconnect: its old socket makes way.
    const again = await connectDevice(group, "d0");
    expect((await socks[0]?.closed)?.code).toBe(4001);
    again.sock.close();
    for (const s of socks.slice(1)) s.close();
    await Promise.all([again.sock.closed, ...socks.map((s) => s.closed)]);
  });

  it("frees a slot as soon as a socket closes, once per socket, and counts a replaced one out", async () => {
    const group = uniqueGroup();
    const socks: TestSocket[] = [];
    for (let i = 0; i < 60; i++) socks.push((await connectDevice(group, `d${i}`)).sock);
    // Two devices leave: the hub completes their close handshakes.
    for (const s of socks.splice(0, 2)) {
      s.close();
      await s.closed;
    }
    // Exactly two new ones fit; a reconnect of a connected device still replaces its own.
    socks.push((await connectDevice(group, "n0")).sock, (await connectDevice(group, "n1")).sock);
    expect((await openSocket(`/v1/groups/${group}/devices/n2/ws`, await deviceToken(group, "n2"))).status).toBe(503);
    const again = await connectDevice(group, "d5");
    expect((await socks[3]?.closed)?.code).toBe(4001);
    expect((await openSocket(`/v1/groups/${group}/devices/n2/ws`, await deviceToken(group, "n2"))).status).toBe(503);
    again.sock.close();
    for (const s of socks) s.close();
    await Promise.all([again.sock.closed, ...socks.map((s) => s.closed)]);
  });

  it("refuses dashboards past the group's limit", async () => {
    const group = uniqueGroup();
    const token = await operatorToken(group);
    const open: WebSocket[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=${token}`, { headers: { upgrade: "websocket" } });
      expect(res.status).toBe(101);
      if (res.webSocket) {
        res.webSocket.accept();
        open.push(res.webSocket);
      }
    }
    const over = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=${token}`, { headers: { upgrade: "websocket" } });
    expect(over.status).toBe(503);
    expect(await over.json()).toMatchObject({ error: "too_many_sockets" });
    await Promise.all(
      open.map((ws) => {
        const closed = new Promise((r) => ws.addEventListener("close", r));
        ws.close(1000, "done");
        return closed;
      }),
    );
  });
});

/** The live dashboard socket: snapshot, coalesced summaries, flow control, idle silence, eviction. */
import { env, evictDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { connectDevice, makeReadings, operatorToken, uniqueGroup } from "./helpers.ts";

/** Client end of a live socket: JSON frames in an inbox. */
class LiveClient {
  readonly ws: WebSocket;
  readonly frames: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  closed: Promise<number>;

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((r) => ws.addEventListener("close", (e) => r(e.code)));
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") throw new Error("live frames must be text");
      this.frames.push(JSON.parse(e.data) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.accept();
  }

  /** Waits for the next frame (index `i`), failing after `ms`. */
  async frame(i: number, ms = 3000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (this.frames.length <= i) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame ${i} within ${ms} ms (have ${this.frames.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const f = this.frames[i];
    if (!f) throw new Error("missing frame");
    return f;
  }

  ack(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ type: "ack", seq: frame.seq }));
  }
}

async function openLive(group: string, token?: string): Promise<LiveClient> {
  const t = token ?? (await operatorToken(group));
  const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=${t}`, { headers: { upgrade: "websocket" } });
  if (res.status !== 101 || !res.webSocket) throw new Error(`live: ${res.status} ${await res.text()}`);
  return new LiveClient(res.webSocket);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DeviceJson {
  id: string;
  online: boolean;
  latest: Record<string, { value: number; ts: number }>;
  readings: number;
}

describe("live socket", () => {
  it("sends a snapshot, then a coalesced summary after data arrives", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "d1");
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(5) });
    await dev.sock.next();
    const live = await openLive(group);
    const snap = await live.frame(0);
    expect(snap).toMatchObject({ type: "snapshot", v: 1, group, seq: expect.any(Number) });
    const devices = snap.devices as DeviceJson[];
    expect(devices).toHaveLength(1);
    expect(devices[0]).toMatchObject({ id: "d1", online: true, readings: 5, latest: { temp: { value: 4.5 } } });
    live.ack(snap);

    // Twenty batches in quick succession become one or two summaries, not twenty.
    for (let seq = 2; seq <= 21; seq++) dev.sock.send({ type: "batch", seq, readings: makeReadings(5) });
    for (let seq = 2; seq <= 21; seq++) await dev.sock.next();
    const s1 = await live.frame(1);
    live.ack(s1);
    await sleep(700);
    expect(live.frames.length).toBeLessThanOrEqual(3);
    const last = live.frames[live.frames.length - 1] as { type: string; totals: { online: number }; devices: DeviceJson[] };
    expect(last.type).toBe("summary");
    expect(last.totals.online).toBe(1);
    const d1 = last.devices.find((d) => d.id === "d1");
    expect(d1?.readings).toBe(105);
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("sends nothing more to a socket that has not acked, then catches it up in one frame", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "slow");
    const live = await openLive(group);
    await live.frame(0); // snapshot, deliberately not acked
    for (let seq = 1; seq <= 10; seq++) {
      dev.sock.send({ type: "batch", seq, readings: makeReadings(3) });
      await dev.sock.next();
      await sleep(100);
    }
    await sleep(600);
    expect(live.frames).toHaveLength(1);
    live.ack(live.frames[0] ?? {});
    const catchUp = (await live.frame(1)) as { devices: DeviceJson[] };
    expect(catchUp.devices.find((d) => d.id === "slow")?.readings).toBe(30);
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("falls silent when the group is idle", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "quiet");
    const live = await openLive(group);
    live.ack(await live.frame(0));
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(3) });
    await dev.sock.next();
    // Summaries follow while the 10 s rate window drains, each acked...
    const deadline = Date.now() + 14_000;
    let seen = 1;
    while (Date.now() < deadline) {
      await sleep(300);
      while (seen < live.frames.length) live.ack(live.frames[seen++] ?? {});
    }
    const count = live.frames.length;
    // ...and then nothing at all.
    await sleep(1500);
    expect(live.frames.length).toBe(count);
    live.ws.close(1000, "done");
    dev.sock.close();
  }, 25_000);

  it("keeps working across an eviction of the group's object", async () => {
    const group = uniqueGroup();
    const dev = await connectDevice(group, "ev");
    const live = await openLive(group);
    live.ack(await live.frame(0));
    await evictDurableObject(env.GROUPS.getByName(group));
    dev.sock.send({ type: "batch", seq: 1, readings: makeReadings(4) });
    expect(await dev.sock.next()).toEqual({ type: "ack", seq: 1 });
    const s = (await live.frame(1)) as { type: string; devices: DeviceJson[] };
    expect(s.type).toBe("summary");
    expect(s.devices.find((d) => d.id === "ev")).toMatchObject({ readings: 4, online: true });
    live.ws.close(1000, "done");
    dev.sock.close();
  });

  it("refuses a wrong token and a missing upgrade, and closes on a non-ack frame", async () => {
    const group = uniqueGroup();
    const bad = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=nope`, { headers: { upgrade: "websocket" } });
    expect(bad.status).toBe(401);
    const plain = await SELF.fetch(`http://hub.test/v1/groups/${group}/live`, { headers: { authorization: `Bearer ${await operatorToken(group)}` } });
    expect(plain.status).toBe(426);
    const live = await openLive(group);
    await live.frame(0);
    live.ws.send("{not json");
    expect(await live.closed).toBe(1007);
  });
});

/**
 * What the device client puts on the wire, against a real `wrangler dev`:
 * compact batches by default (values lossless), v1 batches on request,
 * float32 only when allowed, the gateway client likewise, and a reading
 * only v1 can carry sent as v1 so the hub names the same error. The frames
 * are read off `ws`'s real send (a spy that calls through). And the
 * simulator's --frames and --float32, verified against the hub.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { GatewayClient } from "../../bridge/gateway-client.ts";
import { parseOptions } from "../../bridge/options.ts";
import { decodeCbor, type CborValue } from "../../schema/cbor.ts";
import type { GatewayReading, Reading } from "../../schema/protocol.ts";
import { TEST_SECRET } from "../secret.ts";
import { gatewayToken } from "../tokens.ts";
import { buckets, deviceClient, sharedHub, uniqueGroup } from "./hub.ts";
import { freePort } from "../../harness/ports.ts";
import { waitFor } from "../../harness/wait.ts";
import { inProcessBridge, publisher, SENSOR } from "./mqtt.ts";
import { runSim, summaryOf } from "./sim-cli.ts";

const t = sharedHub();
afterEach(() => {
  vi.restoreAllMocks();
});

/** Types of the binary frames every socket of this process sends from now on. */
function frameTypes(): string[] {
  const types: string[] = [];
  const send = WebSocket.prototype.send;
  vi.spyOn(WebSocket.prototype, "send").mockImplementation(function (this: WebSocket, data: unknown, ...rest: unknown[]) {
    if (data instanceof Uint8Array) {
      const d = decodeCbor(data);
      const type = d.ok && typeof d.value === "object" && d.value !== null ? (d.value as { type?: unknown }).type : undefined;
      types.push(typeof type === "string" ? type : "?");
    }
    return (send as (...a: unknown[]) => void).call(this, data, ...rest);
  });
  return types;
}

// Ten minutes ago, 1 s apart: never ahead of the hub's clock.
const BASE = Date.now() - 10 * 60_000;
const values = [21.53, 20, 19.875, 0.1];
const readings = (metric: string): Reading[] => values.map((v, i) => [BASE + i * 1000, metric, v]);

describe("device client frames", () => {
  it("sends cbatch by default, values exact; frames: batch sends v1; values: float32 rounds", async () => {
    const cases: { name: string; extra: object; type: string; stored: number[] }[] = [
      { name: "default", extra: {}, type: "cbatch", stored: values },
      { name: "frames: batch", extra: { frames: "batch" }, type: "batch", stored: values },
      { name: "values: float32", extra: { values: "float32" }, type: "cbatch", stored: values.map(Math.fround) },
    ];
    for (const c of cases) {
      const group = uniqueGroup("frames");
      const types = frameTypes();
      const client = (await deviceClient(t.url, group, "dev-1", c.extra)).start();
      client.send(readings("temp"));
      client.send(readings("hum"));
      await client.idle();
      await client.close();
      vi.restoreAllMocks();
      expect(types, c.name).toEqual([c.type, c.type]);
      const bs = await buckets(t.url, group);
      expect(bs.reduce((n, b) => n + b.count, 0), c.name).toBe(8);
      // A metric's readings fall in one or two minute buckets; their sums add up to the stored values' (float32's rounding shows at 1e-7).
      for (const metric of ["temp", "hum"]) {
        const sum = bs.filter((b) => b.metric === metric).reduce((s, b) => s + b.sum, 0);
        expect(sum, `${c.name} ${metric}`).toBeCloseTo(c.stored.reduce((s, v) => s + v, 0), 12);
      }
    }
  });

  it("sends a batch with a reading a cbatch cannot hold as v1, refused with the v1 code", async () => {
    const group = uniqueGroup("frames-bad");
    const types = frameTypes();
    const client = (await deviceClient(t.url, group, "dev-1")).start();
    const codes: string[] = [];
    client.on("reject", (_seq, code) => codes.push(code));
    client.send([[BASE, "temp", 1]]);
    client.send([[BASE, "bad metric", 1]]);
    (client as unknown as { send(r: readonly CborValue[][]): boolean }).send([[BASE, "temp"]]);
    await client.idle();
    await client.close();
    expect(types).toEqual(["cbatch", "cbatch", "batch"]);
    expect(codes).toEqual(["bad_metric", "bad_reading"]);
  });

  it("the gateway client sends cbatch too, each device's readings where they belong", async () => {
    const group = uniqueGroup("frames-gw");
    const types = frameTypes();
    const gw = new GatewayClient({ url: t.url, group, gateway: "bridge-1", token: await gatewayToken(group, "bridge-1") }).start();
    const rs: GatewayReading[] = [
      [BASE, "temp", 1.5, "a"],
      [BASE + 10, "temp", 2.5, "b"],
      [BASE + 20, "temp", 3.5, "a"],
    ];
    gw.send(rs);
    await gw.idle();
    await gw.close();
    expect(types).toEqual(["cbatch"]);
    const bs = await buckets(t.url, group);
    expect(bs.map((b) => [b.device, b.count, b.sum])).toEqual([
      ["a", 2, 5],
      ["b", 1, 2.5],
    ]);
  });
});

describe("npm run sim --frames / --float32", () => {
  const hub = () => ({ url: t.url, secret: TEST_SECRET });
  it("--frames batch (v1) and --float32 (compact, float32 values) both verify exactly", async () => {
    for (const args of [["--frames", "batch"], ["--float32"]]) {
      const prefix = uniqueGroup("simf");
      const r = await runSim(["--prefix", prefix, "--groups", "1", "--devices", "3", "--rate", "20/s", "--duration", "2s", "--verify", "--json", ...args], { hub: hub() });
      const s = summaryOf(r);
      expect(r.code, r.stderr).toBe(0);
      expect(s.verify?.ok, args.join(" ")).toBe(true);
      expect(s.ackedReadings).toBeGreaterThan(100);
      if (args[0] === "--float32") for (const b of await buckets(t.url, `${prefix}-1`)) expect([Math.fround(b.min), Math.fround(b.max)]).toEqual([b.min, b.max]);
    }
  });

  it("--frames other than cbatch or batch exits 2", async () => {
    const r = await runSim(["--frames", "json"], { hub: hub() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--frames must be cbatch or batch/);
  });
});

describe("the MQTT bridge's gateway batches", () => {
  it("take --frames / BRIDGE_FRAMES (cbatch or batch) and --float32 / BRIDGE_FLOAT32", () => {
    expect(parseOptions([], {}).config).toMatchObject({ frames: "cbatch", float32: false });
    expect(parseOptions(["--frames", "batch", "--float32"], {}).config).toMatchObject({ frames: "batch", float32: true });
    expect(parseOptions([], { BRIDGE_FRAMES: "batch", BRIDGE_FLOAT32: "true" }).config).toMatchObject({ frames: "batch", float32: true });
    expect(() => parseOptions(["--frames", "json"], {})).toThrow(/--frames.*cbatch or batch|cbatch or batch/);
  });

  it("go as cbatch by default (values exact), v1 with frames batch, rounded to float32 only with float32", async () => {
    const cases = [
      { name: "default", over: {}, type: "cbatch", stored: 21.53 },
      { name: "frames: batch", over: { frames: "batch" as const }, type: "batch", stored: 21.53 },
      { name: "float32", over: { float32: true }, type: "cbatch", stored: Math.fround(21.53) },
    ];
    for (const c of cases) {
      const group = uniqueGroup("brf");
      const types = frameTypes();
      const { bridge } = await inProcessBridge({ hubUrl: t.url, gateway: "gw-frames", embeddedBroker: await freePort(), clientId: `${group}-bridge`, ...c.over }, [group]);
      try {
        await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
        const pub = await publisher(`mqtt://127.0.0.1:${bridge.brokerPort ?? 0}`, `${group}-pub`, SENSOR);
        await pub.publishAsync(`sensors/${group}/boiler/temp`, JSON.stringify({ value: 21.53, ts: BASE }), { qos: 1 });
        await pub.endAsync();
        await waitFor(() => bridge.counters.hubAcked === 1, "the message to be acked", 30_000);
      } finally {
        await bridge.stop();
      }
      vi.restoreAllMocks();
      expect(types.filter((x) => x === "cbatch" || x === "batch"), c.name).toEqual([c.type]);
      expect((await buckets(t.url, group)).map((b) => [b.device, b.count, b.sum]), c.name).toEqual([["boiler", 1, c.stored]]);
    }
  });
});

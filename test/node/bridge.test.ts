/**
 * The MQTT bridge end to end: a real Mosquitto started here (and the
 * embedded aedes broker), the bridge, and a real hub under `wrangler dev`.
 * Every published QoS 1 message must land in the hub's aggregates exactly
 * once; what cannot be used is counted, logged (rate-limited) and PUBACKed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedBroker } from "../../bridge/embedded-broker.ts";
import { encodeCbor } from "../../schema/cbor.ts";
import { freePort } from "../../harness/ports.ts";
import { buckets, operatorClient, operatorGet, sharedHub, uniqueGroup, type Bucket } from "./hub.ts";
import { downlinkTopics } from "../../bridge/downlink.ts";
import { parseTemplates } from "../../bridge/mapping.ts";
import { DEFAULTS } from "../../bridge/options.ts";
import { SENSOR, brokerUsers, hasMosquitto, inProcessBridge, mosquittoPub, publisher, startMosquitto, waitFor, type Mosquitto } from "./mqtt.ts";

const available = hasMosquitto();
if (!available && !process.env.CI) console.warn("mosquitto is not installed: skipping the bridge tests (apt-get install mosquitto mosquitto-clients)");

const t = sharedHub();
let mq: Mosquitto;
beforeAll(async () => {
  if (!available && !process.env.CI) return;
  mq = await startMosquitto();
});
afterAll(async () => {
  await mq?.stop();
});

const total = (bs: Bucket[]): number => bs.reduce((n, b) => n + b.count, 0);
const sum = (bs: Bucket[]): number => bs.reduce((s, b) => s + b.sum, 0);
const of = (bs: Bucket[], device: string, metric: string): Bucket[] => bs.filter((b) => b.device === device && b.metric === metric);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const triangle = (n: number): number => (n * (n - 1)) / 2;

describe.skipIf(!available && !process.env.CI)("MQTT bridge", () => {
  for (const kind of ["mosquitto", "embedded"] as const) {
    it(`${kind}: N QoS 1 messages from mosquitto_pub and MQTT.js give exactly N readings with matching sums`, async () => {
      const group = uniqueGroup("br");
      const gateway = `gw-${kind}`;
      const { bridge } = await inProcessBridge(
        { hubUrl: t.url, gateway, mqttUrl: mq.url, embeddedBroker: kind === "embedded" ? await freePort() : null, clientId: `${group}-bridge` },
        [group],
      );
      try {
        await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
        // Mosquitto speaks MQTT 5, which lets the broker's in-flight window follow ours; aedes only 3.1.1.
        expect(bridge.health().mqtt.protocolVersion).toBe(kind === "mosquitto" ? 5 : 4);
        const port = kind === "embedded" ? (bridge.brokerPort ?? 0) : mq.port;
        const cred = kind === "embedded" ? SENSOR : undefined;
        const url = `mqtt://127.0.0.1:${port}`;

        // 1. mosquitto_pub: plain numbers as text on a metric topic.
        const N1 = 400;
        await mosquittoPub(port, `sensors/${group}/cli-sensor/temp`, range(N1).map(String), cred);

        // 2. MQTT.js: JSON with a timestamp, a device-level JSON object, and a CBOR batch.
        const N2 = 300;
        const pub = await publisher(url, `${group}-pub`, cred);
        const ts = Date.now() - 30_000;
        const sends: Promise<unknown>[] = [];
        for (let i = 0; i < N2; i++) {
          sends.push(pub.publishAsync(`sensors/${group}/js-a/power`, JSON.stringify({ value: i, ts: ts + i }), { qos: 1 }));
          sends.push(pub.publishAsync(`sensors/${group}/js-b`, JSON.stringify({ temp: i, hum: 2 * i }), { qos: 1 }));
          const cbor = encodeCbor({ type: "batch", seq: 1, readings: [[ts + i, "temp", i], [ts + i, "co2", 1]] });
          sends.push(pub.publishAsync(`sensors/${group}/js-c`, Buffer.from(cbor), { qos: 1 }));
        }
        await Promise.all(sends);
        await pub.endAsync();

        const messages = N1 + 3 * N2;
        await waitFor(() => bridge.counters.hubAcked === messages && bridge.health().inflight === 0, "every message to be acked", 60_000);
        const bs = await buckets(t.url, group);
        expect(total(bs)).toBe(N1 + 5 * N2);
        expect(total(of(bs, "cli-sensor", "temp"))).toBe(N1);
        expect(sum(of(bs, "cli-sensor", "temp"))).toBe(triangle(N1));
        expect(total(of(bs, "js-a", "power"))).toBe(N2);
        expect(sum(of(bs, "js-a", "power"))).toBe(triangle(N2));
        expect(sum(of(bs, "js-b", "temp"))).toBe(triangle(N2));
        expect(sum(of(bs, "js-b", "hum"))).toBe(2 * triangle(N2));
        expect(sum(of(bs, "js-c", "temp"))).toBe(triangle(N2));
        expect(sum(of(bs, "js-c", "co2"))).toBe(N2);

        // Bridged sensors are listed like native devices, without a seq of their own.
        const { body } = await operatorGet(t.url, `/v1/groups/${group}/devices`);
        expect((body as { devices: { id: string; lastSeq: number; readings: number }[] }).devices).toEqual([
          expect.objectContaining({ id: "cli-sensor", lastSeq: 0, readings: N1 }),
          expect.objectContaining({ id: "js-a", lastSeq: 0, readings: N2 }),
          expect.objectContaining({ id: "js-b", lastSeq: 0, readings: 2 * N2 }),
          expect.objectContaining({ id: "js-c", lastSeq: 0, readings: 2 * N2 }),
        ]);

        const c = bridge.counters;
        expect(c.received).toBe(messages);
        expect(c.forwarded).toBe(messages);
        expect(c.pubacked).toBe(messages);
        expect(Object.values(c.dropped).reduce((a, b) => a + b, 0)).toBe(0);
        expect(c.readingsAcked).toBe(N1 + 5 * N2);
        // Batched, not one batch per message.
        expect(c.batchesSent).toBeLessThan(messages / 4);
      } finally {
        await bridge.stop();
      }
    });
  }

  it("aedes as a 3.1.1-only broker: falls back from MQTT 5, bounds its window by pausing, and resumes the session in a new run", async () => {
    const group = uniqueGroup("aedes");
    const clientId = `${group}-bridge`;
    // Used here as an external broker: the bridge logs in with the broker's own bridge credential.
    const broker = await startEmbeddedBroker({
      port: 0,
      host: "127.0.0.1",
      users: await brokerUsers([group]),
      allowAnonymous: false,
      templates: parseTemplates(DEFAULTS.topics, null),
      bridgeClientId: clientId,
      onRefused: () => {},
    });
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const login = { mqttUsername: broker.bridgeUsername, mqttPassword: broker.bridgePassword };
    // First run: a hub that is not there, and a small window. aedes has no
    // in-flight limit of its own, so only the bridge's pause bounds what it holds.
    const deadHub = `http://127.0.0.1:${await freePort()}`;
    const first = await inProcessBridge({ hubUrl: deadHub, gateway: "gw-aedes", mqttUrl: url, clientId, window: 50, ...login }, [group]);
    try {
      await waitFor(() => first.bridge.health().mqtt.connected, "the first bridge's MQTT connection");
      expect(first.bridge.health().mqtt.protocolVersion).toBe(4);
      const pub = await publisher(url, `${group}-pub`, SENSOR);
      const n = 300;
      await Promise.all(range(n).map((i) => pub.publishAsync(`sensors/${group}/d-${i % 7}/temp`, String(i), { qos: 1 })));
      await pub.endAsync();
      await waitFor(() => first.bridge.counters.received >= 50, "the window to fill");
      await new Promise((r) => setTimeout(r, 500));
      expect(first.bridge.counters.received).toBeLessThanOrEqual(51);
      expect(first.bridge.health().inflight).toBeLessThanOrEqual(51);
      expect(first.bridge.counters.pubacked).toBe(0);
      await first.bridge.stop(200);

      // Second run, same client id, the real hub: aedes kept the session and redelivers everything.
      const second = await inProcessBridge({ hubUrl: t.url, gateway: "gw-aedes", mqttUrl: url, clientId, window: 50, ...login }, [group]);
      try {
        await waitFor(() => second.bridge.counters.hubAcked === n && second.bridge.health().inflight === 0, "every message to be acked", 30_000);
        const bs = await buckets(t.url, group);
        expect(total(bs)).toBe(n);
        expect(sum(bs)).toBe(triangle(n));
      } finally {
        await second.bridge.stop();
      }
    } finally {
      await first.bridge.stop();
      await broker.close();
    }
  });

  it("serves /healthz and /metrics over HTTP, and turns unhealthy while the hub refuses a token, holding that group's messages", async () => {
    const group = uniqueGroup("tok");
    const { bridge } = await inProcessBridge(
      { hubUrl: t.url, gateway: "gw-tok", mqttUrl: mq.url, clientId: `${group}-bridge`, httpPort: 0, tokens: { [group]: "A".repeat(43) } },
      [],
    );
    try {
      const base = `http://127.0.0.1:${bridge.httpPort}`;
      await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
      const healthy = await fetch(`${base}/healthz`);
      expect(healthy.status).toBe(200);
      expect(await healthy.json()).toMatchObject({ ok: true, mqtt: { connected: true, protocolVersion: 5 }, unauthorized: [] });

      const pub = await publisher(mq.url, `${group}-pub`);
      for (let i = 0; i < 5; i++) await pub.publishAsync(`sensors/${group}/d/temp`, String(i), { qos: 1 });
      await pub.endAsync();
      await waitFor(() => bridge.health().unauthorized.includes(group), "the hub to refuse the token", 10_000);
      const sick = await fetch(`${base}/healthz`);
      expect(sick.status).toBe(503);
      expect(await sick.json()).toMatchObject({ ok: false, unauthorized: [group], inflight: 5 });
      const metrics = await fetch(`${base}/metrics`);
      expect(metrics.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      const text = await metrics.text();
      expect(text).toContain("# TYPE bridge_messages_received_total counter");
      expect(text).toContain("bridge_messages_received_total 5");
      expect(text).toContain("bridge_messages_puback_total 0");
      expect(text).toContain("bridge_messages_inflight 5");
      expect(text).toContain(`bridge_hub_connected{group="${group}"} 0`);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await bridge.stop(100);
    }
  });

  it("counts and logs (rate-limited) malformed payloads and unmatched topics, PUBACKs them, and forwards the good messages around them", async () => {
    const group = uniqueGroup("bad");
    const { bridge, logs } = await inProcessBridge({ hubUrl: t.url, gateway: "gw-bad", mqttUrl: mq.url, clientId: `${group}-bridge` }, [group]);
    try {
      await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
      const pub = await publisher(mq.url, `${group}-pub`);
      const good = `sensors/${group}/good/temp`;
      const bad: [topic: string, payload: string | Buffer, reason: string][] = [
        [`sensors/${group}/d/temp`, "abc", "bad_payload"],
        [`sensors/${group}/d/temp`, "{", "bad_payload"],
        [`sensors/${group}/d/temp`, '{"value": "71.5"}', "bad_payload"],
        [`sensors/${group}/d/temp`, "NaN", "bad_payload"],
        [`sensors/${group}/d/temp`, "", "bad_payload"],
        [`sensors/${group}/d/temp`, "1e999", "bad_payload"],
        [`sensors/${group}/d`, '{"temp": "hot"}', "bad_payload"],
        [`sensors/${group}/d`, "[1, 2]", "bad_payload"],
        [`sensors/${group}/d`, '{"ts": 1, "temp": 1}', "bad_timestamp"],
        [`sensors/${group}/d`, '{"ts": 1.5, "temp": 1}', "bad_timestamp"],
        [`sensors/${group}/d`, '{}', "bad_payload"],
        [`sensors/${group}/d/temp`, Buffer.from([0xa1, 0xff]), "bad_payload"],
        [`sensors/${group}/d/temp`, Buffer.from([0xff, 0xfe, 0x00]), "bad_payload"],
        [`sensors/${group}/d/temp`, '{"value": 1, "ts": 1000}', "bad_timestamp"],
        [`sensors/${group}/d/temp`, `{"value": 1, "ts": ${Date.now() + 3_600_000}}`, "bad_timestamp"],
        [`sensors/${group}/bad id/temp`, "1", "bad_topic"],
        [`sensors/${group}/d/bad metric`, "1", "bad_topic"],
        [`sensors/${group}/d/temp/extra`, "1", "unmatched_topic"],
        [`sensors/${group}`, "1", "unmatched_topic"],
        [`sensors/no-token-group/d/temp`, "1", "no_token"],
      ];
      const rounds = 10;
      let next = 0;
      for (let r = 0; r < rounds; r++) {
        for (const [topic, payload] of bad) {
          await pub.publishAsync(good, String(next++), { qos: 1 });
          await pub.publishAsync(topic, payload, { qos: 1 });
        }
      }
      await pub.publishAsync(good, String(next++), { qos: 1 });
      await pub.endAsync();

      const expected: Record<string, number> = {};
      for (const [, , reason] of bad) expected[reason] = (expected[reason] ?? 0) + rounds;
      const messages = next + bad.length * rounds;
      await waitFor(() => bridge.counters.pubacked === messages, "every message to be PUBACKed", 30_000);
      const c = bridge.counters;
      expect(c.hubAcked).toBe(next);
      for (const [reason, n] of Object.entries(c.dropped)) expect(n, reason).toBe(expected[reason] ?? 0);
      const bs = await buckets(t.url, group);
      expect(bs.map((b) => b.device).filter((d, i, a) => a.indexOf(d) === i)).toEqual(["good"]);
      expect(total(bs)).toBe(next);
      expect(sum(bs)).toBe(triangle(next));

      // Logged, but at most a burst per reason per interval, however many arrive.
      const dropLines = logs.map((l) => JSON.parse(l) as { event: string; reason?: string }).filter((l) => l.event === "message.dropped");
      for (const reason of Object.keys(expected)) {
        const n = dropLines.filter((l) => l.reason === reason).length;
        expect(n, reason).toBeGreaterThan(0);
        expect(n, reason).toBeLessThanOrEqual(5);
      }
      // The same figures on the metrics page.
      const metrics = bridge.metrics();
      expect(metrics).toContain(`bridge_messages_dropped_total{reason="bad_payload"} ${expected.bad_payload}`);
      expect(metrics).toContain(`bridge_messages_dropped_total{reason="unmatched_topic"} ${expected.unmatched_topic}`);
      expect(metrics).toContain(`bridge_messages_puback_total ${messages}`);
      expect(bridge.health().ok).toBe(true);
    } finally {
      await bridge.stop();
    }
  });

  for (const kind of ["mosquitto", "embedded"] as const) {
    it(`${kind}: downlink: a command and a configuration reach an MQTT sensor, its answers reach the hub, and a repeat is answered from the sensor's memory`, async () => {
      const group = uniqueGroup("brdl");
      const { bridge } = await inProcessBridge(
        { hubUrl: t.url, gateway: `gw-dl-${kind}`, mqttUrl: mq.url, embeddedBroker: kind === "embedded" ? await freePort() : null, clientId: `${group}-bridge`, downlink: true },
        [group],
      );
      const op = await operatorClient(t.url, group);
      try {
        await waitFor(() => bridge.health().mqtt.connected && bridge.health().hub[group] === true, "the bridge's MQTT and gateway connections");
        const port = kind === "embedded" ? (bridge.brokerPort ?? 0) : mq.port;
        const sensor = await publisher(`mqtt://127.0.0.1:${port}`, `${group}-sensor`, kind === "embedded" ? SENSOR : undefined);
        const topics = downlinkTopics(group, "s-1");
        // The sensor runs each command id once and publishes the stored result for a repeat.
        const results = new Map<string, { ok: boolean; result: unknown }>();
        let runs = 0;
        const configs: unknown[] = [];
        sensor.on("message", (topic, payload) => {
          const body = JSON.parse(payload.toString()) as { id: string; name: string; version: number; desired: unknown };
          if (topic === topics.commands) {
            if (!results.has(body.id)) results.set(body.id, { ok: true, result: { ran: body.name, run: ++runs } });
            void sensor.publishAsync(topics.result, JSON.stringify({ id: body.id, ...results.get(body.id) }), { qos: 1 });
          } else if (topic === topics.config) {
            configs.push(body.desired);
            void sensor.publishAsync(topics.applied, JSON.stringify({ version: body.version, reported: body.desired }), { qos: 1 });
          }
        });
        await sensor.subscribeAsync([topics.commands, topics.config], { qos: 1 });

        const { id } = await op.queueCommand(group, "s-1", { name: "ping", args: { n: 1 } });
        await waitFor(async () => (await op.command(group, "s-1", id)).status === "succeeded", "the command to succeed through the bridge");
        expect(await op.command(group, "s-1", id)).toMatchObject({ status: "succeeded", result: { ran: "ping", run: 1 } });
        // The same command again (as after a lost result): the sensor's memory answers, the hub refuses the late repeat.
        await sensor.publishAsync(topics.result, JSON.stringify({ id, ...results.get(id) }), { qos: 1 });
        expect(await op.putConfig(group, "s-1", { sampleRateMs: 500 })).toBe(1);
        await waitFor(async () => (await op.config(group, "s-1")).appliedVersion === 1, "the configuration to be applied through the bridge");
        expect(await op.config(group, "s-1")).toEqual({ desired: { sampleRateMs: 500 }, version: 1, reported: { sampleRateMs: 500 }, appliedVersion: 1 });
        expect(runs).toBe(1);
        expect(configs).toEqual([{ sampleRateMs: 500 }]);
        expect(bridge.downlink?.counts).toMatchObject({ published: 2, answered: 3, answersDropped: 0 });
        await sensor.endAsync();
      } finally {
        await bridge.stop();
      }
    });
  }
});

/**
 * Issue #12, finding 5: who may use the bridge's broker. Against the real
 * embedded aedes broker with MQTT.js, and against a real Mosquitto run with
 * the password and ACL files of docs/bridge.md ("Mosquitto's own
 * authentication and ACL"), each with the bridge forwarding into a real hub
 * under `wrangler dev`: no credential, a wrong password, another group's
 * topic, a subscription to `#`, and the bridge's client id are all refused,
 * and nothing refused reaches the hub.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorWithSubackPacket, connect, connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BRIDGE_CLIENT_PREFIX } from "../../bridge/broker-auth.ts";
import type { Bridge } from "../../bridge/bridge.ts";
import { freePort } from "../../harness/ports.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { DevicesResponse } from "../../schema/api.ts";
import { codeBlocks } from "./docs-commands.ts";
import { buckets, operatorGet, sharedHub, uniqueGroup } from "./hub.ts";
import { SENSOR, brokerUsers, hasMosquitto, inProcessBridge, publisher, sleep, startMosquitto, waitFor, type Credential, type Mosquitto } from "./mqtt.ts";

const available = hasMosquitto();

const t = sharedHub();

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** One MQTT 3.1.1 connection attempt, no retries: the client, or the CONNACK's refusal code. */
async function tryConnect(url: string, opts: IClientOptions): Promise<MqttClient | number> {
  try {
    return await connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "number") return code;
    throw err;
  }
}

/** The SUBACK's code for one filter: the granted QoS, or 128 (0x80) when refused. */
async function subackCode(client: MqttClient, filter: string): Promise<number> {
  try {
    const [g] = await client.subscribeAsync(filter, { qos: 1 });
    return g?.qos ?? -1;
  } catch (err) {
    // MQTT.js rejects a SUBACK with a failure code, and carries the packet.
    if (err instanceof ErrorWithSubackPacket && typeof err.packet.granted[0] === "number") return err.packet.granted[0];
    throw err;
  }
}

async function devices(group: string): Promise<string[]> {
  const r = await operatorGet(t.url, `/v1/groups/${group}/devices`, group);
  return r.status === 404 ? [] : DevicesResponse.parse(r.body).devices.map((d) => d.id);
}

/** Publishes one QoS 1 reading the broker accepts, and waits until the hub has it. */
async function reportsThrough(url: string, cred: Credential, group: string, device: string): Promise<void> {
  const pub = await publisher(url, `${group}-ok-${device}`, cred);
  await pub.publishAsync(`sensors/${group}/${device}/temp`, "21.5", { qos: 1 });
  await pub.endAsync();
  await waitFor(async () => (await devices(group)).includes(device), `${group}/${device} on the hub`);
}

/** 100 QoS 1 messages through the broker while an attacker holds or retries a connection: all stored, the bridge never disconnected. */
async function queueSurvives(url: string, cred: Credential, group: string, device: string, bridge: Bridge): Promise<void> {
  const connectsBefore = bridge.counters.mqttConnects;
  const pub = await publisher(url, `${group}-burst`, cred);
  await Promise.all(range(100).map((i) => pub.publishAsync(`sensors/${group}/${device}/seq`, String(i), { qos: 1 })));
  await pub.endAsync();
  const filter = { device, metric: "seq" };
  await waitFor(async () => (await buckets(t.url, group, filter)).reduce((n, b) => n + b.count, 0) >= 100, "100 readings on the hub");
  const bs = await buckets(t.url, group, filter);
  expect(bs.reduce((n, b) => n + b.count, 0)).toBe(100);
  expect(bs.reduce((s, b) => s + b.sum, 0)).toBe((100 * 99) / 2);
  await waitFor(() => bridge.counters.pubacked >= bridge.counters.received, "the bridge's PUBACKs");
  expect(bridge.counters.mqttConnects).toBe(connectsBefore);
  expect(bridge.counters.mqttDisconnects).toBe(0);
}

describe.skipIf(!available && !process.env.CI)("embedded broker: credentials and access", () => {
  let bridge: Bridge;
  let url = "";
  let mine = "";
  let theirs = "";
  const gateway = "gw-auth";
  beforeAll(async () => {
    [mine, theirs] = [uniqueGroup("mine"), uniqueGroup("theirs")];
    // The bridge holds tokens for both groups; the sensor's credential covers only one.
    ({ bridge } = await inProcessBridge({ hubUrl: t.url, gateway, embeddedBroker: await freePort(), brokerUsers: await brokerUsers([mine]) }, [mine, theirs]));
    url = `mqtt://127.0.0.1:${bridge.brokerPort ?? 0}`;
    await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
  }, 60_000);
  afterAll(async () => {
    await bridge?.stop();
  });

  it("refuses clients without a credential, with a wrong password or an unknown user", async () => {
    expect(await tryConnect(url, { clientId: "anon" })).toBe(5);
    expect(await tryConnect(url, { clientId: "wrong", username: SENSOR.username, password: "not-the-password" })).toBe(4);
    expect(await tryConnect(url, { clientId: "nobody", username: "nobody", password: SENSOR.password })).toBe(4);
    const ok = await tryConnect(url, { clientId: "right", ...SENSOR });
    expect(typeof ok).not.toBe("number");
    if (typeof ok !== "number") await ok.endAsync();
    expect(bridge.counters.brokerRefused).toMatchObject({ anonymous: 1, bad_credentials: 2 });
  });

  it("drops a publication to another group's topic (closing the connection) and never forwards it", async () => {
    const received = bridge.counters.received;
    const pub = await publisher(url, `${mine}-intruder`, { ...SENSOR });
    pub.options.reconnectPeriod = 0;
    const closed = new Promise<void>((r) => pub.once("close", () => r()));
    void pub.publishAsync(`sensors/${theirs}/intruder/temp`, "99", { qos: 1 }).catch(() => {});
    const kept = sleep(10_000).then(() => Promise.reject(new Error("the broker kept the connection open after the refused publication")));
    await Promise.race([closed, kept]);
    pub.end(true);
    // A later reading of its own group goes through; the refused one never reached the bridge.
    await reportsThrough(url, SENSOR, mine, "own-sensor");
    expect(bridge.counters.received).toBe(received + 1);
    expect(bridge.counters.brokerRefused.publish).toBe(1);
    expect(await devices(theirs)).toEqual([]);
  });

  it("refuses subscriptions outside the credential's groups: #, wildcards for the group, another group, $SYS", async () => {
    const sub = await publisher(url, `${mine}-sub`, SENSOR);
    try {
      const filters = ["#", "sensors/#", "sensors/+/own-sensor/temp", `sensors/${theirs}/#`, "$SYS/#", `sensors/${mine}/own-sensor/#`];
      const codes: number[] = [];
      for (const f of filters) codes.push(await subackCode(sub, f));
      expect(codes).toEqual([128, 128, 128, 128, 128, 1]);
      expect(bridge.counters.brokerRefused.subscribe).toBe(5);
    } finally {
      await sub.endAsync();
    }
  });

  it("refuses the bridge's client id and any hub-bridge- id to everyone else; the bridge's queue is unaffected", async () => {
    const bridgeId = `${BRIDGE_CLIENT_PREFIX}${gateway}`;
    expect(await tryConnect(url, { clientId: bridgeId, clean: false, ...SENSOR })).toBe(2);
    expect(await tryConnect(url, { clientId: bridgeId, clean: false })).toBe(2);
    expect(await tryConnect(url, { clientId: `${BRIDGE_CLIENT_PREFIX}other`, ...SENSOR })).toBe(2);
    // An attacker that keeps trying to take the session over while a burst is queued.
    let taken = 0;
    const attacker = connect(url, { protocolVersion: 4, clientId: bridgeId, clean: false, reconnectPeriod: 20, reconnectOnConnackError: true, ...SENSOR });
    attacker.on("connect", () => taken++);
    attacker.on("error", () => {});
    try {
      await waitFor(() => bridge.counters.brokerRefused.client_id >= 6, "the attacker's repeated attempts");
      await queueSurvives(url, SENSOR, mine, "burst", bridge);
      expect(taken).toBe(0);
    } finally {
      attacker.end(true);
    }
  });
});

describe.skipIf(!available && !process.env.CI)("embedded broker over TLS", () => {
  it("takes mqtts:// with a credential, refuses plain MQTT on its port, and the bridge forwards", async () => {
    const dir = mkdtempSync(join(tmpdir(), "broker-tls-"));
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    const group = uniqueGroup("tls");
    const { bridge } = await inProcessBridge({ hubUrl: t.url, gateway: "gw-tls", embeddedBroker: await freePort(), embeddedTlsCert: cert, embeddedTlsKey: key }, [group]);
    try {
      await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
      const port = bridge.brokerPort ?? 0;
      // Plain MQTT on the TLS port: the server drops the connection at the failed handshake, before any CONNACK.
      const plain = connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0, ...SENSOR });
      const outcome = await new Promise<string>((resolve) => {
        plain.once("connect", () => resolve("connected"));
        plain.once("close", () => resolve("closed"));
      });
      plain.end(true);
      expect(outcome).toBe("closed");
      const tls = { ca: readFileSync(cert), rejectUnauthorized: true };
      expect(await tryConnect(`mqtts://127.0.0.1:${port}`, { clientId: "anon-tls", ...tls })).toBe(5);
      const pub = await connectAsync(`mqtts://127.0.0.1:${port}`, { protocolVersion: 4, clientId: `${group}-pub`, ...tls, ...SENSOR });
      await pub.publishAsync(`sensors/${group}/tls-sensor/temp`, "21.5", { qos: 1 });
      await pub.endAsync();
      await waitFor(async () => (await devices(group)).includes("tls-sensor"), "the reading on the hub");
    } finally {
      await bridge.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The two Mosquitto files of docs/bridge.md, as documented. */
function documentedMosquitto(): { conf: string[]; acl: string } {
  const blocks = codeBlocks(ROOT, "").filter((b) => b.where.startsWith("docs/bridge.md"));
  const conf = blocks.find((b) => b.code.includes("use_username_as_clientid"))?.code;
  const acl = blocks.find((b) => b.code.includes("pattern write"))?.code;
  if (!conf || !acl) throw new Error("docs/bridge.md: the mosquitto.conf and acl blocks are missing");
  return { conf: conf.split("\n"), acl };
}

describe.skipIf(!available && !process.env.CI)("Mosquitto with the documented password file and ACL", () => {
  let mq: Mosquitto;
  const [bridgeUser, site] = [{ username: "hub-bridge", password: "bridge-pw" }, { username: "site-a", password: "site-pw" }];
  let sensor: Credential;
  let bridge: Bridge;
  let mine = "";
  let theirs = "";
  beforeAll(async () => {
    [mine, theirs] = [uniqueGroup("mq-mine"), uniqueGroup("mq-theirs")];
    sensor = { username: `${mine}/boiler-1`, password: "sensor-pw" };
    const doc = documentedMosquitto();
    mq = await startMosquitto((dir) => {
      const passwords = join(dir, "passwords");
      for (const u of [bridgeUser, sensor, site]) {
        const r = spawnSync("mosquitto_passwd", ["-b", ...(u === bridgeUser ? ["-c"] : []), passwords, u.username, u.password], { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`mosquitto_passwd: ${r.stderr}`);
      }
      writeFileSync(join(dir, "acl"), doc.acl.replace("sensors/plant-2/#", `sensors/${theirs}/#`));
      // Mosquitto started as root reads these files as its own user, after dropping privileges.
      for (const [path, mode] of [[dir, 0o755], [passwords, 0o644], [join(dir, "acl"), 0o644]] as const) chmodSync(path, mode);
      // The documented lines, with this test's files; the listener comes from startMosquitto.
      return doc.conf
        .filter((l) => !l.startsWith("listener") && !l.startsWith("#") && l.trim() !== "")
        .map((l) => l.replace("/etc/mosquitto/passwords", passwords).replace("/etc/mosquitto/acl", join(dir, "acl")));
    });
    ({ bridge } = await inProcessBridge({ hubUrl: t.url, gateway: "gw-mq-auth", mqttUrl: mq.url, mqttUsername: bridgeUser.username, mqttPassword: bridgeUser.password }, [mine, theirs]));
    await waitFor(() => bridge.health().mqtt.connected, "the bridge's MQTT connection");
  }, 60_000);
  afterAll(async () => {
    await bridge?.stop();
    await mq?.stop();
  });

  it("refuses clients without a credential or with a wrong password", async () => {
    expect(await tryConnect(mq.url, { clientId: "anon" })).toBe(5);
    expect([4, 5]).toContain(await tryConnect(mq.url, { clientId: "wrong", username: sensor.username, password: "nope" }));
  });

  it("drops a sensor's publication to another group or device and never forwards it; a site user writes its group", async () => {
    const received = bridge.counters.received;
    const pub = await publisher(mq.url, "intruder", sensor);
    await pub.publishAsync(`sensors/${theirs}/intruder/temp`, "99", { qos: 1 });
    await pub.publishAsync(`sensors/${mine}/boiler-2/temp`, "99", { qos: 1 });
    await pub.endAsync();
    await reportsThrough(mq.url, sensor, mine, "boiler-1");
    await reportsThrough(mq.url, site, theirs, "site-sensor");
    expect(bridge.counters.received).toBe(received + 2);
    expect(await devices(mine)).toEqual(["boiler-1"]);
    expect(await devices(theirs)).toEqual(["site-sensor"]);
  });

  // Each user holds one connection at a time (its user name is its client id): the snooper and attacker are the site user.
  it("delivers nothing to a user subscribed to # beyond what its ACL lets it read", async () => {
    const sub = await publisher(mq.url, "snoop", site);
    const seen: string[] = [];
    sub.on("message", (topic) => seen.push(topic));
    try {
      await sub.subscribeAsync("#", { qos: 1 });
      await reportsThrough(mq.url, sensor, mine, "boiler-1");
      // The reading reached the hub, so the broker has routed it: to the bridge, not to the sensor.
      expect(seen).toEqual([]);
    } finally {
      await sub.endAsync();
    }
  });

  it("a user asking for the bridge's client id gets its own session; the bridge's queue is unaffected", async () => {
    const attacker = await connectAsync(mq.url, { protocolVersion: 4, clientId: "hub-bridge", clean: false, ...site });
    try {
      await queueSurvives(mq.url, sensor, mine, "boiler-1", bridge);
      expect(attacker.connected).toBe(true);
    } finally {
      await attacker.endAsync();
    }
  });
});

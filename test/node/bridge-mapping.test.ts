/** The bridge's pure parts: topic templates, payload decoding, and options from flags, env and file. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TOPICS, TopicMatcher, decodePayload, matchTopic, parseTemplates, subscriptionFilters } from "../../bridge/mapping.ts";
import { filterWithinGroups, hashPassword, parseBrokerUsers, topicGroup, verifyPassword } from "../../bridge/broker-auth.ts";
import { DEFAULTS, OptionError, parseOptions, usage } from "../../bridge/options.ts";
import { encodeCbor } from "../../schema/cbor.ts";

const NOW = 1_795_000_000_000;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const TOKEN = "A".repeat(43);

describe("topic templates", () => {
  it("derive filters and match topics to group, device and metric", () => {
    const ts = parseTemplates(DEFAULT_TOPICS, null);
    expect(ts.map((t) => t.filter)).toEqual(["sensors/+/+/+", "sensors/+/+"]);
    expect(subscriptionFilters(ts)).toEqual(["sensors/#"]);
    expect(matchTopic(ts, "sensors/plant-1/boiler-7/temp")).toEqual({ group: "plant-1", device: "boiler-7", metric: "temp" });
    expect(matchTopic(ts, "sensors/plant-1/boiler-7")).toEqual({ group: "plant-1", device: "boiler-7" });
    expect(matchTopic(ts, "sensors/plant-1/boiler-7/env:co2")).toEqual({ group: "plant-1", device: "boiler-7", metric: "env:co2" });
    expect(matchTopic(ts, "sensors/plant-1/boiler-7/temp/x")).toBeNull();
    expect(matchTopic(ts, "sensors/plant-1")).toBeNull();
    expect(matchTopic(ts, "other/plant-1/boiler-7")).toBeNull();
    expect(matchTopic(ts, "sensors/plant 1/boiler-7/temp")).toBe("bad");
    expect(matchTopic(ts, "sensors/plant-1/boiler-7/te$mp")).toBe("bad");
    expect(matchTopic(ts, `sensors/p/${"d".repeat(65)}`)).toBe("bad");
    expect(matchTopic(ts, "sensors//boiler-7/temp")).toBe("bad");
  });

  it("support literal levels, + levels and a default group; subscribe per template when prefixes differ", () => {
    const ts = parseTemplates(["tele/+/{device}/SENSOR/{metric}", "site/{device}"], "plant-9");
    expect(subscriptionFilters(ts)).toEqual(["tele/+/+/SENSOR/+", "site/+"]);
    expect(matchTopic(ts, "tele/x/dev-1/SENSOR/temp")).toEqual({ group: "plant-9", device: "dev-1", metric: "temp" });
    expect(matchTopic(ts, "tele/x/dev-1/STATE/temp")).toBeNull();
    expect(matchTopic(ts, "site/dev-2")).toEqual({ group: "plant-9", device: "dev-2" });
    const m = new TopicMatcher(ts, 2);
    for (let i = 0; i < 5; i++) expect(m.match(`site/d-${i}`)).toEqual({ group: "plant-9", device: `d-${i}` });
  });

  it("reject unusable templates", () => {
    expect(() => parseTemplates(["sensors/{group}/{metric}"], null)).toThrow(/no \{device\}/);
    expect(() => parseTemplates(["sensors/{device}"], null)).toThrow(/no \{group\}/);
    expect(() => parseTemplates(["sensors/{group}/{device}/{device}"], null)).toThrow(/twice/);
    expect(() => parseTemplates(["sensors/x{group}/{device}"], null)).toThrow(/whole level/);
    expect(() => parseTemplates(["sensors/#/{group}/{device}"], null)).toThrow(/whole level/);
    expect(() => parseTemplates(["a/{group}/{device}", "+/{group}/{device}"], null)).toThrow(/overlap/);
    expect(() => parseTemplates(["a/{group}/{device}", "b/{group}/{device}", "a/{group}/{device}/{metric}"], null)).not.toThrow();
  });
});

describe("payloads", () => {
  it("read plain numbers, stamped with the receive time", () => {
    for (const [p, v] of [["71.5", 71.5], ["-3", -3], [" 42 \n", 42], ["1e3", 1000], [".5", 0.5], ["+7", 7], ["0", 0]] as const) {
      expect(decodePayload(text(p), "temp", NOW), p).toEqual({ ok: true, readings: [[NOW, "temp", v]] });
    }
    for (const p of ["", "abc", "NaN", "Infinity", "1e999", "0x10", "1,5", "１２", "--1", "1 2"]) {
      expect(decodePayload(text(p), "temp", NOW), p).toMatchObject({ ok: false, reason: "bad_payload" });
    }
  });

  it("read JSON {value, ts} on metric topics and {metric: number, ts} on device topics", () => {
    expect(decodePayload(text('{"value": 21.5, "ts": 1794999999000}'), "temp", NOW)).toEqual({ ok: true, readings: [[1794999999000, "temp", 21.5]] });
    expect(decodePayload(text('{"value": 21.5}'), "temp", NOW)).toEqual({ ok: true, readings: [[NOW, "temp", 21.5]] });
    expect(decodePayload(text('{"temp": 20, "hum": 40.5}'), undefined, NOW)).toEqual({ ok: true, readings: [[NOW, "temp", 20], [NOW, "hum", 40.5]] });
    expect(decodePayload(text('{"temp": 20, "ts": 1794999999000}'), undefined, NOW)).toEqual({ ok: true, readings: [[1794999999000, "temp", 20]] });
    const bad: [string, string | undefined, string][] = [
      ['{"value": "1"}', "temp", "bad_payload"],
      ['{"value": null}', "temp", "bad_payload"],
      ["[21.5]", "temp", "bad_payload"],
      ['{"value": 1, "ts": "now"}', "temp", "bad_timestamp"],
      ['{"value": 1, "ts": 1794999999000.5}', "temp", "bad_timestamp"],
      [`{"value": 1, "ts": ${NOW + 3_600_000}}`, "temp", "bad_timestamp"],
      ['{"value": 1, "ts": 0}', "temp", "bad_timestamp"],
      ["21.5", undefined, "bad_payload"],
      ["{}", undefined, "bad_payload"],
      ['{"ts": 1794999999000}', undefined, "bad_payload"],
      ['{"temp": true}', undefined, "bad_payload"],
      ['{"bad metric": 1}', undefined, "bad_payload"],
      ['{"temp": {"v": 1}}', undefined, "bad_payload"],
      ['{"temp": 1', undefined, "bad_payload"],
    ];
    for (const [p, metric, reason] of bad) expect(decodePayload(text(p), metric, NOW), p).toMatchObject({ ok: false, reason });
  });

  it("read CBOR maps in the protocol's batch shape, checked like the hub checks them", () => {
    const ok = encodeCbor({ type: "batch", seq: 9, readings: [[NOW - 1000, "temp", 1.5], [NOW - 500, "hum", 2]] });
    expect(decodePayload(ok, undefined, NOW)).toEqual({ ok: true, readings: [[NOW - 1000, "temp", 1.5], [NOW - 500, "hum", 2]] });
    expect(decodePayload(encodeCbor({ readings: [[NOW, "temp", 1]] }), "ignored", NOW)).toEqual({ ok: true, readings: [[NOW, "temp", 1]] });
    const bad: [Uint8Array, string][] = [
      [encodeCbor({ type: "hello", readings: [[NOW, "temp", 1]] }), "bad_payload"],
      [encodeCbor({ readings: [] }), "bad_payload"],
      [encodeCbor({ readings: [[NOW, "temp"]] }), "bad_payload"],
      [encodeCbor({ readings: [[NOW, "bad metric", 1]] }), "bad_payload"],
      [encodeCbor({ readings: [[NOW, "temp", "1"]] }), "bad_payload"],
      [encodeCbor({ readings: [[1, "temp", 1]] }), "bad_timestamp"],
      [encodeCbor({ readings: Array.from({ length: 5001 }, () => [NOW, "t", 1]) }), "too_many_readings"],
      [new Uint8Array([0xa1, 0x61]), "bad_payload"],
      [new Uint8Array([0xa0, 0x00]), "bad_payload"],
      [new Uint8Array([0xff, 0xfe]), "bad_payload"],
    ];
    for (const [p, reason] of bad) expect(decodePayload(p, undefined, NOW)).toMatchObject({ ok: false, reason });
  });
});

describe("options", () => {
  it("take flags over environment over config file over defaults", () => {
    const dir = mkdtempSync(join(tmpdir(), "bridge-opts-"));
    try {
      const file = join(dir, "bridge.json");
      writeFileSync(file, JSON.stringify({ gateway: "from-file", batchMs: 70, hubUrl: "http://file:1", topics: ["a/{group}/{device}"], tokens: { g1: TOKEN } }));
      const env = { BRIDGE_CONFIG: file, BRIDGE_BATCH_MS: "80", BRIDGE_HUB_URL: "http://env:2", BRIDGE_TOKENS: `g2=${TOKEN}` };
      const { config } = parseOptions(["--hub", "http://flag:3", "--token", `g3=${TOKEN}`, "--token", `g4=${TOKEN}`], env);
      expect(config.gateway).toBe("from-file");
      expect(config.batchMs).toBe(80);
      expect(config.hubUrl).toBe("http://flag:3");
      expect(config.topics).toEqual(["a/{group}/{device}"]);
      expect(config.tokens).toEqual({ g3: TOKEN, g4: TOKEN });
      expect(config.batchReadings).toBe(DEFAULTS.batchReadings);
      expect(() => parseOptions(["--config", file], { BRIDGE_WINDOW: "0" })).toThrow(/BRIDGE_WINDOW/);
      writeFileSync(file, JSON.stringify({ gateways: "typo" }));
      expect(() => parseOptions(["--config", file], {})).toThrow(/unknown key 'gateways'/);
      writeFileSync(file, "{ not json");
      expect(() => parseOptions(["--config", file], {})).toThrow(OptionError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("parse --embedded-broker with and without a port, lists, and reject bad values", () => {
    const anon = "--broker-allow-anonymous";
    expect(parseOptions(["--embedded-broker", anon], {}).config.embeddedBroker).toBe(1883);
    expect(parseOptions(["--embedded-broker", "--gateway", "x", anon], {}).config.embeddedBroker).toBe(1883);
    expect(parseOptions(["--embedded-broker", "1999", anon], {}).config.embeddedBroker).toBe(1999);
    expect(parseOptions([], { BRIDGE_EMBEDDED_BROKER: "2000", BRIDGE_BROKER_ALLOW_ANONYMOUS: "true" }).config.embeddedBroker).toBe(2000);
    expect(parseOptions(["--http-port", "off"], {}).config.httpPort).toBeNull();
    expect(parseOptions(["--topic", "a/{group}/{device}", "--topic", "b/{group}/{device}"], {}).config.topics).toEqual(["a/{group}/{device}", "b/{group}/{device}"]);
    expect(parseOptions(["--mqtt-version", "4"], {}).config.mqttVersion).toBe(4);
    expect(parseOptions(["-h"], {}).help).toBe(true);
    for (const bad of [["--batch-ms", "0"], ["--batch-readings", "5001"], ["--gateway", "bad id"], ["--token", "g=short"], ["--token", "nogroup"], ["--mqtt-version", "3"], ["--hub", "not a url"], ["--nope"], ["stray"]]) {
      expect(() => parseOptions(bad, {}), bad.join(" ")).toThrow(OptionError);
    }
    expect(usage()).toContain("BRIDGE_TOKENS");
  });
});

describe("embedded broker access", () => {
  it("needs a users file or explicit anonymous access, and anonymous access only on a loopback address", () => {
    expect(() => parseOptions(["--embedded-broker"], {})).toThrow(/--broker-users/);
    expect(() => parseOptions(["--embedded-broker", "--broker-allow-anonymous", "--embedded-host", "0.0.0.0"], {})).toThrow(/loopback/);
    expect(parseOptions(["--embedded-broker", "--broker-allow-anonymous", "--embedded-host", "::1"], {}).config.brokerAllowAnonymous).toBe(true);
    expect(() => parseOptions([], { BRIDGE_BROKER_ALLOW_ANONYMOUS: "maybe" })).toThrow(/true or false/);
    expect(() => parseOptions(["--embedded-broker", "--broker-allow-anonymous", "--embedded-tls-cert", "c.pem"], {})).toThrow(/go together/);
    expect(usage()).toContain("hash-password");
  });

  it("reads users from a file, the environment or inline in the config file, and refuses malformed entries", async () => {
    const hash = await hashPassword("s3cret");
    expect(await verifyPassword("s3cret", hash)).toBe(true);
    expect(await verifyPassword("s3cret ", hash)).toBe(false);
    expect(await hashPassword("s3cret")).not.toBe(hash); // salted
    const dir = mkdtempSync(join(tmpdir(), "bridge-users-"));
    try {
      const users = { "site-a": { password: hash, groups: ["plant-1", "plant-2"] } };
      writeFileSync(join(dir, "users.json"), JSON.stringify(users));
      writeFileSync(join(dir, "config.json"), JSON.stringify({ embeddedBroker: 1884, brokerUsers: users }));
      const fromFlag = parseOptions(["--embedded-broker", "--broker-users", join(dir, "users.json")], {}).config;
      const fromEnv = parseOptions(["--embedded-broker"], { BRIDGE_BROKER_USERS: join(dir, "users.json") }).config;
      const fromConfig = parseOptions(["--config", join(dir, "config.json")], {}).config;
      for (const c of [fromFlag, fromEnv, fromConfig]) expect(c.brokerUsers?.get("site-a")).toEqual({ passwordHash: hash, groups: ["plant-1", "plant-2"] });
      expect(fromFlag.embeddedHost).toBe("127.0.0.1");
      expect(() => parseOptions(["--broker-users", join(dir, "missing.json")], {})).toThrow(OptionError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const bad: unknown[] = [
      [],
      { u: { password: "plain text", groups: ["g"] } },
      { u: { password: hash, groups: [] } },
      { u: { password: hash, groups: ["bad id"] } },
      { u: { password: hash, groups: ["g"], admin: true } },
      { u: { password: hash.replace("$16384$", "$16383$"), groups: ["g"] } },
      { u: { password: hash.replace("$16384$", "$67108864$"), groups: ["g"] } },
    ];
    for (const b of bad) expect(() => parseBrokerUsers(b, "users.json"), JSON.stringify(b)).toThrow(/users\.json/);
  });

  it("finds a topic's group, and keeps subscriptions within the user's groups", () => {
    const ts = parseTemplates(DEFAULT_TOPICS, null);
    expect(topicGroup(ts, "sensors/plant-1/boiler-7/temp")).toBe("plant-1");
    expect(topicGroup(ts, "sensors/plant-1/bad id")).toBe("plant-1"); // the bridge counts it as bad_topic
    expect(topicGroup(ts, "sensors/plant-1/a/b/c")).toBeNull();
    expect(topicGroup(ts, "other/plant-1/a")).toBeNull();
    expect(topicGroup(ts, "sensors/bad id/a")).toBeNull();
    const mine = new Set(["plant-1"]);
    for (const f of ["sensors/plant-1/#", "sensors/plant-1/boiler-7/#", "sensors/plant-1/+/temp", "sensors/plant-1/boiler-7"]) expect(filterWithinGroups(ts, f, mine), f).toBe(true);
    for (const f of ["#", "+/#", "sensors/#", "sensors/+/boiler-7/temp", "sensors/plant-2/#", "$SYS/#", "other/plant-1/#"]) expect(filterWithinGroups(ts, f, mine), f).toBe(false);
    expect(filterWithinGroups(ts, "sensors/anything/#", "*")).toBe(true);
    expect(filterWithinGroups(ts, "sensors/+/#", "*")).toBe(false);
    // A template without {group}: its literal levels must be spelled out, and the bridge's group allowed.
    const fixed = parseTemplates(["site/{device}/{metric}"], "plant-1");
    expect(filterWithinGroups(fixed, "site/#", mine)).toBe(true);
    expect(filterWithinGroups(fixed, "#", mine)).toBe(false);
    expect(filterWithinGroups(fixed, "site/#", new Set(["plant-2"]))).toBe(false);
    expect(topicGroup(fixed, "site/boiler-7/temp")).toBe("plant-1");
  });
});

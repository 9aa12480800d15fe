/** The bridge's pure parts: topic templates, payload decoding, and options from flags, env and file. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TOPICS, TopicMatcher, decodePayload, matchTopic, parseTemplates, subscriptionFilters } from "../../bridge/mapping.ts";
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
    expect(parseOptions(["--embedded-broker"], {}).config.embeddedBroker).toBe(1883);
    expect(parseOptions(["--embedded-broker", "--gateway", "x"], {}).config.embeddedBroker).toBe(1883);
    expect(parseOptions(["--embedded-broker", "1999"], {}).config.embeddedBroker).toBe(1999);
    expect(parseOptions([], { BRIDGE_EMBEDDED_BROKER: "2000" }).config.embeddedBroker).toBe(2000);
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

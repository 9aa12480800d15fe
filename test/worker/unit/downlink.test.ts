/** Downlink's pure parts: the answer validators, the JSON check, and the opt-in flag in the socket attachment. */
import { describe, expect, it } from "vitest";
import { isJsonValue, MAX_JSON_DEPTH, validateDownlinkReply } from "../../../schema/downlink.ts";
import { validateHubFrame } from "../../../schema/validate.ts";
import { fromAttachment, toAttachment } from "../../../worker/group/connections/attachment.ts";

describe("downlink validators", () => {
  it("accepts well-formed answers and keeps only their known fields", () => {
    expect(validateDownlinkReply({ type: "command_result", id: "c-1", ok: true, result: { a: [1, "x", null] }, extra: 1 }, false)).toEqual({
      ok: true,
      frame: { type: "command_result", id: "c-1", ok: true, result: { a: [1, "x", null] } },
    });
    expect(validateDownlinkReply({ type: "config_applied", version: 3, reported: { r: 1 }, device: "s-1" }, true)).toEqual({
      ok: true,
      frame: { type: "config_applied", version: 3, reported: { r: 1 }, device: "s-1" },
    });
  });

  it("refuses malformed answers with bad_frame, and a gateway's without its device with bad_device", () => {
    const bad = [
      { type: "command_result", id: "has space", ok: true },
      { type: "command_result", id: "c", ok: 1 },
      { type: "command_result", id: "c", ok: true, result: new Uint8Array(2) },
      { type: "command_result", id: "c", ok: false, error: 5 },
      { type: "config_applied", version: 1.5 },
      { type: "config_applied", version: 2, reported: "x" },
    ];
    for (const v of bad) expect(validateDownlinkReply(v, false)).toMatchObject({ ok: false, code: "bad_frame" });
    expect(validateDownlinkReply({ type: "command_result", id: "c", ok: true }, true)).toMatchObject({ ok: false, code: "bad_device" });
  });

  it("isJsonValue refuses what JSON cannot carry and nesting past the limit", () => {
    expect(isJsonValue({ a: [true, 1.5, "s", null] })).toBe(true);
    for (const v of [Number.NaN, Infinity, undefined, new Uint8Array(1), new Date(0), new Map()]) expect(isJsonValue(v)).toBe(false);
    let deep: unknown = 1;
    for (let i = 0; i < MAX_JSON_DEPTH + 1; i++) deep = [deep];
    expect(isJsonValue(deep)).toBe(false);
  });

  it("the device side reads command and config frames, and ignores malformed ones", () => {
    expect(validateHubFrame({ type: "command", id: "c", name: "ping", expiresAt: 5 })).toEqual({ type: "command", id: "c", name: "ping", args: null, expiresAt: 5 });
    expect(validateHubFrame({ type: "config", version: 1, desired: { a: 1 }, device: "s" })).toEqual({ type: "config", version: 1, desired: { a: 1 }, device: "s" });
    expect(validateHubFrame({ type: "command", id: 1, name: "ping", expiresAt: 5 })).toBeNull();
    expect(validateHubFrame({ type: "config", version: 0, desired: {} })).toBeNull();
  });
});

describe("downlink opt-in in the attachment", () => {
  it("survives the round trip, with the end mark", () => {
    const role = { kind: "peer" as const, peer: { kind: "gateway" as const, id: "w" }, connectedAt: 5, ended: "replaced" as const, downlink: true as const };
    expect(fromAttachment(JSON.parse(JSON.stringify(toAttachment(role))))).toEqual(role);
  });

  it("reads attachments written before the flag as not opted in, and refuses an unknown value", () => {
    expect(fromAttachment({ v: 1, kind: "device", id: "d", connectedAt: 1 })).toEqual({ kind: "peer", peer: { kind: "device", id: "d" }, connectedAt: 1 });
    expect(fromAttachment({ v: 1, kind: "device", id: "d", connectedAt: 1, downlink: "yes" })).toBeNull();
  });
});

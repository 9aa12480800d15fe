/**
 * The frame path without sockets or SQLite: every bad-input case (and the
 * gateway's own) through `dispatchFrame`, the same decode, validation and
 * dispatch the Durable Object runs for each message, with the stage's
 * capabilities recorded instead of acted on.
 */
import { describe, expect, it } from "vitest";
import { encodeCbor, type CborValue } from "../../../schema/cbor.ts";
import { CloseCode, ErrorCode, type DownlinkReplyFrame } from "../../../schema/protocol.ts";
import type { Rejection } from "../../../schema/validate.ts";
import { dispatchFrame, type FrameContext, type PeerSender } from "../../../worker/group/ingest/frames.ts";
import type { PeerReadings } from "../../../worker/group/ingest/collapse.ts";
import type { PeerKind } from "../../../worker/group/peer.ts";
import { cases, LIMITS, paddedBatch, type Case } from "../bad-input-cases.ts";
import { cbatchCases, cbatchFrame, gatewayCbatchCases, raw, series } from "../cbatch-cases.ts";

type Seen =
  | { kind: "close"; code: number }
  | { kind: "error"; code: string; seq?: number }
  | { kind: "admit"; seq: number; readings: number }
  | { kind: "submit"; seq: number; readings: PeerReadings }
  | { kind: "downlink"; frame: DownlinkReplyFrame };

/** Runs one message through the frame path; returns what the stage was asked to do (admissions only when `withAdmits`). */
function run(kind: PeerKind, message: string | Uint8Array, admit = true, withAdmits = false): Seen[] {
  const seen: Seen[] = [];
  const from: PeerSender = {
    peer: { kind, id: "p-1" },
    send: () => true,
    close: (code) => void seen.push({ kind: "close", code }),
  };
  const cx: FrameContext = {
    now: () => Date.now(),
    admit: (_from, seq, readings) => {
      if (withAdmits) seen.push({ kind: "admit", seq, readings });
      return admit;
    },
    submit: (_from, seq, readings) => void seen.push({ kind: "submit", seq, readings }),
    reject: (_from, r: Rejection) => void seen.push(r.seq === undefined ? { kind: "error", code: r.code } : { kind: "error", code: r.code, seq: r.seq }),
    downlink: (_from, frame) => void seen.push({ kind: "downlink", frame }),
  };
  const data = typeof message === "string" ? message : message.slice().buffer;
  dispatchFrame(cx, LIMITS, from, data);
  return seen;
}

const frame = (v: CborValue): Uint8Array => encodeCbor(v);

describe("frame path", () => {
  // "ping" is answered by the runtime before any code of ours runs (bad-input.test.ts covers it).
  const expectOutcome = (kind: PeerKind, c: Case): void => {
    const seen = run(kind, c.input());
    const want = c.expect;
    if (want.kind === "close") expect(seen).toEqual([{ kind: "close", code: want.code }]);
    else if (want.kind === "error") expect(seen).toEqual([want.seq === undefined ? { kind: "error", code: want.code } : { kind: "error", code: want.code, seq: want.seq }]);
  };
  it.each(cases.filter((c) => c.expect.kind !== "pong"))("$name", (c) => expectOutcome("device", c));
  it.each(cbatchCases)("$name", (c) => expectOutcome("device", c));
  it.each(gatewayCbatchCases)("$name", (c) => expectOutcome("gateway", c));

  it("admits a compact batch by its readings in all series and submits it as columns, from a device and a gateway", () => {
    const t0 = Date.now() - 60_000;
    const dev = cbatchFrame(4, t0, [series("temp", raw.typed(64, [0, 5, 5]), raw.typed(85, raw.f32le([1, 2, 3]))), series("hum", raw.array([raw.int(1)]), raw.array([raw.int(40)]))]);
    const seen = run("device", dev, true, true);
    expect(seen).toMatchObject([{ kind: "admit", seq: 4, readings: 4 }, { kind: "submit", seq: 4, readings: { type: "cbatch", t0, series: [{ metric: "temp" }, { metric: "hum" }] } }]);
    const gw = cbatchFrame(5, t0, [series("temp", raw.typed(64, [0, 5]), raw.typed(86, raw.f64le([1, 2])), [["device", raw.text("dev-a")]])]);
    expect(run("gateway", gw, true, true)).toMatchObject([{ kind: "admit", seq: 5, readings: 2 }, { kind: "submit", seq: 5, readings: { series: [{ device: "dev-a" }] } }]);
    // Held back by the rate limit: nothing submitted.
    expect(run("device", dev, false)).toEqual([]);
  });

  it("submits a valid device batch at exactly the frame limit", () => {
    const seen = run("device", paddedBatch(2, LIMITS.maxFrameBytes));
    expect(seen).toMatchObject([{ kind: "submit", seq: 2 }]);
  });

  it("validates a gateway's readings with their device, and a device's without", () => {
    const now = Date.now();
    const gw = [[now, "temp", 1, "dev-a"], [now, "hum", 2, "dev-b"]];
    expect(run("gateway", frame({ type: "batch", seq: 1, readings: gw }))).toEqual([{ kind: "submit", seq: 1, readings: gw }]);
    expect(run("device", frame({ type: "batch", seq: 1, readings: gw }))).toEqual([{ kind: "error", code: ErrorCode.BadReading, seq: 1 }]);
    expect(run("gateway", frame({ type: "batch", seq: 1, readings: [[now, "temp", 1]] }))).toEqual([{ kind: "error", code: ErrorCode.BadReading, seq: 1 }]);
    for (const device of ["", "bad id", "x".repeat(65), 7, null]) {
      expect(run("gateway", frame({ type: "batch", seq: 3, readings: [[now, "temp", 1, device]] }))).toEqual([{ kind: "error", code: ErrorCode.BadDevice, seq: 3 }]);
    }
  });

  it("applies the transport checks to gateways as to devices", () => {
    expect(run("gateway", "hello")).toEqual([{ kind: "close", code: CloseCode.UnsupportedData }]);
    expect(run("gateway", Uint8Array.of(0xff))).toEqual([{ kind: "close", code: CloseCode.InvalidPayload }]);
    expect(run("gateway", frame([1, 2]))).toEqual([{ kind: "close", code: CloseCode.InvalidPayload }]);
    expect(run("gateway", frame({ type: "hello" }))).toEqual([{ kind: "error", code: ErrorCode.UnknownType }]);
  });

  it("submits nothing the rate limit holds back", () => {
    expect(run("device", frame({ type: "batch", seq: 1, readings: [[Date.now(), "t", 1]] }), false)).toEqual([]);
  });
});

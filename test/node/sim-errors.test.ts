/**
 * The simulator's "errors by code" counts every error frame the hub sends:
 * one without a seq (over the work budget, a frame the hub could not read),
 * and refusals of batches held back behind an earlier `rate_limited` one,
 * which the device client reports with no `reject` (it resends them anyway).
 * Against a stand-in hub (a `ws` server speaking the protocol), since the
 * real hub's readings limit is far above what a cheap test sends
 * (test/worker/throttle.test.ts covers the hub's side in workerd).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";
import { ErrorCode, type Reading } from "../../schema/protocol.ts";
import { formatSummary, summarize } from "../../device-sim/report.ts";
import { NO_FAULTS, SimDevice } from "../../device-sim/sim-device.ts";
import { Stats } from "../../device-sim/stats.ts";

it("counts every error frame by code, with a seq or without, and the report shows them", async () => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  let refused = 0;
  server.on("connection", (ws: WebSocket) => {
    ws.send(encodeCbor({ type: "hello", v: 1, lastSeq: 0 }));
    // Not about any batch: what the hub sends for a frame it could not read.
    ws.send(encodeCbor({ type: "error", code: ErrorCode.BadFrame, message: "not a frame" }));
    ws.on("message", (data: Buffer) => {
      const r = decodeCbor(new Uint8Array(data));
      if (!r.ok) throw new Error(r.message);
      const { seq } = r.value as { seq: number };
      // The first three batches are refused as the hub's readings limit does:
      // the first over the limit, and each later one because it waits behind it.
      if (refused < 3) {
        refused++;
        ws.send(encodeCbor({ type: "error", seq, code: ErrorCode.RateLimited, message: "over the readings limit", retryAfterMs: 20 }));
      } else {
        ws.send(encodeCbor({ type: "ack", seq }));
      }
    });
  });
  const stats = new Stats();
  const sim = new SimDevice(
    { group: "g", device: "d", seed: 1 },
    { url: `http://127.0.0.1:${port}`, group: "g", device: "d", token: "t", frames: "batch", backoffInitialMs: 10, backoffMaxMs: 50 },
    { stats, expected: null, policy: { batchMs: 1000, batchReadings: 100 }, faults: NO_FAULTS },
  );
  const base = Date.now() - 60_000;
  // Queued before the socket opens, so all three are in flight at once.
  for (let i = 0; i < 3; i++) sim.sendBatch([[base + i, "temp", i]] satisfies Reading[]);
  sim.client.start();
  await sim.client.idle();
  await sim.client.close();
  server.close();
  expect(stats.ackedBatches).toBe(3);
  expect(stats.errors).toEqual({ [ErrorCode.BadFrame]: 1, [ErrorCode.RateLimited]: 3 });
  const s = summarize(stats, { batches: 0, readings: 0 }, undefined, { exitCode: 0, reason: null });
  expect([s.errorsByCode, s.errorsWithoutSeq]).toEqual([{ bad_frame: 1, rate_limited: 3 }, 1]);
  expect(formatSummary(s)).toContain("errors by code    bad_frame=1, rate_limited=3 (1 without seq)");
});

/**
 * `storage_full` from the device's side (docs/history.md, "Storage budget"):
 * the hub refuses a batch, closes the socket with 1013, and the DeviceClient
 * keeps the batch, reconnects after `retryAfterMs` and resends it. Against a
 * stand-in hub (a `ws` server speaking the protocol), since reaching a real
 * group's budget takes a small MAX_GROUP_BYTES (test/worker/budget.test.ts
 * covers the hub's side in workerd).
 */
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { expect, it } from "vitest";
import { WebSocketServer, type WebSocket } from "ws";
import { decodeCbor, encodeCbor } from "../../schema/cbor.ts";
import { DeviceClient } from "../../client/device-client.ts";

it("keeps a batch refused with storage_full, reconnects after retryAfterMs and resends it", async () => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const received: { connection: number; seq: number; readings: unknown }[] = [];
  const connectedAt: number[] = [];
  server.on("connection", (ws: WebSocket) => {
    const connection = connectedAt.push(Date.now());
    ws.send(encodeCbor({ type: "hello", v: 1, lastSeq: 0 }));
    ws.on("message", (data: Buffer) => {
      const r = decodeCbor(new Uint8Array(data));
      if (!r.ok) throw new Error(r.message);
      const f = r.value as { type: string; seq: number; readings: unknown };
      received.push({ connection, seq: f.seq, readings: f.readings });
      if (connection === 1) {
        ws.send(encodeCbor({ type: "error", seq: f.seq, code: "storage_full", message: "the group's storage is full", retryAfterMs: 300 }));
        ws.close(1013, "storage full");
      } else {
        ws.send(encodeCbor({ type: "ack", seq: f.seq }));
      }
    });
  });
  const client = new DeviceClient({ url: `http://127.0.0.1:${port}`, group: "g", device: "d", token: "t", frames: "batch", backoffInitialMs: 10, backoffMaxMs: 50 }).start();
  const rejects: string[] = [];
  client.on("reject", (_seq: number | undefined, code: string) => rejects.push(code));
  const readings: [number, string, number][] = [[Date.now() - 1000, "temp", 21.5]];
  client.send(readings);
  await client.idle();
  await client.close();
  server.close();
  expect(rejects).toEqual(["storage_full"]);
  expect(received.map(({ connection, seq, readings: r }) => ({ connection, seq, r }))).toEqual([
    { connection: 1, seq: 1, r: readings },
    { connection: 2, seq: 1, r: readings },
  ]);
  // Not before the hub's retryAfterMs, whatever the client's own backoff.
  expect((connectedAt[1] ?? 0) - (connectedAt[0] ?? 0)).toBeGreaterThanOrEqual(300);
});

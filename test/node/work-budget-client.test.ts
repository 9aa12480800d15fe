/**
 * Issue #12, finding 3, from the device's side: a DeviceClient that sends
 * tiny batches faster than its work budget gets `rate_limited` without a
 * seq, reconnects after the wait, resumes from `hello`, and every batch is
 * stored exactly once (against the shared `wrangler dev` hub).
 */
import { expect, it } from "vitest";
import type { Reading } from "../../schema/protocol.ts";
import { DEFAULT_LIMITS } from "../../schema/limits.ts";
import { buckets, deviceClient, sharedHub, uniqueGroup } from "./hub.ts";

const t = sharedHub();

it("a device client over its work budget reconnects after the wait and delivers every batch once", async () => {
  const group = uniqueGroup();
  // Enough 1-reading batches to spend the burst, however fast this machine acks.
  const burstFrames = DEFAULT_LIMITS.peerWorkBurstBytes / DEFAULT_LIMITS.frameOverheadBytes;
  const n = Math.ceil(burstFrames * 1.5);
  const client = (await deviceClient(t.url, group, "chatty", { maxInFlight: 256 })).start();
  const refusals: (number | undefined)[] = [];
  let hellos = 0;
  client.on("reject", (seq: number | undefined, code: string) => {
    if (code === "rate_limited") refusals.push(seq);
  });
  client.on("hello", () => hellos++);
  const base = Date.now() - 10 * 60_000;
  for (let i = 0; i < n; i++) client.send([[base + i, "temp", i]] satisfies Reading[]);
  await client.idle();
  await client.close();
  expect(refusals.length).toBeGreaterThan(0);
  expect(refusals.every((s) => s === undefined)).toBe(true);
  expect(hellos).toBeGreaterThan(1);
  const stored = await buckets(t.url, group);
  expect(stored.reduce((k, b) => k + b.count, 0)).toBe(n);
  expect(stored.reduce((k, b) => k + b.sum, 0)).toBe((n * (n - 1)) / 2);
}, 90_000);

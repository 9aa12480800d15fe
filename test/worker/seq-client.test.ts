/** The typed client's `resetSeq` (schema/client.ts) against the real Worker: the answer parsed by its schema, refusals as HubError. */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HubClient, HubError } from "../../schema/client.ts";
import { connectDevice, makeReadings, operatorToken, uniqueGroup } from "./helpers.ts";

const inWorkerd = (input: string, init?: RequestInit): Promise<Response> => SELF.fetch(input, init);

describe("HubClient.resetSeq", () => {
  it("sets a peer's lastSeq and answers the audit; 404 for a peer that never connected", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "d1");
    sock.send({ type: "batch", seq: 7, readings: makeReadings(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 7 });
    sock.close();
    const hub = new HubClient({ url: "http://hub.test", token: await operatorToken(group), fetch: inWorkerd });
    expect(await hub.resetSeq(group, "device", "d1", 3)).toEqual({
      kind: "device",
      id: "d1",
      lastSeq: 3,
      resets: [{ at: expect.any(Number), by: "operator token", oldSeq: 7, newSeq: 3 }],
    });
    const refused = await hub.resetSeq(group, "gateway", "d1", 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(HubError);
    expect(refused).toMatchObject({ status: 404, code: "not_found" });
  });
});

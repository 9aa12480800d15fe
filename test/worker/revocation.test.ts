/** Revocation: an operator revokes a device or gateway; it is cut off at once and refused from then on. */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { gatewaySubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import { aggregates, connectDevice, deviceToken, getJson, makeReadings, openSocket, operatorToken, TestSocket, uniqueGroup } from "./helpers.ts";

async function operatorCall(method: string, path: string, group: string, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await SELF.fetch(`http://hub.test${path}`, {
    method,
    headers: { authorization: `Bearer ${token ?? (await operatorToken(group))}` },
  });
  return { status: res.status, body: await res.json() };
}

describe("revocation", () => {
  it("closes the device's socket with 4003, refuses it with 403, and can be lifted", async () => {
    const group = uniqueGroup();
    const { sock } = await connectDevice(group, "stolen");
    sock.send({ type: "batch", seq: 1, readings: makeReadings(5) });
    await sock.next();

    const r = await operatorCall("PUT", `/v1/groups/${group}/revocations/device/stolen`, group);
    expect(r).toMatchObject({ status: 200, body: { kind: "device", id: "stolen", revokedAt: expect.any(Number) } });
    expect((await sock.closed).code).toBe(4003);

    const again = await openSocket(`/v1/groups/${group}/devices/stolen/ws`, await deviceToken(group, "stolen"));
    expect(again.status).toBe(403);
    expect(await again.json()).toMatchObject({ error: "revoked" });
    expect((await operatorCall("GET", `/v1/groups/${group}/revocations`, group)).body).toEqual({
      revocations: [{ kind: "device", id: "stolen", revokedAt: expect.any(Number) }],
    });
    // What it sent before stays.
    expect((await aggregates(group)).reduce((n, b) => n + b.count, 0)).toBe(5);

    expect((await operatorCall("DELETE", `/v1/groups/${group}/revocations/device/stolen`, group)).status).toBe(200);
    expect((await operatorCall("DELETE", `/v1/groups/${group}/revocations/device/stolen`, group)).status).toBe(404);
    const back = await connectDevice(group, "stolen");
    expect(back.lastSeq).toBe(1);
    back.sock.close();
  });

  it("revokes gateways separately from devices of the same name", async () => {
    const group = uniqueGroup();
    await operatorCall("PUT", `/v1/groups/${group}/revocations/gateway/site-1`, group);
    const gw = await openSocket(`/v1/groups/${group}/gateways/site-1/ws`, await signToken(TEST_SECRET, gatewaySubject(group, "site-1")));
    expect(gw.status).toBe(403);
    const dev = await connectDevice(group, "site-1");
    expect(dev.lastSeq).toBe(0);
    dev.sock.close();
  });

  it("is an operator action: other tokens and bad paths are refused", async () => {
    const group = uniqueGroup();
    const other = await operatorToken(uniqueGroup());
    expect((await operatorCall("PUT", `/v1/groups/${group}/revocations/device/d`, group, other)).status).toBe(401);
    expect((await operatorCall("PUT", `/v1/groups/${group}/revocations/device/d`, group, await deviceToken(group, "d"))).status).toBe(401);
    expect((await operatorCall("PUT", `/v1/groups/${group}/revocations/sensor/d`, group)).status).toBe(404);
    expect((await operatorCall("PUT", `/v1/groups/${group}/revocations/device/bad%20id`, group)).status).toBe(400);
    expect((await operatorCall("POST", `/v1/groups/${group}/revocations/device/d`, group)).status).toBe(405);
    expect((await getJson(`/v1/groups/${group}/revocations`, other)).status).toBe(401);
    // A revoked device's open socket is never left half-open: the test socket sees the close.
    const { sock } = await connectDevice(group, "x");
    const s: TestSocket = sock;
    await operatorCall("PUT", `/v1/groups/${group}/revocations/device/x`, group);
    expect((await s.closed).code).toBe(4003);
  });
});

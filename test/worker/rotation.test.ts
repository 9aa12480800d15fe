/** Key rotation: during the window both HUB_SECRET and HUB_SECRET_PREVIOUS sign valid tokens. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { deviceSubject, operatorSubject, signToken } from "../../schema/token.ts";
import worker from "../../worker/index.ts";
import { TEST_SECRET } from "../secret.ts";
import { uniqueGroup } from "./helpers.ts";

const NEW_SECRET = "the-new-secret-after-rotation";

function call(path: string, token: string, secrets: { HUB_SECRET: string; HUB_SECRET_PREVIOUS?: string }, upgrade = false): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (upgrade) headers.upgrade = "websocket";
  const request = new Request<unknown, IncomingRequestCfProperties>(`http://hub.test${path}`, { headers });
  return worker.fetch(request, { ...env, ...secrets });
}

describe("key rotation", () => {
  it("accepts tokens of both secrets during the window and only the new one after it", async () => {
    const group = uniqueGroup();
    const oldOp = await signToken(TEST_SECRET, operatorSubject(group));
    const newOp = await signToken(NEW_SECRET, operatorSubject("*"));
    const oldDev = await signToken(TEST_SECRET, deviceSubject(group, "d"));
    const stranger = await signToken("some-other-secret", operatorSubject(group));
    const during = { HUB_SECRET: NEW_SECRET, HUB_SECRET_PREVIOUS: TEST_SECRET };
    const after = { HUB_SECRET: NEW_SECRET, HUB_SECRET_PREVIOUS: "" };

    expect((await call(`/v1/groups/${group}/devices`, oldOp, during)).status).toBe(200);
    expect((await call(`/v1/groups/${group}/devices`, newOp, during)).status).toBe(200);
    expect((await call(`/v1/groups/${group}/devices`, stranger, during)).status).toBe(401);
    const sock = await call(`/v1/groups/${group}/devices/d/ws`, oldDev, during, true);
    expect(sock.status).toBe(101);
    sock.webSocket?.accept();
    sock.webSocket?.close(1000, "done");

    expect((await call(`/v1/groups/${group}/devices`, oldOp, after)).status).toBe(401);
    expect((await call(`/v1/groups/${group}/devices/d/ws`, oldDev, after, true)).status).toBe(401);
    expect((await call(`/v1/groups/${group}/devices`, newOp, after)).status).toBe(200);
  });

  it("does not treat HUB_SECRET_PREVIOUS alone as configured", async () => {
    const group = uniqueGroup();
    const oldOp = await signToken(TEST_SECRET, operatorSubject(group));
    const res = await call(`/v1/groups/${group}/devices`, oldOp, { HUB_SECRET: "", HUB_SECRET_PREVIOUS: TEST_SECRET });
    expect(res.status).toBe(503);
  });
});

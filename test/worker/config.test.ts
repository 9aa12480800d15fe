/** A hub without HUB_SECRET refuses every request instead of running open. */
import { env, listDurableObjectIds } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index.ts";
import { uniqueGroup } from "./helpers.ts";

function call(path: string, headers: Record<string, string> = {}): Promise<Response> {
  const request = new Request<unknown, IncomingRequestCfProperties>(`http://hub.test${path}`, { headers });
  return worker.fetch(request, { ...env, HUB_SECRET: "" });
}

describe("without HUB_SECRET", () => {
  it("answers 503 not_configured on every /v1 route and touches no group", async () => {
    const group = uniqueGroup();
    const paths = [
      "/v1/health",
      `/v1/groups/${group}/devices`,
      `/v1/groups/${group}/aggregates`,
      `/v1/groups/${group}/devices/d1/ws`,
    ];
    for (const path of paths) {
      const res = await call(path, { upgrade: "websocket", authorization: "Bearer anything" });
      expect(res.status, path).toBe(503);
      expect(await res.json(), path).toMatchObject({ error: "not_configured" });
    }
    const ids = await listDurableObjectIds(env.GROUPS);
    expect(ids.some((id) => id.equals(env.GROUPS.idFromName(group)))).toBe(false);
  });
});

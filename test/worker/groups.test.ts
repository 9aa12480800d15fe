/** GET /v1/groups: groups register themselves when a device or gateway connects; only all-groups operators may list them. */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { operatorSubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import { connectDevice, operatorToken, uniqueGroup } from "./helpers.ts";

async function list(token: string | null): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await SELF.fetch("http://hub.test/v1/groups", { headers });
  return { status: res.status, body: await res.json() };
}

describe("GET /v1/groups", () => {
  it("lists groups that have had a connection, to operator:* only", async () => {
    const a = uniqueGroup("list-a");
    const b = uniqueGroup("list-b");
    const never = uniqueGroup("list-never");
    for (const g of [a, b]) (await connectDevice(g, "d1")).sock.close();
    // A rejected request for a group must not list it.
    await SELF.fetch(`http://hub.test/v1/groups/${never}/devices/d1/ws`, { headers: { upgrade: "websocket", authorization: "Bearer x" } });

    const all = await signToken(TEST_SECRET, operatorSubject("*"));
    let ids: string[] = [];
    for (let i = 0; i < 50 && !(ids.includes(a) && ids.includes(b)); i++) {
      const r = await list(all);
      expect(r.status).toBe(200);
      ids = (r.body as { groups: { id: string; firstSeen: number }[] }).groups.map((g) => g.id);
      await new Promise((r) => setTimeout(r, 20)); // registration is best effort, after the connect
    }
    expect(ids).toContain(a);
    expect(ids).toContain(b);
    expect(ids).not.toContain(never);

    expect((await list(null)).status).toBe(401);
    expect((await list(await operatorToken(a))).status).toBe(401);
    const post = await SELF.fetch("http://hub.test/v1/groups", { method: "POST", headers: { authorization: `Bearer ${all}` } });
    expect(post.status).toBe(405);
  });
});

/**
 * Downlink inside workerd (docs/protocol.md, "Downlink"): commands and
 * configuration reach opted-in devices (and gateways) online or after
 * their next hello, survive an eviction between delivery and result, expire
 * by the scheduler's sweep, and bad frames, bodies and tokens change nothing.
 */
import { env, evictDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { HubClient } from "../../schema/client.ts";
import { DEFAULT_DOWNLINK_LIMITS } from "../../schema/limits.ts";
import { EXPIRY_TASK } from "../../worker/group/downlink/downlink.ts";
import { eventually } from "../../harness/wait.ts";
import { deviceToken, gatewayToken, openSocket, operatorToken, refusal, runTasksNow, TestSocket, uniqueGroup } from "./helpers.ts";

const inWorkerd = (input: string, init?: RequestInit): Promise<Response> => SELF.fetch(input, init);
const hub = (token: string | null): HubClient => new HubClient({ url: "http://hub.test", token, fetch: inWorkerd });
const operator = async (group: string): Promise<HubClient> => hub(await operatorToken(group));

/** Opens a device (or gateway) socket with `?downlink=1` unless `optIn` is false, and takes its hello. */
async function connect(group: string, peer: { device: string } | { gateway: string }, optIn = true): Promise<TestSocket> {
  const path = "device" in peer ? `/v1/groups/${group}/devices/${peer.device}/ws` : `/v1/groups/${group}/gateways/${peer.gateway}/ws`;
  const token = "device" in peer ? await deviceToken(group, peer.device) : await gatewayToken(group, peer.gateway);
  const res = await openSocket(optIn ? `${path}?downlink=1` : path, token);
  if (res.status !== 101 || !res.webSocket) throw new Error(`expected 101, got ${res.status}: ${await res.text()}`);
  const sock = new TestSocket(res.webSocket);
  expect(await sock.next()).toMatchObject({ type: "hello" });
  return sock;
}

/**
 * Asserts the hub sent nothing more: a result for a command that does not
 * exist is answered by the object in order, so its error must be the next
 * frame. (A `ping` is no barrier: the runtime answers it without the object,
 * ahead of frames still being handled.)
 */
async function expectNothingMore(sock: TestSocket, gateway = false): Promise<void> {
  sock.send({ type: "command_result", id: "barrier", ok: true, device: gateway ? "barrier" : undefined });
  expect(await sock.next()).toMatchObject({ type: "error", code: "unknown_command", message: expect.stringContaining("barrier") as string });
}

describe("downlink", () => {
  it("delivers a command to an online device at once, takes its result once, and leaves a device that did not opt in alone", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    const sock = await connect(group, { device: "d1" });
    const plain = await connect(group, { device: "d2" }, false);

    const { id, status } = await op.queueCommand(group, "d1", { name: "ping", args: { n: 1 }, ttlMs: 60_000 });
    expect(status).toBe("queued");
    const cmd = (await sock.next()) as Record<string, unknown>;
    expect(cmd).toMatchObject({ type: "command", id, name: "ping", args: { n: 1 } });
    expect(typeof cmd.expiresAt).toBe("number");
    expect(await op.command(group, "d1", id)).toMatchObject({ id, status: "delivered", result: null, error: null });

    sock.send({ type: "command_result", id, ok: true, result: { pong: 1 } });
    await expectNothingMore(sock);
    const done = await op.command(group, "d1", id);
    expect(done).toMatchObject({ id, name: "ping", args: { n: 1 }, status: "succeeded", result: { pong: 1 }, error: null });
    expect(done.completedAt).toBeGreaterThanOrEqual(done.deliveredAt ?? Infinity);

    // A second result for the finished command is refused and changes nothing.
    sock.send({ type: "command_result", id, ok: false, error: "again" });
    expect(await sock.next()).toMatchObject({ type: "error", code: "unknown_command" });
    expect(await op.command(group, "d1", id)).toMatchObject({ status: "succeeded", result: { pong: 1 } });

    // A device without downlink=1 gets no frames; its command waits, queued.
    const other = await op.queueCommand(group, "d2", { name: "ping" });
    await expectNothingMore(plain);
    expect(await op.command(group, "d2", other.id)).toMatchObject({ status: "queued", args: null });
    expect((await op.commands(group, "d1")).map((c) => c.id)).toEqual([id]);
    sock.close();
    plain.close();
  });

  it("queues for an offline device, delivers after hello, and redelivers after an eviction between delivery and result, run once", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    const a = await op.queueCommand(group, "d1", { name: "set_rate", args: 500 });
    const b = await op.queueCommand(group, "d1", { name: "ping" });
    expect((await op.commands(group, "d1")).map((c) => [c.id, c.status])).toEqual([
      [b.id, "queued"],
      [a.id, "queued"],
    ]);

    // A device that remembers what it ran: a redelivered id is answered from memory.
    const ran = new Map<string, number>();
    const results = new Map<string, unknown>();
    const answer = (sock: TestSocket, f: Record<string, unknown>): void => {
      const id = String(f.id);
      if (!results.has(id)) {
        ran.set(id, (ran.get(id) ?? 0) + 1);
        results.set(id, { ran: f.name });
      }
      sock.send({ type: "command_result", id, ok: true, result: results.get(id) as { ran: string } });
    };

    let sock = await connect(group, { device: "d1" });
    expect(await sock.next()).toMatchObject({ type: "command", id: a.id, name: "set_rate", args: 500 });
    expect(await sock.next()).toMatchObject({ type: "command", id: b.id });
    // The device runs the first command, and the hub is torn down before its result arrives.
    ran.set(a.id, 1);
    results.set(a.id, { ran: "set_rate" });
    await evictDurableObject(env.GROUPS.getByName(group));
    sock.close();

    sock = await connect(group, { device: "d1" });
    const again = [(await sock.next()) as Record<string, unknown>, (await sock.next()) as Record<string, unknown>];
    expect(again.map((f) => f.id)).toEqual([a.id, b.id]);
    for (const f of again) answer(sock, f);
    await expectNothingMore(sock);
    expect([...ran.values()]).toEqual([1, 1]);
    expect(await op.command(group, "d1", a.id)).toMatchObject({ status: "succeeded", result: { ran: "set_rate" } });
    expect(await op.command(group, "d1", b.id)).toMatchObject({ status: "succeeded", result: { ran: "ping" } });

    // Finished commands are not sent again.
    sock.close();
    sock = await connect(group, { device: "d1" });
    await expectNothingMore(sock);
    sock.close();
  });

  it("expires waiting commands by the scheduler's sweep and never delivers them", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    const stub = env.GROUPS.getByName(group);
    const { id } = await op.queueCommand(group, "d1", { name: "reboot", ttlMs: 1 });
    const kept = await op.queueCommand(group, "d1", { name: "ping", ttlMs: 3_600_000 });
    const expired = await eventually(
      async () => {
        await runTasksNow(stub, EXPIRY_TASK);
        const c = await op.command(group, "d1", id);
        return c.status === "expired" ? c : undefined;
      },
      5000,
      "the command to expire",
      20,
    );
    expect(expired.completedAt).toBeGreaterThanOrEqual(expired.expiresAt);
    expect(await op.command(group, "d1", kept.id)).toMatchObject({ status: "queued" });

    const sock = await connect(group, { device: "d1" });
    expect(await sock.next()).toMatchObject({ type: "command", id: kept.id });
    await expectNothingMore(sock);
    sock.send({ type: "command_result", id, ok: true });
    expect(await sock.next()).toMatchObject({ type: "error", code: "unknown_command" });
    expect(await op.command(group, "d1", id)).toMatchObject({ status: "expired", result: null });
    sock.close();
  });

  it("converges configuration across reconnects: the newest version until the device reports it applied", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    expect(await op.config(group, "d1")).toEqual({ desired: {}, version: 0, reported: null, appliedVersion: 0 });
    expect(await op.putConfig(group, "d1", { sampleRateMs: 1000 })).toBe(1);

    let sock = await connect(group, { device: "d1" });
    expect(await sock.next()).toEqual({ type: "config", version: 1, desired: { sampleRateMs: 1000 } });
    sock.close();

    // Changed while the device is away: only the newest version is sent.
    expect(await op.putConfig(group, "d1", { sampleRateMs: 250 })).toBe(2);
    sock = await connect(group, { device: "d1" });
    expect(await sock.next()).toEqual({ type: "config", version: 2, desired: { sampleRateMs: 250 } });
    sock.send({ type: "config_applied", version: 2, reported: { sampleRateMs: 250 } });
    await expectNothingMore(sock);
    expect(await op.config(group, "d1")).toEqual({ desired: { sampleRateMs: 250 }, version: 2, reported: { sampleRateMs: 250 }, appliedVersion: 2 });

    // An older version reported late changes nothing; a future one is refused.
    sock.send({ type: "config_applied", version: 1, reported: { sampleRateMs: 1000 } });
    sock.send({ type: "config_applied", version: 3 });
    expect(await sock.next()).toMatchObject({ type: "error", code: "unknown_config" });
    expect(await op.config(group, "d1")).toMatchObject({ reported: { sampleRateMs: 250 }, appliedVersion: 2 });

    // Applied: not sent again. Changed while online: sent at once.
    sock.close();
    sock = await connect(group, { device: "d1" });
    await expectNothingMore(sock);
    expect(await op.putConfig(group, "d1", { sampleRateMs: 100 })).toBe(3);
    expect(await sock.next()).toEqual({ type: "config", version: 3, desired: { sampleRateMs: 100 } });
    sock.close();
  });

  it("puts one configuration to many devices at once, each at its own next version, or to every device the group has seen", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    expect(await op.putConfig(group, "d1", { a: 1 })).toBe(1);
    const sock = await connect(group, { device: "d1" });
    expect(await sock.next()).toMatchObject({ type: "config", version: 1 });
    expect(await op.putGroupConfig(group, { sampleRateMs: 100 }, ["d1", "d2", "d2"])).toBe(2);
    expect(await sock.next()).toEqual({ type: "config", version: 2, desired: { sampleRateMs: 100 } });
    expect(await op.config(group, "d2")).toMatchObject({ desired: { sampleRateMs: 100 }, version: 1 });
    // Without a list: every device the group has seen (d1 connected; d2 never did).
    expect(await op.putGroupConfig(group, { sampleRateMs: 200 })).toBe(1);
    expect(await sock.next()).toEqual({ type: "config", version: 3, desired: { sampleRateMs: 200 } });
    for (const body of ['{"desired": {}, "devices": []}', '{"desired": [], "devices": ["d1"]}', '{"desired": {}, "devices": ["bad id"]}']) {
      const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/config`, { method: "PUT", body, headers: { authorization: `Bearer ${await operatorToken(group)}` } });
      expect(res.status, body).toBe(400);
    }
    sock.close();
  });

  it("carries commands and configuration of devices without a socket on an opted-in gateway", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    const queued = await op.queueCommand(group, "s-1", { name: "ping" });
    await op.putConfig(group, "s-1", { sampleRateMs: 2000 });
    const gw = await connect(group, { gateway: "bridge" });
    expect(await gw.next()).toMatchObject({ type: "command", id: queued.id, device: "s-1" });
    expect(await gw.next()).toEqual({ type: "config", version: 1, desired: { sampleRateMs: 2000 }, device: "s-1" });

    // A device with its own opted-in socket gets its own frames, not the gateway.
    const direct = await connect(group, { device: "d1" });
    const mine = await op.queueCommand(group, "d1", { name: "ping" });
    expect(await direct.next()).toMatchObject({ type: "command", id: mine.id });
    await expectNothingMore(gw, true);

    gw.send({ type: "command_result", id: queued.id, ok: false, error: "sensor asleep" });
    gw.send({ type: "command_result", id: queued.id, ok: true });
    expect(await gw.next()).toMatchObject({ type: "error", code: "bad_device" });
    expect(await gw.next()).toMatchObject({ type: "error", code: "bad_device" });
    gw.send({ type: "config_applied", device: "s-1", version: 1 });
    gw.send({ type: "command_result", device: "s-1", id: queued.id, ok: false, error: "sensor asleep" });
    await expectNothingMore(gw, true);
    expect(await op.command(group, "s-1", queued.id)).toMatchObject({ status: "failed", error: "sensor asleep" });
    expect(await op.config(group, "s-1")).toMatchObject({ version: 1, appliedVersion: 1 });
    gw.close();
    direct.close();
  });

  it("refuses bad frames, bad bodies, other devices' results, other groups' tokens and too many queued commands", async () => {
    const group = uniqueGroup("dl");
    const op = await operator(group);
    const d1 = await connect(group, { device: "d1" });
    const d2 = await connect(group, { device: "d2" });
    const { id } = await op.queueCommand(group, "d1", { name: "ping" });
    expect(await d1.next()).toMatchObject({ type: "command", id });

    for (const bad of [
      { type: "command_result", id, ok: "yes" },
      { type: "command_result", ok: true },
      { type: "command_result", id, ok: true, error: "x".repeat(1025) },
      { type: "config_applied", version: 0 },
      { type: "config_applied", version: 1, reported: [1] },
    ]) {
      d1.send(bad);
      expect(await d1.next()).toMatchObject({ type: "error", code: "bad_frame" });
    }
    // Another device cannot answer d1's command.
    d2.send({ type: "command_result", id, ok: true });
    expect(await d2.next()).toMatchObject({ type: "error", code: "unknown_command" });
    d2.send({ type: "command_result", id: "no-such-command", ok: true });
    expect(await d2.next()).toMatchObject({ type: "error", code: "unknown_command" });
    expect(await op.command(group, "d1", id)).toMatchObject({ status: "delivered" });

    const post = async (body: string, token: string): Promise<{ status: number; error: unknown }> => {
      const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/devices/d1/commands`, { method: "POST", body, headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, error: ((await res.json()) as { error: unknown }).error };
    };
    const token = await operatorToken(group);
    for (const body of ["{", "[]", '{"name": "bad name"}', '{"name": "x", "ttlMs": 0}', `{"name": "x", "ttlMs": ${DEFAULT_DOWNLINK_LIMITS.maxTtlMs + 1}}`]) {
      expect(await post(body, token)).toEqual({ status: 400, error: "bad_body" });
    }
    expect(await post(JSON.stringify({ name: "x", args: "y".repeat(DEFAULT_DOWNLINK_LIMITS.maxArgsBytes) }), token)).toEqual({ status: 400, error: "bad_body" });
    expect((await refusal(op.putConfig(group, "d1", [] as unknown as Record<string, unknown>))).status).toBe(400);
    expect((await refusal(op.command(group, "d2", id))).status).toBe(404);

    // Device tokens, and operators of other groups, are refused.
    expect(await post('{"name": "x"}', await deviceToken(group, "d1"))).toEqual({ status: 401, error: "unauthorized" });
    const stranger = hub(await operatorToken(uniqueGroup("other")));
    expect((await refusal(stranger.queueCommand(group, "d1", { name: "x" }))).status).toBe(401);
    expect((await refusal(stranger.commands(group, "d1"))).status).toBe(401);
    expect((await refusal(stranger.putConfig(group, "d1", {}))).status).toBe(401);
    expect((await refusal(stranger.config(group, "d1"))).status).toBe(401);

    // DOWNLINK_MAX_QUEUED waiting commands per device; one more is 429.
    const max = DEFAULT_DOWNLINK_LIMITS.maxQueuedCommands;
    await Promise.all(Array.from({ length: max - 1 }, () => op.queueCommand(group, "d3", { name: "ping" })));
    await op.queueCommand(group, "d3", { name: "ping" });
    const full = await refusal(op.queueCommand(group, "d3", { name: "ping" }));
    expect([full.status, full.code]).toEqual([429, "too_many_commands"]);
    d1.close();
    d2.close();
  });
});

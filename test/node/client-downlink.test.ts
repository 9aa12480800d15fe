/**
 * The device side of downlink without a hub: DownlinkRunner (client/downlink.ts)
 * runs each command id once whatever the hub redelivers, answers repeats
 * from memory (also while the first run is still going, and after a
 * restart from saved state), and applies configuration versions in order.
 */
import { describe, expect, it } from "vitest";
import { DownlinkRunner } from "../../client/downlink.ts";
import { waitFor } from "../../harness/wait.ts";
import type { CborValue } from "../../schema/cbor.ts";
import type { CommandFrame } from "../../schema/protocol.ts";

const cmd = (id: string, name = "ping", args: unknown = null, device?: string): CommandFrame =>
  device === undefined ? { type: "command", id, name, args, expiresAt: Date.now() + 60_000 } : { type: "command", id, name, args, expiresAt: Date.now() + 60_000, device };

/** A runner whose sent frames are recorded; `settle` waits for pending handlers. */
function runner(executed?: ConstructorParameters<typeof DownlinkRunner>[0]["executed"]) {
  const sent: Record<string, unknown>[] = [];
  const r = new DownlinkRunner({ send: (f: CborValue) => sent.push(JSON.parse(JSON.stringify(f)) as Record<string, unknown>) > 0, executed });
  return { r, sent, settle: () => new Promise((res) => setTimeout(res, 0)) };
}

describe("DownlinkRunner", () => {
  it("runs a redelivered command once and answers every delivery with the stored result", async () => {
    const { r, sent, settle } = runner();
    let runs = 0;
    r.command("ping", (args) => ({ pong: args, run: ++runs }));
    r.onFrame(cmd("c1", "ping", 7));
    await settle();
    r.onFrame(cmd("c1", "ping", 7));
    await settle();
    expect(runs).toBe(1);
    expect(sent).toEqual([
      { type: "command_result", id: "c1", ok: true, result: { pong: 7, run: 1 } },
      { type: "command_result", id: "c1", ok: true, result: { pong: 7, run: 1 } },
    ]);
  });

  it("a repeat that arrives while the first run is still going waits for it", async () => {
    const { r, sent } = runner();
    let runs = 0;
    let finish: (v: string) => void = () => {};
    r.command("slow", () => {
      runs++;
      return new Promise<string>((res) => (finish = res));
    });
    r.onFrame(cmd("c1", "slow"));
    r.onFrame(cmd("c1", "slow"));
    finish("done");
    await new Promise((res) => setTimeout(res, 0));
    expect(runs).toBe(1);
    expect(sent.map((f) => f.result)).toEqual(["done", "done"]);
  });

  it("fails unknown commands and throwing handlers, keeps the gateway's device, and restores executed ids", async () => {
    const { r, sent, settle } = runner();
    r.command("boom", () => {
      throw new Error("broken");
    });
    r.onFrame(cmd("c1", "nope"));
    r.onFrame(cmd("c2", "boom", null, "s-1"));
    await settle();
    expect(sent).toEqual([
      { type: "command_result", id: "c1", ok: false, error: "unknown command nope" },
      { type: "command_result", id: "c2", ok: false, error: "broken", device: "s-1" },
    ]);
    const again = runner(r.executed());
    let runs = 0;
    again.r.command("boom", () => ++runs);
    again.r.onFrame(cmd("c2", "boom", null, "s-1"));
    await again.settle();
    expect(runs).toBe(0);
    expect(again.sent).toEqual([{ type: "command_result", id: "c2", ok: false, error: "broken", device: "s-1" }]);
  });

  it("applies configuration versions in order, each once, and acknowledges an old one with the applied version", async () => {
    const { r, sent } = runner();
    const applied: number[] = [];
    r.config(async (desired, version) => {
      await new Promise((res) => setTimeout(res, version === 1 ? 5 : 0));
      applied.push(version);
      return { ...desired };
    });
    r.onFrame({ type: "config", version: 1, desired: { rate: 1 } });
    r.onFrame({ type: "config", version: 2, desired: { rate: 2 } });
    r.onFrame({ type: "config", version: 1, desired: { rate: 1 } });
    await waitFor(() => sent.length === 3, "three acknowledgements", 5000, 1);
    expect(applied).toEqual([1, 2]);
    expect(r.appliedVersion()).toBe(2);
    expect(sent).toEqual([
      { type: "config_applied", version: 1, reported: { rate: 1 } },
      { type: "config_applied", version: 2, reported: { rate: 2 } },
      { type: "config_applied", version: 2, reported: { rate: 2 } },
    ]);
  });
});

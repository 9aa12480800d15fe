/**
 * Interop: a device written in Python with cbor2 and websocket-client (Debian's
 * python3-cbor2 and python3-websocket, installed by .ci/run) against a real
 * `wrangler dev` hub. Proves the wire protocol is plain CBOR that another
 * language's library writes and reads, not whatever our own encoder emits:
 * v1 batches, and compact batches (`cbatch`) with cbor2's tagged typed
 * arrays, alone and mixed with v1 batches on one connection.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { deviceSubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import { buckets, operatorGet, sharedHub, uniqueGroup } from "./hub.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = join(ROOT, "test/interop/device.py");

/** True when Debian's Python has both libraries (CI installs them; a developer may not have). */
function pythonReady(): Promise<boolean> {
  if (!existsSync(PYTHON)) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const p = spawn(PYTHON, ["-c", "import cbor2, websocket"], { stdio: "ignore" });
    p.on("exit", (code) => resolve(code === 0));
    p.on("error", () => resolve(false));
  });
}

interface DeviceRun {
  acked: number;
  readings: number;
  sum: number;
  lastSeq: number;
  errors: { code: string; message: string }[];
}

function runDevice(args: string[]): Promise<DeviceRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("error", reject);
    p.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`device.py exited ${code}: ${err}`));
      resolve(JSON.parse(out.trim().split("\n").pop() ?? "{}") as DeviceRun);
    });
  });
}

const ready = await pythonReady();

const t = sharedHub();

describe.skipIf(!ready && !process.env.CI)("a Python device (cbor2, websocket-client)", () => {
  it("sends v1 batches the hub applies exactly, and reads hello and acks", async () => {
    const group = uniqueGroup("py");
    const token = await signToken(TEST_SECRET, deviceSubject(group, "py-1"));
    // Readings 10 ms apart from ten minutes ago: never ahead of real time.
    const t0 = Date.now() - 10 * 60_000;
    const run = await runDevice([t.url, group, "py-1", token, "20", "30", "batch", String(t0)]);
    expect(run.errors).toEqual([]);
    expect(run.acked).toBe(20);
    const bs = await buckets(t.url, group);
    expect(bs.reduce((n, b) => n + b.count, 0)).toBe(600);
    expect(bs.reduce((s, b) => s + b.sum, 0)).toBeCloseTo(run.sum, 6);
    // A second run continues from hello's lastSeq: nothing is counted twice.
    const again = await runDevice([t.url, group, "py-1", token, "2", "30", "batch", String(t0 + 600 * 10)]);
    expect(again.lastSeq).toBe(22);
    const { body } = await operatorGet(t.url, `/v1/groups/${group}/devices`, group);
    expect(body).toMatchObject({ devices: [{ id: "py-1", lastSeq: 22, readings: 660 }] });
  });

  it("sends cbatch frames (every offset width, float64 and float32) and mixed cbatch/batch, each applied exactly as the same v1 batches", async () => {
    // Readings `step` ms apart over three metrics, from six hours ago: a series
    // steps 3 x `step`, so 10 ms gives uint8 offsets (tag 64), 100 ms uint16
    // (69) and 30 s uint32 (70). Values are quarters: float32 holds them exactly.
    const t0 = Date.now() - 6 * 3600_000;
    const runs: { frames: string; values: string; step: number }[] = [
      { frames: "cbatch", values: "f64", step: 10 },
      { frames: "cbatch", values: "f32", step: 100 },
      { frames: "cbatch", values: "f64", step: 30_000 },
      { frames: "both", values: "f64", step: 10 },
    ];
    const reference = new Map<number, Awaited<ReturnType<typeof buckets>>>();
    for (const step of new Set(runs.map((r) => r.step))) {
      const group = uniqueGroup("py-v1");
      const token = await signToken(TEST_SECRET, deviceSubject(group, "py-1"));
      const run = await runDevice([t.url, group, "py-1", token, "20", "30", "batch", String(t0), "f64", String(step)]);
      expect(run.errors).toEqual([]);
      reference.set(step, await buckets(t.url, group));
    }
    for (const r of runs) {
      const name = `${r.frames} ${r.values} every ${r.step} ms`;
      const group = uniqueGroup("py-cb");
      const token = await signToken(TEST_SECRET, deviceSubject(group, "py-1"));
      const run = await runDevice([t.url, group, "py-1", token, "20", "30", r.frames, String(t0), r.values, String(r.step)]);
      expect(run.errors, name).toEqual([]);
      expect(run.acked, name).toBe(20);
      const got = await buckets(t.url, group);
      expect(got.reduce((n, b) => n + b.count, 0), name).toBe(600);
      expect(got, name).toEqual(reference.get(r.step));
      const { body } = await operatorGet(t.url, `/v1/groups/${group}/devices`, group);
      expect(body, name).toMatchObject({ devices: [{ id: "py-1", lastSeq: 20, readings: 600 }] });
    }
  });
});

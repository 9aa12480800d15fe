/**
 * The simulator CLI against a real hub (wrangler dev): verified fleet runs,
 * every fault at once, stop and resume, CSV replay, and bad options.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { heavyPhase } from "../../harness/heavy.ts";
import { waitFor } from "../../harness/wait.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { TEST_SECRET } from "../secret.ts";
import { buckets, startTestHub, uniqueGroup, type TestHub } from "./hub.ts";
import { runSim, summaryOf, type SimRun } from "./sim-cli.ts";

// Its own hub: a 600-device fleet (and the backlog it can leave on a busy
// machine) must not slow the shared hub's other files, nor they it.
let t: TestHub;
let dir: string;
beforeAll(async () => {
  t = await startTestHub();
  dir = mkdtempSync(join(tmpdir(), "sim-test-"));
});
afterAll(async () => {
  await t?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function sim(args: string[], opts: { interruptAfterMs?: number; interrupt?: Promise<void>; withHub?: boolean } = {}): Promise<SimRun> {
  return runSim(args, { hub: opts.withHub === false ? undefined : { url: t.url, secret: TEST_SECRET }, interruptAfterMs: opts.interruptAfterMs, interrupt: opts.interrupt });
}

const summary = summaryOf;

describe("npm run sim", () => {
  it("a fleet run with --verify matches exactly", async () => {
    const r = await sim(["--prefix", uniqueGroup("fleet"), "--groups", "2", "--devices", "5", "--rate", "20/s", "--duration", "3s", "--verify", "--json"]);
    const s = summary(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.verify?.ok).toBe(true);
    expect(s.verify?.differences).toBe(0);
    expect(s.ackedReadings).toBeGreaterThan(1000);
    expect(s.verify?.readingsFound).toBe(s.ackedReadings);
    expect(s.unacked).toEqual({ batches: 0, readings: 0 });
  });

  it("the README's first example (600 devices, temp/humidity/pressure at 5/s) holds on wrangler dev: no reconnects, EXACT MATCH", () =>
    heavyPhase("the README's 600-device fleet", async () => {
      // The README runs it for 1m; the shape is what counts, and 15 s keep the test short.
      const args = ["--groups", "3", "--devices", "200", "--metrics", "temp,humidity,pressure", "--rate", "5/s", "--duration", "15s", "--verify", "--json"];
      const r = await sim(["--prefix", uniqueGroup("readme"), ...args]);
      const s = summary(r);
      expect(r.code, `${r.stderr}\n${r.stdout.slice(0, 2000)}`).toBe(0);
      expect(s.devices).toBe(600);
      expect(s.verify?.ok).toBe(true);
      // A hub that is slow but acking keeps its sockets: no fleet-wide timeout and resend.
      expect(s.reconnects).toBe(0);
      expect(s.unacked).toEqual({ batches: 0, readings: 0 });
      expect(s.verify?.readingsFound).toBe(s.ackedReadings);
    }),
    300_000,
  );

  it("a fleet file with mixed kinds runs and verifies", async () => {
    const r = await sim(["--fleet", join(ROOT, "test/fixtures/fleet.json"), "--prefix", uniqueGroup("kinds"), "--duration", "2s", "--verify", "--json"]);
    const s = summary(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.devices).toBe(10);
    expect(s.verify?.ok).toBe(true);
  });

  it("a run with every fault type enabled still matches exactly", async () => {
    const r = await sim([
      "--prefix", uniqueGroup("faults"), "--groups", "2", "--devices", "5", "--rate", "20/s", "--duration", "6s",
      "--drop-rate", "10/min", "--offline-rate", "6/min", "--offline-for", "1s", "--malformed-rate", "20/min",
      "--resend-rate", "20/min", "--clock-skew", "20s", "--late-fraction", "0.02", "--late-by", "3m",
      "--verify", "--json", "--seed", "7",
    ]);
    const s = summary(r);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect(s.verify?.ok).toBe(true);
    for (const f of ["connection_drop", "offline", "malformed_frame", "resend_acked", "late_reading"]) {
      expect(s.faultsInjected[f], f).toBeGreaterThan(0);
    }
    // Every malformed frame came back as an error frame, unless a dropped or
    // offline socket took its answer along (each can lose the one in flight).
    const errors = Object.values(s.errorsByCode).reduce((a, b) => a + b, 0);
    const malformed = s.faultsInjected.malformed_frame ?? 0;
    const cuts = (s.faultsInjected.connection_drop ?? 0) + (s.faultsInjected.offline ?? 0);
    expect(errors).toBeLessThanOrEqual(malformed);
    expect(errors).toBeGreaterThanOrEqual(malformed - cuts);
    expect(s.reconnects).toBeGreaterThan(0);
  });

  it("--command-rate with socket drops mid-command: every command final, each run exactly once, readings still exact", async () => {
    const args = ["--groups", "1", "--devices", "8", "--rate", "10/s", "--duration", "4s", "--command-rate", "2/s", "--command-drop-rate", "0.3", "--verify", "--json"];
    const r = await sim(["--prefix", uniqueGroup("cmds"), ...args]);
    const s = summary(r);
    expect(r.code, `${r.stderr}\n${r.stdout.slice(0, 2000)}`).toBe(0);
    expect(s.verify?.ok).toBe(true);
    const c = s.commands;
    expect(c?.queued).toBeGreaterThan(10);
    expect([c?.ranTwice, c?.unfinished, c?.refused]).toEqual([0, 0, 0]);
    expect(c?.byStatus).toEqual({ succeeded: c?.queued });
    expect(c?.executions).toBe(c?.queued);
    // Some commands were redelivered after a drop (or a reboot) and answered from memory.
    expect((s.faultsInjected.disconnect_mid_command ?? 0) + (s.faultsInjected.command_result_dropped ?? 0)).toBeGreaterThan(0);
  });

  it("a stopped and resumed run continues above lastSeq without duplicates", async () => {
    const state = join(dir, "resume.json");
    const prefix = uniqueGroup("resume");
    // Ctrl-C once the hub holds 20 batches' worth of readings, however long that takes here.
    const group = `${prefix}-1`;
    const running = sim(["--prefix", prefix, "--groups", "1", "--devices", "4", "--rate", "50/s", "--duration", "90s", "--state", state, "--json"], {
      // On a timeout it interrupts all the same; the count below then says what was missing.
      interrupt: waitFor(async () => (await buckets(t.url, group)).reduce((n, b) => n + b.count, 0) >= 200, "the first run's readings in the hub", 80_000).catch(() => undefined),
    });
    const first = await running;
    const s1 = summary(first);
    expect(first.code, first.stderr).toBe(0);
    expect(s1.ackedReadings).toBeGreaterThanOrEqual(200);
    // The second run finds the prefix in the state file.
    const second = await sim(["--groups", "1", "--devices", "4", "--rate", "50/s", "--duration", "2s", "--state", state, "--verify", "--json"]);
    const s2 = summary(second);
    expect(second.code, second.stderr).toBe(0);
    expect(s2.errorsByCode).toEqual({});
    expect(s2.duplicateAcks).toBe(0);
    expect(s2.verify?.ok).toBe(true);
    expect(s2.verify?.readingsFound).toBe(s1.ackedReadings + s2.ackedReadings);
  });

  it("records a run and replays the recording into a new group with the same aggregates", async () => {
    const recording = join(dir, "run.jsonl");
    const prefix = uniqueGroup("rec");
    const rec = await sim(["--prefix", prefix, "--groups", "1", "--devices", "3", "--rate", "20/s", "--duration", "2s", "--record", recording, "--verify", "--json"]);
    expect(rec.code, rec.stderr).toBe(0);
    const recorded = summary(rec);
    // Replay into another group: the recording names its group; move it with a rewritten copy.
    const { readFileSync, writeFileSync } = await import("node:fs");
    const lines = readFileSync(recording, "utf8").trim().split("\n");
    expect(lines.length).toBe(recorded.generatedReadings);
    const target = uniqueGroup("replayed");
    const moved = join(dir, "moved.jsonl");
    writeFileSync(moved, lines.map((l) => l.replace(`"group":"${prefix}-1"`, `"group":"${target}"`)).join("\n") + "\n");
    const rep = await sim(["--replay", moved, "--speed", "max", "--replay-time", "original", "--verify", "--json"]);
    expect(rep.code, rep.stderr).toBe(0);
    expect(summary(rep).ackedReadings).toBe(recorded.ackedReadings);
    const strip = (bs: Awaited<ReturnType<typeof buckets>>) => bs.map(({ device, metric, start, count, min, max }) => ({ device, metric, start, count, min, max }));
    expect(strip(await buckets(t.url, target))).toEqual(strip(await buckets(t.url, `${prefix}-1`)));
  });

  it("replays the shipped field-data sample, no reading stamped later than it was sent", async () => {
    const group = uniqueGroup("field");
    const r = await sim(["--replay", join(ROOT, "device-sim/samples/field-data.csv"), "--replay-group", group, "--speed", "max", "--verify", "--json"]);
    const s = summary(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.ackedReadings).toBe(294);
    expect(s.verify?.ok).toBe(true);
    const bs = await buckets(t.url, group);
    expect(new Set(bs.map((b) => b.device))).toEqual(new Set(["boiler-1", "boiler-2", "chiller-1", "ahu-3"]));
    // Five minutes of data replayed at once end now; moved to start now they would run up to five minutes ahead.
    expect(Math.max(...bs.map((b) => b.start))).toBeLessThanOrEqual(Date.now());
    // Replaying it again into the same group: --verify compares only what this run added.
    const again = summary(await sim(["--replay", join(ROOT, "device-sim/samples/field-data.csv"), "--replay-group", group, "--speed", "max", "--verify", "--json"]));
    expect(again.verify?.ok).toBe(true);
    expect(again.verify?.readingsFound).toBe(2 * 294);
  });

  it("replays a CSV fixture into the expected aggregates", async () => {
    const r = await sim(["--replay", join(ROOT, "test/fixtures/replay.csv"), "--speed", "max", "--verify", "--json"]);
    const s = summary(r);
    expect(r.code, r.stderr).toBe(0);
    expect(s.ackedReadings).toBe(36);
    expect(s.verify?.ok).toBe(true);
    const bs = await buckets(t.url, "plant-x");
    const pick = (device: string, metric: string) =>
      bs.filter((b) => b.device === device && b.metric === metric).map(({ count, sum, min, max }) => ({ count, sum, min, max }));
    // Timestamps moved by whole minutes: the two minute buckets of the file stay two buckets.
    expect(pick("boiler-1", "temp")).toEqual([
      { count: 6, sum: 375, min: 60, max: 65 },
      { count: 6, sum: 411, min: 66, max: 71 },
    ]);
    expect(pick("boiler-2", "temp")).toEqual([
      { count: 6, sum: 435, min: 70, max: 75 },
      { count: 6, sum: 471, min: 76, max: 81 },
    ]);
    expect(pick("boiler-1", "pressure")).toEqual([
      { count: 6, sum: 9, min: 1.5, max: 1.5 },
      { count: 6, sum: 9, min: 1.5, max: 1.5 },
    ]);
  });

  it.each([
    [["--rate", "fast"], /--rate/],
    [["--groups", "0"], /--groups/],
    [["--bogus"], /bogus/],
    [["--duration", "soon"], /--duration/],
    [["--replay", "/nonexistent.csv"], /cannot read/],
    [["--fleet", join(ROOT, "package.json")], /fleet file/],
    [["--late-fraction", "2"], /--late-fraction/],
    [["--url", "not a url"], /--url/],
  ])("bad options %j exit 2 with a clear message", async (args, message) => {
    const r = await sim(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/--help/);
  });

  it("--help explains every option", async () => {
    const r = await sim(["--help"], { withHub: false });
    expect(r.code).toBe(0);
    for (const opt of ["--groups", "--devices", "--rate", "--fleet", "--seed", "--drop-rate", "--malformed-rate", "--record", "--replay", "--speed", "--state", "--verify", "--json"]) {
      expect(r.stdout).toContain(opt);
    }
  });
});

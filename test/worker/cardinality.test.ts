/**
 * Issue #12, finding 2: cardinality budgets. One device token created
 * 400,000 metrics and one gateway token 5,000 device ids; now a batch that
 * would take a device's metrics, a gateway's devices or the group's series
 * past MAX_METRICS_PER_DEVICE, MAX_DEVICES_PER_GATEWAY or
 * MAX_SERIES_PER_GROUP is refused whole with that budget's code, and nothing
 * of it is applied. The `budget` alert it raises clears once its sender went
 * BUDGET_ALERT_CLEAR_MS (1 s in this project) without another refusal.
 */
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor, type CborValue } from "../../schema/cbor.ts";
import { DEFAULT_LIMITS, readLimits } from "../../schema/limits.ts";
import { ErrorCode } from "../../schema/protocol.ts";
import type { PeerSender } from "../../worker/group/ingest/frames.ts";
import { Ingest } from "../../worker/group/ingest/ingest.ts";
import { Store } from "../../worker/group/ingest/store.ts";
import type { Peer } from "../../worker/group/peer.ts";
import type { Alert } from "../../schema/rules.ts";
import migrations from "../../schema/migrations/migrations.js";
import { eventually } from "../../harness/wait.ts";
import { Alerts, BUDGET_TASK, DEFAULT_ALERT_LIMITS, readAlertLimits } from "../../worker/group/alerts/alerts.ts";
import { aggregates, connectDevice, connectGateway, databaseBefore, getJson, lastSeqOf, openLive, operatorToken, uniqueGroup } from "./helpers.ts";

async function alertsOf(group: string): Promise<Alert[]> {
  const { body } = await getJson(`/v1/groups/${group}/alerts`, await operatorToken(group));
  return (body as { alerts: Alert[] }).alerts;
}

describe("cardinality budgets (hub)", () => {
  it("refuses a batch carrying more distinct metrics than MAX_METRICS_PER_DEVICE, applying none of it; one alert per sender kind and id", async () => {
    const group = uniqueGroup();
    const live = await openLive(group);
    const { sock } = await connectDevice(group, "d1");
    const now = Date.now();
    const many = Array.from({ length: DEFAULT_LIMITS.maxMetricsPerDevice + 1 }, (_, i) => [now - 1000, `m${i}`, i]);
    sock.send({ type: "batch", seq: 1, readings: many });
    expect(await sock.next()).toMatchObject({ type: "error", seq: 1, code: ErrorCode.TooManyMetrics });
    // Exactly at the limit is fine.
    sock.send({ type: "batch", seq: 2, readings: many.slice(1) });
    expect(await sock.next()).toEqual({ type: "ack", seq: 2 });
    expect(await lastSeqOf(group, "d1")).toBe(2);
    // A gateway named like the device, refused with the same code, is another sender.
    const gateway = (await connectGateway(group, "d1")).sock;
    gateway.send({ type: "batch", seq: 1, readings: many.map((r) => [...r, "behind-d1"]) });
    expect(await gateway.next()).toMatchObject({ type: "error", seq: 1, code: ErrorCode.TooManyMetrics });
    expect((await aggregates(group)).length).toBe(DEFAULT_LIMITS.maxMetricsPerDevice);
    // The group raised one alert for each (a second refusal would not raise another), naming its kind.
    const raised = await alertsOf(group);
    const want = { kind: "budget", device: "d1", metric: ErrorCode.TooManyMetrics, threshold: DEFAULT_LIMITS.maxMetricsPerDevice, value: DEFAULT_LIMITS.maxMetricsPerDevice + 1, clearedAt: null };
    expect(raised).toEqual([expect.objectContaining({ ...want, peerKind: "gateway" }), expect.objectContaining({ ...want, peerKind: "device" })]);
    // The live socket's alert frames name the kinds too.
    const told = new Map<number, Alert>();
    await live.until((f) => {
      for (const a of (f.alerts ?? []) as Alert[]) told.set(a.id, a);
      return raised.every((a) => told.get(a.id)?.peerKind === a.peerKind);
    }, 0, 10_000);
    // With no further refusal each clears by itself, by the scheduler's alarm,
    // not before the quiet time; the dashboard is told (polls, no sleep).
    const { budgetClearMs } = readAlertLimits({ ...env });
    const cleared = await eventually(async () => {
      const list = await alertsOf(group);
      return list.every((a) => a.clearedAt !== null) ? list : undefined;
    }, 15_000, "the budget alerts to clear");
    expect(cleared.map((a) => a.id)).toEqual(raised.map((a) => a.id));
    for (const a of cleared) expect((a.clearedAt ?? 0) - a.raisedAt).toBeGreaterThanOrEqual(budgetClearMs);
    await live.until((f) => ((f.alerts ?? []) as Alert[]).some((a) => a.id === raised[0]?.id && a.clearedAt !== null), 0, 10_000);
    sock.close();
    gateway.close();
    live.ws.close(1000, "done");
  });
});

describe("budget alerts (alerts stage, hub time injected)", () => {
  it("clear BUDGET_ALERT_CLEAR_MS after the sender's last refusal of that code, kept across a wake", async () => {
    const group = uniqueGroup();
    const stub = env.GROUPS.getByName(group);
    const result = await runInDurableObject(stub, (_hub, state) => {
      const requested: number[] = [];
      const stage = () =>
        new Alerts(
          { db: new Store(state.storage).db, kv: state.storage.kv },
          { name: () => group, scheduler: { request: (task, at) => void (task === BUDGET_TASK && requested.push(at)) } },
          { ...DEFAULT_ALERT_LIMITS, budgetClearMs: 1000 },
        );
      const active = (a: Alerts) => a.list(true, 10).map((x) => `${x.device}:${x.metric}`).sort();
      const d1: Peer = { kind: "device", id: "d1" };
      // Hub times well in the past (the stage takes its clock as arguments), reported relative to T.
      const T = Date.now() - 3_600_000;
      const cleared = (r: { cleared: Alert[]; next: number | null }) => ({ cleared: r.cleared.map((x) => x.device), next: r.next === null ? null : r.next - T });
      let alerts = stage();
      const out: Record<string, unknown> = {};
      out.raised = alerts.raiseBudget(d1, ErrorCode.TooManyMetrics, 3, 4, T)?.device;
      out.gateway = alerts.raiseBudget({ kind: "gateway", id: "gw" }, ErrorCode.TooManyDevices, 2, 3, T + 100)?.device;
      // A later refusal while raised: no second alert, and the clearing moves to T + 600 + 1000.
      out.again = alerts.raiseBudget(d1, ErrorCode.TooManyMetrics, 3, 5, T + 600);
      out.atQuiet = cleared(alerts.clearQuietBudgets(T + 1000));
      out.gatewayQuiet = cleared(alerts.clearQuietBudgets(T + 1100));
      // A new stage on the same storage, as after hibernation: the last refusal was stored.
      alerts = stage();
      out.afterWake = cleared(alerts.clearQuietBudgets(T + 1599));
      out.d1Quiet = cleared(alerts.clearQuietBudgets(T + 1600));
      out.left = active(alerts);
      out.nothing = cleared(alerts.clearQuietBudgets(T + 5000));
      // A new refusal after the clear raises a new alert; replacing the rules leaves it alone.
      out.reraised = alerts.raiseBudget(d1, ErrorCode.TooManyMetrics, 3, 4, T + 6000)?.device;
      alerts.putRules({ rules: [], offlineAfterMs: 0 }, T + 6100);
      out.afterRules = active(alerts);
      out.requested = requested.map((at) => at - T);
      out.kvLeft = [...state.storage.kv.list({ prefix: "alerts.budget:" })].length;
      return out;
    });
    expect(result).toEqual({
      raised: "d1",
      gateway: "gw",
      again: null,
      atQuiet: { cleared: [], next: 1100 },
      gatewayQuiet: { cleared: ["gw"], next: 1600 },
      afterWake: { cleared: [], next: 1600 },
      d1Quiet: { cleared: ["d1"], next: null },
      left: [],
      nothing: { cleared: [], next: null },
      reraised: "d1",
      afterRules: [`d1:${ErrorCode.TooManyMetrics}`],
      requested: [1000, 1100, 7000],
      kvLeft: 0,
    });
  });
});

describe("budget alerts keyed by sender kind and id", () => {
  const code = ErrorCode.TooManyMetrics;
  const device: Peer = { kind: "device", id: "x" };
  const gateway: Peer = { kind: "gateway", id: "x" };
  const who = (a: Alert | null | undefined) => (a ? `${a.peerKind ?? "-"}:${a.device}` : a);
  const cleared = (r: { cleared: Alert[] }) => r.cleared.map(who);
  /** The alerts stage on the object's storage, hub time injected (budgetClearMs 1000). */
  const stageOf = (group: string, state: DurableObjectState) =>
    new Alerts({ db: new Store(state.storage).db, kv: state.storage.kv }, { name: () => group, scheduler: { request: () => {} } }, { ...DEFAULT_ALERT_LIMITS, budgetClearMs: 1000 });

  it("a device x and a gateway x refused with the same code get an alert each, each cleared on its own schedule", async () => {
    const group = uniqueGroup();
    const result = await runInDurableObject(env.GROUPS.getByName(group), (_hub, state) => {
      const alerts = stageOf(group, state);
      const T = Date.now() - 3_600_000;
      const out: Record<string, unknown> = {};
      out.device = who(alerts.raiseBudget(device, code, 3, 4, T));
      out.gateway = who(alerts.raiseBudget(gateway, code, 3, 4, T + 500));
      // Only the gateway's clearing moves (to T + 1900).
      out.gatewayAgain = alerts.raiseBudget(gateway, code, 3, 5, T + 900);
      out.active = alerts.list(true, 10).map(who).sort();
      out.atDeviceQuiet = cleared(alerts.clearQuietBudgets(T + 1000));
      // The device refused again raises its own new alert; the gateway's is untouched.
      out.deviceAgain = who(alerts.raiseBudget(device, code, 3, 4, T + 1200));
      out.atGatewayQuiet = cleared(alerts.clearQuietBudgets(T + 1900));
      out.atDeviceQuietAgain = cleared(alerts.clearQuietBudgets(T + 2200));
      return out;
    });
    expect(result).toEqual({
      device: "device:x",
      gateway: "gateway:x",
      gatewayAgain: null,
      active: ["device:x", "gateway:x"],
      atDeviceQuiet: ["device:x"],
      deviceAgain: "device:x",
      atGatewayQuiet: ["gateway:x"],
      atDeviceQuietAgain: ["device:x"],
    });
  });

  it("reads an alert written before the peer kind as a device's, and keeps it working (migration 0017)", async () => {
    const group = uniqueGroup("alert-migrate");
    const stub = env.GROUPS.getByName(group);
    const T = Date.now() - 3_600_000;
    await runInDurableObject(stub, async (_hub, state) => {
      await databaseBefore(state, "_alert_peer_kind");
      const sql = state.storage.sql;
      sql.exec("INSERT INTO alerts (kind, device, metric, threshold, value, raised_at) VALUES ('budget', 'x', ?, 3, 4, ?)", code, T);
      sql.exec("INSERT INTO alerts (kind, device, threshold, value, raised_at) VALUES ('storage', '', 100, 95, ?)", T);
      await migrate(drizzle(state.storage), migrations);
    });
    await evictDurableObject(stub);
    // The REST answer: the old budget alert is a device's; the group's own alert names no peer.
    const listed = await alertsOf(group);
    expect(listed.map((a) => [a.kind, a.device, a.peerKind])).toEqual([
      ["storage", "", undefined],
      ["budget", "x", "device"],
    ]);
    const result = await runInDurableObject(stub, (_hub, state) => {
      const alerts = stageOf(group, state);
      const out: Record<string, unknown> = {};
      // The device's refusal finds the old alert and pushes its clearing back; the gateway's raises its own.
      out.device = alerts.raiseBudget(device, code, 3, 5, T + 800);
      out.gateway = who(alerts.raiseBudget(gateway, code, 3, 4, T + 900));
      out.atOldQuiet = cleared(alerts.clearQuietBudgets(T + 1000));
      out.atDeviceQuiet = cleared(alerts.clearQuietBudgets(T + 1800));
      out.atGatewayQuiet = cleared(alerts.clearQuietBudgets(T + 1900));
      return out;
    });
    expect(result).toEqual({ device: null, gateway: "gateway:x", atOldQuiet: [], atDeviceQuiet: ["device:x"], atGatewayQuiet: ["gateway:x"] });
  });
});

describe("cardinality budgets (ingest stage, small limits)", () => {
  it("keeps metrics per device, devices per gateway (across a wake) and series per group, whole batches only", async () => {
    const group = uniqueGroup();
    const stub = env.GROUPS.getByName(group);
    // The object's own constructor migrates the database this stage uses.
    const result = await runInDurableObject(stub, (_hub, state) => {
      const limits = { ...readLimits({ ...env }), groupCommitMs: 0, maxMetricsPerDevice: 3, maxDevicesPerGateway: 2, maxSeriesPerGroup: 6 };
      const stage = () =>
        new Ingest<null>(new Store(state.storage), limits, {
          name: () => group,
          hasPendingWork: () => false,
          inCommit: () => null,
          afterCommit: () => {},
          afterFailure: () => {},
          rejected: () => {},
          overBudget: (peer, over) => budgetAlerts.push(`${peer.id}:${over.code}`),
          downlink: () => null,
          storageFull: () => null,
        });
      const answers: unknown[] = [];
      const budgetAlerts: string[] = [];
      const sender = (peer: Peer): PeerSender => ({
        peer,
        send: (data) => {
          const d = decodeCbor(data);
          answers.push(d.ok ? d.value : d);
          return true;
        },
        close: () => {},
      });
      const t = Date.now() - 1000;
      const send = (ingest: Ingest<null>, from: PeerSender, frame: CborValue): unknown => {
        ingest.onMessage(from, encodeCbor(frame).slice().buffer);
        return answers.at(-1);
      };
      const code = (a: unknown) => (a as { type: string; code?: string }).code ?? (a as { type: string }).type;
      const device = sender({ kind: "device", id: "d1" });
      const gateway = sender({ kind: "gateway", id: "gw" });
      let ingest = stage();
      ingest.connect(device.peer, t);
      ingest.connect(gateway.peer, t);
      const out: Record<string, unknown> = {};
      out.threeMetrics = code(send(ingest, device, { type: "batch", seq: 1, readings: [[t, "a", 1], [t, "b", 1], [t, "c", 1]] }));
      // A fourth metric among known ones: the whole batch is refused.
      out.fourthMetric = code(send(ingest, device, { type: "batch", seq: 2, readings: [[t, "a", 2], [t, "d", 2]] }));
      out.knownMetrics = code(send(ingest, device, { type: "batch", seq: 3, readings: [[t, "a", 3], [t, "c", 3]] }));
      // A compact batch counts its series' metrics the same way.
      out.compactNew = code(send(ingest, device, { type: "cbatch", seq: 4, t0: t, series: [{ metric: "e", dt: [0], values: [1] }] }));
      out.twoDevices = code(send(ingest, gateway, { type: "batch", seq: 1, readings: [[t, "x", 1, "g1"], [t, "x", 1, "g2"]] }));
      out.thirdDevice = code(send(ingest, gateway, { type: "batch", seq: 2, readings: [[t, "x", 1, "g1"], [t, "x", 1, "g3"]] }));
      // A new stage on the same storage, as after a wake: the gateway's devices were stored.
      ingest = stage();
      ingest.connect(gateway.peer, t);
      out.thirdAfterWake = code(send(ingest, gateway, { type: "batch", seq: 2, readings: [[t, "x", 1, "g3"]] }));
      out.knownAfterWake = code(send(ingest, gateway, { type: "batch", seq: 3, readings: [[t, "y", 1, "g2"]] }));
      // 3 (d1) + 3 (g1:x, g2:x, g2:y) = 6 series: a seventh is refused, for any device.
      const other = sender({ kind: "device", id: "d2" });
      ingest.connect(other.peer, t);
      out.seventhSeries = code(send(ingest, other, { type: "batch", seq: 1, readings: [[t, "z", 1]] }));
      // A duplicate is acked as before, whatever it carries.
      out.duplicate = send(ingest, device, { type: "batch", seq: 1, readings: [[t, "q", 1]] });
      out.alerts = budgetAlerts;
      return out;
    });
    expect(result).toEqual({
      threeMetrics: "ack",
      fourthMetric: ErrorCode.TooManyMetrics,
      knownMetrics: "ack",
      compactNew: ErrorCode.TooManyMetrics,
      twoDevices: "ack",
      thirdDevice: ErrorCode.TooManyDevices,
      thirdAfterWake: ErrorCode.TooManyDevices,
      knownAfterWake: "ack",
      seventhSeries: ErrorCode.TooManySeries,
      duplicate: { type: "ack", seq: 1, dup: true },
      alerts: ["d1:too_many_metrics", "d1:too_many_metrics", "gw:too_many_devices", "gw:too_many_devices", "d2:too_many_series"],
    });
    // Nothing of a refused batch was applied: d1 has a, b, c only; d2 and g3 nothing.
    const series = (await aggregates(group)).map((b) => `${b.device}:${b.metric}`);
    expect([...new Set(series)].sort()).toEqual(["d1:a", "d1:b", "d1:c", "g1:x", "g2:x", "g2:y"]);
  });
});

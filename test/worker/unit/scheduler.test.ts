/**
 * The one alarm shared by every stage's tasks (worker/group/scheduler.ts):
 * due times kept per task, the alarm armed for the earliest, bounded steps
 * continued, failures retried later, and nothing lost when the in-memory
 * scheduler is rebuilt (a wake from hibernation) over the same storage.
 */
import { describe, expect, it } from "vitest";
import { Scheduler, type SchedulerHost } from "../../../worker/group/scheduler.ts";

/** The object's storage as the scheduler sees it: a KV map and the one alarm. */
class Storage {
  readonly map = new Map<string, unknown>();
  alarm: number | null = null;
  readonly kv = {
    get: <T>(key: string): T | undefined => this.map.get(key) as T | undefined,
    put: (key: string, value: unknown): void => void this.map.set(key, value),
    delete: (key: string): boolean => this.map.delete(key),
  } as unknown as SyncKvStorage;
  readonly alarms = {
    setAlarm: (at: number | Date): Promise<void> => {
      this.alarm = typeof at === "number" ? at : at.getTime();
      return Promise.resolve();
    },
  };
  host(): SchedulerHost {
    return { kv: this.kv, alarms: this.alarms, name: () => "g" };
  }
}

describe("scheduler", () => {
  it("arms the alarm for the earliest task and runs only due tasks", () => {
    const s = new Storage();
    const ran: string[] = [];
    const sched = new Scheduler(s.host());
    sched.register("a", { run: () => (ran.push("a"), null) });
    sched.register("b", { run: () => (ran.push("b"), null) });
    sched.request("b", 2000);
    expect(s.alarm).toBe(2000);
    sched.request("a", 1000);
    expect(s.alarm).toBe(1000);
    // A later request does not push a due task back.
    sched.request("a", 5000);
    expect(sched.due("a")).toBe(1000);
    sched.alarm(1500);
    expect(ran).toEqual(["a"]);
    expect(s.alarm).toBe(2000);
    sched.alarm(2000);
    expect(ran).toEqual(["a", "b"]);
    expect(sched.due("a")).toBeNull();
  });

  it("continues a task that asks for more, and retries a failing one later", () => {
    const s = new Storage();
    let steps = 0;
    const sched = new Scheduler(s.host());
    sched.register("chunks", { run: (now) => (++steps < 3 ? now : null) });
    sched.register("broken", {
      run: () => {
        throw new Error("boom");
      },
    });
    sched.request("chunks", 100);
    sched.request("broken", 100);
    sched.alarm(100);
    expect(steps).toBe(1);
    expect(sched.due("broken")).toBe(10_100);
    // Never re-armed at the very time it ran for (the runtime would drop it).
    expect(s.alarm).toBe(101);
    sched.alarm(100);
    sched.alarm(100);
    expect(steps).toBe(3);
    expect(sched.due("chunks")).toBeNull();
    expect(s.alarm).toBe(10_100);
  });

  it("keeps due times across a wake, and a wake never arms later than a waiting task", () => {
    const s = new Storage();
    const first = new Scheduler(s.host());
    first.register("prune", { run: () => null });
    first.register("flush", { run: () => null });
    first.request("prune", 1000);
    // A new object over the same storage (after hibernation or eviction).
    const ran: string[] = [];
    const woken = new Scheduler(s.host());
    woken.register("prune", { run: () => (ran.push("prune"), null) });
    woken.register("flush", { run: () => (ran.push("flush"), null) });
    s.alarm = null;
    woken.request("flush", 9000);
    expect(s.alarm).toBe(1000);
    woken.alarm(1000);
    expect(ran).toEqual(["prune"]);
    expect(s.alarm).toBe(9000);
  });

  it("arms again when the armed time has passed without the alarm running (a dropped alarm)", () => {
    const s = new Storage();
    const ran: string[] = [];
    const sched = new Scheduler(s.host());
    sched.register("prune", { run: () => (ran.push("prune"), null) });
    sched.register("flush", { run: () => null });
    sched.request("prune", 100);
    expect(s.alarm).toBe(100);
    // The runtime dropped it: no alarm is set, yet the scheduler thinks one is at 100.
    s.alarm = null;
    sched.request("flush", 5000);
    expect(s.alarm).toBe(100);
    sched.alarm(Date.now());
    expect(ran).toEqual(["prune"]);
  });

  it("keeps a request a task makes for itself while running", () => {
    const s = new Storage();
    const sched = new Scheduler(s.host());
    sched.register("self", { run: (now) => (sched.request("self", now + 5), now + 60_000) });
    sched.request("self", 10);
    sched.alarm(10);
    expect(sched.due("self")).toBe(15);
  });
});

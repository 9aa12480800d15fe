/**
 * One alarm, many tasks. A Durable Object has a single alarm
 * (https://developers.cloudflare.com/durable-objects/api/alarms/), while
 * several stages need timed work: offline alerts, history pruning and
 * rollup backfill, archive flushes, command expiry. Each registers a named
 * task; the scheduler keeps each task's due time in the object's synchronous
 * KV storage (so it survives hibernation and eviction) and sets the alarm to
 * the earliest one.
 *
 * A task runs in bounded steps: it does a slice of work and returns when it
 * wants to run next (`now` or a little later to continue, `null` for "not
 * until someone asks"). Tasks must be idempotent: an alarm that throws, or an
 * object evicted mid-run, runs the task again (the runtime retries alarms:
 * https://developers.cloudflare.com/durable-objects/api/alarms/#behavior).
 *
 * In-memory state here is only the task table, rebuilt by the constructor on
 * every wake; due times live in KV under `sched:{name}`.
 */
import { log } from "../log.ts";

/** A unit of timed work. */
export interface Task {
  /**
   * Does one bounded step of work. Returns the time it should run next (ms
   * since the epoch; `now` to continue right away) or null to sleep until
   * `request()` is called again. A step that waits on I/O (an R2 put)
   * returns a promise; the alarm waits for it before the next task.
   */
  run(now: number): number | null | Promise<number | null>;
}

/** What the scheduler needs from the object. */
export interface SchedulerHost {
  readonly kv: SyncKvStorage;
  readonly alarms: Pick<DurableObjectStorage, "setAlarm">;
  /** The group's id, for logs. */
  name(): string;
}

/** Narrow view handed to stages: ask for a task to run at a time. */
export interface TaskRequester {
  /** Runs `task` no later than `at` (an earlier due time is kept). */
  request(task: string, at: number): void;
}

const PREFIX = "sched:";
/** A task that keeps failing is retried at most this often, so one bug cannot spin the object. */
const RETRY_MS = 10_000;

export class Scheduler implements TaskRequester {
  private readonly tasks = new Map<string, Task>();
  private readonly host: SchedulerHost;
  /** The alarm time last set in this wake; null when unknown (after a wake) or none. */
  private armedAt: number | null = null;

  constructor(host: SchedulerHost) {
    this.host = host;
  }

  /** Registers a task by a stable name (its due time is stored under it). */
  register(name: string, task: Task): void {
    if (this.tasks.has(name)) throw new Error(`task ${name} registered twice`);
    this.tasks.set(name, task);
  }

  request(task: string, at: number): void {
    if (!this.tasks.has(task)) throw new Error(`unknown task ${task}`);
    const due = this.due(task);
    if (due === null || due > at) this.host.kv.put(PREFIX + task, at);
    // After a wake the armed time is unknown: arm for the earliest of all
    // tasks, never just this one, so an earlier task is not pushed back.
    // An armed time already past may be an alarm the runtime dropped (see
    // alarm()); arming again is harmless, so only a future one is trusted.
    const earliest = this.earliest();
    if (earliest !== null && (this.armedAt === null || this.armedAt > earliest || this.armedAt <= Date.now())) this.arm(earliest);
  }

  /** When a task is next due, or null. */
  due(task: string): number | null {
    const at = this.host.kv.get<unknown>(PREFIX + task);
    return typeof at === "number" ? at : null;
  }

  /**
   * The alarm handler: runs each due task once (one step each, in
   * registration order) and re-arms for the earliest next due time. Never
   * throws; a failing task is logged and retried after RETRY_MS. Runs
   * synchronously to the end unless a task returns a promise.
   */
  async alarm(now: number): Promise<void> {
    this.armedAt = null;
    for (const [name, task] of this.tasks) {
      const due = this.due(name);
      if (due === null || due > now) continue;
      // Cleared while it runs, so a request the task makes for itself is seen.
      this.host.kv.delete(PREFIX + name);
      let next: number | null;
      try {
        const step = task.run(now);
        // Awaited only when it is a promise, so synchronous tasks keep running in one turn.
        next = step instanceof Promise ? await step : step;
      } catch (err) {
        log.error("scheduler.task", err, { group: this.host.name(), task: name });
        next = now + RETRY_MS;
      }
      const requested = this.due(name);
      const keep = requested !== null && (next === null || requested < next) ? requested : next;
      if (keep === null) this.host.kv.delete(PREFIX + name);
      else this.host.kv.put(PREFIX + name, keep);
    }
    // Strictly after `now`: the runtime deletes the alarm when a handler
    // succeeds if it is still set to the time that handler ran for, and
    // `now` (the clock stands still between I/O) can be exactly that time,
    // so re-arming at `now` could be dropped and the tasks never run again.
    const earliest = this.earliest();
    if (earliest !== null) this.arm(Math.max(earliest, now + 1));
  }

  private earliest(): number | null {
    let min: number | null = null;
    for (const name of this.tasks.keys()) {
      const due = this.due(name);
      if (due !== null && (min === null || due < min)) min = due;
    }
    return min;
  }

  private arm(at: number): void {
    this.armedAt = at;
    // setAlarm's write is ordered with the object's other storage writes
    // and covered by the output gate, so it need not be awaited here.
    this.host.alarms.setAlarm(at).catch((err: unknown) => {
      this.armedAt = null;
      log.error("scheduler.arm", err, { group: this.host.name(), at });
    });
  }
}

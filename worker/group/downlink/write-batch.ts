/**
 * Downlink writes of many events in one SQLite transaction. Each request
 * and socket message is its own event, and a Durable Object commits (and
 * holds the event's answers until that commit is durable) once per event
 * that wrote: one small write per command cost about as much as the commit.
 * Operations queued within `delayMs` run together in one transaction, in
 * order, as the group commit does for batches; each caller's promise
 * settles with its operation's outcome, and the runtime's output gate still
 * holds every answer (and every frame sent) until the commit is durable
 * (https://developers.cloudflare.com/durable-objects/api/storage-api/#output-gates).
 */
export class WriteBatch {
  private ops: (() => void)[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly transaction: (fn: () => void) => void;
  private readonly delayMs: number;

  constructor(transaction: (fn: () => void) => void, delayMs: number) {
    this.transaction = transaction;
    this.delayMs = delayMs;
  }

  /** Runs `op` with the next batch; resolves with what it returns, rejects with what it throws (the others still run). */
  run<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.ops.push(() => {
        try {
          resolve(op());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      this.timer ??= setTimeout(() => this.flush(), this.delayMs);
    });
  }

  /** Runs every queued operation now, in one transaction. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const ops = this.ops;
    this.ops = [];
    if (ops.length > 0) this.transaction(() => ops.forEach((op) => op()));
  }
}

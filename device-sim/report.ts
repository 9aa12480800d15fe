/** Progress lines during a run and the summary at its end. */
import type { CommandCheck } from "./downlink.ts";
import type { Outcome } from "./outcome.ts";
import type { VerifyResult } from "./verify.ts";
import type { Stats } from "./stats.ts";
import { si } from "./units.ts";

export interface Summary {
  durationS: number;
  devices: number;
  generatedReadings: number;
  sentBatches: number;
  ackedBatches: number;
  ackedReadings: number;
  readingsPerSecond: number;
  ackLatencyMs: { p50: number; p99: number; max: number };
  duplicateAcks: number;
  /** Batches whose acks were lost with a socket, settled after the run by the hub's lastSeq. */
  settledByLastSeq: number;
  reconnects: number;
  connectErrors: number;
  droppedReadings: number;
  unacked: { batches: number; readings: number };
  /** Every error frame the hub sent, by code, with a seq or without. */
  errorsByCode: Record<string, number>;
  /** How many of them carried no seq (over the work budget, an unreadable frame). */
  errorsWithoutSeq: number;
  closesByCode: Record<string, number>;
  faultsInjected: Record<string, number>;
  verify?: Omit<VerifyResult, "differences"> & { differences: number; firstDifferences: VerifyResult["differences"] };
  /** With --downlink and --verify: the commands this run queued, by final status, and how often they ran. */
  commands?: Omit<CommandCheck, "ranTwice" | "unfinished"> & { ranTwice: number; unfinished: number };
  /** The process's exit code (docs/simulator.md, "Exit codes"). */
  exitCode: number;
  /** Why the run failed, in one line; null when it did not. */
  failure: string | null;
}

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

export function summarize(s: Stats, unacked: { batches: number; readings: number }, v: VerifyResult | undefined, outcome: Outcome, c: CommandCheck | null = null): Summary {
  const durationS = (Date.now() - s.startedAt) / 1000;
  const out: Summary = {
    durationS: round(durationS, 2),
    devices: s.devices,
    generatedReadings: s.generatedReadings,
    sentBatches: s.sentBatches,
    ackedBatches: s.ackedBatches,
    ackedReadings: s.ackedReadings,
    readingsPerSecond: Math.round(s.ackedReadings / Math.max(durationS, 0.001)),
    ackLatencyMs: { p50: round(s.latency.quantile(0.5)), p99: round(s.latency.quantile(0.99)), max: round(s.latency.max) },
    duplicateAcks: s.duplicateAcks,
    settledByLastSeq: s.settledByLastSeq,
    reconnects: s.reconnects,
    connectErrors: s.connectErrors,
    droppedReadings: s.droppedReadings,
    unacked,
    errorsByCode: { ...s.errors },
    errorsWithoutSeq: s.errorsWithoutSeq,
    closesByCode: { ...s.closes },
    faultsInjected: { ...s.faults },
    exitCode: outcome.exitCode,
    failure: outcome.reason,
  };
  if (c) out.commands = { ...c, ranTwice: c.ranTwice.length, unfinished: c.unfinished.length };
  if (v) {
    const { differences, ...rest } = v;
    out.verify = { ...rest, differences: differences.length, firstDifferences: differences.slice(0, 50) };
  }
  return out;
}

function kv(map: Record<string, number>): string {
  const e = Object.entries(map);
  return e.length === 0 ? "none" : e.map(([k, n]) => `${k}=${n}`).join(", ");
}

/** The readable end-of-run report. */
export function formatSummary(x: Summary, v?: VerifyResult): string {
  const lines = [
    "",
    "Simulation summary",
    `  duration          ${x.durationS} s, ${x.devices} devices`,
    `  readings          generated ${x.generatedReadings}, acked ${x.ackedReadings} (${si(x.readingsPerSecond)}/s)`,
    `  batches           sent ${x.sentBatches}, acked ${x.ackedBatches}, duplicate acks ${x.duplicateAcks}`,
    `  ack latency       p50 ${x.ackLatencyMs.p50} ms, p99 ${x.ackLatencyMs.p99} ms, max ${x.ackLatencyMs.max} ms`,
    `  connections       reconnects ${x.reconnects}, connect errors ${x.connectErrors}`,
    `  dropped           ${x.droppedReadings} readings (offline buffer full)`,
    `  settled by lastSeq ${x.settledByLastSeq} batches (acks lost with a socket; the hub's lastSeq showed them applied)`,
    `  unacked at end    ${x.unacked.batches} batches, ${x.unacked.readings} readings`,
    `  errors by code    ${kv(x.errorsByCode)}${x.errorsWithoutSeq > 0 ? ` (${x.errorsWithoutSeq} without seq)` : ""}`,
    `  closes by code    ${kv(x.closesByCode)}`,
    `  faults injected   ${kv(x.faultsInjected)}`,
  ];
  const c = x.commands;
  if (c) {
    lines.push(
      `  commands          queued ${c.queued} (refused ${c.refused}), ${kv(c.byStatus)}; ran ${c.executions} times, ${c.ranTwice} more than once, ${c.unfinished} not final`,
    );
  }
  if (v) {
    lines.push("");
    if (v.ok) {
      lines.push(`Verify: EXACT MATCH. ${v.bucketsCompared} buckets, ${v.readingsFound} readings; 0 lost, 0 counted twice.`);
    } else {
      lines.push(
        `Verify: ${v.differences.length} DIFFERENCES over ${v.bucketsCompared} buckets: expected ${v.readingsExpected} readings, found ${v.readingsFound}; lost ${v.lost}, extra ${v.extra}.`,
      );
      // The first ones say what went wrong; thousands would bury the summary.
      for (const d of v.differences.slice(0, 50)) {
        lines.push(
          `  ${d.group}/${d.device} ${d.metric} @${new Date(d.start).toISOString()} ${d.field}: expected ${d.expected ?? "-"}, hub ${d.actual ?? "-"}`,
        );
      }
      if (v.differences.length > 50) lines.push(`  ... and ${v.differences.length - 50} more`);
    }
  }
  lines.push("", x.failure === null ? "Result: OK" : `Result: FAILED (exit ${x.exitCode}): ${x.failure}`);
  return lines.join("\n") + "\n";
}

/** Live progress: one rewritten line on a terminal, a plain line every few seconds otherwise. */
export class Progress {
  private readonly tty: boolean;
  private readonly out: NodeJS.WriteStream;
  private timer: NodeJS.Timeout | undefined;
  private lastAcked = 0;
  private lastAt = Date.now();
  private readonly stats: Stats;

  constructor(stats: Stats, out: NodeJS.WriteStream, enabled: boolean) {
    this.stats = stats;
    this.out = out;
    this.tty = out.isTTY === true;
    if (enabled) this.timer = setInterval(() => this.print(), this.tty ? 500 : 5000);
  }

  private print(): void {
    const s = this.stats;
    const now = Date.now();
    const rate = ((s.ackedReadings - this.lastAcked) * 1000) / Math.max(1, now - this.lastAt);
    this.lastAcked = s.ackedReadings;
    this.lastAt = now;
    const errs = Object.values(s.errors).reduce((a, b) => a + b, 0);
    const line =
      `[${Math.round((now - s.startedAt) / 1000)}s] online ${s.connected}/${s.devices}  sent ${si(s.sentReadings)}  acked ${si(s.ackedReadings)}  ` +
      `${si(rate)} readings/s  ack p50 ${s.latency.quantile(0.5).toFixed(1)} ms p99 ${s.latency.quantile(0.99).toFixed(1)} ms  ` +
      `reconnects ${s.reconnects}  errors ${errs}`;
    if (this.tty) this.out.write(`\r\x1b[2K${line}`);
    else this.out.write(`${line}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty && this.timer) this.out.write("\n");
  }
}

/**
 * The ingest benchmark's result, as `--json` prints it, and the
 * human-readable summary printed without it.
 */
import type { CeilingResult } from "./ceiling.ts";
import { fmtCore, fmtCpu, fmtInt, fmtMs, fmtX } from "./ingest-format.ts";
import type { CommitModeResult, PacedResult, ProfileSummary, Verification, Window } from "./ingest-measure.ts";
import type { HotFunction } from "./profile.ts";
import type { WireBytes } from "./wire-bytes.ts";

export const TARGET_READINGS_PER_S = 1_000_000;
export const TARGET_P99_MS = 25;

export interface Result {
  date: string;
  machine: { cpus: number; cpuModel: string; memGiB: number; kernel: string; node: string; workerd: string; miniflare: string };
  config: {
    durationS: number;
    warmupS: number;
    devices: number;
    readingsPerBatch: number;
    inFlightPerDevice: number;
    groupCommitMs: number;
    groupCommitReadings: number;
    /** The per-device rate limit in force: "off" unless --rate-limit. */
    peerRateLimit: string;
  };
  /** `otherCores`: CPU other processes used meanwhile (best-of-rounds keeps the figures usable anyway). */
  ceiling: CeilingResult & { otherCores: number | null };
  groupCommit: CommitModeResult & { paced: PacedResult };
  perMessage: CommitModeResult;
  /**
   * Compact (`cbatch`, what DeviceClient sends: the group-commit hub above)
   * against v1 `batch` frames (a third hub, same settings), in the same run.
   */
  frames: {
    bytesPerReading: WireBytes;
    cbatch: FrameFigures;
    batch: FrameFigures & { ceiling: CeilingResult & { otherCores: number | null }; run: CommitModeResult };
  };
  ratios: {
    groupCommitOverPerMessage: number;
    groupCommitOverCeiling: number;
    perMessageOverCeiling: number;
    /** Hub CPU per reading at group-commit saturation over the Node ceiling's: what the runtime, sockets and SQLite add. */
    hubCpuOverCeiling: number | null;
  };
  /** `otherCores`: CPU other processes used during the window the figure comes from. */
  targets: {
    saturationReadingsPerSec: { target: number; measured: number; met: boolean; otherCores: number | null };
    p99AckMsAtHalfLoad: { target: number; measured: number; met: boolean; otherCores: number | null };
  };
  ok: boolean;
}

/** One frame type's figures at group-commit saturation. */
export interface FrameFigures {
  saturationReadingsPerSec: number;
  hubNsPerReading: number | null;
  ceilingNsPerReading: number;
  /** Hub CPU per reading over the Node ceiling's, both for this frame type. */
  hubOverCeiling: number | null;
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  "))
    .join("\n");
}

/** Above this many cores used by other processes, a window's figures are flagged as disturbed. */
const DISTURBED_CORES = 0.25;

function disturbedNote(w: Window): string {
  const other = w.cpu.other ?? 0;
  return other > DISTURBED_CORES ? `, disturbed: other processes used ${fmtCore(other)} cores` : "";
}

export function summary(r: Result): string {
  const gc = r.groupCommit;
  const pm = r.perMessage;
  const lat = gc.paced.latencyMs;
  const ns = (n: number | null): string => (n === null || !Number.isFinite(n) ? "?" : fmtInt(n));
  const row = (label: string, w: Window): string[] => [
    label,
    fmtInt(w.readingsPerSec),
    fmtInt(w.medianPerSec),
    fmtInt(w.batches / w.seconds),
    `${ns(w.hubNsPerReading)} / ${ns(w.loadNsPerReading)}`,
    `${fmtCore(w.cpu.node)} / ${fmtCore(w.cpu.workerd)} / ${fmtCore(w.cpu.other)}`,
  ];
  const windows: [string, Window][] = [
    ["group commit saturation", gc.saturation],
    ["half load", gc.paced.achieved],
    ["per-message saturation", pm.saturation],
    ["v1 batch saturation", r.frames.batch.run.saturation],
  ];
  const disturbed = windows
    .filter(([, w]) => (w.cpu.other ?? 0) > DISTURBED_CORES)
    .map(([l, w]) => `${l} (${fmtCore(w.cpu.other)} cores)`);
  if ((r.ceiling.otherCores ?? 0) > DISTURBED_CORES) disturbed.unshift(`the CPU ceiling (${fmtCore(r.ceiling.otherCores)} cores)`);
  const mark = (met: boolean): string => (met ? "met" : "NOT met");
  const verify = (v: Verification): string =>
    v.ok
      ? `OK (${fmtInt(v.aggregateCount)} readings acked = sum of counts over ${fmtInt(v.buckets)} buckets; ${(v.sqliteBytes / 2 ** 20).toFixed(1)} MiB of SQLite on disk)`
      : `FAILED: acked ${fmtInt(v.ackedReadings)}, aggregates ${fmtInt(v.aggregateCount)}, device rows ${fmtInt(v.deviceReadings)}, seqs ${v.seqsMatch ? "ok" : "differ"}, rejected ${v.rejected}, dropped ${v.dropped}${v.rejects.length > 0 ? `; first: ${v.rejects[0] ?? ""}` : ""}`;
  const ceilingNs = r.ceiling.full.nsPerReading;
  return `
Ingest benchmark, ${r.date}
${r.machine.cpus} x ${r.machine.cpuModel}, Node ${r.machine.node}, workerd ${r.machine.workerd}
${r.config.devices} devices in one group, ${r.config.readingsPerBatch} readings/batch, ${r.config.inFlightPerDevice} in flight/device, ${r.config.durationS} s windows, per-device rate limit ${r.config.peerRateLimit}

${table([
  ["", "readings/s", "median 1 s", "batches/s", "CPU ns/reading hub / load", "cores node / workerd / other"],
  row(`saturation, group commit (${gc.groupCommitMs} ms)`, gc.saturation),
  row("saturation, one commit per message", pm.saturation),
  row("half load, paced", gc.paced.achieved),
  row(`saturation, group commit, v1 batch frames`, r.frames.batch.run.saturation),
])}

${table([
  ["CPU ceiling in Node (one core, no I/O)", "readings/s", "ns/reading"],
  ["decode", fmtInt(r.ceiling.decode.readingsPerSec), fmtInt(r.ceiling.decode.nsPerReading)],
  ["decode + validate", fmtInt(r.ceiling.decodeValidate.readingsPerSec), fmtInt(r.ceiling.decodeValidate.nsPerReading)],
  ["decode + validate + collapse", fmtInt(r.ceiling.full.readingsPerSec), fmtInt(ceilingNs)],
])}

${framesText(r)}

Ack latency at half load (${fmtInt(lat.count)} batches): p50 ${fmtMs(lat.p50)} ms, p90 ${fmtMs(lat.p90)} ms, p99 ${fmtMs(lat.p99)} ms, max ${fmtMs(lat.max)} ms

Ratios
  group commit / one commit per message, readings/s   ${fmtX(r.ratios.groupCommitOverPerMessage)}
  group commit saturation / CPU ceiling, readings/s   ${fmtX(r.ratios.groupCommitOverCeiling)}
  hub CPU per reading / CPU ceiling per reading       ${r.ratios.hubCpuOverCeiling === null ? "?" : fmtX(r.ratios.hubCpuOverCeiling)}

Targets
  >= ${fmtInt(TARGET_READINGS_PER_S)} readings/s at saturation: ${mark(r.targets.saturationReadingsPerSec.met)} (${fmtInt(r.targets.saturationReadingsPerSec.measured)})${disturbedNote(gc.saturation)}
  p99 ack <= ${TARGET_P99_MS} ms at half load: ${mark(r.targets.p99AckMsAtHalfLoad.met)} (${fmtMs(lat.p99)} ms)${disturbedNote(gc.paced.achieved)}

Correctness (aggregates vs acked readings)
  group commit:           ${verify(gc.verification)}
  one commit per message: ${verify(pm.verification)}
  v1 batch frames:        ${verify(r.frames.batch.run.verification)}
${
  disturbed.length === 0
    ? ""
    : `
Note: other processes used CPU during ${disturbed.join(", ")};
readings/s there is lower than on a quiet machine. CPU ns/reading and the ratios are less affected.
`
}${profileText("group commit", gc.profile)}${profileText("one commit per message", pm.profile)}${profileText("v1 batch frames", r.frames.batch.run.profile)}`;
}

/** Compact against v1 frames: bytes on the wire, saturation, hub CPU and its ratio to the Node ceiling. */
function framesText(r: Result): string {
  const f = r.frames;
  const b = f.bytesPerReading;
  const ns = (n: number | null): string => (n === null || !Number.isFinite(n) ? "?" : fmtInt(n));
  const x = (n: number | null): string => (n === null ? "?" : fmtX(n));
  return `Frames (${r.machine.cpuModel}; ${fmtInt(b.readingsPerBatch)} readings/batch of the 4-sensor signal)
${table([
  ["bytes/reading on the wire", "batch", "cbatch f64", "cbatch f32", "JSON (reference)"],
  ["", b.batch.toFixed(1), b.cbatchFloat64.toFixed(1), b.cbatchFloat32.toFixed(1), b.json.toFixed(1)],
])}
${table([
  ["group commit saturation", "readings/s", "hub CPU ns/reading", "Node ceiling ns/reading", "hub / ceiling"],
  ["cbatch (DeviceClient's default)", fmtInt(f.cbatch.saturationReadingsPerSec), ns(f.cbatch.hubNsPerReading), ns(f.cbatch.ceilingNsPerReading), x(f.cbatch.hubOverCeiling)],
  ["batch (v1)", fmtInt(f.batch.saturationReadingsPerSec), ns(f.batch.hubNsPerReading), ns(f.batch.ceilingNsPerReading), x(f.batch.hubOverCeiling)],
])}`;
}

function profileText(label: string, p: ProfileSummary | undefined): string {
  if (!p) return "";
  const list = (fns: HotFunction[]): string =>
    fns
      .slice(0, 15)
      .map((f) => `    ${(f.self * 100).toFixed(1).padStart(5)}%  ${f.name}`)
      .join("\n");
  return `
Profile, ${label}, saturated (${fmtInt(p.readingsPerSec)} readings/s while profiling; ${fmtCpu(p.cpu)})
  hub isolate, self time:
${list(p.hub)}
  load generator (this process), self time:
${list(p.loadGenerator)}
`;
}

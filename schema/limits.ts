/**
 * Hub limits. Each one is a wrangler.jsonc var so operators can tune it
 * without a code change; docs/protocol.md lists the defaults.
 */
export interface Limits {
  /** Most readings one batch may carry. */
  maxReadingsPerBatch: number;
  /** Largest binary frame accepted, in bytes. */
  maxFrameBytes: number;
  /** How far ahead of the hub's clock a reading's timestamp may be, in ms. */
  maxFutureMs: number;
  /** How far behind the hub's clock a reading's timestamp may be, in ms. */
  maxPastMs: number;
  /** Longest a batch waits for others to share its commit, in ms. */
  groupCommitMs: number;
  /** Pending readings that force a commit before the timer fires. */
  groupCommitReadings: number;
  /** Sustained readings per second one device or gateway may send (token bucket rate; 0: no limit). */
  peerReadingsPerSec: number;
  /** Readings a device or gateway may send in a burst above the rate (token bucket size). */
  peerBurstReadings: number;
  /** Device and gateway sockets one group accepts at once. */
  maxPeerSockets: number;
  /** Dashboard (live) sockets one group accepts at once. */
  maxDashboardSockets: number;
  /**
   * Largest batch seq accepted (0: up to 2^53 - 1). Far above any seq a
   * device reaches by counting, or by numbering with millisecond
   * timestamps, and far below 2^53 - 1: a seq above it is refused with
   * `bad_seq` and changes nothing (docs/protocol.md, "Resetting a seq").
   */
  maxSeq: number;
  /**
   * Work one device or gateway may cost per second, in bytes: every frame
   * costs its size plus `frameOverheadBytes`, charged before it is decoded,
   * whether it turns out valid, a duplicate or garbage (0: no limit).
   */
  peerWorkBytesPerSec: number;
  /** Work a device or gateway may cost in a burst (bucket size, in bytes; at least one largest frame). */
  peerWorkBurstBytes: number;
  /** What a frame costs besides its bytes: decoding, dispatch and an answer cost the hub about this much even for a tiny frame. */
  frameOverheadBytes: number;
  /** Work the whole group takes per second from its peers (in the same bytes); frames beyond it are shed before decoding (0: no limit). */
  groupWorkBytesPerSec: number;
  /** The group's work burst (bucket size, in bytes). */
  groupWorkBurstBytes: number;
  /** Distinct metrics one device may have; a batch that would add more is refused whole with `too_many_metrics` (0: no limit). */
  maxMetricsPerDevice: number;
  /** Distinct devices one gateway may write for; a batch that would add more is refused whole with `too_many_devices` (0: no limit). */
  maxDevicesPerGateway: number;
  /** Distinct (device, metric) series in the group; a batch that would add more is refused whole with `too_many_series` (0: no limit). */
  maxSeriesPerGroup: number;
}

/** Defaults used when a var is absent. */
export const DEFAULT_LIMITS: Readonly<Limits> = {
  maxReadingsPerBatch: 5000,
  maxFrameBytes: 1024 * 1024,
  maxFutureMs: 5 * 60_000,
  maxPastMs: 7 * 24 * 3600_000,
  groupCommitMs: 4,
  groupCommitReadings: 50_000,
  peerReadingsPerSec: 50_000,
  peerBurstReadings: 250_000,
  maxPeerSockets: 10_000,
  maxDashboardSockets: 1_000,
  maxSeq: 2 ** 48,
  peerWorkBytesPerSec: 4 * 1024 * 1024,
  peerWorkBurstBytes: 16 * 1024 * 1024,
  frameOverheadBytes: 16 * 1024,
  groupWorkBytesPerSec: 256 * 1024 * 1024,
  groupWorkBurstBytes: 512 * 1024 * 1024,
  maxMetricsPerDevice: 1000,
  maxDevicesPerGateway: 10_000,
  maxSeriesPerGroup: 100_000,
};

/** Names of the vars in wrangler.jsonc, by limit. */
export const LIMIT_VARS: Readonly<Record<keyof Limits, string>> = {
  maxReadingsPerBatch: "MAX_READINGS_PER_BATCH",
  maxFrameBytes: "MAX_FRAME_BYTES",
  maxFutureMs: "MAX_FUTURE_MS",
  maxPastMs: "MAX_PAST_MS",
  groupCommitMs: "GROUP_COMMIT_MS",
  groupCommitReadings: "GROUP_COMMIT_READINGS",
  peerReadingsPerSec: "PEER_READINGS_PER_SEC",
  peerBurstReadings: "PEER_BURST_READINGS",
  maxPeerSockets: "MAX_PEER_SOCKETS",
  maxDashboardSockets: "MAX_DASHBOARD_SOCKETS",
  maxSeq: "MAX_SEQ",
  peerWorkBytesPerSec: "PEER_WORK_BYTES_PER_SEC",
  peerWorkBurstBytes: "PEER_WORK_BURST_BYTES",
  frameOverheadBytes: "FRAME_OVERHEAD_BYTES",
  groupWorkBytesPerSec: "GROUP_WORK_BYTES_PER_SEC",
  groupWorkBurstBytes: "GROUP_WORK_BURST_BYTES",
  maxMetricsPerDevice: "MAX_METRICS_PER_DEVICE",
  maxDevicesPerGateway: "MAX_DEVICES_PER_GATEWAY",
  maxSeriesPerGroup: "MAX_SERIES_PER_GROUP",
};

/**
 * Reads integer settings from an env-like record: each key of `defaults`
 * from its var in `vars`. A var that is missing falls back to its default;
 * one that is present but not an integer of at least `min` throws, so a typo
 * in wrangler.jsonc fails loudly instead of silently using a default.
 */
export function readIntVars<T extends { [K in keyof T]: number }>(
  env: Readonly<Record<string, unknown>>,
  defaults: Readonly<T>,
  vars: Readonly<Record<keyof T, string>>,
  min = 0,
): T {
  const out = { ...defaults };
  for (const key of Object.keys(vars) as (keyof T & string)[]) {
    const raw = env[vars[key]];
    if (raw === undefined || raw === "") continue;
    const n = typeof raw === "number" ? raw : Number(raw);
    if (!Number.isSafeInteger(n) || n < min) {
      throw new Error(`${vars[key]} must be a ${min > 0 ? "positive" : "non-negative"} integer`);
    }
    (out as Record<string, number>)[key] = n;
  }
  return out;
}

/** Hub limits from an env-like record (see {@link readIntVars}). */
export function readLimits(env: Readonly<Record<string, unknown>>): Limits {
  return readIntVars<Limits>(env, DEFAULT_LIMITS, LIMIT_VARS);
}

/** Downlink limits (docs/protocol.md, "Downlink"), each a wrangler.jsonc var. */
export interface DownlinkLimits {
  /** Commands one device may have waiting (queued or delivered, not yet final); one more is 429. */
  maxQueuedCommands: number;
  /** Largest command args (and command result, and configuration), as CBOR bytes. */
  maxArgsBytes: number;
  /** Longest time to live a command may ask for, ms. */
  maxTtlMs: number;
  /** Time to live of a command that asks for none, ms. */
  defaultTtlMs: number;
  /** Commands per second one group accepts (token bucket of one second's worth); more is 429. */
  commandsPerSec: number;
  /** Finished commands kept per device; older ones are pruned as new ones are queued. */
  historyPerDevice: number;
}

export const DEFAULT_DOWNLINK_LIMITS: Readonly<DownlinkLimits> = {
  maxQueuedCommands: 100,
  maxArgsBytes: 8192,
  maxTtlMs: 24 * 3600_000,
  defaultTtlMs: 5 * 60_000,
  commandsPerSec: 2000,
  historyPerDevice: 100,
};

export const DOWNLINK_VARS: Readonly<Record<keyof DownlinkLimits, string>> = {
  maxQueuedCommands: "DOWNLINK_MAX_QUEUED",
  maxArgsBytes: "DOWNLINK_MAX_ARGS_BYTES",
  maxTtlMs: "DOWNLINK_MAX_TTL_MS",
  defaultTtlMs: "DOWNLINK_DEFAULT_TTL_MS",
  commandsPerSec: "DOWNLINK_COMMANDS_PER_SEC",
  historyPerDevice: "DOWNLINK_HISTORY",
};

/** Downlink limits from an env-like record (see {@link readIntVars}); each must be positive. */
export function readDownlinkLimits(env: Readonly<Record<string, unknown>>): DownlinkLimits {
  return readIntVars<DownlinkLimits>(env, DEFAULT_DOWNLINK_LIMITS, DOWNLINK_VARS, 1);
}

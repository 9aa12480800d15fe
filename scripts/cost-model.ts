/**
 * The monthly cost of a fleet on the hub (Cloudflare Workers + Durable
 * Objects + R2) beside the same fleet's messages on AWS IoT Core, from
 * published prices and from what the benchmarks measure (bytes and hub CPU
 * per reading). Pure: `npm run cost` (scripts/cost.ts) prints it, and
 * docs/cost.md explains every line. Prices are list prices, dated below;
 * check the cited pages before relying on them.
 */

/** When the prices below were read from the cited pages. */
export const PRICES_READ_ON = "2026-12-01";

/** Cloudflare Workers Paid, list prices (USD). */
export const CLOUDFLARE = {
  /** https://developers.cloudflare.com/workers/platform/pricing/ */
  workersPaidPerMonth: 5,
  workerRequestsIncluded: 10e6,
  workerPerMillionRequests: 0.3,
  /** https://developers.cloudflare.com/durable-objects/platform/pricing/ */
  doRequestsIncluded: 1e6,
  doPerMillionRequests: 0.15,
  /** Incoming WebSocket messages are billed as requests at 20:1; outgoing ones are free. */
  wsMessagesPerRequest: 20,
  doGbSecondsIncluded: 400_000,
  doPerMillionGbSeconds: 12.5,
  /** Duration is billed for the 128 MB an object is allocated, whatever it uses. */
  doGb: 0.128,
  sqliteRowsReadIncluded: 25e9,
  sqlitePerMillionRowsRead: 0.001,
  sqliteRowsWrittenIncluded: 50e6,
  sqlitePerMillionRowsWritten: 1.0,
  sqliteGbMonthIncluded: 5,
  sqlitePerGbMonth: 0.2,
  /** https://developers.cloudflare.com/r2/pricing/ (Standard storage) */
  r2GbMonthIncluded: 10,
  r2PerGbMonth: 0.015,
  r2ClassAIncluded: 1e6,
  r2PerMillionClassA: 4.5,
} as const;

/** AWS IoT Core, US East (N. Virginia), list prices (USD): https://aws.amazon.com/iot-core/pricing/ */
export const AWS_IOT = {
  perMillionConnectionMinutes: 0.08,
  /** Messages are metered in 5 KB increments: a 12 KB publish is 3 messages. */
  meteringBytes: 5 * 1024,
  /** Per million messages: first 1 billion, next 4 billion, above 5 billion a month. */
  messageTiers: [
    { upTo: 1e9, perMillion: 1.0 },
    { upTo: 5e9, perMillion: 0.8 },
    { upTo: Infinity, perMillion: 0.7 },
  ],
  /** Rules engine, to route each message somewhere (the destination's own price not included). */
  perMillionRulesTriggered: 0.15,
  perMillionActions: 0.15,
} as const;

/** Frame formats a device can send, with their wire size (docs/benchmarks.md, bytes per reading). */
export type Format = "cbatch32" | "cbatch64" | "batch";
export const FORMATS: readonly Format[] = ["cbatch32", "cbatch64", "batch"];

/**
 * Bytes of one frame of `n` readings over `series` metrics with names of
 * `nameBytes` characters. `cbatch`: 40 bytes per frame, 27 plus the name
 * per series, 5 (float32) or 9 (float64) per reading; `batch` (v1): about
 * 30 per reading whatever the batch size. Fitted to `npm run bench:ingest`.
 */
export function frameBytes(format: Format, n: number, series: number, nameBytes: number): number {
  if (format === "batch") return 30 * n;
  return 40 + series * (27 + nameBytes) + n * (format === "cbatch32" ? 5 : 9);
}

/**
 * Hub CPU per batch from `npm run bench:ingest` (AMD EPYC, docs/benchmarks.md):
 * about 28 µs a batch beyond decoding (socket message, event loop, commit,
 * SQLite), plus the Node ceiling per reading (47 ns `cbatch`, 88 ns `batch`).
 */
export const HUB_CPU = { usPerBatch: 28, nsPerReading: { cbatch32: 47, cbatch64: 47, batch: 88 } } as const;

export interface FleetInput {
  devices: number;
  /** Readings per second per device. */
  rate: number;
  /** Each device sends a batch this often (ms). */
  batchMs: number;
  /** Metrics per device (its series). */
  metrics: number;
  /** Devices per group (one Durable Object each). */
  devicesPerGroup: number;
  format: Format;
  /** Average metric name length. */
  nameBytes: number;
  /** Days of minute, hour and day buckets kept in SQLite (docs/history.md, "Retention"). */
  retention: { minuteDays: number; hourDays: number; dayDays: number };
  /** Hours a day someone watches each group's dashboard (keeps the object awake). */
  dashboardHours: number;
  /** Reconnects per device per day (each one a Worker request and a Durable Object request). */
  reconnectsPerDay: number;
  /** Group commit window (GROUP_COMMIT_MS): the object cannot hibernate while it is pending. */
  groupCommitMs: number;
  /** Raw archive in R2: bytes per reading stored (0: no archive). */
  archiveBytesPerReading: number;
  /** One archive object per group this often (s). */
  archiveFlushS: number;
  /** Months of archive already stored (R2 storage grows each month). */
  archiveMonths: number;
}

export const DEFAULT_FLEET: Readonly<Omit<FleetInput, "devices" | "rate" | "batchMs">> = {
  metrics: 4,
  devicesPerGroup: 1000,
  format: "cbatch32",
  nameBytes: 9,
  // The history defaults (minutes 3 days, hours a year, days forever), after a first year.
  retention: { minuteDays: 3, hourDays: 365, dayDays: 365 },
  dashboardHours: 8,
  reconnectsPerDay: 1,
  groupCommitMs: 4,
  archiveBytesPerReading: 0,
  archiveFlushS: 600,
  archiveMonths: 12,
};

export interface Line {
  item: string;
  quantity: number;
  unit: string;
  usd: number;
}

export interface CostReport {
  perMonth: {
    readings: number;
    batches: number;
    groups: number;
    readingsPerBatch: number;
    bytesPerReading: number;
    /** Share of one object's thread the busiest group needs (above ~0.7 split the fleet into more groups). */
    groupThreadLoad: number;
  };
  cloudflare: { lines: Line[]; total: number };
  aws: { lines: Line[]; total: number };
}

const SECONDS_PER_MONTH = 30 * 24 * 3600;
const MINUTES_PER_MONTH = SECONDS_PER_MONTH / 60;

/** Units beyond what is included, at a price per million. */
function overage(quantity: number, included: number, perMillion: number): number {
  return (Math.max(0, quantity - included) / 1e6) * perMillion;
}

function tiered(messages: number): number {
  let usd = 0;
  let from = 0;
  for (const t of AWS_IOT.messageTiers) {
    const inTier = Math.max(0, Math.min(messages, t.upTo) - from);
    usd += (inTier / 1e6) * t.perMillion;
    from = t.upTo;
  }
  return usd;
}

/** The monthly cost of `input` on both platforms. */
export function fleetCost(input: FleetInput): CostReport {
  const c = CLOUDFLARE;
  // A batch every batchMs, unless that would hold less than one reading.
  const perBatch = Math.max(1, (input.rate * input.batchMs) / 1000);
  const batchesPerSecond = input.rate / perBatch;
  const groups = Math.ceil(input.devices / input.devicesPerGroup);
  const perGroup = Math.min(input.devices, input.devicesPerGroup);
  const batches = input.devices * batchesPerSecond * SECONDS_PER_MONTH;
  const readings = batches * perBatch;
  const series = Math.min(input.metrics, perBatch);
  const frame = frameBytes(input.format, perBatch, series, input.nameBytes);

  // Durable Object duration: awake while it works and while a timer is
  // pending (the group commit after each batch; the summary timer while a
  // dashboard watches), since a pending setTimeout prevents hibernation.
  const cpuPerBatchS = (HUB_CPU.usPerBatch + perBatch * HUB_CPU.nsPerReading[input.format] / 1000) / 1e6;
  const groupBatchesPerSecond = perGroup * batchesPerSecond;
  const busy = 1 - Math.exp(-groupBatchesPerSecond * (cpuPerBatchS + input.groupCommitMs / 1000));
  const watched = Math.min(24, input.dashboardHours) / 24;
  const awake = watched + (1 - watched) * busy;
  const gbSeconds = groups * awake * SECONDS_PER_MONTH * c.doGb;

  // Commits a group makes: batches arriving within one commit window share it.
  const commitWindowS = cpuPerBatchS + input.groupCommitMs / 1000;
  const commits = groups * SECONDS_PER_MONTH * (groupBatchesPerSecond / (1 + groupBatchesPerSecond * commitWindowS));
  const connects = input.devices * input.reconnectsPerDay * 30;
  const doRequests = batches / c.wsMessagesPerRequest + connects;
  // Rows written per batch: each series' minute, hour and day buckets
  // upserted (docs/history.md) and the device's row; each commit writes its
  // readings/s slot (one KV key).
  const rowsWritten = batches * (3 * series + 1) + commits;
  const rowsRead = rowsWritten;
  const { minuteDays, hourDays, dayDays } = input.retention;
  const bucketsPerSeries = minuteDays * 1440 + hourDays * 24 + dayDays;
  // About 65 bytes a stored bucket (docs/history.md, measured by bench:history).
  const sqliteGb = (input.devices * input.metrics * bucketsPerSeries * 65) / 1e9;
  const archiveGb = (readings * input.archiveBytesPerReading * input.archiveMonths) / 1e9;
  const archivePuts = input.archiveBytesPerReading > 0 ? groups * (SECONDS_PER_MONTH / input.archiveFlushS) : 0;

  const cf: Line[] = [
    { item: "Workers Paid plan", quantity: 1, unit: "month", usd: c.workersPaidPerMonth },
    { item: "Worker requests (socket upgrades)", quantity: connects, unit: "requests", usd: overage(connects, c.workerRequestsIncluded, c.workerPerMillionRequests) },
    { item: "DO requests (batches / 20 + connects)", quantity: doRequests, unit: "requests", usd: overage(doRequests, c.doRequestsIncluded, c.doPerMillionRequests) },
    { item: "DO duration (128 MB while awake)", quantity: gbSeconds, unit: "GB-s", usd: overage(gbSeconds, c.doGbSecondsIncluded, c.doPerMillionGbSeconds) },
    { item: "SQLite rows written", quantity: rowsWritten, unit: "rows", usd: overage(rowsWritten, c.sqliteRowsWrittenIncluded, c.sqlitePerMillionRowsWritten) },
    { item: "SQLite rows read", quantity: rowsRead, unit: "rows", usd: overage(rowsRead, c.sqliteRowsReadIncluded, c.sqlitePerMillionRowsRead) },
    { item: "SQLite storage (history buckets)", quantity: sqliteGb, unit: "GB-month", usd: Math.max(0, sqliteGb - c.sqliteGbMonthIncluded) * c.sqlitePerGbMonth },
  ];
  if (input.archiveBytesPerReading > 0) {
    cf.push(
      { item: `R2 storage (archive, month ${input.archiveMonths})`, quantity: archiveGb, unit: "GB-month", usd: Math.max(0, archiveGb - c.r2GbMonthIncluded) * c.r2PerGbMonth },
      { item: "R2 Class A (archive writes)", quantity: archivePuts, unit: "operations", usd: overage(archivePuts, c.r2ClassAIncluded, c.r2PerMillionClassA) },
    );
  }

  // AWS meters each publish in 5 KB steps: payload plus topic (sensors/{group}/{device}, ~40 bytes).
  const metered = batches * Math.ceil((frame + 40) / AWS_IOT.meteringBytes);
  const aws: Line[] = [
    { item: "Connectivity", quantity: input.devices * MINUTES_PER_MONTH, unit: "connection-minutes", usd: ((input.devices * MINUTES_PER_MONTH) / 1e6) * AWS_IOT.perMillionConnectionMinutes },
    { item: "Messaging (5 KB metering)", quantity: metered, unit: "messages", usd: tiered(metered) },
    { item: "Rules engine (1 rule + 1 action each)", quantity: metered, unit: "rules", usd: (metered / 1e6) * (AWS_IOT.perMillionRulesTriggered + AWS_IOT.perMillionActions) },
  ];
  const sum = (ls: Line[]) => ls.reduce((s, l) => s + l.usd, 0);
  return {
    perMonth: {
      readings,
      batches,
      groups,
      readingsPerBatch: perBatch,
      bytesPerReading: frame / perBatch,
      groupThreadLoad: groupBatchesPerSecond * cpuPerBatchS,
    },
    cloudflare: { lines: cf, total: sum(cf) },
    aws: { lines: aws, total: sum(aws) },
  };
}

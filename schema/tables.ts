/**
 * Drizzle tables of one group's Durable Object SQLite database. Migrations
 * in ./migrations are generated from this file by `npm run db:generate`.
 */
import { customType, index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import type { Resolution } from "./api.ts";

/** A BLOB column as bytes. A Durable Object's SQLite takes and returns BLOBs as ArrayBuffers. */
const bytes = customType<{ data: Uint8Array; driverData: ArrayBuffer }>({
  dataType: () => "blob",
  toDriver: (v) => (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v.buffer : v.slice().buffer) as ArrayBuffer,
  fromDriver: (v) => new Uint8Array(v),
});

/**
 * The columns of a peer's row. Devices and gateways share one shape but
 * not one table: each kind has its own seq namespace (a device and a
 * gateway may share an id).
 */
const peerColumns = () => ({
  id: text("id").primaryKey(),
  /** Highest batch seq applied; committed in the same transaction as the batch's aggregates. */
  lastSeq: integer("last_seq").notNull().default(0),
  /** Hub time (ms) of the last applied batch, or of the first connect. */
  lastSeen: integer("last_seen").notNull(),
  firstSeen: integer("first_seen").notNull(),
  /** Readings applied, all time. */
  readings: integer("readings").notNull().default(0),
  batches: integer("batches").notNull().default(0),
});

/** One row per device that ever connected to the group. */
export const devices = sqliteTable("devices", peerColumns());

/**
 * One row per gateway (e.g. an MQTT bridge) that ever connected to the
 * group. A gateway's batches carry readings of many devices; its lastSeq is
 * what makes them exactly-once, so it is committed in the same transaction
 * as their aggregates. The devices it speaks for get rows in `devices`
 * (readings, lastSeen) but their own lastSeq is left alone.
 */
export const gateways = sqliteTable("gateways", peerColumns());

/**
 * Per (device, metric, minute bucket) aggregates as written before the
 * history tables (migration 0008). Nothing writes here any more: the
 * history backfill (worker/group/history/backfill.ts) moves these rows into
 * `series` and the bucket tables in chunks, and deletes them as it goes.
 */
export const aggregates = sqliteTable(
  "aggregates",
  {
    device: text("device").notNull(),
    metric: text("metric").notNull(),
    /** Bucket start, ms since the epoch, a multiple of 60,000. */
    start: integer("start").notNull(),
    count: integer("count").notNull(),
    sum: real("sum").notNull(),
    min: real("min").notNull(),
    max: real("max").notNull(),
    firstTs: integer("first_ts").notNull(),
    lastTs: integer("last_ts").notNull(),
    /** Value of the reading with the greatest timestamp (the later arrival on a tie). */
    last: real("last").notNull(),
  },
  (t) => [primaryKey({ columns: [t.device, t.metric, t.start] }), index("aggregates_metric_start").on(t.metric, t.start)],
);

/**
 * One row per (device, metric) series: buckets are keyed by its integer id,
 * so a bucket stores neither name (docs/history.md).
 */
export const series = sqliteTable(
  "series",
  {
    id: integer("id").primaryKey(),
    device: text("device").notNull(),
    metric: text("metric").notNull(),
  },
  (t) => [uniqueIndex("series_device_metric").on(t.device, t.metric)],
);

/**
 * A bucket table of one resolution (they share one shape). `bucket` is the
 * bucket's index (start / resolution length); first and last timestamps are
 * stored as offsets from the bucket's start, which keeps them to 3 or 4
 * bytes. The migration creates these tables WITHOUT ROWID (the primary key
 * is the row: no second copy of the key in a separate index). A bucket of
 * one point is stored with min > max as a mark and its min, max, last and
 * last_off left out (worker/group/history/writer.ts, `bucketSql`): read the
 * columns through that helper.
 */
function bucketTable<N extends string>(name: N) {
  return sqliteTable(
    name,
    {
      series: integer("series").notNull(),
      bucket: integer("bucket").notNull(),
      count: integer("count").notNull(),
      sum: real("sum").notNull(),
      min: real("min").notNull(),
      max: real("max").notNull(),
      /** Timestamp of the earliest reading, ms after the bucket's start. */
      firstOff: integer("first_off").notNull(),
      /** Timestamp of the latest reading, ms after the bucket's start. */
      lastOff: integer("last_off").notNull(),
      /** Value of the reading with the greatest timestamp (the later arrival on a tie). */
      last: real("last").notNull(),
    },
    (t) => [primaryKey({ columns: [t.series, t.bucket] })],
  );
}

/** Minute buckets (UTC minutes), per series. */
export const minuteBuckets = bucketTable("minute_buckets");
/** Hour buckets (UTC hours), per series. */
export const hourBuckets = bucketTable("hour_buckets");
/** Day buckets (UTC days), per series. */
export const dayBuckets = bucketTable("day_buckets");
/**
 * Closed hours of minute buckets, packed: one row per part of an hour
 * (usually the whole hour) instead of up to 60 plain rows
 * (worker/group/history/pack.ts has the layout). A part holds consecutive
 * minutes of one hour and is small enough to stay on its B-tree page
 * (docs/history.md, "Packed hours"). Minutes that arrive after their hour
 * was packed are plain rows in `minute_buckets` until the next packing pass
 * merges them in (`packLate` finds them); queries merge both.
 */
export const minutePacks = sqliteTable(
  "minute_packs",
  {
    series: integer("series").notNull(),
    /** Minute index (start / 60,000) at or before the part's first minute; parts of one series do not overlap. */
    firstMinute: integer("first_minute").notNull(),
    /** Minute index at or after the part's last minute, in the same hour as `firstMinute`. */
    lastMinute: integer("last_minute").notNull(),
    /** Minute buckets in the part. */
    buckets: integer("buckets").notNull(),
    data: bytes("data").notNull(),
  },
  (t) => [primaryKey({ columns: [t.series, t.firstMinute] })],
);

/**
 * Hours that got a plain minute row after the packing pass had passed them
 * (a late reading, a device's backlog), noted by the bucket writer in the
 * commit's transaction (worker/group/history/late.ts): the next pass looks
 * at these hours only, instead of re-reading every plain row it left
 * (worker/group/history/packer.ts).
 */
export const packLate = sqliteTable(
  "pack_late",
  {
    series: integer("series").notNull(),
    /** Hour index: start / 3,600,000. */
    hour: integer("hour").notNull(),
  },
  (t) => [primaryKey({ columns: [t.series, t.hour] })],
);

/**
 * The group's bucket counts, one row (id 1), kept by every writer of bucket
 * rows in its own transaction (worker/group/history/counts.ts), so
 * `GET /v1/groups/{group}/storage` reads them instead of counting the
 * tables. `minute` counts plain rows plus the minutes held in packs.
 * `counted_to`: in a group written before the counters, the last series id
 * counted so far (the `history.count` task); NULL once every series is.
 */
export const bucketTotals = sqliteTable("bucket_totals", {
  id: integer("id").primaryKey(),
  minute: integer("minute").notNull(),
  hour: integer("hour").notNull(),
  day: integer("day").notNull(),
  countedTo: integer("counted_to"),
  /** Oldest bucket index per resolution (minute: plain rows and packs' first minutes), null: none; a lower bound while `oldestScan` is set (worker/group/history/oldest.ts). */
  oldestMinute: integer("oldest_minute"),
  oldestHour: integer("oldest_hour"),
  oldestDay: integer("oldest_day"),
  /** Null: the oldest are exact; else the last series the recompute after pruning has scanned (0: none yet). */
  oldestScan: integer("oldest_scan"),
  /** The recompute's running minima over the series scanned and the buckets written since it began. */
  scanMinute: integer("scan_minute"),
  scanHour: integer("scan_hour"),
  scanDay: integer("scan_day"),
});

/** Any of the three bucket tables (they share one shape). */
export type BucketTable = typeof minuteBuckets | typeof hourBuckets | typeof dayBuckets;

/** Each resolution's bucket table. */
export const BUCKET_TABLES: Readonly<Record<Resolution, BucketTable>> = { minute: minuteBuckets, hour: hourBuckets, day: dayBuckets };

export type DeviceRow = typeof devices.$inferSelect;
export type GatewayRow = typeof gateways.$inferSelect;
export type AggregateRow = typeof aggregates.$inferSelect;

/** Alert rules of the group (docs/protocol.md, "Rules and alerts"). */
export const rules = sqliteTable("rules", {
  id: text("id").primaryKey(),
  metric: text("metric").notNull(),
  op: text("op").notNull(),
  threshold: real("threshold").notNull(),
  /** Only this device; null for every device. */
  device: text("device"),
  forMs: integer("for_ms").notNull(),
  /** Null: 0. */
  hysteresis: real("hysteresis"),
  /** Null: the group's ALERT_MIN_INTERVAL_MS. */
  minIntervalMs: integer("min_interval_ms"),
});

/** Group settings as key/value (offline_after_ms, retention). */
export const settings = sqliteTable("settings", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** Alerts raised, and when they cleared (null while active). */
export const alerts = sqliteTable(
  "alerts",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    kind: text("kind").notNull(),
    ruleId: text("rule_id"),
    device: text("device").notNull(),
    metric: text("metric"),
    op: text("op"),
    threshold: real("threshold"),
    value: real("value"),
    raisedAt: integer("raised_at").notNull(),
    clearedAt: integer("cleared_at"),
    /** 1 once a change was held back (flapping). */
    flapping: integer("flapping").notNull().default(0),
    /**
     * The kind of peer `device` names ("device" or "gateway"), written for
     * budget alerts, whose sender may be either. Null reads as "device"
     * (threshold and offline alerts are a device's, and budget alerts
     * written before this column are taken as a device's), or as no peer
     * for the group's own alerts (device "").
     */
    peerKind: text("peer_kind"),
  },
  (t) => [index("alerts_active").on(t.clearedAt), index("alerts_raised").on(t.raisedAt)],
);

/** Rejected batches per device and error code. */
export const deviceRejects = sqliteTable(
  "device_rejects",
  {
    device: text("device").notNull(),
    code: text("code").notNull(),
    count: integer("count").notNull(),
    lastAt: integer("last_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.device, t.code] })],
);

/** Devices and gateways an operator revoked: refused at connect, their sockets closed. */
export const revocations = sqliteTable(
  "revocations",
  {
    /** "device" or "gateway". */
    kind: text("kind").notNull(),
    id: text("id").notNull(),
    revokedAt: integer("revoked_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.id] })],
);

/**
 * Audit of operator seq resets (`PUT /v1/groups/{group}/peers/{kind}/{id}/seq`):
 * who set which peer's lastSeq from what to what, and when. Rows are never
 * updated or deleted.
 */
export const seqResets = sqliteTable(
  "seq_resets",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    kind: text("kind").notNull(),
    peer: text("peer").notNull(),
    oldSeq: integer("old_seq").notNull(),
    newSeq: integer("new_seq").notNull(),
    /** Who asked: the kind of operator credential, and the Access email when there is one. */
    by: text("by").notNull(),
    /** Hub time, ms. */
    at: integer("at").notNull(),
  },
  (t) => [index("seq_resets_peer").on(t.kind, t.peer, t.at)],
);

/**
 * Commands to devices (docs/protocol.md, "Downlink"): queued by an operator,
 * delivered on the device's socket (or its gateway's), finished by the
 * device's result or by expiry. Values are JSON text.
 */
export const commands = sqliteTable(
  "commands",
  {
    /** Random, unique in the group: the device remembers it to run the command once. */
    id: text("id").primaryKey(),
    device: text("device").notNull(),
    name: text("name").notNull(),
    args: text("args").notNull(),
    /** queued, delivered, succeeded, failed or expired. */
    status: text("status").notNull(),
    createdAt: integer("created_at").notNull(),
    deliveredAt: integer("delivered_at"),
    completedAt: integer("completed_at"),
    expiresAt: integer("expires_at").notNull(),
    result: text("result"),
    error: text("error"),
  },
  (t) => [index("commands_device").on(t.device, t.createdAt), index("commands_open").on(t.status, t.expiresAt)],
);

/** Desired configuration per device, its version, and what the device last reported applied. */
export const deviceConfigs = sqliteTable("device_configs", {
  device: text("device").primaryKey(),
  /** JSON map. */
  desired: text("desired").notNull(),
  version: integer("version").notNull(),
  /** JSON map the device reported with its last `config_applied`; null before. */
  reported: text("reported"),
  appliedVersion: integer("applied_version").notNull().default(0),
  updatedAt: integer("updated_at").notNull(),
});

export type CommandRow = typeof commands.$inferSelect;
export type DeviceConfigRow = typeof deviceConfigs.$inferSelect;

/**
 * Raw readings captured for the archive (worker/group/archive/, docs/archive.md),
 * not yet flushed to R2: one row per applied batch and device, written in the
 * group commit's transaction, its readings CBOR-encoded as columns.
 */
export const archiveRows = sqliteTable(
  "archive_rows",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    /** Hub time (ms) of the commit that applied the batch. */
    received: integer("received").notNull(),
    device: text("device").notNull(),
    /** Who sent the batch: `device:{id}` or `gateway:{id}`. */
    source: text("source").notNull(),
    seq: integer("seq").notNull(),
    /** Readings in `data`. */
    readings: integer("readings").notNull(),
    /**
     * Earliest and latest reading time in `data` (ms), so the readings route
     * decodes only rows that can hold its range. Rows from before these
     * columns span all time.
     */
    minTs: integer("min_ts").notNull().default(Number.MIN_SAFE_INTEGER),
    maxTs: integer("max_ts").notNull().default(Number.MAX_SAFE_INTEGER),
    /** The readings as one `cbatch` frame of this device's series (worker/group/archive/capture.ts). */
    data: bytes("data").notNull(),
  },
  // No index: rows are written in commit order, so their id order is their
  // `received` order; an index would be one more B-tree insert per row on
  // the ingest path, and only the flush (once per step) reads by time.
);

/**
 * The archive's manifest: every Parquet object the group wrote or is
 * writing to R2. A flush first records its parts as `pending` with the
 * captured rows they hold (ids `firstRow`..`lastRow`), then puts them, then
 * in one transaction deletes those rows and marks the parts `done`; a flush
 * interrupted anywhere is resumed by putting the same keys again.
 */
export const archiveParts = sqliteTable(
  "archive_parts",
  {
    /** Start of the UTC hour of the part's readings (their `ts`), ms. */
    hour: integer("hour").notNull(),
    part: integer("part").notNull(),
    key: text("key").notNull(),
    firstRow: integer("first_row").notNull(),
    lastRow: integer("last_row").notNull(),
    readings: integer("readings").notNull(),
    bytes: integer("bytes").notNull().default(0),
    /** "pending" until its rows are deleted, then "done". */
    state: text("state").notNull(),
    /** Hub time the part was planned, ms. */
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.hour, t.part] }), index("archive_parts_state").on(t.state)],
);

/**
 * Which devices each gateway has written readings for (issue #12 finding 2):
 * a row when a gateway first writes for a device, in the commit that applies
 * it, so `MAX_DEVICES_PER_GATEWAY` holds across wakes.
 */
export const gatewayDevices = sqliteTable(
  "gateway_devices",
  {
    gateway: text("gateway").notNull(),
    device: text("device").notNull(),
    /** Hub time of the commit that first applied a reading of this device from this gateway. */
    firstSeen: integer("first_seen").notNull(),
  },
  (t) => [primaryKey({ columns: [t.gateway, t.device] })],
);

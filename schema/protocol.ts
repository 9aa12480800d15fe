/**
 * Telemetry Hub wire protocol, version 1.
 *
 * This module is the single definition of the protocol: the hub, the device
 * client, the simulator and the bridge all import it. The prose version lives
 * in docs/protocol.md; keep the two in step.
 */

/** Protocol version carried in the hub's `hello` frame. */
export const PROTOCOL_VERSION = 1;

/** The kinds of peer that send batches: a device speaks for itself, a gateway for many devices of its group. */
export const PEER_KINDS = ["device", "gateway"] as const;
/** A kind of peer, as in the socket routes, the revocation routes and alerts. */
export type PeerKind = (typeof PEER_KINDS)[number];

/** Group, device (and gateway) identifiers. */
export const ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

/** Metric names inside readings. */
export const METRIC_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Command names (docs/protocol.md, "Downlink"): as metric names. */
export const COMMAND_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Largest seq a device may use: integers above 2^53 - 1 are not exact in JavaScript. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** Width of an aggregate bucket in milliseconds. */
export const BUCKET_MS = 60_000;

/** Text frame a client may send as a keep-alive; the hub answers `pong` without waking up. */
export const PING_TEXT = "ping";
/** The hub's answer to {@link PING_TEXT}. */
export const PONG_TEXT = "pong";

/**
 * Codes carried by `error` frames. The socket stays open after any of these.
 * Every code is documented in docs/protocol.md.
 */
export const ErrorCode = {
  /** The map has no text `type`, or a field other than those below is malformed. */
  BadFrame: "bad_frame",
  /** `type` is not one the hub accepts from a device. */
  UnknownType: "unknown_type",
  /** `seq` is missing, not an integer, below 1 or above 2^53 - 1. */
  BadSeq: "bad_seq",
  /** `readings` is missing, not an array, or empty. */
  BadReadings: "bad_readings",
  /** More readings than the hub's per-batch limit. */
  TooManyReadings: "too_many_readings",
  /** A reading is not a 3-element array `[ts, metric, value]` (4 elements, with the device, from a gateway). */
  BadReading: "bad_reading",
  /** A reading's timestamp is not an integer number of milliseconds. */
  BadTimestamp: "bad_timestamp",
  /** A reading's timestamp is outside the accepted window around the hub's clock. */
  TimestampOutOfRange: "timestamp_out_of_range",
  /** A metric name does not match `[A-Za-z0-9_.:-]{1,64}`. */
  BadMetric: "bad_metric",
  /** A value is not a finite number (NaN, Infinity, text, ...). */
  BadValue: "bad_value",
  /** Gateway sockets only: a reading's device is not text matching the id pattern. */
  BadDevice: "bad_device",
  /**
   * `cbatch` only: a series is not a map, its `dt` or `values` is not an
   * array or a typed array of an allowed tag (or the typed array's bytes are
   * not a whole number of elements), their lengths differ or are 0, or a
   * device's series names a device.
   */
  BadSeries: "bad_series",
  /** The hub could not commit the batch; nothing was applied, send it again. */
  Internal: "internal",
  /**
   * The group's database is at its storage budget and no space could be
   * made yet: nothing was applied. The frame carries `retryAfterMs`; the hub
   * closes the socket (1013), so reconnect after that wait and resend from
   * the `hello`'s lastSeq. Keep the batch.
   */
  StorageFull: "storage_full",
  /**
   * The device or gateway is over its rate limit. Nothing was applied; wait
   * `retryAfterMs`, then resend this batch and every later one, in order.
   * Without `seq`, it is over its work budget (frames and bytes, counted
   * before decoding): the frame was dropped unread and so is every later
   * one on this socket; wait `retryAfterMs`, reconnect, and resend from the
   * `hello`'s lastSeq.
   */
  RateLimited: "rate_limited",
  /**
   * The group is shedding load: the frame was dropped before it was read,
   * nothing was applied. Without `seq` (the frame was not decoded); wait
   * `retryAfterMs`, reconnect, and resend from the `hello`'s lastSeq.
   */
  Overloaded: "overloaded",
  /** The batch would give one device more distinct metrics than `MAX_METRICS_PER_DEVICE`; nothing was applied. */
  TooManyMetrics: "too_many_metrics",
  /** Gateway sockets only: the batch would make the gateway write for more distinct devices than `MAX_DEVICES_PER_GATEWAY`; nothing was applied. */
  TooManyDevices: "too_many_devices",
  /** The batch would give the group more distinct (device, metric) series than `MAX_SERIES_PER_GROUP`; nothing was applied. */
  TooManySeries: "too_many_series",
  /**
   * A `command_result` names a command that does not exist, is not this
   * device's (or, from a gateway, not the named device's), or already has
   * its final status. Nothing changed.
   */
  UnknownCommand: "unknown_command",
  /** A `config_applied` names a version above the device's desired one. Nothing changed. */
  UnknownConfig: "unknown_config",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * WebSocket close codes the hub uses. 1000-1015 are defined by RFC 6455
 * (https://www.rfc-editor.org/rfc/rfc6455#section-7.4.1); 4000-4999 are for
 * applications.
 */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  /** A text frame other than `ping`: device frames are binary CBOR. */
  UnsupportedData: 1003,
  /** The frame is not well-formed CBOR, or its top-level item is not a map. */
  InvalidPayload: 1007,
  /** The frame is larger than the hub's frame size limit. */
  MessageTooBig: 1009,
  /** The hub hit an unexpected error; reconnect and resend. */
  InternalError: 1011,
  /** The group's storage is full (after a `storage_full` error): reconnect after the error's `retryAfterMs` and resend. */
  TryAgainLater: 1013,
  /** Another connection for the same device replaced this one. */
  Replaced: 4001,
  /** An operator revoked this device or gateway; do not reconnect. */
  Revoked: 4003,
  /** A dashboard left a summary unacked too long (live socket only). */
  TooSlow: 4008,
  /**
   * A device or gateway kept sending after its work budget was spent (or
   * after a `rate_limited` or `overloaded` error without `seq`, without
   * reconnecting): reconnect after a pause.
   */
  TooMuchWork: 4029,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** One reading: timestamp in ms since the Unix epoch, metric name, finite value. */
export type Reading = [ts: number, metric: string, value: number];

/**
 * A reading sent by a gateway, which speaks for many devices of its group:
 * a device reading plus the device it belongs to.
 */
export type GatewayReading = [ts: number, metric: string, value: number, device: string];

/** Device to hub: a batch of readings with its per-device sequence number. */
export interface BatchFrame {
  type: "batch";
  seq: number;
  readings: Reading[];
}

/** Hub to device, sent once when the socket is accepted. */
export interface HelloFrame {
  type: "hello";
  v: number;
  /** Highest seq already applied for this device (0 if none). */
  lastSeq: number;
}

/** Hub to device, sent only after the batch `seq` is durably committed. */
export interface AckFrame {
  type: "ack";
  seq: number;
  /** Present and true when the batch had already been applied before. */
  dup?: true;
}

/** Hub to device: the batch (if `seq` is present) was rejected, nothing of it applied. */
export interface ErrorFrame {
  type: "error";
  seq?: number;
  /** One of {@link ErrorCode}; clients must tolerate codes added later. */
  code: ErrorCode | (string & {});
  message: string;
  /** With `rate_limited`: how long to wait before resending. */
  retryAfterMs?: number;
}

/** Gateway to hub: a batch of readings for devices of the group, with its per-gateway sequence number. */
export interface GatewayBatchFrame {
  type: "batch";
  seq: number;
  readings: GatewayReading[];
}

/**
 * RFC 8746 typed-array tags a compact batch may use
 * (https://www.rfc-editor.org/rfc/rfc8746): unsigned offsets, float values,
 * little-endian. Every other typed-array tag is refused with `bad_series`.
 */
export const CbatchTag = {
  Uint8: 64,
  Uint16LE: 69,
  Uint32LE: 70,
  Float32LE: 85,
  Float64LE: 86,
} as const;

/** Offsets of one series: a plain array of integers or an unsigned typed array. */
export type Offsets = readonly number[] | Uint8Array | Uint16Array | Uint32Array;
/** Values of one series: a plain array of numbers or a float typed array. */
export type Values = readonly number[] | Float32Array | Float64Array;

/**
 * One series of a compact batch: readings of one metric (of one device,
 * from a gateway). Reading k is at `t0 + dt[0] + ... + dt[k]` with value
 * `values[k]`.
 */
export interface CompactSeries {
  metric: string;
  /** Gateway sockets only: the device the series belongs to. */
  device?: string;
  dt: Offsets;
  values: Values;
}

/** A gateway's series always names its device. */
export interface GatewayCompactSeries extends CompactSeries {
  device: string;
}

/**
 * Device to hub: a compact batch (`cbatch`), readings sent as columns.
 * Same seq, limits, acks and errors as a `batch` (docs/protocol.md,
 * "Compact batches").
 */
export interface CompactBatchFrame {
  type: "cbatch";
  seq: number;
  /** Base timestamp, ms since the Unix epoch. */
  t0: number;
  series: CompactSeries[];
}

/** Gateway to hub: a compact batch whose every series names its device. */
export interface GatewayCompactBatchFrame extends CompactBatchFrame {
  series: GatewayCompactSeries[];
}

/**
 * The socket URL's query parameter by which a device or gateway opts in to
 * downlink (`?downlink=1`): only then does the hub send it `command` and
 * `config` frames (docs/protocol.md, "Downlink").
 */
export const DOWNLINK_PARAM = "downlink";

/**
 * Hub to device: run a command once. Sent as soon as it is queued when the
 * device is online, and again after every `hello` until the device answers
 * with a `command_result` or the command expires. On a gateway socket it
 * names its device.
 */
export interface CommandFrame {
  type: "command";
  /** Unique in the group; a device answers with it and remembers it, to never run a command twice. */
  id: string;
  name: string;
  /** Any value (JSON-compatible), up to the hub's args limit. */
  args: unknown;
  /** Hub time (ms since the epoch) after which the hub no longer accepts a result. */
  expiresAt: number;
  /** Gateway sockets only: the device the command is for. */
  device?: string;
}

/**
 * Hub to device: the desired configuration, version `version`. Sent when an
 * operator changes it (device online), and after every `hello` until the
 * device reports that version applied. Gateway sockets: names its device.
 */
export interface ConfigFrame {
  type: "config";
  version: number;
  desired: Record<string, unknown>;
  device?: string;
}

/** Device to hub: the outcome of a command; `result` (ok) or `error` (not ok). */
export interface CommandResultFrame {
  type: "command_result";
  id: string;
  ok: boolean;
  /** A JSON-compatible value, up to the hub's args limit. */
  result?: unknown;
  /** Why it failed, up to 1,024 characters. */
  error?: string;
  /** Gateway sockets only (required there): the device that ran it. */
  device?: string;
}

/** Device to hub: configuration `version` is applied; `reported` is what the device now runs with. */
export interface ConfigAppliedFrame {
  type: "config_applied";
  version: number;
  reported?: Record<string, unknown>;
  /** Gateway sockets only (required there). */
  device?: string;
}

/** What a device or gateway may send about downlink. */
export type DownlinkReplyFrame = CommandResultFrame | ConfigAppliedFrame;

export type DeviceToHubFrame = BatchFrame | CompactBatchFrame | DownlinkReplyFrame;
export type GatewayToHubFrame = GatewayBatchFrame | GatewayCompactBatchFrame | DownlinkReplyFrame;
export type HubToDeviceFrame = HelloFrame | AckFrame | ErrorFrame | CommandFrame | ConfigFrame;

/** Minute bucket start (ms) for a timestamp (ms). */
export function bucketStart(ts: number): number {
  return Math.floor(ts / BUCKET_MS) * BUCKET_MS;
}

/** True when `s` is a valid group, device or gateway id. */
export function isValidId(s: string): boolean {
  return ID_PATTERN.test(s);
}

/** Any frame a device or gateway sends; the hub dispatches on `type`. */
export type PeerToHubFrame = DeviceToHubFrame | GatewayToHubFrame;

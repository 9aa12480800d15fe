/**
 * JSON bodies of the REST API (docs/protocol.md, "HTTP routes"), shared by
 * the Worker, the simulator's verifier, the dashboard and the tests.
 */

/** One entry of `GET /v1/groups/{group}/devices`. */
export interface DeviceInfo {
  id: string;
  lastSeq: number;
  lastSeen: number;
  online: boolean;
  readings: number;
}

/** One per-minute bucket of `GET /v1/groups/{group}/aggregates`. */
export interface AggregateBucket {
  device: string;
  metric: string;
  /** Bucket start, ms since the epoch, a multiple of 60,000. */
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** Value of the reading with the greatest timestamp. */
  last: number;
}

export interface AggregatesResponse {
  buckets: AggregateBucket[];
  /** More buckets matched than one response holds; narrow the filter. */
  truncated: boolean;
}

/**
 * `GET /v1/groups/{group}/rates`: readings the group applied per slot of hub
 * receive time over the last 15 minutes (the dashboard's readings/s chart).
 */
export interface RatesResponse {
  /** Slot length, ms (10,000). */
  stepMs: number;
  /** Start of the first slot, ms since the epoch, a multiple of `stepMs`. */
  from: number;
  /** Hub time of the answer; the last slot contains it and is still filling. */
  at: number;
  /** Readings applied in each slot, oldest first. */
  readings: number[];
}

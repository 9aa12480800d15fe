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

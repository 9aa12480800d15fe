/**
 * Options and events of the device client (device-client.ts), apart so the client
 * itself stays readable. Import them from device-client.ts or the index.
 */
import type { ValueEncoding } from "../schema/cbatch-encode.ts";
import type { CborValue } from "../schema/cbor.ts";
import type { Reading } from "../schema/protocol.ts";
import type { ExecutedCommand } from "./downlink.ts";

export interface DeviceClientOptions<R extends readonly CborValue[] = Reading> {
  /** Hub base URL, e.g. http://127.0.0.1:8787 (ws:// and wss:// work too). */
  url: string;
  group: string;
  /** The device id; with `endpoint: "gateways"`, the gateway id. */
  device: string;
  /** Which socket to open: a device's (the default) or a gateway's. */
  endpoint?: "devices" | "gateways";
  token: string;
  /** Send the token as `?token=` instead of an Authorization header. */
  tokenInQuery?: boolean;
  /** Batches sent but not yet acked, at most. Default 32. */
  maxInFlight?: number;
  /** Batches kept (in flight plus waiting), at most; `send` refuses beyond. Default 10,000. */
  maxQueued?: number;
  /** Seq to continue from (a device's saved state); the hub's lastSeq wins if higher. */
  lastSeq?: number;
  /** Reconnect backoff: first ceiling and largest ceiling, ms. Full jitter below the ceiling. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /**
   * Reconnect when batches are in flight and the hub has sent nothing at all
   * (no ack, no pong) for this long. Default 30 s. A hub that is slow but
   * still acking keeps its sockets: dropping them would make a whole fleet
   * reconnect and resend at once, the storm that buries an overloaded hub.
   */
  ackTimeoutMs?: number;
  /**
   * When the hub closes the socket with 4001 (another connection of this id
   * took over): false, the default, stops for good, since fighting a second
   * device with the same id would flap both; true reconnects, for a caller
   * that knows it is the only owner of the id (the simulator), where the
   * other connection can only be one of its own attempts that the hub saw
   * late, after the client had given up on it.
   */
  reconnectWhenReplaced?: boolean;
  /**
   * Frame type of batches: `cbatch` (the default), readings as columns, a
   * fifth of the bytes (docs/protocol.md, "Compact batches"); or `batch`, v1,
   * for a hub that predates compact batches. A batch a compact frame cannot
   * carry (a reading that is not [integer ts, metric text, number]) goes as
   * `batch`, so the hub answers it with the same error either way.
   */
  frames?: "cbatch" | "batch";
  /**
   * How a compact batch writes values: `lossless` (the default) uses float32
   * only for a series whose every value survives it exactly; `float32`
   * always does, rounding values (allow it only where float32 precision is
   * enough); `float64` never does.
   */
  values?: ValueEncoding;
  /** Send a text `ping` this often while connected (0: never). Default 0. */
  keepAliveMs?: number;
  /**
   * Batches sent before a restart and never acked, with their seqs (a
   * device's saved state). They are resent first; the hub acks the ones it
   * already applied with `dup`.
   */
  unacked?: readonly { seq: number; readings: readonly R[] }[];
  /**
   * Opt in to downlink (`?downlink=1`): the hub sends commands and
   * configuration, run by the handlers registered on `client.downlink`
   * (client/downlink.ts), each command exactly once. Default false.
   */
  downlink?: boolean;
  /** Commands executed before a restart (`client.downlink.executed()`), so a redelivered one is not run again. */
  executed?: readonly ExecutedCommand[];
}

export type ClientState = "idle" | "connecting" | "open" | "backoff" | "offline" | "closed";

/** Events, in Node's EventEmitter style. */
export interface DeviceClientEvents<R extends readonly CborValue[] = Reading> {
  hello: [lastSeq: number];
  /** A queued batch is settled as applied: acked now, acked as `dup`, or confirmed by `hello`. */
  ack: [seq: number, dup: boolean, latencyMs: number, readings: number, batch: readonly R[]];
  /**
   * The hub rejected a batch; it is dropped (except `internal`, which is
   * resent). `batch` is the dropped batch, when the rejection named one.
   */
  reject: [seq: number | undefined, code: string, message: string, batch?: readonly R[]];
  /**
   * Every `error` frame from the hub, as it arrives and before `reject`:
   * with a `seq` or without one (over the work budget, a frame the hub could
   * not read), about a batch in flight or not (a refusal of a batch already
   * held back behind an earlier `rate_limited` one gets no `reject`). Count
   * these to count what the hub refused.
   */
  errorFrame: [code: string, message: string, seq: number | undefined];
  state: [state: ClientState];
  /** Socket closed; `code` is the WebSocket close code (1006 when there was no close frame). */
  disconnect: [code: number, reason: string];
  /** Connection attempt failed, e.g. HTTP status on the upgrade. */
  connectError: [message: string, status?: number];
}

/** Handler for `batch` frames: queue for the next group commit. */
import type { BatchFrame } from "../../../schema/protocol.ts";
import type { DeviceSession } from "../sessions.ts";
import type { Ingest } from "../ingest.ts";

export function handleBatch(ingest: Ingest, ws: WebSocket, session: DeviceSession, frame: BatchFrame): void {
  ingest.submit(ws, session.d, frame.seq, frame.readings);
}

/** Handler for `batch` frames (device or gateway): rate limit, then queue for the next group commit. */
import type { BatchFrame, GatewayBatchFrame } from "../../../../schema/protocol.ts";
import type { FrameHandler } from "../frames.ts";

export const handleBatch: FrameHandler<BatchFrame | GatewayBatchFrame> = (cx, from, frame) => {
  if (!cx.admit(from, frame.seq, frame.readings.length)) return;
  cx.submit(from, frame.seq, frame.readings);
};

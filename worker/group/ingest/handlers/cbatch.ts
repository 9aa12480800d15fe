/** Handler for `cbatch` frames (device or gateway): the rate limit counts every series' readings, then the batch is queued as columns. */
import { compactCount } from "../../../../schema/cbatch.ts";
import type { CompactBatchFrame, GatewayCompactBatchFrame } from "../../../../schema/protocol.ts";
import type { FrameHandler } from "../frames.ts";

export const handleCompactBatch: FrameHandler<CompactBatchFrame | GatewayCompactBatchFrame> = (cx, from, frame) => {
  if (!cx.admit(from, frame.seq, compactCount(frame))) return;
  cx.submit(from, frame.seq, frame);
};

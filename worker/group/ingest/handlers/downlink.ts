/**
 * Handlers for a device's (or gateway's) downlink answers: `command_result`
 * and `config_applied` go to the downlink stage at once (they are not
 * batches: no seq, no group commit). An answer the stage refuses gets its
 * error frame.
 */
import type { CommandResultFrame, ConfigAppliedFrame } from "../../../../schema/protocol.ts";
import type { FrameHandler } from "../frames.ts";

export const handleCommandResult: FrameHandler<CommandResultFrame> = (cx, from, frame) => cx.downlink(from, frame);

export const handleConfigApplied: FrameHandler<ConfigAppliedFrame> = (cx, from, frame) => cx.downlink(from, frame);

/**
 * Gateway sockets (docs/protocol.md, "Gateway socket"): a gateway such as
 * the MQTT bridge speaks for many devices of the group on one socket. Same
 * frames as a device socket, except that each reading names its device;
 * exactly-once is per gateway seq.
 */
import type { Limits } from "../../../schema/limits.ts";
import { validateGatewayFrame } from "../../../schema/validate.ts";
import type { Ingest } from "../ingest.ts";
import type { GatewaySession, Session } from "../sessions.ts";
import type { Store } from "../store.ts";
import { connectPeer } from "./connect.ts";
import { admit, decodeFrame, sendRejection, type DeviceFrameContext } from "./device-frame.ts";

export interface GatewayContext {
  ctx: DurableObjectState;
  store: Store;
  ingest: Ingest;
  limits: Limits;
  sessions: Map<WebSocket, Session>;
}

/** Accepts a gateway socket: replaces an older one of the same gateway, then says hello with its lastSeq. */
export function connectGateway(cx: GatewayContext, group: string, gateway: string): Response {
  const now = Date.now();
  return connectPeer(cx, { k: "gateway", g: group, w: gateway, t: now }, () => {
    cx.store.touchGateway(gateway, now);
    return cx.store.gatewayLastSeq(gateway);
  });
}

export function handleGatewayFrame(
  cx: DeviceFrameContext,
  ws: WebSocket,
  session: GatewaySession,
  message: string | ArrayBuffer,
): void {
  const frame = decodeFrame(cx.limits, ws, message);
  if (!frame) return;
  const result = validateGatewayFrame(frame, { now: Date.now(), limits: cx.limits });
  if (!result.ok) {
    sendRejection(ws, result);
    return;
  }
  const { seq, readings } = result.frame;
  if (!admit(cx, ws, `w:${session.w}`, seq, readings.length, cx.ingest.highestGateway(session.w))) return;
  cx.ingest.submitGateway(ws, session.w, seq, readings);
}

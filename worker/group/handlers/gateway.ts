/**
 * Gateway sockets (docs/protocol.md, "Gateway socket"): a gateway such as
 * the MQTT bridge speaks for many devices of the group on one socket. Same
 * frames as a device socket, except that each reading names its device;
 * exactly-once is per gateway seq.
 */
import { encodeCbor } from "../../../schema/cbor.ts";
import type { Limits } from "../../../schema/limits.ts";
import { CloseCode, PROTOCOL_VERSION } from "../../../schema/protocol.ts";
import { validateGatewayFrame } from "../../../schema/validate.ts";
import type { Ingest } from "../ingest.ts";
import { gatewayTag, type GatewaySession, type Session } from "../sessions.ts";
import type { Store } from "../store.ts";
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
  // As for devices: commit what is pending so hello covers every accepted batch.
  cx.ingest.flush();
  for (const old of cx.ctx.getWebSockets(gatewayTag(gateway))) {
    try {
      old.close(CloseCode.Replaced, "replaced by a newer connection for this gateway");
    } catch {
      // already closing
    }
  }
  const now = Date.now();
  cx.store.touchGateway(gateway, now);
  const lastSeq = cx.store.gatewayLastSeq(gateway);
  const pair = new WebSocketPair();
  const client = pair[0];
  const server = pair[1];
  cx.ctx.acceptWebSocket(server, [gatewayTag(gateway)]);
  const session: GatewaySession = { k: "gateway", g: group, w: gateway, t: now };
  server.serializeAttachment(session);
  cx.sessions.set(server, session);
  server.send(encodeCbor({ type: "hello", v: PROTOCOL_VERSION, lastSeq }));
  return new Response(null, { status: 101, webSocket: client });
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

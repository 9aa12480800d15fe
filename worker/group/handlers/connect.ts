/**
 * Accepting a device or gateway socket: the steps both kinds share.
 */
import { encodeCbor } from "../../../schema/cbor.ts";
import { CloseCode, PROTOCOL_VERSION } from "../../../schema/protocol.ts";
import type { Ingest } from "../ingest.ts";
import { deviceTag, gatewayTag, type DeviceSession, type GatewaySession, type Session } from "../sessions.ts";

export interface ConnectContext {
  ctx: DurableObjectState;
  ingest: Ingest;
  sessions: Map<WebSocket, Session>;
}

/**
 * Replaces an older socket of the same peer (closed with 4001), records the
 * connect through `touch` (which returns the peer's lastSeq), accepts the new
 * socket with the hibernation API and says hello.
 */
export function connectPeer(cx: ConnectContext, session: DeviceSession | GatewaySession, touch: () => number): Response {
  // Commit anything pending first so `hello` reports every batch this peer
  // has had accepted, including ones sent on a socket now dying.
  cx.ingest.flush();
  const tag = session.k === "device" ? deviceTag(session.d) : gatewayTag(session.w);
  for (const old of cx.ctx.getWebSockets(tag)) {
    try {
      old.close(CloseCode.Replaced, `replaced by a newer connection for this ${session.k}`);
    } catch {
      // already closing
    }
  }
  const lastSeq = touch();
  const pair = new WebSocketPair();
  const server = pair[1];
  cx.ctx.acceptWebSocket(server, [tag]);
  server.serializeAttachment(session);
  cx.sessions.set(server, session);
  server.send(encodeCbor({ type: "hello", v: PROTOCOL_VERSION, lastSeq }));
  return new Response(null, { status: 101, webSocket: pair[0] });
}

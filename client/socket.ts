/** The socket plumbing of DeviceClient: its URL, write batching per tick, and a bounded close. */
import WebSocket from "ws";
import { CloseCode } from "../schema/protocol.ts";

/** The device or gateway socket URL (docs/protocol.md), with the token in the query only when asked. */
export function deviceSocketUrl(opts: {
  url: string;
  group: string;
  endpoint: "devices" | "gateways";
  device: string;
  token: string;
  tokenInQuery: boolean;
  downlink: boolean;
}): string {
  const base = new URL(opts.url);
  base.protocol = base.protocol === "https:" || base.protocol === "wss:" ? "wss:" : "ws:";
  base.pathname = `/v1/groups/${encodeURIComponent(opts.group)}/${opts.endpoint}/${encodeURIComponent(opts.device)}/ws`;
  if (opts.tokenInQuery) base.searchParams.set("token", opts.token);
  if (opts.downlink) base.searchParams.set("downlink", "1");
  return base.toString();
}

/**
 * Holds this tick's frames in the TCP socket and writes them with one
 * syscall when the tick ends. Acks arrive in bursts (the hub acks a whole
 * group commit at once) and each frees a slot for a batch; one write per
 * batch was the largest cost of a simulator at full speed. `ws` has no
 * public cork, so this reaches for its socket and does nothing without one.
 * Returns whether it corked; `uncorked` runs when the tick's frames are written.
 */
export function corkForTick(ws: WebSocket, uncorked: () => void): boolean {
  const sock = (ws as unknown as { _socket?: { cork?: () => void; uncork?: () => void } })._socket;
  if (typeof sock?.cork !== "function" || typeof sock.uncork !== "function") return false;
  sock.cork();
  process.nextTick(() => {
    uncorked();
    sock.uncork?.();
  });
  return true;
}

/** Closes `ws` normally, terminating it if the close handshake takes longer than `timeoutMs`. */
export async function closeSocket(ws: WebSocket, reason: string, timeoutMs = 2000): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      ws.terminate();
      resolve();
    }, timeoutMs);
    ws.once("close", () => {
      clearTimeout(t);
      resolve();
    });
    ws.close(CloseCode.Normal, reason);
  });
}

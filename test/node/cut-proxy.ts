/**
 * A TCP proxy in front of a test hub that fails the network the way the
 * field does: cut every connection at once (the client sees 1006, as when
 * wrangler dev's runtime restarted under a fleet), swallow what the hub
 * sends on the open sockets (acks lost on the way), or stop answering
 * altogether (a hub too busy to serve REST).
 */
import { createServer, connect, type Server, type Socket } from "node:net";

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Opened with `Upgrade: websocket`. */
  websocket: boolean;
  /** Hub-to-client bytes are dropped. */
  muted: boolean;
}

export class CutProxy {
  private readonly server: Server;
  private readonly pairs = new Set<Pair>();
  private hanging = false;
  private delay: (() => number) | null = null;
  private readonly hung = new Set<Socket>();
  private wsWaiters: (() => void)[] = [];
  private readonly targetPort: number;
  port = 0;

  constructor(targetPort: number) {
    this.targetPort = targetPort;
    this.server = createServer((client) => this.accept(client));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const addr = this.server.address();
    this.port = typeof addr === "object" && addr ? addr.port : 0;
    return this;
  }

  /** Resolves once a WebSocket connection has come through. */
  firstWebSocket(): Promise<void> {
    if ([...this.pairs].some((p) => p.websocket)) return Promise.resolve();
    return new Promise((r) => this.wsWaiters.push(r));
  }

  /** Open WebSocket connections. */
  get websockets(): number {
    return [...this.pairs].filter((p) => p.websocket).length;
  }

  /** Destroys every open connection on both sides, with no close frame. Returns how many WebSockets it cut. */
  dropAll(): number {
    const n = this.websockets;
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
    return n;
  }

  /** From now on, what the hub sends on the WebSockets open now is dropped; new connections are unaffected. */
  muteWebSockets(): void {
    for (const p of this.pairs) if (p.websocket) p.muted = true;
  }

  /**
   * From now on, what the hub sends reaches the client `delay()` ms late
   * (asked per chunk, so the delay can grow), in order: a hub falling
   * behind but still answering.
   */
  delayFromHub(delay: () => number): void {
    this.delay = delay;
  }

  /** From now on nothing is answered: open connections are muted, new ones accepted and left hanging. */
  hang(): void {
    this.hanging = true;
    for (const p of this.pairs) p.muted = true;
  }

  async close(): Promise<void> {
    this.dropAll();
    for (const c of this.hung) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.hanging) {
      client.on("error", () => undefined);
      client.resume(); // read and drop: the caller waits for an answer that never comes
      this.hung.add(client);
      client.on("close", () => this.hung.delete(client));
      return;
    }
    const upstream = connect(this.targetPort, "127.0.0.1");
    const pair: Pair = { client, upstream, websocket: false, muted: false };
    this.pairs.add(pair);
    let first = true;
    client.on("data", (chunk: Buffer) => {
      if (first) {
        first = false;
        pair.websocket = /\r\nupgrade:\s*websocket/i.test(chunk.toString("latin1"));
        if (pair.websocket) for (const w of this.wsWaiters.splice(0)) w();
      }
      upstream.write(chunk);
    });
    let releaseAt = 0;
    upstream.on("data", (chunk: Buffer) => {
      if (pair.muted) return;
      const now = Date.now();
      const d = this.delay?.() ?? 0;
      if (d <= 0 && releaseAt <= now) {
        client.write(chunk);
        return;
      }
      // Never before an earlier chunk: timers due later fire later.
      releaseAt = Math.max(releaseAt, now + d);
      setTimeout(() => {
        if (!pair.muted) client.write(chunk);
      }, releaseAt - now);
    });
    // A closed side closes the other after what is already written to it
    // (a close frame must still arrive); an error tears down both.
    client.on("close", () => {
      this.pairs.delete(pair);
      upstream.end();
    });
    upstream.on("close", () => {
      this.pairs.delete(pair);
      client.end();
    });
    const broken = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", broken);
    upstream.on("error", broken);
  }
}

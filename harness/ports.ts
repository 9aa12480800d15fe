/** Ports on 127.0.0.1 for the servers that tests, benchmarks and `npm start` run. */
import { connect, createServer } from "node:net";
import { sleep } from "./wait.ts";

// Ports are picked below the kernel's ephemeral range (Linux: 32768-60999,
// /proc/sys/net/ipv4/ip_local_port_range), never from it: a port that
// listen(0) handed out is free again once closed, and any outgoing
// connection of the busy test machine may take it as its local port before
// our server binds it (seen in CI: the bridge's ops port of `npm start`
// taken). Random, so parallel test processes rarely try the same one, and
// checked by binding it.
const LOW = 20_000;
const HIGH = 32_000;
const handedOut = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A TCP port that was free a moment ago on 127.0.0.1, outside the ephemeral range, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port between ${LOW} and ${HIGH}`);
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

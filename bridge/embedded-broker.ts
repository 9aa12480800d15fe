/**
 * `--embedded-broker`: an in-process aedes broker for sites with none.
 * Sessions and queued QoS 1 messages live in aedes' default in-memory
 * persistence, so they survive bridge reconnects and hub outages but not a
 * crash of this process (docs/bridge.md, "Embedded broker"). Who may
 * connect, publish and subscribe is bridge/broker-auth.ts's BrokerPolicy.
 */
import { readFile } from "node:fs/promises";
import { createServer, type AddressInfo, type Server } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Aedes } from "aedes";
import { BrokerPolicy, type BrokerPolicyOptions } from "./broker-auth.ts";

export interface EmbeddedBroker {
  port: number;
  host: string;
  /** Where the bridge connects: the broker's own port, or with TLS a plain one on 127.0.0.1 of its own. */
  bridgeUrl: string;
  /** The credential the bridge logs in with: only it may use the bridge's client id. */
  bridgeUsername: string;
  bridgePassword: string;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((r) => server.close(() => r()));
}

export interface EmbeddedBrokerOptions extends BrokerPolicyOptions {
  port: number;
  host: string;
  /** PEM certificate and key file paths: TLS only on `port`. */
  tls?: { cert: string; key: string } | null;
}

export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const policy = new BrokerPolicy(opts);
  const broker = await Aedes.createBroker({
    authenticate: policy.authenticate,
    authorizePublish: policy.authorizePublish,
    authorizeSubscribe: policy.authorizeSubscribe,
  });
  const servers: Server[] = [];
  const close = async (): Promise<void> => {
    await new Promise<void>((r) => broker.close(() => r()));
    await Promise.all(servers.map(closeServer));
  };
  try {
    const tls = opts.tls ? { cert: await readFile(opts.tls.cert), key: await readFile(opts.tls.key) } : null;
    const server = tls ? createTlsServer(tls, broker.handle) : createServer(broker.handle);
    servers.push(server);
    const port = await listen(server, opts.port, opts.host);
    const reach = opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    let bridgeUrl = `mqtt://${reach}:${port}`;
    if (tls) {
      // The bridge in this process has no use for TLS to itself; its port is on loopback only, and still needs a credential.
      const inner = createServer(broker.handle);
      servers.push(inner);
      bridgeUrl = `mqtt://127.0.0.1:${await listen(inner, 0, "127.0.0.1")}`;
    }
    return { port, host: opts.host, bridgeUrl, bridgeUsername: policy.bridgeUsername, bridgePassword: policy.bridgePassword, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * `--embedded-broker`: an in-process aedes broker for sites with none.
 * Sessions and queued QoS 1 messages live in aedes' default in-memory
 * persistence, so they survive bridge reconnects and hub outages but not a
 * crash of this process (docs/bridge.md, "Embedded broker"). Who may
 * connect, publish and subscribe is bridge/broker-auth.ts's BrokerPolicy.
 */
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";
import { BrokerPolicy, type BrokerPolicyOptions } from "./broker-auth.ts";

export interface EmbeddedBroker {
  port: number;
  host: string;
  /** The credential the bridge logs in with: only it may use the bridge's client id. */
  bridgeUsername: string;
  bridgePassword: string;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: { port: number; host: string } & BrokerPolicyOptions): Promise<EmbeddedBroker> {
  const policy = new BrokerPolicy(opts);
  const broker = await Aedes.createBroker({
    authenticate: policy.authenticate,
    authorizePublish: policy.authorizePublish,
    authorizeSubscribe: policy.authorizeSubscribe,
  });
  const server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    host: opts.host,
    bridgeUsername: policy.bridgeUsername,
    bridgePassword: policy.bridgePassword,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

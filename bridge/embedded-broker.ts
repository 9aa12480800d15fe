/**
 * `--embedded-broker`: an in-process aedes broker for sites with none.
 * Sessions and queued QoS 1 messages live in aedes' default in-memory
 * persistence, so they survive bridge reconnects and hub outages but not a
 * crash of this process (docs/bridge.md, "Embedded broker").
 */
import { createServer, type AddressInfo } from "node:net";
import { Aedes } from "aedes";

export interface EmbeddedBroker {
  port: number;
  host: string;
  close(): Promise<void>;
}

export async function startEmbeddedBroker(opts: { port: number; host: string }): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker();
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
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The MQTT bridge of `npm start`: an embedded broker on localhost and a
 * bridge into the local hub, so that
 *
 *   mosquitto_pub -t sensors/demo/boiler-1/temp -m 71.5
 *
 * shows up on the dashboard with no setup. Development only: gateway
 * tokens are signed here with the development secret, for any group a
 * topic names.
 */
import { createHmac } from "node:crypto";
import { startBridge, type Bridge } from "../bridge/bridge.ts";
import { Logger } from "../bridge/log.ts";
import { DEFAULTS } from "../bridge/options.ts";
import { gatewaySubject } from "../schema/token.ts";

export const DEMO_GATEWAY = "npm-start-bridge";

export interface DemoBridge {
  description: string;
  stop(): Promise<void>;
}

/** Starts the bridge, or returns null (with the reason on stderr) when it cannot, e.g. the port is taken. */
export async function startDemoBridge(opts: { hubUrl: string; secret: string; mqttPort: number }): Promise<DemoBridge | null> {
  // Same bytes as schema/token.ts's signToken, but synchronous, because
  // the bridge asks for a token when a group's first message arrives.
  const token = (group: string): string =>
    createHmac("sha256", opts.secret).update(gatewaySubject(group, DEMO_GATEWAY)).digest("base64url");
  let bridge: Bridge;
  try {
    bridge = await startBridge(
      { ...DEFAULTS, hubUrl: opts.hubUrl, gateway: DEMO_GATEWAY, embeddedBroker: opts.mqttPort, httpPort: null, logLevel: "warn" },
      { token, log: new Logger({ level: "warn" }) },
    );
  } catch (err) {
    process.stderr.write(`MQTT bridge not started (${err instanceof Error ? err.message : String(err)}); try --mqtt-port N or --no-bridge\n`);
    return null;
  }
  const p = bridge.brokerPort === 1883 ? "" : ` -p ${bridge.brokerPort}`;
  return {
    description: `broker on mqtt://localhost:${bridge.brokerPort}, try: mosquitto_pub${p} -t sensors/demo/boiler-1/temp -m 71.5`,
    stop: () => bridge.stop(1000),
  };
}

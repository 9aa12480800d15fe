/**
 * The MQTT bridge of `npm start`: an embedded broker on localhost and a
 * bridge into the local hub, so that
 *
 *   mosquitto_pub -u demo -P <password> -t sensors/demo/boiler-1/temp -m 71.5
 *
 * shows up on the dashboard with no setup, and /healthz and /metrics on
 * 127.0.0.1:9464 as `npm run bridge` serves them. Development only: gateway
 * tokens are signed here with the development secret, for any group a
 * topic names. The broker wants a credential even on localhost, as any
 * real one should: user `demo`, whose password is derived from the
 * development secret (the same at every start) and printed.
 */
import { createHmac } from "node:crypto";
import { hashPassword } from "../bridge/broker-auth.ts";
import { startBridge, type Bridge } from "../bridge/bridge.ts";
import { Logger } from "../bridge/log.ts";
import { DEFAULTS, type BridgeConfig } from "../bridge/options.ts";
import { gatewaySubject } from "../schema/token.ts";

export const DEMO_GATEWAY = "npm-start-bridge";
export const DEMO_MQTT_USER = "demo";

/** The demo broker user's password: stable for one development secret, so a configured sensor keeps working across restarts. */
export function demoMqttPassword(secret: string): string {
  return createHmac("sha256", secret).update("npm start: MQTT password of user demo").digest("hex").slice(0, 16);
}

export interface DemoBridge {
  description: string;
  /** Port of /healthz and /metrics on 127.0.0.1, or null when they are off. */
  opsPort: number | null;
  brokerPort: number;
  stop(): Promise<void>;
}

/** A listen() error for this port (Node sets `port` on it). */
function listenFailedOn(err: unknown, port: number): boolean {
  return typeof err === "object" && err !== null && "port" in err && err.port === port;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Starts the bridge, or returns null (with the reason on stderr) when it
 * cannot, e.g. the broker's port is taken. A taken ops port only costs the
 * ops endpoint, with a note.
 */
export async function startDemoBridge(opts: { hubUrl: string; secret: string; mqttPort: number; opsPort: number | null }): Promise<DemoBridge | null> {
  // Same bytes as schema/token.ts's signToken, but synchronous, because
  // the bridge asks for a token when a group's first message arrives.
  const token = (group: string): string =>
    createHmac("sha256", opts.secret).update(gatewaySubject(group, DEMO_GATEWAY)).digest("base64url");
  const cfg: BridgeConfig = {
    ...DEFAULTS,
    hubUrl: opts.hubUrl,
    gateway: DEMO_GATEWAY,
    embeddedBroker: opts.mqttPort,
    httpHost: "127.0.0.1",
    httpPort: opts.opsPort,
    brokerUsers: new Map([[DEMO_MQTT_USER, { passwordHash: await hashPassword(demoMqttPassword(opts.secret)), groups: ["*"] }]]),
    logLevel: "warn",
  };
  const start = (c: BridgeConfig): Promise<Bridge> => startBridge(c, { token, log: new Logger({ level: "warn" }) });
  let bridge: Bridge;
  try {
    bridge = await start(cfg);
  } catch (err) {
    const opsTaken = opts.opsPort !== null && opts.opsPort !== 0 && listenFailedOn(err, opts.opsPort);
    try {
      if (!opsTaken) throw err;
      bridge = await start({ ...cfg, httpPort: null });
      process.stderr.write(`MQTT bridge: /healthz and /metrics not served (${message(err)}); try --ops-port N\n`);
    } catch (err2) {
      process.stderr.write(`MQTT bridge not started (${message(err2)}); try --mqtt-port N or --no-bridge\n`);
      return null;
    }
  }
  const brokerPort = bridge.brokerPort ?? opts.mqttPort;
  const opsPort = bridge.httpPort;
  const p = brokerPort === 1883 ? "" : ` -p ${brokerPort}`;
  const ops = opsPort === null ? "" : `, health on http://127.0.0.1:${opsPort}/healthz and /metrics`;
  return {
    description: `broker on mqtt://localhost:${brokerPort}${ops}; try: mosquitto_pub${p} -u ${DEMO_MQTT_USER} -P ${demoMqttPassword(opts.secret)} -t sensors/demo/boiler-1/temp -m 71.5`,
    opsPort,
    brokerPort,
    stop: () => bridge.stop(1000),
  };
}

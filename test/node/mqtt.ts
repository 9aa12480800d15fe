/**
 * MQTT test fixtures: publishers (mosquitto_pub and MQTT.js) and the bridge
 * in-process; Mosquitto and the bridge as child processes come from
 * harness/mqtt-procs.ts.
 */
import { spawn } from "node:child_process";
import { connectAsync, type MqttClient } from "mqtt";
import { hashPassword, type BrokerUser } from "../../bridge/broker-auth.ts";
import { startBridge, type Bridge } from "../../bridge/bridge.ts";
import { Logger } from "../../bridge/log.ts";
import { DEFAULTS, type BridgeConfig } from "../../bridge/options.ts";
import { gatewaySubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";

// The process launchers live beside the wrangler one, for the benchmark too.
export { childBridge, hasMosquitto, startMosquitto, type ChildBridge, type Mosquitto } from "../../harness/mqtt-procs.ts";
export { waitForPort } from "../../harness/ports.ts";
export { sleep, waitFor } from "../../harness/wait.ts";

/** A broker user name and password. */
export interface Credential {
  username: string;
  password: string;
}

/** The embedded broker's user in tests, allowed every group unless told otherwise. */
export const SENSOR: Credential = { username: "test-sensor", password: "test-sensor-password" };

/** A users map for the embedded broker: `SENSOR` (or `cred`) for `groups`. */
export async function brokerUsers(groups: string[] = ["*"], cred: Credential = SENSOR): Promise<Map<string, BrokerUser>> {
  return new Map([[cred.username, { passwordHash: await hashPassword(cred.password), groups }]]);
}

/** Publishes each line as one QoS 1 message with mosquitto_pub -l; resolves when it exits. */
export function mosquittoPub(port: number, topic: string, lines: readonly string[], cred?: Credential): Promise<void> {
  const auth = cred ? ["-u", cred.username, "-P", cred.password] : [];
  return new Promise((resolve, reject) => {
    const child = spawn("mosquitto_pub", ["-h", "127.0.0.1", "-p", String(port), ...auth, "-q", "1", "-t", topic, "-l"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${err}`))));
    child.stdin.end(lines.map((l) => `${l}\n`).join(""));
  });
}

/** An MQTT.js publisher (MQTT 3.1.1, so it works with aedes as well). */
export function publisher(url: string, clientId: string, cred?: Credential): Promise<MqttClient> {
  return connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 200, ...cred });
}

export function gatewayToken(group: string, gateway: string): Promise<string> {
  return signToken(TEST_SECRET, gatewaySubject(group, gateway));
}

export interface TestBridge {
  bridge: Bridge;
  logs: string[];
}

/** The bridge in this process, with quick reconnects and its log lines collected; an embedded broker admits `SENSOR` unless told otherwise. */
export async function inProcessBridge(over: Partial<BridgeConfig> & Pick<BridgeConfig, "hubUrl" | "gateway">, groups: string[]): Promise<TestBridge> {
  const tokens: Record<string, string> = {};
  for (const g of groups) tokens[g] = await gatewayToken(g, over.gateway);
  const logs: string[] = [];
  const users = over.embeddedBroker !== undefined && over.embeddedBroker !== null ? await brokerUsers() : null;
  const cfg: BridgeConfig = { ...DEFAULTS, httpPort: null, backoffMaxMs: 500, logLevel: "info", tokens, brokerUsers: users, ...over };
  const bridge = await startBridge(cfg, { log: new Logger({ level: "debug", write: (l) => logs.push(l) }) });
  return { bridge, logs };
}


/**
 * `npm start`: the hub on http://localhost:8787 with a small demo fleet.
 *
 *   npm start                 hub + demo fleet
 *   npm start -- --no-demo    hub only
 *   npm start -- --port 9000
 *   npm start -- --no-bridge  without the MQTT bridge (embedded broker on --mqtt-port, default 1883)
 */
import { parseArgs } from "node:util";
import { deviceSubject, operatorSubject, signToken } from "../schema/token.ts";
import { ensureDevSecret, DEV_VARS } from "./dev-secret.ts";
import { startDemoBridge } from "./bridge-demo.ts";
import { startDemoFleet } from "./demo.ts";
import { startHub } from "./wrangler-dev.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    "no-demo": { type: "boolean", default: false },
    "no-bridge": { type: "boolean", default: false },
    "mqtt-port": { type: "string", default: "1883" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  process.stdout.write("usage: npm start [-- --port N] [-- --no-demo] [-- --no-bridge] [-- --mqtt-port N]\n");
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write(`--port must be a TCP port, got '${values.port}'\n`);
  process.exit(2);
}

const { secret, created } = ensureDevSecret();
if (created) process.stdout.write(`Created ${DEV_VARS} with a random development HUB_SECRET.\n`);

process.stdout.write(`Starting the hub (wrangler dev) on port ${port}...\n`);
// Warnings and errors only: one log line per request would bury the links below.
const hub = await startHub({ port, inheritOutput: true, persistTo: ".wrangler/state", logLevel: "warn" });
const base = `http://localhost:${port}`;
const operator = await signToken(secret, operatorSubject("*"));
const device = await signToken(secret, deviceSubject("demo", "my-device"));

process.stdout.write(`
Telemetry Hub is running at ${base}

  Dashboard (operator, all groups): ${base}/?token=${operator}
  Device socket:                    ws://localhost:${port}/v1/groups/demo/devices/my-device/ws
  Device token for demo/my-device:  ${device}
  REST, for example:                curl -H 'Authorization: Bearer ${operator}' ${base}/v1/groups/demo/devices

  More tokens: npm run token -- device <group> <device> | npm run token -- operator <group|*>
  Stop with Ctrl-C.
`);

const fleet = values["no-demo"] ? null : startDemoFleet({ url: hub.url, secret });
if (fleet) process.stdout.write(`Demo fleet: ${fleet.description}\n`);
const bridge = values["no-bridge"] ? null : await startDemoBridge({ hubUrl: hub.url, secret, mqttPort: Number(values["mqtt-port"]) });
if (bridge) process.stdout.write(`MQTT bridge: ${bridge.description}\n`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await fleet?.stop();
  await bridge?.stop();
  await hub.stop();
  process.exit(0);
}
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
hub.child.once("exit", (code) => {
  if (!stopping) {
    process.stderr.write(`wrangler dev exited (${code}); stopping.\n`);
    void Promise.all([fleet?.stop(), bridge?.stop()]).then(() => process.exit(1));
  }
});

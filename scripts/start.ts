/**
 * `npm start`: the hub on http://localhost:8787 with a small demo fleet and
 * the MQTT bridge. `npm start -- --help` lists the options.
 *
 * Ctrl-C stops the demo fleet and the bridge first and the hub last, so
 * nothing is cut off mid-stream and nothing alarming is printed.
 */
import { parseArgs } from "node:util";
import { deviceSubject, operatorSubject, signToken } from "../schema/token.ts";
import { ensureDevSecret, DEV_VARS } from "../harness/dev-secret.ts";
import { startDemoBridge } from "./bridge-demo.ts";
import { startDemoFleet } from "./demo.ts";
import { startHub, type HubProcess } from "../harness/wrangler-dev.ts";

const USAGE = `usage: npm start [-- options]

  --port N          port of the hub (wrangler dev); default 8787
  --no-demo         no demo fleet
  --no-bridge       no MQTT bridge
  --mqtt-port N     port of the bridge's embedded MQTT broker; default 1883
  --ops-port N|off  port of the bridge's /healthz and /metrics on 127.0.0.1; default 9464 (0: any free port)
  --persist-to DIR  where the hub keeps its local state; default .wrangler/state
  -h, --help        this text
`;

function fail(message: string): never {
  process.stderr.write(`${message}\n\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      port: { type: "string", default: "8787" },
      "no-demo": { type: "boolean", default: false },
      "no-bridge": { type: "boolean", default: false },
      "mqtt-port": { type: "string", default: "1883" },
      "ops-port": { type: "string", default: "9464" },
      "persist-to": { type: "string", default: ".wrangler/state" },
      help: { type: "boolean", short: "h", default: false },
    },
  }));
} catch (err) {
  fail(err instanceof Error ? err.message : String(err));
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

/** A TCP port from a flag; 0 (any free port) only where `allowZero`. */
function portOption(name: string, raw: string, allowZero: boolean): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) fail(`--${name} must be a TCP port, got '${raw}'`);
  return n;
}
const port = portOption("port", values.port, false);
const mqttPort = portOption("mqtt-port", values["mqtt-port"], true);
const opsPort = values["ops-port"] === "off" ? null : portOption("ops-port", values["ops-port"], true);

const { secret, created } = ensureDevSecret();
if (created) process.stdout.write(`Created ${DEV_VARS} with a random development HUB_SECRET.\n`);

process.stdout.write(`Starting the hub (wrangler dev) on port ${port}...\n`);
// The hub never reads request.cf; without this, Miniflare downloads a sample
// of it and, offline, prints a warning with a stack trace at every start.
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
// Warnings and errors only: one log line per request would bury the links below.
// Its own process group (crashable), so that a terminal's Ctrl-C reaches
// only this script, which stops the hub after the fleet and the bridge:
// were the hub to go first, they would log a connection error per group.
let hub: HubProcess;
try {
  hub = await startHub({ port, inheritOutput: true, persistTo: values["persist-to"], logLevel: "warn", crashable: true });
} catch (err) {
  // wrangler's own output, above, says why; no stack trace on top of it.
  process.stderr.write(`\nThe hub did not start (${err instanceof Error ? (err.message.split("\n")[0] ?? "").replace(/:$/, "") : String(err)}); try --port N.\n`);
  process.exit(1);
}
// Whatever ends this process, the hub's process group must not outlive it.
process.on("exit", () => {
  if (hub.child.exitCode === null && hub.child.signalCode === null && hub.child.pid !== undefined) {
    try {
      process.kill(-hub.child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
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
const bridge = values["no-bridge"] ? null : await startDemoBridge({ hubUrl: hub.url, secret, mqttPort, opsPort });
if (bridge) process.stdout.write(`MQTT bridge: ${bridge.description}\n`);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  const first = [fleet && "demo fleet", bridge && "MQTT bridge"].filter(Boolean).join(", ");
  process.stdout.write(`\nStopping: ${first ? `${first}, then ` : ""}the hub...\n`);
  await fleet?.stop();
  await bridge?.stop();
  await hub.stop();
  process.stdout.write("Stopped.\n");
  process.exit(0);
}
// A terminal's Ctrl-C reaches this process twice (from the terminal and
// forwarded by npm); `stopping` makes the second a no-op.
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
process.on("SIGHUP", () => void shutdown());
hub.child.once("exit", (code) => {
  if (!stopping) {
    stopping = true;
    process.stderr.write(`wrangler dev exited (${code}); stopping.\n`);
    void Promise.all([fleet?.stop(), bridge?.stop()]).then(() => process.exit(1));
  }
});

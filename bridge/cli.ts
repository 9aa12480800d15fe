/**
 * `npm run bridge -- [options]`: the MQTT bridge as a long-running process.
 * Options: `--help`, bridge/options.ts, docs/bridge.md. Stops cleanly on
 * SIGINT/SIGTERM (drains what the hub has not acked yet, for up to 5 s).
 */
import { startBridge } from "./bridge.ts";
import { OptionError, parseOptions, usage } from "./options.ts";

let parsed;
try {
  parsed = parseOptions(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof OptionError)) throw err;
  process.stderr.write(`bridge: ${err.message}\n(npm run bridge -- --help lists the options)\n`);
  process.exit(2);
}
if (parsed.help) {
  process.stdout.write(`${usage()}\n`);
  process.exit(0);
}

let bridge;
try {
  bridge = await startBridge(parsed.config);
} catch (err) {
  process.stderr.write(`bridge: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
const running = bridge;

let exiting = false;
async function shutdown(code: number): Promise<void> {
  if (exiting) return;
  exiting = true;
  await running.stop();
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));
running.on("fatal", () => void shutdown(1));

/**
 * `npm run bridge -- [options]`: the MQTT bridge as a long-running process.
 * Options: `--help`, bridge/options.ts, docs/bridge.md. Stops cleanly on
 * SIGINT/SIGTERM (drains what the hub has not acked yet, for up to 5 s).
 * `npm run -s bridge -- hash-password` hashes a password for --broker-users.
 */
import { text } from "node:stream/consumers";
import { hashPassword } from "./broker-auth.ts";
import { startBridge } from "./bridge.ts";
import { OptionError, parseOptions, usage } from "./options.ts";

// `hash-password`: the password on stdin (one line), its hash for the users file on stdout.
if (process.argv[2] === "hash-password") {
  if (process.stdin.isTTY) process.stderr.write("Password (shown as typed; end with Enter and Ctrl-D): ");
  const password = (await text(process.stdin)).replace(/\r?\n$/, "");
  if (password === "" || process.argv.length > 3) {
    process.stderr.write("usage: echo 'PASSWORD' | npm run -s bridge -- hash-password\n");
    process.exit(2);
  }
  process.stdout.write(`${await hashPassword(password)}\n`);
  process.exit(0);
}

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

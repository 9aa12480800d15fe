/**
 * `npm run sim -- [options]`: replays fleets against a hub. See `--help`
 * and docs/simulator.md.
 */
import { Simulation } from "./engine.ts";
import { OptionError } from "../lib/options.ts";
import { HELP, parseOptions } from "./options.ts";
import { EXIT } from "./outcome.ts";

async function main(): Promise<number> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof OptionError) {
      process.stderr.write(`sim: ${err.message}\nRun with --help for the options.\n`);
      return EXIT.badOptions;
    }
    throw err;
  }
  if (opts.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const c = opts.config;
  const what = c.replay
    ? `replaying ${c.replay.rows.length} readings${c.replay.skipped ? ` (${c.replay.skipped} unusable lines skipped)` : ""}`
    : `fleet: groups ${c.fleet?.groups.join(", ")}; ${c.fleet?.kinds.map((k) => `${k.count} x ${k.name} [${k.metrics.join(",")}] at ${Number.isFinite(k.rate) ? `${k.rate}/s` : "max"}`).join("; ")}`;
  process.stderr.write(`sim: ${what} -> ${c.url}\n`);
  const sim = new Simulation(c);
  let interrupted = 0;
  const onSignal = () => {
    interrupted++;
    if (interrupted > 1) process.exit(130);
    process.stderr.write("\nsim: stopping; draining outstanding acks (Ctrl-C again to quit at once)\n");
    sim.requestStop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const result = await sim.run();
  if (opts.json) process.stdout.write(`${JSON.stringify(result.summary, null, 2)}\n`);
  else process.stdout.write(result.text);
  // Also on stderr, so it shows when stdout goes to a file or a pipe.
  if (result.reason) process.stderr.write(`sim: ${result.reason}\n`);
  return result.exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

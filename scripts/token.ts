/**
 * Prints hub tokens (docs/protocol.md, "Auth").
 *
 *   npm run token -- device <group> <device>
 *   npm run token -- gateway <group> <gateway>
 *   npm run token -- operator <group|*>
 *
 * HUB_SECRET comes from the environment; without it, from .dev.vars (the
 * local development secret), with a note on stderr.
 */
import { isValidId } from "../schema/protocol.ts";
import { deviceSubject, gatewaySubject, operatorSubject, signToken } from "../schema/token.ts";
import { readDevSecret } from "../harness/dev-secret.ts";
import { OptionError, orExit } from "../lib/options.ts";

const USAGE = `usage:
  npm run token -- device <group> <device>
  npm run token -- gateway <group> <gateway>   (e.g. the MQTT bridge, one per group)
  npm run token -- operator <group|*>

Signs with HUB_SECRET from the environment (or, when unset, from .dev.vars).`;

function fail(message: string): never {
  throw new OptionError(message);
}

/** The token's subject and the secret to sign it with; OptionError on anything wrong. */
function parse(kind: string, rest: string[]): { subject: string; secret: string } {
  let subject: string;
  if (kind === "device") {
    const [group, device] = rest;
    if (rest.length !== 2 || group === undefined || device === undefined) fail("device needs <group> <device>");
    if (!isValidId(group) || !isValidId(device)) fail("ids must match [A-Za-z0-9_.-]{1,64}");
    subject = deviceSubject(group, device);
  } else if (kind === "gateway") {
    const [group, gateway] = rest;
    if (rest.length !== 2 || group === undefined || gateway === undefined) fail("gateway needs <group> <gateway>");
    if (!isValidId(group) || !isValidId(gateway)) fail("ids must match [A-Za-z0-9_.-]{1,64}");
    subject = gatewaySubject(group, gateway);
  } else if (kind === "operator") {
    const [group] = rest;
    if (rest.length !== 1 || group === undefined) fail("operator needs <group> or *");
    if (group !== "*" && !isValidId(group)) fail("group must match [A-Za-z0-9_.-]{1,64}, or be *");
    subject = operatorSubject(group);
  } else {
    fail(`unknown token kind '${kind}'`);
  }
  let secret = process.env.HUB_SECRET;
  if (!secret) {
    secret = readDevSecret() ?? undefined;
    if (!secret) fail("HUB_SECRET is not set (and there is no .dev.vars; `npm start` creates one)");
    process.stderr.write("note: HUB_SECRET not set; using the development secret from .dev.vars\n");
  }
  return { subject, secret };
}

async function main(argv: string[]): Promise<void> {
  const [kind, ...rest] = argv;
  if (kind === undefined || kind === "--help" || kind === "-h") {
    process.stdout.write(`${USAGE}\n`);
    if (kind === undefined) process.exit(2);
    return;
  }
  const { subject, secret } = orExit(() => parse(kind, rest), `\n${USAGE}\n`);
  process.stdout.write(`${await signToken(secret, subject)}\n`);
}

await main(process.argv.slice(2));

/**
 * Every command in README.md and docs/*.md works as written (docs-commands.ts
 * finds them): one `npm start` on free ports for the whole file, each doc
 * command run against it with only the host, ports and secrets substituted,
 * checked for a meaningful answer, and Ctrl-C at the end must stop it
 * cleanly. The commands that need no npm start (docs-run.ts's STANDALONE)
 * run in docs-standalone.test.ts, beside this file. A command that is
 * neither run by either nor in NOT_RUN (with its reason) fails the check,
 * and so does a command of a known kind whose answer has no check yet.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashPassword } from "../../bridge/broker-auth.ts";
import { readDevSecret } from "../../harness/dev-secret.ts";
import { hasMosquitto, startMosquitto, type Mosquitto } from "../../harness/mqtt-procs.ts";
import { heavyPhase } from "../../harness/heavy.ts";
import { waitFor } from "../../harness/wait.ts";
import { ROOT } from "../../harness/wrangler-dev.ts";
import { freePort } from "../../harness/ports.ts";
import { DeviceClient } from "../../client/index.ts";
import { AggregatesResponse, CommandQueued, CommandsResponse, DevicesResponse, RevocationEntry, RevocationLifted, RevocationsResponse } from "../../schema/api.ts";
import { HubClient } from "../../schema/client.ts";
import { deviceSubject, gatewaySubject, operatorSubject, signToken } from "../../schema/token.ts";
import { NOT_RUN, codeBlocks, docCommands } from "./docs-commands.ts";
import { ALARMING, NO_PRE_SCRIPTS, isStandalone, run, runServer, vars, type Runner } from "./docs-run.ts";
import { npmStart, type NpmStart } from "./shell-job.ts";

const DOC_SECRET = "docs-check-secret";
let hub: NpmStart;
let hubUrl = "";
let secret = "";
let operatorToken = "";
let mosquitto: Mosquitto | null = null;
let bridgeRuns = 0;
/** Waits until `device` of `group` has applied at least one reading. */
async function deviceReports(group: string, device: string, timeoutMs = 30_000): Promise<void> {
  const client = new HubClient({ url: hubUrl, token: operatorToken });
  await waitFor(async () => (await client.devices(group)).some((d) => d.id === device && d.readings > 0), `${group}/${device} on the hub`, timeoutMs);
}

/** A doc command with this machine's hub, broker and secrets in place of the examples'. */
function localize(cmd: string): string {
  return cmd
    .replace(/https?:\/\/(localhost|127\.0\.0\.1):8787/g, hubUrl)
    .replace(/https:\/\/hub\.example(\.com)?/g, hubUrl)
    .replace(/mqtt:\/\/broker\.local:1883/g, mosquitto?.url ?? "mqtt://broker.local:1883")
    .replace(/HUB_SECRET=(\.\.\.|<new>)/g, `HUB_SECRET=${DOC_SECRET}`)
    .replace(/<group\|\*>/g, "'*'")
    .replace(/<group>/g, "demo")
    .replace(/<device>/g, "boiler-1")
    .replace(/<gateway>/g, "mqtt-bridge");
}

/** The first runner whose pattern matches runs the command (docs-run.ts's STANDALONE are tried first, in the other file); the order matters. */
const RUNNERS: [RegExp, Runner][] = [
  [/^npm start$/, checkNpmStart],
  [/(^|=\$\()(HUB_SECRET=\S+ )?npm run (-s )?token -- /, runToken],
  [/^curl /, runCurl],
  [/^mosquitto_pub /, runMosquittoPub],
  [/^npm run bridge -- /, runBridge],
  [/^npm run sim -- /, runSim],
];

async function checkNpmStart(): Promise<void> {
  const out = hub.output();
  // The README's sample of npm start's output, `...` standing for tokens and the like.
  const sample = codeBlocks(ROOT, "").find((b) => b.code.startsWith("Telemetry Hub is running at"));
  expect(sample, "README.md's sample of npm start's output").toBeDefined();
  for (const line of (sample?.code ?? "").split("\n")) {
    const ports = line.replace(":8787", `:${hub.hubPort}`).replace(":1883", `:${hub.mqttPort}`).replace(":9464", `:${hub.opsPort}`);
    const re = ports.trim().replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\\\.\\\.\\\./g, ".+").replace(/ +/g, " +");
    expect(out, `${sample?.where}: '${line}'`).toMatch(new RegExp(re));
  }
  const dashboard = /Dashboard \(operator, all groups\): (\S+)/.exec(out)?.[1] ?? "";
  const page = await fetch(dashboard);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("<script");
  // The printed curl, as printed.
  const curl = /REST, for example: +(curl .+)$/m.exec(out)?.[1] ?? "";
  await waitFor(async () => DevicesResponse.parse(JSON.parse((await run(curl)).stdout)).devices.length > 0, "demo devices in the printed curl's answer");
  // The printed device token and socket.
  const socket = /Device socket: +ws:\/\/localhost:(\d+)\/v1\/groups\/demo\/devices\/my-device\/ws/.exec(out);
  const token = /Device token for demo\/my-device: +(\S+)/.exec(out)?.[1] ?? "";
  expect(Number(socket?.[1])).toBe(hub.hubPort);
  const client = new DeviceClient({ url: hubUrl, group: "demo", device: "my-device", token }).start();
  try {
    client.send([[Date.now(), "temp", 20.5]]);
    await client.idle();
  } finally {
    await client.close();
  }
  // The bridge's ops endpoint, where the README says it is (on the port given).
  const health = await fetch(`http://127.0.0.1:${hub.opsPort}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toMatchObject({ ok: true, mqtt: { connected: true } });
  expect(await (await fetch(`http://127.0.0.1:${hub.opsPort}/metrics`)).text()).toMatch(/^bridge_messages_received_total \d+$/m);
}

async function runToken(cmd: string): Promise<void> {
  const assign = /^(\w+)=\$\((.*)\)$/.exec(cmd);
  const inner = localize(assign?.[2] ?? cmd);
  const args = /token -- (\w+) (.*)$/.exec(inner);
  const [kind, ids] = [args?.[1], (args?.[2] ?? "").split(" ").map((s) => s.replace(/^'(.*)'$/, "$1"))];
  const subject =
    kind === "device" ? deviceSubject(ids[0] ?? "", ids[1] ?? "") : kind === "gateway" ? gatewaySubject(ids[0] ?? "", ids[1] ?? "") : operatorSubject(ids[0] ?? "");
  // Without -s, npm prints its banner first; the token is the last line.
  const token = (await run(inner)).stdout.trim().split("\n").pop() ?? "";
  expect(token).toBe(await signToken(inner.startsWith("HUB_SECRET=") ? DOC_SECRET : secret, subject));
  if (assign?.[1]) vars[assign[1]] = token;
}

async function runCurl(cmd: string): Promise<void> {
  // Buckets and devices appear within seconds of the demo fleet's start; retried until then.
  // Each answer must be the route's documented body (schema/api.ts), not an error.
  await waitFor(async () => {
    const body: unknown = JSON.parse((await run(localize(cmd))).stdout);
    if (cmd.includes("/aggregates")) return AggregatesResponse.parse(body).buckets.length > 0;
    if (/\/devices"?$/.test(cmd)) return DevicesResponse.parse(body).devices.length > 0;
    if (cmd.includes("/commands")) return cmd.includes("-X POST") ? CommandQueued.parse(body).status === "queued" : CommandsResponse.parse(body).commands.some((c) => c.status === "succeeded");
    if (cmd.includes("-X PUT")) return RevocationEntry.parse(body).id !== "";
    if (cmd.includes("-X DELETE")) return !RevocationLifted.parse(body).revoked;
    if (/\/revocations"?$/.test(cmd)) return Array.isArray(RevocationsResponse.parse(body).revocations);
    throw new Error(`no check for the answer to ${cmd}: add one to runCurl`);
  }, `a meaningful answer to ${cmd}`);
}

async function runMosquittoPub(cmd: string): Promise<void> {
  // The demo broker's password, as npm start printed it.
  const password = / -u demo -P (\S+) /.exec(hub.output())?.[1] ?? "";
  expect(password, "npm start's demo MQTT password").not.toBe("");
  await run(cmd.replace(/^mosquitto_pub/, `mosquitto_pub -h 127.0.0.1 -p ${hub.mqttPort}`).replace("<password>", password));
  const topic = /-t sensors\/([^/]+)\/([^/]+)\//.exec(cmd);
  await deviceReports(topic?.[1] ?? "", topic?.[2] ?? "");
}

/**
 * The files a doc's embedded-broker command names, made for it: a users
 * file (one user, every group) and, for TLS, a self-signed certificate; the
 * command with their paths, and the mosquitto_pub flags that go with them.
 */
async function embeddedBrokerFiles(cmd: string): Promise<{ cmd: string; pubFlags: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "docs-broker-"));
  let pubFlags = "";
  if (/--broker-users \S+/.test(cmd)) {
    const path = join(dir, "broker-users.json");
    writeFileSync(path, JSON.stringify({ "docs-sensor": { password: await hashPassword("docs-sensor-pw"), groups: ["*"] } }));
    cmd = cmd.replace(/--broker-users \S+/, `--broker-users ${path}`);
    pubFlags += "-u docs-sensor -P docs-sensor-pw ";
  }
  if (/--embedded-tls-cert \S+/.test(cmd)) {
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    cmd = cmd.replace(/--embedded-tls-cert \S+/, `--embedded-tls-cert ${cert}`).replace(/--embedded-tls-key \S+/, `--embedded-tls-key ${key}`);
    // The chain is checked; the name is not, since the certificate is made here for an IP address.
    pubFlags += `--cafile ${cert} --insecure `;
  }
  return { cmd, pubFlags, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

async function runBridge(cmd: string): Promise<void> {
  if (cmd.includes("broker.local")) mosquitto ??= await startMosquitto();
  const gateway = /--gateway (\S+)/.exec(cmd)?.[1] ?? "mqtt-bridge";
  const groups = [...cmd.matchAll(/--token ([^=\s]+)=<token>/g)].map((m) => m[1] ?? "");
  let local = localize(cmd);
  for (const g of groups) local = local.replace(`${g}=<token>`, `${g}=${await signToken(secret, gatewaySubject(g, gateway))}`);
  const brokerPort = cmd.includes("--embedded-broker") ? await freePort() : (mosquitto?.port ?? 0);
  // Any port the doc names, and any address: tests listen on free ports of 127.0.0.1 only.
  local = local.replace(/--embedded-broker( \d+)?/, `--embedded-broker ${brokerPort}`).replace(/--embedded-host \S+/, "--embedded-host 127.0.0.1");
  const files = cmd.includes("--embedded-broker") ? await embeddedBrokerFiles(local) : null;
  if (files) local = files.cmd;
  if (!local.includes("--hub ")) local += ` --hub ${hubUrl}`;
  // Not 9464, which may be taken on this machine.
  const opsPort = await freePort();
  local += ` --http-port ${opsPort}`;
  // A device of its own, so that an earlier example's readings cannot pass for this one's.
  const device = `docs-sensor-${++bridgeRuns}`;
  try {
    await runServer(local, /"event":"bridge\.started"/, async () => {
      for (const g of groups) {
        // A broker drops what is published before the bridge's first SUBACK
        // (no session yet), as it would for a user: published again until it arrives.
        await waitFor(async () => {
          await run(`mosquitto_pub -h 127.0.0.1 -p ${brokerPort} ${files?.pubFlags ?? ""}-q 1 -t sensors/${g}/${device}/temp -m 21.5`);
          return deviceReports(g, device, 2000).then(
            () => true,
            () => false,
          );
        }, `a reading of ${g} through the bridge`);
      }
      const health = await fetch(`http://127.0.0.1:${opsPort}/healthz`);
      expect(health.status).toBe(200);
      const received = /^bridge_messages_received_total (\d+)$/m.exec(await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text());
      expect(Number(received?.[1])).toBeGreaterThanOrEqual(groups.length);
    });
  } finally {
    files?.remove();
  }
}

async function runSim(cmd: string): Promise<void> {
  let local = `${localize(cmd)} --url ${hubUrl}`;
  // Long examples run for 5 s (the last --duration wins), and a replay ten
  // times as fast as written (the last --speed wins): the same fleet, pacing
  // and --verify, without waiting out a minute of wall time.
  const d = /--duration (\d+)(s|m)/.exec(cmd);
  if ((!d && !cmd.includes("--replay")) || (d && Number(d[1]) * (d[2] === "m" ? 60 : 1) > 5)) local += " --duration 5s";
  const speed = /--replay .*--speed (\d+(?:\.\d+)?)\b/.exec(cmd);
  if (speed) local += ` --speed ${Number(speed[1]) * 10}`;
  try {
    // A 600-device example keeps a core busy: one such phase at a time (harness/heavy.ts).
    const { output } = await heavyPhase("a simulator example", () => run(local, 120_000));
    if (cmd.includes("--verify")) expect(output).toMatch(/Verify: EXACT MATCH/);
  } catch (err) {
    // What the hub said meanwhile is half of the story.
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- npm start's output, last 4000 characters:\n${hub.output().slice(-4000)}`, { cause: err });
  }
}

const commands = docCommands(ROOT);

// Mosquitto (.ci/apt-packages) for the MQTT examples: the broker, and mosquitto_pub to publish.
const mosquittoMissing = !hasMosquitto();

describe("every command in README.md and docs/*.md", () => {
  beforeAll(async () => {
    hub = await npmStart("", NO_PRE_SCRIPTS);
    await hub.waitForOutput(/MQTT bridge: .*\n/, "the bridge's start-up line");
    hubUrl = `http://127.0.0.1:${hub.hubPort}`;
    secret = readDevSecret() ?? "";
    operatorToken = await signToken(secret, operatorSubject("*"));
  }, 180_000);

  afterAll(async () => {
    await hub?.cleanup();
    await mosquitto?.stop();
  });

  // Not a failure: the docs are edited in parallel, and an entry may come before its line.
  const texts = new Set(commands.map((c) => c.text));
  for (const stale of Object.keys(NOT_RUN).filter((t) => !texts.has(t))) it.skip(`allow-list entry in no doc any more: ${stale}`, () => {});

  for (const c of commands) {
    const reason = NOT_RUN[c.text];
    if (reason === undefined && isStandalone(c.text)) continue;
    const runner = RUNNERS.find(([re]) => re.test(c.text))?.[1];
    const name = `${c.text}  (${c.where[0]})`;
    if (reason !== undefined) it.skip(`${name}: not run, ${reason}`, () => {});
    else if (runner) it.skipIf(mosquittoMissing && /mosquitto|npm run bridge -- --(?!help)/.test(c.text))(name, () => runner(c.text), 300_000);
    else it(name, () => expect.fail(`${c.where.join(", ")}: '${c.text}' is neither run by a runner here nor allow-listed in NOT_RUN with a reason`));
  }

  // Code a user would paste: each TypeScript and Python block of the docs runs, or the check says why not.
  for (const b of codeBlocks(ROOT, "ts")) {
    it(`TypeScript example (${b.where}) runs against the hub`, async () => {
      // The examples assume a `token`; the check declares it and ends what the example leaves open.
      let token: string;
      let tail = "";
      let expected: RegExp;
      if (b.code.includes("new DeviceClient(")) {
        token = await signToken(secret, deviceSubject("demo", "boiler-1"));
        expected = /^acked 1 \d/m;
      } else if (b.code.includes("new HubClient(") && b.code.includes("const ws = ")) {
        token = operatorToken;
        tail = `await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });\nws.close();\nconsole.log("example done", buckets.length, truncated);`;
        expected = /^example done [1-9]\d* false$/m;
      } else {
        throw new Error(`${b.where}: a TypeScript example this check does not know; teach it what the example should print`);
      }
      // As pasted into a file at the repository root.
      const dir = mkdtempSync(join(tmpdir(), "docs-ts-"));
      try {
        const code = localize(b.code).replace(/from "\.\/(.*?)"/g, (_, p: string) => `from ${JSON.stringify(join(ROOT, p))}`);
        writeFileSync(join(dir, "example.ts"), `const token = ${JSON.stringify(token)};\n${code}\n${tail}\n`);
        const { output } = await run(`${JSON.stringify(process.execPath)} ${join(dir, "example.ts")}`);
        expect(output).toMatch(expected);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
  const python = spawnSync("python3", ["--version"]).status === 0;
  for (const b of codeBlocks(ROOT, "python")) {
    if (b.code.includes("def cbatch(")) {
      it.skip(`Python example (${b.where}): the compact-batch encoder runs in test/node/cbatch.test.ts, byte for byte against the worked example`, () => {});
      continue;
    }
    it.skipIf(!python)(`Python example (${b.where}) signs as npm run token does`, async () => {
      // The block ends with an expression, as in a REPL; printed here.
      const lines = b.code.trimEnd().split("\n");
      const last = lines.pop() ?? "";
      const r = spawnSync("python3", ["-c", `${lines.join("\n")}\nprint(${last})`], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      const call = /^token\("([^"]*)", "([^"]*)"\)$/.exec(last);
      expect(call, `a Python example other than token(): teach this check to run it`).not.toBeNull();
      expect(r.stdout.trim()).toBe(await signToken(call?.[1] ?? "", call?.[2] ?? ""));
    });
  }

  it("Ctrl-C stops npm start cleanly: fleet and bridge before the hub, exit 0, nothing alarming", async () => {
    const stop = await hub.ctrlC();
    expect(stop.code, hub.output()).toBe(0);
    expect(stop.after).toMatch(/Stopped\./);
    expect(stop.after).not.toMatch(ALARMING);
  });
});

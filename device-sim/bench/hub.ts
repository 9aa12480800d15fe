/**
 * The hub under test: the Worker bundled exactly as `wrangler deploy` would
 * bundle it, run on plain workerd through Miniflare's API (no vitest pool,
 * no `wrangler dev` proxy in front), with SQLite-backed Durable Objects
 * persisted to a temp directory so every commit really reaches the disk.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Log, LogLevel, Miniflare, convertV4MiniflareOptions } from "miniflare";
import { freePort } from "../../harness/ports.ts";
import { processTable } from "../../harness/procs.ts";
import { ROOT, WRANGLER } from "../../harness/wrangler-dev.ts";

/** The part of a local R2 bucket (Miniflare's proxy to it) that bench:archive reads. */
export interface LocalBucket {
  list(o: { prefix: string; cursor?: string }): Promise<{ objects: { key: string; size: number; uploaded: Date }[]; truncated: boolean; cursor?: string }>;
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
}

/** The parts of wrangler.jsonc the bench needs. */
export interface WranglerConfig {
  compatibilityDate: string;
  compatibilityFlags: string[];
  vars: Record<string, string>;
}

/** Removes `//` and `/* *\/` comments and trailing commas, leaving strings alone. */
export function stripJsonc(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else {
      out += c;
      i++;
    }
  }
  return out.replace(/,(\s*[}\]])/g, "$1");
}

export function readWranglerConfig(): WranglerConfig {
  const raw: unknown = JSON.parse(stripJsonc(readFileSync(join(ROOT, "wrangler.jsonc"), "utf8")));
  if (typeof raw !== "object" || raw === null) throw new Error("wrangler.jsonc is not an object");
  const cfg = raw as Record<string, unknown>;
  const date = cfg.compatibility_date;
  if (typeof date !== "string") throw new Error("wrangler.jsonc has no compatibility_date");
  const flags = Array.isArray(cfg.compatibility_flags)
    ? cfg.compatibility_flags.filter((f): f is string => typeof f === "string")
    : [];
  const vars: Record<string, string> = {};
  if (typeof cfg.vars === "object" && cfg.vars !== null) {
    for (const [k, v] of Object.entries(cfg.vars)) vars[k] = String(v);
  }
  return { compatibilityDate: date, compatibilityFlags: flags, vars };
}

/** Runs a command to completion; rejects with its output on a non-zero exit. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolveRun() : reject(new Error(`${cmd} exited with ${code}:\n${out}`))));
  });
}

/**
 * Bundles the Worker with `wrangler deploy --dry-run --outdir`: the same
 * esbuild pipeline as a deploy, including the drizzle migrations and the
 * .sql files they import as Text modules. Talks to no network. Builds the
 * dashboard first on a checkout that has never built it: wrangler refuses
 * a config whose `assets.directory` does not exist.
 */
export async function bundleWorker(outdir: string): Promise<string> {
  if (!existsSync(join(ROOT, "dashboard/dist/index.html"))) await run(process.execPath, [join(ROOT, "node_modules/vite/bin/vite.js"), "build", "dashboard", "--logLevel", "warn"], process.env);
  await run(process.execPath, [WRANGLER, "deploy", "--dry-run", "--outdir", outdir], {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    FORCE_COLOR: "0",
    CI: "1",
  });
  const entry = join(outdir, "index.js");
  statSync(entry); // throws if wrangler wrote no bundle
  return entry;
}

/**
 * The bundle as an explicit module list: the entry first, then the .sql
 * migrations wrangler copied next to it (Text modules, as the `rules` in
 * wrangler.jsonc declare).
 */
function bundleModules(entry: string): { type: "ESModule" | "Text"; path: string }[] {
  const dir = dirname(entry);
  const sql = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .map((f) => ({ type: "Text" as const, path: join(dir, f) }));
  return [{ type: "ESModule", path: entry }, ...sql];
}

export interface Hub {
  url: string;
  /** workerd's process id when it could be found (Linux /proc), for CPU accounting. */
  workerdPid: number | null;
  /** http://127.0.0.1:port of workerd's inspector, when asked for. */
  inspectorUrl: string | null;
  /** The bundle's source map, to name profile frames by their source files. */
  sourceMapPath: string;
  persistDir: string;
  /** The `ARCHIVE` R2 bucket, as the Worker sees it (bench:archive reads the Parquet objects). */
  archive(): Promise<LocalBucket>;
  dispose(): Promise<void>;
}

export interface HubOptions {
  entry: string;
  config: WranglerConfig;
  secret: string;
  /** Overrides for the limit vars from wrangler.jsonc, e.g. GROUP_COMMIT_MS. */
  vars?: Record<string, string>;
  /**
   * Directory for the Durable Objects' SQLite files; must not exist yet (or
   * be empty). Removed by `dispose()`. Default: a fresh temp directory.
   */
  persistDir?: string;
  /** Open workerd's V8 inspector on 127.0.0.1 (for --profile). */
  inspector?: boolean;
  /** Where workerd's log lines go (never stdout: --json owns it). */
  onLog?: (line: string) => void;
}

/** Child processes of this process named `workerd` (Linux only; empty elsewhere). */
export function workerdChildren(): number[] {
  return processTable()
    .filter((p) => p.ppid === process.pid && p.comm.startsWith("workerd"))
    .map((p) => p.pid);
}

export async function startHub(opts: HubOptions): Promise<Hub> {
  const persistDir = opts.persistDir ?? (await mkdtemp(join(tmpdir(), "hub-bench-state-")));
  await mkdir(persistDir, { recursive: true });
  const before = new Set(workerdChildren());
  const port = await freePort();
  const inspectorPort = opts.inspector ? await freePort() : undefined;
  const onLog = opts.onLog ?? ((line: string) => process.stderr.write(`[workerd] ${line}\n`));
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port,
      ...(inspectorPort === undefined ? {} : { inspectorPort, inspectorHost: "127.0.0.1" }),
      log: new Log(LogLevel.WARN),
      handleStructuredLogs: (l) => onLog(`${l.level}: ${l.message}`),
      logRequests: false,
      telemetry: { enabled: false },
      // Default placeholder `request.cf`; `true` would fetch a real one from the internet.
      cf: false,
      resourcePersistencePath: persistDir,
      name: "telemetry-hub",
      modules: bundleModules(opts.entry),
      modulesRoot: dirname(opts.entry),
      compatibilityDate: opts.config.compatibilityDate,
      compatibilityFlags: opts.config.compatibilityFlags,
      bindings: { ...opts.config.vars, ...opts.vars, HUB_SECRET: opts.secret },
      durableObjects: {
        GROUPS: { className: "GroupHub", useSQLite: true },
        REGISTRY: { className: "GroupRegistry", useSQLite: true },
      },
      // The raw archive's bucket (wrangler.jsonc), local and persisted like the objects.
      r2Buckets: { ARCHIVE: "telemetry-hub-archive" },
    }),
  );
  let url: URL;
  try {
    url = await mf.ready;
  } catch (err) {
    await mf.dispose().catch(() => undefined);
    await rm(persistDir, { recursive: true, force: true });
    throw err;
  }
  const fresh = workerdChildren().filter((p) => !before.has(p));
  return {
    url: url.origin,
    workerdPid: fresh.length === 1 ? (fresh[0] ?? null) : null,
    inspectorUrl: inspectorPort === undefined ? null : `http://127.0.0.1:${inspectorPort}`,
    sourceMapPath: `${opts.entry}.map`,
    persistDir,
    // Miniflare's types name workers-types classes Node does not load; the proxy has these methods.
    archive: () => mf.getR2Bucket("ARCHIVE") as unknown as Promise<LocalBucket>,
    async dispose() {
      try {
        await mf.dispose();
      } finally {
        await rm(persistDir, { recursive: true, force: true });
      }
    },
  };
}

/** Total size in bytes of the regular files under a directory. */
export function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      try {
        total += statSync(join(e.parentPath, e.name)).size;
      } catch {
        // removed meanwhile
      }
    }
  }
  return total;
}

/** CPU seconds (user + system, all threads) a process has used so far; null if unknown. */
export function processCpuSeconds(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of stat(5) (utime, stime), counted after the comm field.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on every Linux ABI Node supports
  } catch {
    return null;
  }
}

/** Busy and total CPU time of the whole machine so far, in seconds (Linux /proc/stat); null elsewhere. */
export function machineCpuSeconds(): { busy: number; total: number } | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    const busy = user + nice + system + irq + softirq;
    return { busy: busy / 100, total: (busy + idle + iowait + steal) / 100 };
  } catch {
    return null;
  }
}

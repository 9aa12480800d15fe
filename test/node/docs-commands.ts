/**
 * The commands a user would type from README.md and docs/*.md: every line
 * of a `sh`/`bash`/`shell` code block (continuations joined, comments
 * dropped), and every inline code span that starts with a command
 * (`npm start -- --no-demo`). Plain tool names in prose (`wrangler dev`)
 * are not commands. test/node/docs.test.ts runs them or allow-lists them.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface DocCommand {
  /** The command as written, on one line, without its comment. */
  text: string;
  /** Where it appears, e.g. "README.md:49". */
  where: string[];
}

const SHELL_FENCE = /^```(sh|bash|shell|console)\s*$/;
const INLINE_COMMAND = /^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:npm|npx|curl|mosquitto_pub|mosquitto_sub|openssl)(?:\s|$)/;

/** The markdown files the check reads, relative to the repository root. */
export function docFiles(root: string): string[] {
  const docs = readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => `docs/${f}`);
  return ["README.md", ...docs];
}

/** Drops a `# comment` that is not inside quotes. */
export function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"' || c === "`") {
      quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1] ?? ""))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

/** The commands of one markdown text, in order, with their line numbers. */
export function commandsIn(markdown: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  const lines = markdown.split("\n");
  let fence: "shell" | "other" | null = null;
  let pending: { text: string; line: number } | null = null;
  // Prose is read a paragraph at a time: a code span may wrap onto the next line.
  let para: { text: string; line: number } | null = null;
  const flush = (): void => {
    if (para === null) return;
    for (const m of para.text.matchAll(/`([^`]+)`/g)) {
      const span = (m[1] ?? "").replace(/\s+/g, " ").trim();
      const line = para.line + (para.text.slice(0, m.index).match(/\n/g)?.length ?? 0);
      if (INLINE_COMMAND.test(span)) out.push({ text: span, line });
    }
    para = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? "";
    if (raw.startsWith("```")) {
      flush();
      fence = fence === null ? (SHELL_FENCE.test(raw) ? "shell" : "other") : null;
      continue;
    }
    if (fence === "other") continue;
    if (fence === "shell") {
      // `\` at the end of a line continues the command on the next.
      const stripped = stripComment(raw);
      const cont = stripped.endsWith("\\");
      const part = (cont ? stripped.slice(0, -1) : stripped).trim();
      pending = pending ? { text: `${pending.text} ${part}`, line: pending.line } : { text: part, line: i + 1 };
      if (!cont) {
        if (pending.text !== "") out.push({ text: pending.text.replace(/\s+/g, " "), line: pending.line });
        pending = null;
      }
      continue;
    }
    if (raw.trim() === "") flush();
    else para = para ? { text: `${para.text}\n${raw}`, line: para.line } : { text: raw, line: i + 1 };
  }
  flush();
  return out;
}

/** Every distinct command of the docs, in order of first appearance. */
export function docCommands(root: string): DocCommand[] {
  const byText = new Map<string, DocCommand>();
  for (const file of docFiles(root)) {
    for (const c of commandsIn(readFileSync(join(root, file), "utf8"))) {
      const entry = byText.get(c.text) ?? { text: c.text, where: [] };
      entry.where.push(`${file}:${c.line}`);
      byText.set(c.text, entry);
    }
  }
  return [...byText.values()];
}

const BENCHMARK = "a benchmark: minutes of full load on both cores, a measurement rather than a pass/fail check (figures in docs/benchmarks.md); its --help is run";
const CLOUDFLARE = "needs a Cloudflare account and the network; test/node/deploy.test.ts builds the deployable bundle (wrangler deploy --dry-run)";
const CI_ITSELF = ".ci/run runs npm install, typecheck, lint and npm test, of which this check is a part";
const PLACEHOLDER = "a placeholder for the options, not a command; the concrete examples are run";
const NAME_ONLY = "the command's name in prose; its examples are run";

/**
 * Doc commands that this check does not run, each with the reason. Entries
 * that match no command are listed as skipped tests, to be removed.
 */
export const NOT_RUN: Readonly<Record<string, string>> = {
  "npm install": CI_ITSELF,
  "npm test": CI_ITSELF,
  "npm run check": CI_ITSELF,
  "npm run typecheck": CI_ITSELF,
  "npx vitest run": CI_ITSELF,
  "npx vitest run --project worker": CI_ITSELF,
  "npx vitest run --project node <file>": CI_ITSELF,
  "HEAVY_LOG=/tmp/heavy.jsonl npx vitest run": CI_ITSELF,
  "FLOOD_FPS=0 npx vitest run --project node test/node/flood.test.ts":
    "the unpaced flood: it keeps the runtime busy for minutes and fails by design (docs/security.md, \"Floods\"); a measurement, not a check",
  "npm run test:browser": CI_ITSELF,
  "npm run test:unit": CI_ITSELF,
  "npm run build": "npm test's pretest runs it (this check skips npm start's prestart run of it, so as not to rebuild dashboard/dist under the browser tests)",
  mosquitto_pub: "the tool's name in prose; its example is run",
  "npm run sim": NAME_ONLY,
  "npm run bridge": NAME_ONLY,
  "npm run sim -- [options]": PLACEHOLDER,
  "npm run sim -- ...": PLACEHOLDER,
  "npm run bridge -- ...": PLACEHOLDER,
  "npm run token -- ...": PLACEHOLDER,
  "HUB_SECRET=<new> npm run token -- ...": PLACEHOLDER,
  "npx wrangler login": CLOUDFLARE,
  "npx wrangler secret put HUB_SECRET": CLOUDFLARE,
  "npx wrangler secret put HUB_SECRET_PREVIOUS": CLOUDFLARE,
  "npx wrangler secret delete HUB_SECRET_PREVIOUS": CLOUDFLARE,
  "openssl rand -base64 32 | npx wrangler secret put HUB_SECRET": CLOUDFLARE,
  "npm run deploy": CLOUDFLARE,
  "npx wrangler deploy": CLOUDFLARE,
  "npx wrangler deploy --dry-run": "run by test/node/deploy.test.ts (with --outdir, to inspect the bundle)",
  "npm run chaos": "test/node/chaos.test.ts runs scripts/chaos.ts, with fewer readings and kills",
  "npm run screenshots": "pictures for a person to look at, from a hub and Chromium of its own; test/browser/layout.test.ts checks the same pages' layout",
  "npm run bench": BENCHMARK,
  "npm run bench:archive": BENCHMARK,
  "npm run bench:archive -- --duration 20 --rounds 3 --period 60 --json": BENCHMARK,
  "npx wrangler r2 bucket create telemetry-hub-archive": CLOUDFLARE,
  "npx wrangler r2 bucket lifecycle add telemetry-hub-archive expire-raw groups/ --expire-days 400": CLOUDFLARE,
  "npx wrangler r2 bucket lifecycle add telemetry-hub-archive cold-raw groups/ --ia-transition-days 30": CLOUDFLARE,
  "npm run bench:ingest": BENCHMARK,
  "npm run bench:ingest -- --duration 20": BENCHMARK,
  "npm run bench:ingest -- --json": BENCHMARK,
  "npm run bench:ingest -- --profile": BENCHMARK,
  "npm run bench:ingest -- --batch 4 --duration 4 --warmup 1 --profile --json": BENCHMARK,
  "npm run bench:ingest -- --batch 100 --duration 4 --warmup 1 --profile --json": BENCHMARK,
  "npm run bench:ingest -- --duration 6 --warmup 2": BENCHMARK,
  "npm run bench:bridge": BENCHMARK,
  "npm run bench:bridge -- --messages 100000 --rounds 7": BENCHMARK,
  "npm run bench:bridge -- --batch-readings 500": BENCHMARK,
  "npm run bench:bridge -- --devices 10 --json": BENCHMARK,
  "npm run bench:downlink": BENCHMARK,
  "npm run bench:history": BENCHMARK,
  "npm run bench:history -- --fill-devices 1 --rounds 8": BENCHMARK,
  "npm run bench:history -- --fill-devices 1000 --rounds 1 --hub-seconds 2": BENCHMARK,
  "npm run bench:history -- --fill-devices 4": BENCHMARK,
  "npm run bench:history -- --json": BENCHMARK,
  "npm run bench:history -- --rounds 16": BENCHMARK,
  "npm run bench:sim": BENCHMARK,
  "npm run bench:sim -- --json": BENCHMARK,
  "npm run bench:fanout": BENCHMARK,
  "npm run bench:fanout -- --json": BENCHMARK,
  "npx node device-sim/bench/dev-hub.ts": BENCHMARK,
};

/** The fenced code blocks of language `lang` in the docs, with where each starts. */
export function codeBlocks(root: string, lang: string): { code: string; where: string }[] {
  const out: { code: string; where: string }[] = [];
  for (const file of docFiles(root)) {
    const lines = readFileSync(join(root, file), "utf8").split("\n");
    for (let i = 0; i < lines.length; i++) {
      const open = lines[i] ?? "";
      if (!open.startsWith("```")) continue;
      const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
      if (open.trim() === "```" + lang) out.push({ code: lines.slice(i + 1, end).join("\n"), where: `${file}:${i + 1}` });
      i = end;
    }
  }
  return out;
}

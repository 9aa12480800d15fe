/**
 * CPU profiles of the hub's isolate over the V8 inspector protocol (the
 * one Chrome DevTools speaks), and a flat "self time by function" summary of
 * a profile, for `npm run bench:ingest -- --profile`.
 */
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import WebSocket from "ws";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

/** A V8 CPU profile (the .cpuprofile format DevTools opens). */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface HotFunction {
  name: string;
  /** Share of all samples spent in the function itself, 0..1. */
  self: number;
}

/** One DevTools protocol connection to a V8 isolate. */
export class Inspector {
  private readonly ws: WebSocket;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      const msg: unknown = JSON.parse(String(data));
      if (typeof msg !== "object" || msg === null) return;
      const { id, result, error } = msg as { id?: number; result?: unknown; error?: { message?: string } };
      if (id === undefined) return; // an event
      const w = this.waiting.get(id);
      if (!w) return;
      this.waiting.delete(id);
      if (error) w.reject(new Error(error.message ?? "inspector error"));
      else w.resolve(result);
    });
    ws.on("close", () => {
      for (const w of this.waiting.values()) w.reject(new Error("inspector closed"));
      this.waiting.clear();
    });
  }

  /** Connects to the first isolate whose target title contains `match` (all isolates if empty). */
  static async connect(inspectorUrl: string, match = ""): Promise<Inspector> {
    const res = await fetch(new URL("/json/list", inspectorUrl), { signal: AbortSignal.timeout(5000) });
    const targets: unknown = await res.json();
    if (!Array.isArray(targets)) throw new Error("inspector /json/list is not a list");
    let wsUrl: string | undefined;
    for (const t of targets as Record<string, unknown>[]) {
      const title = typeof t.title === "string" ? t.title : "";
      if (typeof t.webSocketDebuggerUrl === "string" && title.includes(match)) {
        wsUrl = t.webSocketDebuggerUrl;
        break;
      }
    }
    if (!wsUrl) throw new Error(`no inspector target matching '${match}'`);
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false, maxPayload: 1 << 30 });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    return new Inspector(ws);
  }

  /**
   * Sends one command. The isolate answers between events, so a busy one may
   * answer late (workerd may not answer at all while a socket keeps it busy
   * without pause): hence the timeout.
   */
  send(method: string, params: Record<string, unknown> = {}, timeoutMs = 15_000): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`inspector: no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async startProfiling(samplingIntervalUs = 200): Promise<void> {
    await this.send("Profiler.enable");
    await this.send("Profiler.setSamplingInterval", { interval: samplingIntervalUs });
    await this.send("Profiler.start");
  }

  async stopProfiling(): Promise<CpuProfile> {
    const result = await this.send("Profiler.stop");
    const profile = (result as { profile?: CpuProfile }).profile;
    if (!profile) throw new Error("Profiler.stop returned no profile");
    await this.send("Profiler.disable");
    return profile;
  }

  close(): void {
    this.ws.close();
  }
}

/** Maps a position in a bundle back to its source file, for naming frames. */
export type PositionMapper = (url: string, line: number, column: number) => { file: string; line: number } | null;

/** A mapper from a bundle's source map (the file wrangler writes next to the bundle). */
export function sourceMapper(mapPath: string, bundleName: string): PositionMapper {
  let map: SourceMap | null = null;
  try {
    map = new SourceMap(JSON.parse(readFileSync(mapPath, "utf8")) as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    // no map: frames keep their bundle positions
  }
  return (url, line, column) => {
    if (!map || !url.endsWith(bundleName)) return null;
    const e = map.findEntry(line, column);
    if (!("originalSource" in e)) return null;
    return { file: e.originalSource, line: e.originalLine + 1 };
  };
}

/** Shortens a path to what identifies it: from node_modules/ or the repo's top folders. */
function shortPath(p: string): string {
  const nm = p.lastIndexOf("node_modules/");
  if (nm >= 0) return p.slice(nm + "node_modules/".length);
  const m = /(?:^|\/)((?:worker|schema|device-sim|scripts)\/.*)$/.exec(p);
  return m?.[1] ?? p.replace(/^.*\//, "");
}

/** Where a call frame is: function name and file:line (1-based), shortened. */
function frameName(f: CallFrame, mapper?: PositionMapper): string {
  const fn = f.functionName || "(anonymous)";
  if (!f.url) return fn;
  const mapped = mapper?.(f.url, f.lineNumber, f.columnNumber);
  if (mapped) return `${fn} ${shortPath(mapped.file)}:${mapped.line}`;
  return `${fn} ${shortPath(f.url.replace(/^file:\/\//, ""))}:${f.lineNumber + 1}`;
}

/** Functions by share of samples spent in their own code, highest first. */
export function hotFunctions(profile: CpuProfile, top = 20, mapper?: PositionMapper): HotFunction[] {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const counts = new Map<string, number>();
  const samples = profile.samples ?? [];
  for (const id of samples) {
    const node = byId.get(id);
    const name = node ? frameName(node.callFrame, mapper) : "?";
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const total = samples.length || 1;
  return [...counts.entries()]
    .map(([name, n]) => ({ name, self: n / total }))
    .sort((a, b) => b.self - a.self)
    .slice(0, top);
}

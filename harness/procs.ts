/**
 * The process table from Linux `/proc`, for tests and benchmarks that find
 * wrangler's workerd child or add up a process tree's CPU. Empty where
 * there is no `/proc`.
 */
import { readdirSync, readFileSync } from "node:fs";

/** One process: its id, its parent's, and its command name (`comm`). */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  comm: string;
}

/** Every process readable now; one that ends while being read is left out. */
export function processTable(): ProcessEntry[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: ProcessEntry[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      // The command name is in parentheses and may hold spaces; the parent pid follows the state after it.
      const close = stat.lastIndexOf(")");
      out.push({ pid: Number(e), ppid: Number(stat.slice(close + 2).split(" ")[1]), comm: stat.slice(stat.indexOf("(") + 1, close) });
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** The processes under `root` (not `root` itself), breadth first. */
export function descendants(root: number): ProcessEntry[] {
  const table = processTable();
  const children = new Map<number, ProcessEntry[]>();
  for (const p of table) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcessEntry[] = [];
  const queue = [...(children.get(root) ?? [])];
  for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
    out.push(p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

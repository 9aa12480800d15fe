/** Query-string parsing for REST routes. */
import { ID_PATTERN, METRIC_PATTERN } from "../../schema/protocol.ts";

/** Filter for GET /v1/groups/{group}/aggregates; every field optional. */
export interface AggregateQuery {
  device?: string;
  metric?: string;
  from?: number;
  to?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function parseMs(raw: string, name: string): Parsed<number> {
  if (!/^-?\d{1,16}$/.test(raw)) return { ok: false, message: `${name} must be an integer number of milliseconds` };
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) return { ok: false, message: `${name} is out of range` };
  return { ok: true, value: n };
}

export function parseAggregateQuery(params: URLSearchParams): Parsed<AggregateQuery> {
  const q: AggregateQuery = {};
  const device = params.get("device");
  if (device !== null && device !== "") {
    if (!ID_PATTERN.test(device)) return { ok: false, message: "device must match [A-Za-z0-9_.-]{1,64}" };
    q.device = device;
  }
  const metric = params.get("metric");
  if (metric !== null && metric !== "") {
    if (!METRIC_PATTERN.test(metric)) return { ok: false, message: "metric must match [A-Za-z0-9_.:-]{1,64}" };
    q.metric = metric;
  }
  for (const name of ["from", "to"] as const) {
    const raw = params.get(name);
    if (raw === null || raw === "") continue;
    const parsed = parseMs(raw, name);
    if (!parsed.ok) return parsed;
    q[name] = parsed.value;
  }
  if (q.from !== undefined && q.to !== undefined && q.from > q.to) {
    return { ok: false, message: "from must not be after to" };
  }
  return { ok: true, value: q };
}

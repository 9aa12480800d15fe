/**
 * `npm run cost -- --devices N --rate R --batch-ms B`: the monthly cost of a
 * fleet on the hub (Cloudflare) beside AWS IoT Core's messaging, from list
 * prices and the benchmarks' bytes and CPU per reading (scripts/cost-model.ts,
 * docs/cost.md). Prints a table, or JSON with --json.
 */
import { HELP_FLAG, numberOption, OptionError, orExit, parseCli } from "../lib/options.ts";
import { DEFAULT_FLEET, FORMATS, fleetCost, PRICES_READ_ON, type FleetInput, type Format, type Line } from "./cost-model.ts";

const d = DEFAULT_FLEET;
const USAGE = `usage: npm run cost -- --devices N --rate R --batch-ms B [options]

  --devices N              devices in the fleet
  --rate R                 readings per second per device (0.1 = one every 10 s)
  --batch-ms B             each device sends a batch this often (ms)
  --metrics M              metrics per device (${d.metrics})
  --format F               ${FORMATS.join(" | ")} (${d.format})
  --devices-per-group G    devices per group, one Durable Object each (${d.devicesPerGroup})
  --minute-days D          days of minute buckets kept (${d.retention.minuteDays})
  --hour-days D            days of hour buckets kept (${d.retention.hourDays})
  --day-days D             days of day buckets stored so far (${d.retention.dayDays}: after a first year)
  --dashboard-hours H      hours a day a dashboard watches each group (${d.dashboardHours})
  --archive-bytes B        bytes per reading in the R2 archive; 0: no archive (${d.archiveBytesPerReading})
  --archive-months M       months of archive stored (${d.archiveMonths})
  --json                   the result as JSON

Prices read on ${PRICES_READ_ON}; see docs/cost.md for the model and its sources.
`;

const v = parseCli(USAGE, {
  options: {
    devices: { type: "string" },
    rate: { type: "string" },
    "batch-ms": { type: "string" },
    metrics: { type: "string", default: String(d.metrics) },
    format: { type: "string", default: d.format },
    "devices-per-group": { type: "string", default: String(d.devicesPerGroup) },
    "minute-days": { type: "string", default: String(d.retention.minuteDays) },
    "hour-days": { type: "string", default: String(d.retention.hourDays) },
    "day-days": { type: "string", default: String(d.retention.dayDays) },
    "dashboard-hours": { type: "string", default: String(d.dashboardHours) },
    "archive-bytes": { type: "string", default: String(d.archiveBytesPerReading) },
    "archive-months": { type: "string", default: String(d.archiveMonths) },
    json: { type: "boolean", default: false },
    help: HELP_FLAG,
  },
});

const input: FleetInput = orExit((): FleetInput => {
  const required = (name: "devices" | "rate" | "batch-ms"): string => {
    const raw = v[name];
    if (raw === undefined) throw new OptionError(`--${name} is required`);
    return raw;
  };
  const format = v.format as Format;
  if (!FORMATS.includes(format)) throw new OptionError(`--format must be one of ${FORMATS.join(", ")}, got '${v.format}'`);
  return {
    ...d,
    devices: numberOption("devices", required("devices"), { min: 1 }),
    rate: numberOption("rate", required("rate"), { min: 1e-6, integer: false }),
    batchMs: numberOption("batch-ms", required("batch-ms"), { min: 1 }),
    metrics: numberOption("metrics", v.metrics, { min: 1 }),
    format,
    devicesPerGroup: numberOption("devices-per-group", v["devices-per-group"], { min: 1 }),
    retention: {
      minuteDays: numberOption("minute-days", v["minute-days"], { min: 0, integer: false }),
      hourDays: numberOption("hour-days", v["hour-days"], { min: 0, integer: false }),
      dayDays: numberOption("day-days", v["day-days"], { min: 0, integer: false }),
    },
    dashboardHours: numberOption("dashboard-hours", v["dashboard-hours"], { min: 0, max: 24, integer: false }),
    archiveBytesPerReading: numberOption("archive-bytes", v["archive-bytes"], { min: 0, integer: false }),
    archiveMonths: numberOption("archive-months", v["archive-months"], { min: 1 }),
  };
}, USAGE);

const r = fleetCost(input);
if (v.json) {
  process.stdout.write(`${JSON.stringify({ pricesReadOn: PRICES_READ_ON, input, ...r }, null, 2)}\n`);
} else {
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toLocaleString("en-US", { maximumSignificantDigits: 3 }));
  const usd = (n: number) => `$${n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const table = (title: string, lines: Line[], total: number) => {
    process.stdout.write(`\n${title}\n`);
    for (const l of lines) process.stdout.write(`  ${l.item.padEnd(44)} ${fmt(l.quantity).padStart(18)} ${l.unit.padEnd(18)} ${usd(l.usd).padStart(12)}\n`);
    process.stdout.write(`  ${"total per month".padEnd(82)} ${usd(total).padStart(12)}\n`);
  };
  const m = r.perMonth;
  process.stdout.write(
    `${fmt(input.devices)} devices, ${fmt(input.rate)} readings/s each, a batch every ${fmt(input.batchMs)} ms ` +
      `(${fmt(m.readingsPerBatch)} readings, ${fmt(m.bytesPerReading)} bytes a reading as ${input.format}), ${fmt(m.groups)} group(s)\n` +
      `per month: ${fmt(m.readings)} readings in ${fmt(m.batches)} batches; busiest group needs ${(m.groupThreadLoad * 100).toFixed(1)}% of its object's thread\n`,
  );
  table("Cloudflare (Workers Paid, Durable Objects with SQLite, R2)", r.cloudflare.lines, r.cloudflare.total);
  table("AWS IoT Core, US East (messaging only: storage and aggregation not included)", r.aws.lines, r.aws.total);
  process.stdout.write(`\nList prices read on ${PRICES_READ_ON}; docs/cost.md cites them and explains the model.\n`);
  if (m.groupThreadLoad > 0.7) process.stdout.write("warning: a group this busy needs more groups (--devices-per-group) to keep up\n");
}

/**
 * Counters and the operations endpoint: `/healthz` and Prometheus-format
 * `/metrics` (text exposition format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { REFUSAL_REASONS, type RefusalReason } from "./broker-auth.ts";
import { DROP_REASONS, type DropReason } from "./mapping.ts";

export class BridgeCounters {
  /** MQTT messages handed to the bridge (QoS 0 and 1, redeliveries of held messages excluded). */
  received = 0;
  /** Messages whose readings went out in a batch to the hub. */
  forwarded = 0;
  /** Messages whose batch the hub acked (committed, or already applied: `dup`). */
  hubAcked = 0;
  /** PUBACKs written to the broker. */
  pubacked = 0;
  readonly dropped: Record<DropReason, number> = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<
    DropReason,
    number
  >;
  /** Broker redeliveries of a message this process still held: answered without forwarding it again. */
  redeliveredHeld = 0;
  /**
   * Messages flagged as redelivered (DUP) that the bridge does not hold:
   * sent to an earlier bridge process that may have forwarded them before it
   * died, or already PUBACKed by this one on a connection that broke before
   * the PUBACK arrived. Each is a possible duplicate; their number bounds the
   * duplicates.
   */
  redeliveredUnknown = 0;
  readingsForwarded = 0;
  readingsAcked = 0;
  batchesSent = 0;
  batchesAcked = 0;
  /** Batches the hub acked as `dup`: applied before, resent after a reconnect. */
  batchesDup = 0;
  /** Batches the hub rejected (their messages are split and retried, then dropped as `hub_rejected`). */
  batchesRejected = 0;
  mqttConnects = 0;
  mqttDisconnects = 0;
  hubDisconnects = 0;
  /** What the embedded broker refused: connections, publishes and subscriptions. */
  readonly brokerRefused: Record<RefusalReason, number> = Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as Record<RefusalReason, number>;
}

/** Values sampled when /metrics is read. */
export interface BridgeGauges {
  inflight: number;
  lagSeconds: number;
  mqttConnected: boolean;
  /** group -> socket open */
  hubConnected: ReadonlyMap<string, boolean>;
}

type Sample = [labels: Record<string, string>, value: number];

function family(out: string[], name: string, type: "counter" | "gauge", help: string, samples: Sample[]): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`)
      .join(",");
    out.push(`${name}${l ? `{${l}}` : ""} ${Number.isFinite(value) ? value : 0}`);
  }
}

export function renderMetrics(c: BridgeCounters, g: BridgeGauges): string {
  const out: string[] = [];
  const one = (v: number): Sample[] => [[{}, v]];
  family(out, "bridge_messages_received_total", "counter", "MQTT messages received", one(c.received));
  family(out, "bridge_messages_forwarded_total", "counter", "Messages sent to the hub in a batch", one(c.forwarded));
  family(out, "bridge_messages_hub_acked_total", "counter", "Messages whose batch the hub acked", one(c.hubAcked));
  family(out, "bridge_messages_puback_total", "counter", "PUBACKs sent to the broker", one(c.pubacked));
  family(
    out,
    "bridge_messages_dropped_total",
    "counter",
    "Messages not forwarded, by reason (PUBACKed so they do not block the queue)",
    DROP_REASONS.map((r) => [{ reason: r }, c.dropped[r]]),
  );
  family(out, "bridge_messages_redelivered_total", "counter", "Broker redeliveries: held (deduplicated) or unknown (possible duplicates)", [
    [{ kind: "held" }, c.redeliveredHeld],
    [{ kind: "unknown" }, c.redeliveredUnknown],
  ]);
  family(out, "bridge_readings_forwarded_total", "counter", "Readings sent to the hub", one(c.readingsForwarded));
  family(out, "bridge_readings_acked_total", "counter", "Readings acked by the hub", one(c.readingsAcked));
  family(out, "bridge_batches_sent_total", "counter", "Batches sent to the hub", one(c.batchesSent));
  family(out, "bridge_batches_acked_total", "counter", "Batches acked by the hub", one(c.batchesAcked));
  family(out, "bridge_batches_dup_total", "counter", "Batches the hub acked as already applied", one(c.batchesDup));
  family(out, "bridge_batches_rejected_total", "counter", "Batches the hub rejected", one(c.batchesRejected));
  family(out, "bridge_mqtt_connects_total", "counter", "Successful MQTT connections", one(c.mqttConnects));
  family(out, "bridge_mqtt_disconnects_total", "counter", "MQTT connections lost", one(c.mqttDisconnects));
  family(out, "bridge_hub_disconnects_total", "counter", "Hub sockets lost", one(c.hubDisconnects));
  family(
    out,
    "bridge_broker_refused_total",
    "counter",
    "Embedded broker: connections, publishes and subscriptions refused, by reason",
    REFUSAL_REASONS.map((r) => [{ reason: r }, c.brokerRefused[r]]),
  );
  family(out, "bridge_messages_inflight", "gauge", "Messages received and not yet PUBACKed or dropped", one(g.inflight));
  family(out, "bridge_lag_seconds", "gauge", "Age of the oldest message not yet settled", one(g.lagSeconds));
  family(out, "bridge_mqtt_connected", "gauge", "1 while connected to the broker", one(g.mqttConnected ? 1 : 0));
  family(
    out,
    "bridge_hub_connected",
    "gauge",
    "1 while the group's gateway socket is open",
    [...g.hubConnected].map(([group, open]) => [{ group }, open ? 1 : 0]),
  );
  return `${out.join("\n")}\n`;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves /healthz (200 when healthy, else 503, JSON either way) and /metrics. */
export function serveOps(opts: {
  host: string;
  port: number;
  metrics: () => string;
  health: () => { ok: boolean; [key: string]: unknown };
}): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET" }).end();
    } else if (path === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(opts.metrics());
    } else if (path === "/healthz") {
      const h = opts.health();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify(h));
    } else {
      res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not_found"}');
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

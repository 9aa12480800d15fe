/**
 * The MQTT bridge (docs/bridge.md): MQTT messages in, gateway batches out,
 * and a PUBACK for each message only once the hub has committed it.
 *
 *   broker --QoS 1, persistent session--> MqttSource --Delivery--> mapping --> Forwarder --gateway socket--> hub
 *          <--------------------- PUBACK after the hub's ack (settle) ------------------------------------
 *
 * Every message ends settled exactly one way: acked by the hub, or dropped
 * with a counted reason. Both PUBACK it, so a message the bridge cannot use
 * never blocks the broker's queue.
 */
import { EventEmitter } from "node:events";
import { BRIDGE_CLIENT_PREFIX } from "./broker-auth.ts";
import { DOWNLINK_FILTERS, DownlinkRelay } from "./downlink.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "./embedded-broker.ts";
import { Forwarder } from "./forwarder.ts";
import { Logger } from "./log.ts";
import { TopicMatcher, decodePayload, parseTemplates, subscriptionFilters, type DropReason, type TopicTemplate } from "./mapping.ts";
import { BridgeCounters, renderMetrics, serveOps, type OpsServer } from "./metrics.ts";
import { MqttSource, type Delivery } from "./mqtt-source.ts";
import { checkBrokerAccess, type BridgeConfig } from "./options.ts";

export interface BridgeEvents {
  /** The bridge cannot go on (another bridge took over its gateway id); stop it. */
  fatal: [message: string];
}

export interface Health {
  ok: boolean;
  mqtt: { connected: boolean; protocolVersion: 4 | 5; url: string };
  hub: Record<string, boolean>;
  /** Groups whose token the hub refuses (401): the bridge can never deliver their messages until fixed. */
  unauthorized: string[];
  inflight: number;
  lagSeconds: number;
  fatal: string | null;
  [key: string]: unknown;
}

export interface StartOptions {
  log?: Logger;
  /** Where gateway tokens come from; default: the config's `tokens`. */
  token?: (group: string) => string | null;
  counters?: BridgeCounters;
}

export class Bridge extends EventEmitter<BridgeEvents> {
  readonly counters: BridgeCounters;
  readonly cfg: BridgeConfig;
  readonly log: Logger;
  private readonly templates: TopicTemplate[];
  private readonly matcher: TopicMatcher;
  private readonly source: MqttSource;
  private readonly forwarder: Forwarder<Delivery>;
  /** With --downlink: commands and configuration to the sensors, their answers back. */
  readonly downlink: DownlinkRelay | null;
  private readonly mqttUrl: string;
  private broker: EmbeddedBroker | null;
  private ops: OpsServer | null = null;
  private stopping = false;
  private fatalMessage: string | null = null;

  /** Use {@link startBridge}. */
  constructor(cfg: BridgeConfig, broker: EmbeddedBroker | null, opts: StartOptions) {
    super();
    this.cfg = cfg;
    this.counters = opts.counters ?? new BridgeCounters();
    this.broker = broker;
    this.log = opts.log ?? new Logger({ level: cfg.logLevel });
    this.templates = parseTemplates(cfg.topics, cfg.group);
    this.matcher = new TopicMatcher(this.templates);
    this.mqttUrl = broker ? broker.bridgeUrl : cfg.mqttUrl;
    const token = opts.token ?? ((g: string) => cfg.tokens[g] ?? null);
    const relay = (this.downlink = cfg.downlink
      ? new DownlinkRelay({ publish: (t, p, r) => this.source.publish(t, p, r), reply: (g, f) => this.forwarder.reply(g, f), log: this.log })
      : null);
    this.forwarder = new Forwarder<Delivery>({
      hubUrl: cfg.hubUrl,
      gateway: cfg.gateway,
      token,
      batchMs: cfg.batchMs,
      batchReadings: cfg.batchReadings,
      hubWindow: cfg.hubWindow,
      frames: cfg.frames,
      float32: cfg.float32,
      backoffInitialMs: 100,
      backoffMaxMs: cfg.backoffMaxMs,
      ackTimeoutMs: 30_000,
      counters: this.counters,
      log: this.log,
      onAcked: (d) => this.source.settle(d),
      onRejected: (d, detail) => this.drop(d, "hub_rejected", detail),
      onReplaced: (group) => this.fail(`another connection took over gateway '${cfg.gateway}' of group '${group}'`),
      ...(relay ? { downlink: (group: string, frame: Parameters<DownlinkRelay["fromHub"]>[1]) => relay.fromHub(group, frame) } : {}),
    });
    this.source = new MqttSource(
      {
        url: this.mqttUrl,
        clientId: bridgeClientId(cfg),
        username: broker ? broker.bridgeUsername : (cfg.mqttUsername ?? undefined),
        password: broker ? broker.bridgePassword : (cfg.mqttPassword ?? undefined),
        // aedes speaks MQTT 3.1.1 only.
        protocolVersion: broker ? 4 : cfg.mqttVersion,
        filters: [...subscriptionFilters(this.templates), ...(relay ? DOWNLINK_FILTERS : [])],
        window: cfg.window,
        keepaliveSec: cfg.keepaliveSec,
        reconnectMs: 1000,
        sessionExpirySec: cfg.sessionExpirySec,
      },
      this.counters,
    );
    this.source.on("message", (d) => this.onMessage(d));
    this.source.on("connect", (sessionPresent, protocolVersion) =>
      this.log.info("mqtt.connected", { url: redact(this.mqttUrl), sessionPresent, protocolVersion }),
    );
    this.source.on("disconnect", () => this.log.limited("mqtt.disconnected", "warn", "mqtt.disconnected", { url: redact(this.mqttUrl) }));
    this.source.on("problem", (err) => this.log.limited("mqtt.problem", "warn", "mqtt.problem", { error: err.message }));
  }

  get httpPort(): number | null {
    return this.ops?.port ?? null;
  }

  get brokerPort(): number | null {
    return this.broker?.port ?? null;
  }

  async listen(): Promise<void> {
    if (this.cfg.httpPort !== null) {
      this.ops = await serveOps({
        host: this.cfg.httpHost,
        port: this.cfg.httpPort,
        metrics: () => this.metrics(),
        health: () => this.health(),
      });
    }
    this.source.start();
    // Downlink reaches a group's sensors over its gateway socket: open one per token now, not at its first reading.
    if (this.downlink) for (const g of Object.keys(this.cfg.tokens)) this.forwarder.lane(g);
    this.log.info("bridge.started", {
      mqtt: redact(this.mqttUrl),
      embeddedBroker: this.broker !== null,
      hub: this.cfg.hubUrl,
      gateway: this.cfg.gateway,
      topics: this.templates.map((t) => t.source).join(" "),
      http: this.ops ? `http://${this.cfg.httpHost}:${this.ops.port}` : "off",
    });
  }

  private onMessage(d: Delivery): void {
    // During shutdown, leave new messages unsettled: the broker keeps them for the next run.
    if (this.stopping) return;
    if (d.retain) {
      // A stored retained message replayed because we subscribed: not a new reading.
      this.drop(d, "retained", "retained message sent on subscribe");
      return;
    }
    // A sensor's answer to a command or configuration: to the hub at once (not a reading).
    if (this.downlink?.fromSensor(d.topic, d.payload)) {
      this.source.settle(d);
      return;
    }
    const m = this.matcher.match(d.topic);
    if (m === null) {
      this.drop(d, "unmatched_topic", "no topic template matches");
      return;
    }
    if (m === "bad") {
      this.drop(d, "bad_topic", "a group, device or metric level is not a valid id");
      return;
    }
    const r = decodePayload(d.payload, m.metric, d.receivedAt);
    if (!r.ok) {
      this.drop(d, r.reason, r.detail);
      return;
    }
    if (!this.forwarder.submit(m.group, m.device, r.readings, d)) {
      this.drop(d, "no_token", `no gateway token for group '${m.group}'`);
    }
  }

  private drop(d: Delivery, reason: DropReason, detail: string): void {
    this.counters.dropped[reason]++;
    this.log.limited(`drop:${reason}`, reason === "retained" ? "debug" : "warn", "message.dropped", {
      reason,
      topic: d.topic.slice(0, 200),
      detail: detail.slice(0, 200),
    });
    this.source.settle(d);
  }

  private fail(message: string): void {
    if (this.fatalMessage !== null) return;
    this.fatalMessage = message;
    this.log.log("error", "bridge.fatal", { message });
    this.emit("fatal", message);
  }

  health(): Health {
    const mqtt = { connected: this.source.connected, protocolVersion: this.source.protocolVersion, url: redact(this.mqttUrl) };
    const unauthorized = this.forwarder.unauthorized();
    return {
      ok: mqtt.connected && this.fatalMessage === null && !this.stopping && unauthorized.length === 0,
      mqtt,
      hub: Object.fromEntries(this.forwarder.connections()),
      unauthorized,
      inflight: this.source.inflight,
      lagSeconds: this.source.lagMs() / 1000,
      fatal: this.fatalMessage,
    };
  }

  metrics(): string {
    return renderMetrics(this.counters, {
      inflight: this.source.inflight,
      lagSeconds: this.source.lagMs() / 1000,
      mqttConnected: this.source.connected,
      hubConnected: this.forwarder.connections(),
    });
  }

  /**
   * Stops: sends what is batched, waits up to `drainMs` for the hub's acks
   * (and PUBACKs them), then disconnects. Whatever is still unacked stays in
   * the broker's session and is redelivered to the next run.
   */
  async stop(drainMs = 5000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const drained = await this.forwarder.drain(drainMs);
    if (!drained) this.log.warn("bridge.drain_timeout", { inflight: this.source.inflight });
    // PUBACKs go out in a microtask after the last ack.
    await new Promise((r) => setImmediate(r));
    await this.source.stop();
    await this.forwarder.close();
    await this.ops?.close();
    await this.broker?.close();
    this.broker = null;
    this.log.info("bridge.stopped", { received: this.counters.received, pubacked: this.counters.pubacked });
  }
}

/** Starts the embedded broker (if configured), the ops endpoint and the bridge. */
export async function startBridge(cfg: BridgeConfig, opts: StartOptions = {}): Promise<Bridge> {
  checkBrokerAccess(cfg);
  const log = opts.log ?? new Logger({ level: cfg.logLevel });
  const counters = new BridgeCounters();
  const broker =
    cfg.embeddedBroker === null
      ? null
      : await startEmbeddedBroker({
          port: cfg.embeddedBroker,
          host: cfg.embeddedHost,
          tls: cfg.embeddedTlsCert !== null && cfg.embeddedTlsKey !== null ? { cert: cfg.embeddedTlsCert, key: cfg.embeddedTlsKey } : null,
          users: cfg.brokerUsers ?? new Map(),
          allowAnonymous: cfg.brokerAllowAnonymous,
          templates: parseTemplates(cfg.topics, cfg.group),
          bridgeClientId: bridgeClientId(cfg),
          onRefused: (reason, detail) => {
            counters.brokerRefused[reason]++;
            log.limited(`broker.refused:${reason}`, "warn", "broker.refused", { reason, ...detail });
          },
        });
  if (broker && cfg.brokerAllowAnonymous) {
    log.warn("broker.anonymous", { message: `the embedded broker on ${cfg.embeddedHost}:${broker.port} lets clients without credentials publish to every group; use --broker-users` });
  }
  let bridge: Bridge;
  try {
    bridge = new Bridge(cfg, broker, { ...opts, log, counters });
    await bridge.listen();
  } catch (err) {
    await broker?.close();
    throw err;
  }
  return bridge;
}

function bridgeClientId(cfg: BridgeConfig): string {
  return cfg.clientId ?? `${BRIDGE_CLIENT_PREFIX}${cfg.gateway}`;
}

/** A broker URL without its password, for logs. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "?";
  }
}

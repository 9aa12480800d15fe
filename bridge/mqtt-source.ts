/**
 * The broker side of the bridge: a persistent QoS 1 subscription whose
 * PUBACKs wait until the hub has acked the batch holding each message.
 *
 * MQTT.js PUBACKs a QoS 1 message as soon as `handleMessage` calls back, and
 * handles the next incoming packet only after that. Its `customHandleAcks`
 * option defers the PUBACK the same way (and only for MQTT 5), so holding
 * either callback until the hub acks would take one message per hub round
 * trip. Instead `handleMessage` calls back at once with an error, which makes
 * MQTT.js skip its PUBACK and go on to the next packet, and this module
 * writes the PUBACK itself once the message is settled. The callback is held
 * only to pause reading when the in-flight window is full.
 *
 * A persistent session (clean: false, a fixed client id) makes the broker
 * keep every message not PUBACKed, across bridge restarts, and resend it
 * with its original packet id after a reconnect (MQTT 3.1.1 section 4.4,
 * MQTT 5 section 4.4). Redeliveries of messages this process still holds are
 * matched by packet id, topic and payload, and never forwarded twice.
 */
import { EventEmitter } from "node:events";
import { connect, type IConnackPacket, type IPublishPacket, type MqttClient } from "mqtt";
import type { BridgeCounters } from "./metrics.ts";

export interface MqttSourceOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** 5, 4 (MQTT 3.1.1), or "auto": 5, falling back to 3.1.1 when the broker refuses 5. */
  protocolVersion: 4 | 5 | "auto";
  /** Subscription filters, all at QoS 1. */
  filters: readonly string[];
  /** Messages received and not yet settled, at most; beyond it, reading from the broker pauses. */
  window: number;
  keepaliveSec: number;
  reconnectMs: number;
  /** MQTT 5 session expiry: how long the broker keeps the session (and queued messages) while the bridge is away. */
  sessionExpirySec: number;
}

/** One received message, from arrival until it is settled (forwarded and acked by the hub, or dropped). */
export class Delivery {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  /** Sent because of a new subscription (a stored retained message), not as a new publication. */
  readonly retain: boolean;
  /** The packet id (QoS 1), 0 for QoS 0. */
  readonly messageId: number;
  readonly receivedAt: number;
  /** The connection the broker last delivered it on: a PUBACK is only valid there. */
  conn: number;
  settled = false;
  /** The broker forgot the session it came from: never PUBACK it (the id may name another message now). */
  orphan = false;

  constructor(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean, messageId: number, receivedAt: number, conn: number) {
    this.topic = topic;
    this.payload = payload;
    this.qos = qos;
    this.retain = retain;
    this.messageId = messageId;
    this.receivedAt = receivedAt;
    this.conn = conn;
  }
}

export interface MqttSourceEvents {
  message: [d: Delivery];
  connect: [sessionPresent: boolean, protocolVersion: 4 | 5];
  disconnect: [];
  /** Connection and subscription problems; the source keeps retrying. */
  problem: [err: Error];
}

function noop(): void {}

/** Passed to MQTT.js's handleMessage callback so it skips its own PUBACK (see the module comment). */
const DEFERRED = new Error("PUBACK deferred until the hub acks the message");

/** PUBACK with reason Success and no properties: the same four bytes in MQTT 3.1.1 and 5 (MQTT 5 section 3.4.2.1). */
function puback(id: number): Buffer {
  return Buffer.from([0x40, 0x02, id >> 8, id & 0xff]);
}

export class MqttSource extends EventEmitter<MqttSourceEvents> {
  private readonly opts: MqttSourceOptions;
  private readonly counters: BridgeCounters;
  private client: MqttClient | null = null;
  private version: 4 | 5;
  private everConnected = false;
  /** Between a CONNACK and the next close. */
  private live = false;
  /** Connection number, bumped on every CONNACK. */
  private conn = 0;
  /** QoS 1 messages not yet PUBACKed, by packet id. */
  private readonly held = new Map<number, Delivery>();
  /** Unsettled messages in arrival order: the window, and the oldest one for the lag. */
  private readonly unsettled = new Set<Delivery>();
  /** MQTT.js callbacks held while the window is full. */
  private paused: (() => void)[] = [];
  private pubacks: Delivery[] = [];
  private stopped = false;

  constructor(opts: MqttSourceOptions, counters: BridgeCounters) {
    super();
    this.opts = opts;
    this.counters = counters;
    this.version = opts.protocolVersion === 4 ? 4 : 5;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  get protocolVersion(): 4 | 5 {
    return this.version;
  }

  /** Messages received and not yet settled. */
  get inflight(): number {
    return this.unsettled.size;
  }

  /** Age of the oldest unsettled message, ms (0 when none). */
  lagMs(now = Date.now()): number {
    const oldest = this.unsettled.values().next();
    return oldest.done ? 0 : now - oldest.value.receivedAt;
  }

  start(): void {
    this.open();
  }

  private open(): void {
    const o = this.opts;
    const client = connect(o.url, {
      clientId: o.clientId,
      clean: false,
      protocolVersion: this.version,
      // The broker keeps the subscriptions of a persistent session; subscribing
      // again on every reconnect would make it resend retained messages.
      resubscribe: false,
      reconnectPeriod: o.reconnectMs,
      connectTimeout: 10_000,
      keepalive: o.keepaliveSec,
      username: o.username,
      password: o.password,
      // MQTT.js logs every packet through `debug`; even disabled, those calls
      // cost a few percent of the bridge's CPU at high rates.
      log: noop,
      // MQTT 5: the broker sends at most receiveMaximum unacked messages (the
      // window), and keeps the session for sessionExpiryInterval seconds
      // after a disconnect (0, the default, would drop it at once).
      properties:
        this.version === 5
          ? { sessionExpiryInterval: o.sessionExpirySec, receiveMaximum: Math.min(65_535, Math.max(1, o.window)) }
          : undefined,
    });
    client.handleMessage = (packet, done) => this.onPublish(packet, done);
    client.on("connect", (ack) => this.onConnect(client, ack));
    client.on("close", () => {
      if (this.client !== client) return;
      if (this.live) {
        this.live = false;
        this.counters.mqttDisconnects++;
        this.emit("disconnect");
      }
      // Callbacks of the dead connection's packet pump: calling them lets it finish; it reads nothing more.
      this.release(Infinity);
    });
    client.on("error", (err) => this.onError(client, err));
    this.client = client;
  }

  private onError(client: MqttClient, err: Error): void {
    const code = (err as { code?: unknown }).code;
    // A 3.1.1-only broker (aedes, older Mosquitto) refuses an MQTT 5 CONNECT
    // with "unacceptable protocol version": 1 in 3.1.1, 0x84 in 5.
    if (this.opts.protocolVersion === "auto" && this.version === 5 && !this.everConnected && (code === 1 || code === 0x84)) {
      this.version = 4;
      this.client = null;
      client.end(true);
      this.open();
      return;
    }
    this.emit("problem", err);
  }

  private onConnect(client: MqttClient, ack: IConnackPacket): void {
    if (this.client !== client) return;
    this.conn++;
    this.counters.mqttConnects++;
    const first = !this.everConnected;
    this.everConnected = true;
    this.live = true;
    if (!ack.sessionPresent && this.held.size > 0) {
      // The broker has no session for us (it restarted without persistence,
      // or the session expired): it will not redeliver what we hold, and the
      // packet ids may be reused for other messages.
      for (const d of this.held.values()) d.orphan = true;
      this.held.clear();
    }
    // Subscribe on the first connect of this process too, even with a
    // session present, so changed templates take effect.
    if (first || !ack.sessionPresent) {
      client.subscribe(
        [...this.opts.filters],
        { qos: 1 },
        (err, granted) => {
          if (err) this.emit("problem", err);
          for (const g of granted ?? []) {
            if (g.qos !== 0 && g.qos !== 1 && g.qos !== 2) this.emit("problem", new Error(`subscription to '${g.topic}' refused`));
          }
        },
      );
    }
    this.emit("connect", ack.sessionPresent === true, this.version);
  }

  private onPublish(packet: IPublishPacket, done: (err?: Error) => void): void {
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const now = Date.now();
    if (packet.qos === 0) {
      this.admit(new Delivery(packet.topic, payload, 0, packet.retain, 0, now, this.conn));
      this.proceed(() => done());
      return;
    }
    // Subscriptions ask for QoS 1, so the broker never sends QoS 2.
    const id = packet.messageId ?? 0;
    const prev = this.held.get(id);
    if (prev) {
      if (prev.topic === packet.topic && prev.payload.equals(payload)) {
        // Resent after a reconnect while we still held it: it is already in a batch (or acked).
        this.counters.redeliveredHeld++;
        prev.conn = this.conn;
        if (prev.settled) this.queuePuback(prev);
        done(DEFERRED);
        return;
      }
      prev.orphan = true;
      this.held.delete(id);
    }
    if (packet.dup) this.counters.redeliveredUnknown++;
    const d = new Delivery(packet.topic, payload, 1, packet.retain, id, now, this.conn);
    this.held.set(id, d);
    this.admit(d);
    this.proceed(() => done(DEFERRED));
  }

  private admit(d: Delivery): void {
    this.unsettled.add(d);
    this.counters.received++;
    this.emit("message", d);
  }

  /** Lets MQTT.js read the next packet now, or once the window has room. */
  private proceed(next: () => void): void {
    if (this.unsettled.size >= this.opts.window && !this.stopped) this.paused.push(next);
    else next();
  }

  private release(room: number): void {
    while (this.paused.length > 0 && room-- > 0) this.paused.shift()?.();
  }

  /**
   * The message is done with: acked by the hub, or dropped for good. QoS 1
   * messages are PUBACKed on the connection they last arrived on; if that
   * one is gone, the broker resends them after the reconnect and they are
   * PUBACKed then (see onPublish).
   */
  settle(d: Delivery): void {
    if (d.settled) return;
    d.settled = true;
    this.unsettled.delete(d);
    if (d.qos === 1 && !d.orphan) this.queuePuback(d);
    this.release(this.opts.window - this.unsettled.size);
  }

  private queuePuback(d: Delivery): void {
    if (this.pubacks.length === 0) queueMicrotask(() => this.flushPubacks());
    this.pubacks.push(d);
  }

  /** Writes the PUBACKs settled in this turn as one write. */
  private flushPubacks(): void {
    const batch = this.pubacks;
    this.pubacks = [];
    const client = this.client;
    if (!client?.connected) return; // still held; PUBACKed when redelivered
    const out: Buffer[] = [];
    for (const d of batch) {
      if (d.orphan || d.conn !== this.conn || this.held.get(d.messageId) !== d) continue;
      this.held.delete(d.messageId);
      out.push(puback(d.messageId));
    }
    if (out.length === 0) return;
    client.stream.write(out.length === 1 ? out[0] : Buffer.concat(out));
    this.counters.pubacked += out.length;
  }

  /**
   * Publishes at QoS 1 on the bridge's own connection (downlink to sensors);
   * resolves on the broker's PUBACK, rejects when there is no connection.
   */
  publish(topic: string, payload: string, retain: boolean): Promise<void> {
    const client = this.client;
    if (!client?.connected) return Promise.reject(new Error("not connected to the broker"));
    return new Promise((resolve, reject) => client.publish(topic, payload, { qos: 1, retain }, (err) => (err ? reject(err) : resolve())));
  }

  /** Disconnects cleanly; unsettled messages stay with the broker's session and come back to the next run. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.release(Infinity);
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync().catch(() => client.end(true));
  }
}

import { runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { drizzle } from "drizzle-orm/durable-sqlite";
import { migrate } from "drizzle-orm/durable-sqlite/migrator";
import journal from "../../schema/migrations/meta/_journal.json";
import migrations from "../../schema/migrations/migrations.js";
import { decodeCbor, encodeCbor, type CborValue } from "../../schema/cbor.ts";
import type { AggregateBucket } from "../../schema/api.ts";
import { withTimeout } from "../../harness/wait.ts";
import { HubError } from "../../schema/client.ts";
import { deviceToken, gatewayToken, operatorToken } from "../tokens.ts";

export { makeReadings } from "./readings.ts";
// Group names unique per test, so Durable Objects never leak state between tests.
export { uniqueGroup } from "../../harness/names.ts";
export { withTimeout } from "../../harness/wait.ts";
export { deviceToken, gatewayToken, operatorToken } from "../tokens.ts";

export interface Closed {
  code: number;
  reason: string;
}

/** Client end of a device socket with an inbox of decoded frames. */
export class TestSocket {
  readonly ws: WebSocket;
  private inbox: unknown[] = [];
  private waiters: ((v: unknown) => void)[] = [];
  closed: Promise<Closed>;

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason }));
    });
    ws.addEventListener("message", (e) => {
      const data: unknown = e.data;
      const frame = typeof data === "string" ? data : decodeFrame(data);
      const w = this.waiters.shift();
      if (w) w(frame);
      else this.inbox.push(frame);
    });
    // Compatibility dates from 2026 default binaryType to "blob", per the WHATWG spec.
    ws.binaryType = "arraybuffer";
    ws.accept();
  }

  /** The next frame from the hub (decoded CBOR, or the text of a text frame). */
  next(timeoutMs = 5000): Promise<unknown> {
    if (this.inbox.length > 0) return Promise.resolve(this.inbox.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timed out waiting for a frame")), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  }

  send(frame: CborValue): void {
    this.ws.send(encodeCbor(frame));
  }

  sendRaw(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  /** Frames received but not yet taken with {@link next}. */
  takeAll(): unknown[] {
    const out = this.inbox;
    this.inbox = [];
    return out;
  }

  /** Resolves when the hub closes the socket; rejects after `timeoutMs`. */
  closedWithin(timeoutMs = 5000): Promise<Closed> {
    return withTimeout(this.closed, timeoutMs, "the socket to close");
  }

  close(): void {
    this.ws.close(1000, "done");
  }
}

function decodeFrame(data: unknown): unknown {
  // The socket may hand over an ArrayBuffer from another realm, so check the tag, not instanceof.
  if (Object.prototype.toString.call(data) !== "[object ArrayBuffer]") {
    throw new Error(`unexpected frame type ${Object.prototype.toString.call(data)}`);
  }
  const r = decodeCbor(new Uint8Array(data as ArrayBuffer));
  if (!r.ok) throw new Error(`hub sent bad CBOR: ${r.message}`);
  return r.value;
}

export async function openSocket(path: string, token?: string): Promise<Response> {
  const headers: Record<string, string> = { upgrade: "websocket" };
  if (token) headers.authorization = `Bearer ${token}`;
  return SELF.fetch(`http://hub.test${path}`, { headers });
}

/** Connects a device and consumes its hello; returns the socket and the hello's lastSeq. */
export async function connectDevice(group: string, device: string): Promise<{ sock: TestSocket; lastSeq: number }> {
  const res = await openSocket(`/v1/groups/${group}/devices/${device}/ws`, await deviceToken(group, device));
  if (res.status !== 101 || !res.webSocket) throw new Error(`expected 101, got ${res.status}: ${await res.text()}`);
  const sock = new TestSocket(res.webSocket);
  const hello = (await sock.next()) as { type: string; lastSeq: number };
  if (hello.type !== "hello") throw new Error(`expected hello, got ${JSON.stringify(hello)}`);
  return { sock, lastSeq: hello.lastSeq };
}

/** Connects a gateway and consumes its hello; returns the socket and the hello's lastSeq. */
export async function connectGateway(group: string, gateway: string): Promise<{ sock: TestSocket; lastSeq: number }> {
  const res = await openSocket(`/v1/groups/${group}/gateways/${gateway}/ws`, await gatewayToken(group, gateway));
  if (res.status !== 101 || !res.webSocket) throw new Error(`expected 101, got ${res.status}: ${await res.text()}`);
  const sock = new TestSocket(res.webSocket);
  const hello = (await sock.next()) as { type: string; v: number; lastSeq: number };
  if (hello.type !== "hello" || hello.v !== 1) throw new Error(`expected hello, got ${JSON.stringify(hello)}`);
  return { sock, lastSeq: hello.lastSeq };
}

/** Client end of a dashboard (live) socket: JSON frames in an inbox. */
export class LiveClient {
  readonly ws: WebSocket;
  readonly frames: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  closed: Promise<number>;
  /** Ask for `delta` frames in every ack, as the dashboard does. */
  delta = false;

  constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((r) => ws.addEventListener("close", (e) => r(e.code)));
    ws.addEventListener("message", (e) => {
      if (typeof e.data !== "string") throw new Error("live frames must be text");
      this.frames.push(JSON.parse(e.data) as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.accept();
  }

  /** Waits for frame number `i` (0: the snapshot), failing after `ms`. */
  async frame(i: number, ms = 3000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    while (this.frames.length <= i) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame ${i} within ${ms} ms (have ${this.frames.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    const f = this.frames[i];
    if (!f) throw new Error("missing frame");
    return f;
  }

  /** Acks every frame from `from` on, waiting for the first frame that satisfies `done`; returns it. */
  async until(done: (f: Record<string, unknown>) => boolean, from = 0, ms = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (let i = from; ; i++) {
      const f = await this.frame(i, Math.max(1, deadline - Date.now()));
      this.ack(f);
      if (done(f)) return f;
    }
  }

  ack(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ type: "ack", seq: frame.seq, ...(this.delta ? { delta: true } : {}) }));
  }
}

/** Opens a dashboard socket with an operator token (or `token`). */
export async function openLive(group: string, token?: string): Promise<LiveClient> {
  const t = token ?? (await operatorToken(group));
  const res = await SELF.fetch(`http://hub.test/v1/groups/${group}/live?token=${t}`, { headers: { upgrade: "websocket" } });
  if (res.status !== 101 || !res.webSocket) throw new Error(`live: ${res.status} ${await res.text()}`);
  return new LiveClient(res.webSocket);
}

export async function getJson(path: string, token: string): Promise<{ status: number; body: unknown }> {
  const res = await SELF.fetch(`http://hub.test${path}`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

export type BucketJson = AggregateBucket;

export async function aggregates(group: string, query = ""): Promise<BucketJson[]> {
  const { status, body } = await getJson(`/v1/groups/${group}/aggregates${query}`, await operatorToken(group));
  if (status !== 200) throw new Error(`aggregates: ${status} ${JSON.stringify(body)}`);
  return (body as { buckets: BucketJson[] }).buckets;
}

export interface DeviceJson {
  id: string;
  lastSeq: number;
  lastSeen: number;
  online: boolean;
  readings: number;
}

/** GET /v1/groups/{group}/devices with an operator token. */
export async function devices(group: string): Promise<DeviceJson[]> {
  const { status, body } = await getJson(`/v1/groups/${group}/devices`, await operatorToken(group));
  if (status !== 200) throw new Error(`devices: ${status} ${JSON.stringify(body)}`);
  return (body as { devices: DeviceJson[] }).devices;
}

/** The device's lastSeq from the devices route; throws if the device is not listed. */
export async function lastSeqOf(group: string, device: string): Promise<number> {
  const d = (await devices(group)).find((x) => x.id === device);
  if (!d) throw new Error(`device ${device} is not listed in group ${group}`);
  return d.lastSeq;
}

/** Start (ms) of the minute bucket `minutesAgo` minutes before the current one. */
export function bucketAgo(minutesAgo: number): number {
  return Math.floor(Date.now() / 60_000) * 60_000 - minutesAgo * 60_000;
}

/**
 * Runs a group's alarm now with the named scheduler tasks made due first
 * (`runDurableObjectAlarm` fires early, while tasks keep their own due times).
 * Returns whether an alarm was set.
 */
export async function runTasksNow(stub: DurableObjectStub, ...tasks: string[]): Promise<boolean> {
  await runInDurableObject(stub, (_obj, state) => {
    for (const t of tasks) if (state.storage.kv.get(`sched:${t}`) !== undefined) state.storage.kv.put(`sched:${t}`, 0);
  });
  return runDurableObjectAlarm(stub);
}

/** The HubError a call (of the typed REST client) rejects with; throws if it resolves or fails otherwise. */
export async function refusal(p: Promise<unknown>): Promise<HubError> {
  const err: unknown = await p.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof HubError)) throw new Error(`expected a HubError, got ${String(err)}`);
  return err;
}

/**
 * Makes a group's database one written by the code of an older schema:
 * every table dropped (with its triggers), then only the migrations whose
 * tag comes before the one ending in `before` applied.
 */
export async function databaseBefore(state: DurableObjectState, before: string): Promise<void> {
  const sql = state.storage.sql;
  const tables = sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name <> 'sqlite_sequence'").toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
  const idx = journal.entries.findIndex((e) => e.tag.endsWith(before));
  if (idx < 0) throw new Error(`no migration ${before}`);
  await migrate(drizzle(state.storage), { ...migrations, journal: { ...journal, entries: journal.entries.filter((e) => e.idx < idx) } });
}

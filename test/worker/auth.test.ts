/**
 * The Worker's front door: auth, id and method checks, routing, query
 * parsing, and proof that rejected requests never reach a Durable Object.
 * Also the aggregates route's filters and ordering.
 */
import { SELF, env, listDurableObjectIds } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { deviceSubject, operatorSubject, signToken } from "../../schema/token.ts";
import { TEST_SECRET } from "../secret.ts";
import {
  TestSocket,
  aggregates,
  bucketAgo,
  connectDevice,
  deviceToken,
  operatorToken,
  uniqueGroup,
  type BucketJson,
} from "./helpers.ts";

const DEVICE = "d1";
const socketPath = (g: string, d = DEVICE): string => `/v1/groups/${g}/devices/${d}/ws`;
const devicesPath = (g: string): string => `/v1/groups/${g}/devices`;
const aggregatesPath = (g: string): string => `/v1/groups/${g}/aggregates`;

interface CallOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Send `upgrade: websocket`; the default for GET on a socket path. */
  upgrade?: boolean;
}

async function call(path: string, opts: CallOptions = {}): Promise<Response> {
  const url = `http://hub.test${path}`;
  const method = opts.method ?? "GET";
  const headers: Record<string, string> = { ...opts.headers };
  // workerd's fetch() turns any request carrying `upgrade: websocket` into a
  // GET WebSocket handshake, so other methods are sent without it.
  if (opts.upgrade ?? (method === "GET" && new URL(url).pathname.endsWith("/ws"))) headers.upgrade = "websocket";
  return SELF.fetch(url, { method, headers });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Asserts a JSON error response `{ error, message }` with a non-empty message. */
async function expectJsonError(res: Response, status: number, error: string, label = ""): Promise<void> {
  expect(res.status, label).toBe(status);
  expect(res.headers.get("content-type"), label).toMatch(/^application\/json/);
  const body: unknown = await res.json();
  expect(body, label).toStrictEqual({ error, message: expect.stringMatching(/.+/) });
}

/** Closes the client end of an accepted upgrade so the socket does not linger. */
function closeUpgrade(res: Response): TestSocket {
  if (!res.webSocket) throw new Error(`expected a WebSocket, got status ${res.status}`);
  return new TestSocket(res.webSocket);
}

async function isListed(group: string): Promise<boolean> {
  const id = env.GROUPS.idFromName(group);
  const ids = await listDurableObjectIds(env.GROUPS);
  return ids.some((x) => x.equals(id));
}

interface Rejected {
  name: string;
  path: string;
  opts?: CallOptions;
}

/** Every request that must get 401 for group `g`. */
async function unauthorizedRequests(g: string): Promise<Rejected[]> {
  const other = uniqueGroup("other");
  const devTok = await deviceToken(g, DEVICE);
  const opTok = await operatorToken(g);
  const starTok = await signToken(TEST_SECRET, operatorSubject("*"));
  const wrongFormat = "A".repeat(43); // right shape, wrong MAC
  const otherSecret = await signToken("some-other-secret", deviceSubject(g, DEVICE));
  const otherSecretOp = await signToken("some-other-secret", operatorSubject(g));
  const malformed: [string, string][] = [
    ["'Bearer' alone", "Bearer"],
    ["'Bearer ' with trailing space", "Bearer "],
    ["Basic scheme", "Basic dXNlcjpwYXNz"],
    ["two tokens", `Bearer ${devTok} ${devTok}`],
    ["token without scheme", devTok],
    ["empty header", ""],
  ];
  const out: Rejected[] = [];

  // Device socket.
  const sock = socketPath(g);
  out.push(
    { name: "socket: no token", path: sock },
    { name: "socket: wrong token", path: sock, opts: { headers: bearer(wrongFormat) } },
    { name: "socket: garbage token", path: sock, opts: { headers: bearer("nope") } },
    { name: "socket: token signed with another secret", path: sock, opts: { headers: bearer(otherSecret) } },
    { name: "socket: device token of another group", path: sock, opts: { headers: bearer(await deviceToken(other, DEVICE)) } },
    { name: "socket: token of another device", path: sock, opts: { headers: bearer(await deviceToken(g, "d2")) } },
    { name: "socket: operator token of the group", path: sock, opts: { headers: bearer(opTok) } },
    { name: "socket: operator:* token", path: sock, opts: { headers: bearer(starTok) } },
    { name: "socket: wrong ?token=", path: `${sock}?token=${wrongFormat}` },
    { name: "socket: empty ?token=", path: `${sock}?token=` },
    { name: "socket: operator ?token=", path: `${sock}?token=${opTok}` },
    // An Authorization header, even a malformed one, is the token source; a good ?token= does not rescue it.
    { name: "socket: malformed header with a good ?token=", path: `${sock}?token=${devTok}`, opts: { headers: { authorization: "Basic x" } } },
  );
  for (const [label, value] of malformed) {
    out.push({ name: `socket: malformed header, ${label}`, path: sock, opts: { headers: { authorization: value } } });
  }

  // REST routes.
  for (const [route, path] of [
    ["devices", devicesPath(g)],
    ["aggregates", aggregatesPath(g)],
  ] as const) {
    out.push(
      { name: `${route}: no token`, path },
      { name: `${route}: wrong token`, path, opts: { headers: bearer(wrongFormat) } },
      { name: `${route}: garbage token`, path, opts: { headers: bearer("nope") } },
      { name: `${route}: token signed with another secret`, path, opts: { headers: bearer(otherSecretOp) } },
      { name: `${route}: operator token of another group`, path, opts: { headers: bearer(await operatorToken(other)) } },
      { name: `${route}: device token of the group`, path, opts: { headers: bearer(devTok) } },
      { name: `${route}: device ?token=`, path: `${path}?token=${devTok}` },
      { name: `${route}: wrong ?token=`, path: `${path}?token=${wrongFormat}` },
      {
        name: `${route}: malformed header with a good ?token=`,
        path: `${path}?token=${opTok}`,
        opts: { headers: { authorization: `Token ${opTok}` } },
      },
    );
    for (const [label, value] of malformed) {
      const v = value === devTok ? opTok : value.replaceAll(devTok, opTok);
      out.push({ name: `${route}: malformed header, ${label}`, path, opts: { headers: { authorization: v } } });
    }
  }
  return out;
}

describe("auth", () => {
  it("answers 401 JSON to every missing, wrong or misused token, and no such request reaches a Durable Object", async () => {
    const group = uniqueGroup("unauth");
    const requests = await unauthorizedRequests(group);
    for (const r of requests) {
      const res = await call(r.path, r.opts);
      await expectJsonError(res, 401, "unauthorized", r.name);
      expect(res.headers.get("www-authenticate"), r.name).toMatch(/^Bearer /);
    }
    expect(await isListed(group)).toBe(false);
  });

  it("accepts the device token on the socket, by header or ?token=", async () => {
    const group = uniqueGroup("tok");
    const token = await deviceToken(group, DEVICE);
    for (const [label, res] of [
      ["header", await call(socketPath(group), { headers: bearer(token) })],
      ["lower-case scheme", await call(socketPath(group), { headers: { authorization: `bearer ${token}` } })],
      ["query", await call(`${socketPath(group)}?token=${token}`)],
    ] as const) {
      expect(res.status, label).toBe(101);
      const sock = closeUpgrade(res);
      expect(await sock.next(), label).toMatchObject({ type: "hello" });
      sock.close();
    }
  });

  it("accepts the group's operator token on both REST routes, by header or ?token=", async () => {
    const group = uniqueGroup("op");
    const token = await operatorToken(group);
    for (const path of [devicesPath(group), aggregatesPath(group)]) {
      for (const res of [await call(path, { headers: bearer(token) }), await call(`${path}?token=${token}`)]) {
        expect(res.status, path).toBe(200);
        expect(res.headers.get("content-type")).toMatch(/^application\/json/);
        expect(await res.json()).toEqual(path.endsWith("devices") ? { devices: [] } : { resolution: "minute", buckets: [], truncated: false });
      }
    }
  });

  it("accepts an operator:* token for any group", async () => {
    const star = await signToken(TEST_SECRET, operatorSubject("*"));
    for (const group of [uniqueGroup("star"), uniqueGroup("star")]) {
      const { sock } = await connectDevice(group, DEVICE);
      sock.send({ type: "batch", seq: 4, readings: [[bucketAgo(1), "temp", 2]] });
      expect(await sock.next()).toEqual({ type: "ack", seq: 4 });
      sock.close();
      const devs = await call(devicesPath(group), { headers: bearer(star) });
      expect(devs.status).toBe(200);
      expect(await devs.json()).toMatchObject({ devices: [{ id: DEVICE, lastSeq: 4 }] });
      const aggs = await call(`${aggregatesPath(group)}?token=${star}`);
      expect(aggs.status).toBe(200);
      expect(await aggs.json()).toMatchObject({ buckets: [{ device: DEVICE, metric: "temp", count: 1, sum: 2 }], truncated: false });
    }
  });

  it("accepts ids of exactly 64 characters", async () => {
    const group = uniqueGroup("long").padEnd(64, "x");
    const device = "d".repeat(64);
    expect(group).toHaveLength(64);
    const { sock, lastSeq } = await connectDevice(group, device);
    expect(lastSeq).toBe(0);
    sock.close();
    const res = await call(devicesPath(group), { headers: bearer(await operatorToken(group)) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ devices: [{ id: device }] });
  });
});

describe("requests rejected before any Durable Object", () => {
  it("answers 400 to bad group and device ids, whatever the token", async () => {
    const good = uniqueGroup("ids");
    const devTok = await deviceToken(good, DEVICE);
    const opTok = await operatorToken(good);
    const badIds = ["a%20b", "g".repeat(65), "x%2Fy", "%zz", "a%00b", "caf%C3%A9"];
    for (const bad of badIds) {
      for (const headers of [{}, bearer(devTok), bearer(opTok)]) {
        await expectJsonError(await call(socketPath(bad), { headers }), 400, "bad_group", `socket group ${bad}`);
        await expectJsonError(await call(devicesPath(bad), { headers }), 400, "bad_group", `devices group ${bad}`);
        await expectJsonError(await call(aggregatesPath(bad), { headers }), 400, "bad_group", `aggregates group ${bad}`);
        await expectJsonError(await call(socketPath(good, bad), { headers }), 400, "bad_device", `device ${bad}`);
      }
    }
    expect(await isListed(good)).toBe(false);
  });

  it("answers 426 to the socket route without a WebSocket upgrade, 405 to other methods, 404 to unknown routes", async () => {
    const group = uniqueGroup("route");
    const devTok = await deviceToken(group, DEVICE);
    const opTok = await operatorToken(group);

    for (const headers of [bearer(devTok), { ...bearer(devTok), upgrade: "h2c" }, {}]) {
      const res = await call(socketPath(group), { headers, upgrade: false });
      await expectJsonError(res, 426, "upgrade_required", JSON.stringify(headers));
      expect(res.headers.get("upgrade")).toBe("websocket");
    }

    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      for (const [path, token] of [
        [socketPath(group), devTok],
        [devicesPath(group), opTok],
        [aggregatesPath(group), opTok],
      ] as const) {
        const res = await call(path, { method, headers: bearer(token) });
        await expectJsonError(res, 405, "method_not_allowed", `${method} ${path}`);
        expect(res.headers.get("allow")).toBe("GET");
      }
    }

    const unknown = [
      "/v1/",
      "/v1/nope",
      "/v1/groupz",
      `/v1/groups/${group}`,
      `/v1/groups/${group}/`,
      `/v1/groups/${group}/foo`,
      `/v1/groups/${group}/devices/`,
      `/v1/groups/${group}/devices/${DEVICE}`,
      `/v1/groups/${group}/devices/${DEVICE}/ws/extra`,
      `/v1/groups/${group}/devices/${DEVICE}/socket`,
      `/v1/groups/${group}/aggregates/x`,
      `/v1/groups/x/${group}/devices`,
      `/v1/v2/groups/${group}/devices`,
    ];
    for (const path of unknown) {
      await expectJsonError(await call(path, { headers: bearer(opTok) }), 404, "not_found", path);
      await expectJsonError(await call(path, { method: "POST", headers: bearer(opTok) }), 404, "not_found", `POST ${path}`);
    }

    expect(await isListed(group)).toBe(false);
  });

  it("answers 400 bad_query to malformed aggregate filters", async () => {
    const group = uniqueGroup("query");
    const token = await operatorToken(group);
    const bad = [
      "from=abc",
      "to=abc",
      "from=1.5",
      "from=1e3",
      "from=%20100",
      "from=99999999999999999",
      "from=9999999999999999",
      "from=2000&to=1000",
      "device=a%20b",
      `device=${"d".repeat(65)}`,
      "device=x%2Fy",
      "metric=bad%20metric",
      `metric=${"m".repeat(65)}`,
    ];
    for (const q of bad) {
      await expectJsonError(await call(`${aggregatesPath(group)}?${q}`, { headers: bearer(token) }), 400, "bad_query", q);
    }
    expect(await isListed(group)).toBe(false);
  });

  it("lists a group's Durable Object once a valid request reached it (control for the checks above)", async () => {
    const group = uniqueGroup("control");
    expect(await isListed(group)).toBe(false);
    const res = await call(devicesPath(group), { headers: bearer(await operatorToken(group)) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(await isListed(group)).toBe(true);

    const sockGroup = uniqueGroup("control-ws");
    const { sock } = await connectDevice(sockGroup, DEVICE);
    sock.close();
    expect(await isListed(sockGroup)).toBe(true);
  });
});

describe("aggregates filters", () => {
  it("filters by device, metric, from and to, sorted by device, metric, start", async () => {
    const group = uniqueGroup("filters");
    const t0 = bucketAgo(5);
    const m1 = t0 + 60_000;
    const m2 = t0 + 120_000;
    // Sent out of order across devices, metrics and minutes.
    const b = await connectDevice(group, "b-dev");
    b.sock.send({
      type: "batch",
      seq: 1,
      readings: [
        [m2 + 5, "z", 6],
        [t0 + 5, "z", 1],
        [m1 + 5, "a", 4],
        [t0 + 7, "a", 2],
      ],
    });
    expect(await b.sock.next()).toEqual({ type: "ack", seq: 1 });
    const a = await connectDevice(group, "a-dev");
    a.sock.send({
      type: "batch",
      seq: 1,
      readings: [
        [m1 + 9, "z", 30],
        [m2 + 9, "a", 50],
        [t0 + 9, "z", 10],
        [t0 + 9, "a", 20],
      ],
    });
    expect(await a.sock.next()).toEqual({ type: "ack", seq: 1 });
    b.sock.close();
    a.sock.close();

    const bucket = (device: string, metric: string, start: number, v: number): BucketJson => ({
      device,
      metric,
      start,
      count: 1,
      sum: v,
      min: v,
      max: v,
      last: v,
    });
    const all: BucketJson[] = [
      bucket("a-dev", "a", t0, 20),
      bucket("a-dev", "a", m2, 50),
      bucket("a-dev", "z", t0, 10),
      bucket("a-dev", "z", m1, 30),
      bucket("b-dev", "a", t0, 2),
      bucket("b-dev", "a", m1, 4),
      bucket("b-dev", "z", t0, 1),
      bucket("b-dev", "z", m2, 6),
    ];
    const where = (f: (x: BucketJson) => boolean): BucketJson[] => all.filter(f);

    expect(await aggregates(group)).toEqual(all);
    expect(await aggregates(group, "?device=a-dev")).toEqual(where((x) => x.device === "a-dev"));
    expect(await aggregates(group, "?metric=z")).toEqual(where((x) => x.metric === "z"));
    expect(await aggregates(group, "?device=b-dev&metric=a")).toEqual([bucket("b-dev", "a", t0, 2), bucket("b-dev", "a", m1, 4)]);
    expect(await aggregates(group, "?device=nobody")).toEqual([]);
    expect(await aggregates(group, "?metric=nothing")).toEqual([]);
    // from: buckets that end after it, so the bucket holding `from` is included.
    expect(await aggregates(group, `?from=${m1}`)).toEqual(where((x) => x.start >= m1));
    expect(await aggregates(group, `?from=${m1 + 30_000}`)).toEqual(where((x) => x.start >= m1));
    expect(await aggregates(group, `?from=${m2 + 1}`)).toEqual(where((x) => x.start === m2));
    // to: buckets that start before it.
    expect(await aggregates(group, `?to=${m1}`)).toEqual(where((x) => x.start === t0));
    expect(await aggregates(group, `?to=${m1 + 1}`)).toEqual(where((x) => x.start <= m1));
    expect(await aggregates(group, `?from=${m1}&to=${m2}`)).toEqual(where((x) => x.start === m1));
    expect(await aggregates(group, `?from=${m1}&to=${m1}`)).toEqual([]);
    expect(await aggregates(group, `?device=a-dev&metric=a&from=${t0 + 1}&to=${m2 + 1}`)).toEqual([
      bucket("a-dev", "a", t0, 20),
      bucket("a-dev", "a", m2, 50),
    ]);
    expect(await aggregates(group, `?device=&metric=&from=&to=`)).toEqual(all);
  });
});

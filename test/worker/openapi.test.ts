/** `/v1/openapi.json`: a well-formed OpenAPI 3.1 document listing every route of the contract. */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";

/** The routes of docs/protocol.md, "HTTP routes": the contract the document must list, no more, no less. */
const CONTRACT = [
  "get /v1/health",
  "get /v1/openapi.json",
  "get /v1/groups",
  "get /v1/groups/{group}/devices/{device}/ws",
  "get /v1/groups/{group}/gateways/{gateway}/ws",
  "get /v1/groups/{group}/devices",
  "get /v1/groups/{group}/aggregates",
  "get /v1/groups/{group}/readings",
  "get /v1/groups/{group}/live",
  "get /v1/groups/{group}/rules",
  "put /v1/groups/{group}/rules",
  "get /v1/groups/{group}/alerts",
  "get /v1/groups/{group}/rates",
  "get /v1/groups/{group}/revocations",
  "put /v1/groups/{group}/revocations/{kind}/{id}",
  "delete /v1/groups/{group}/revocations/{kind}/{id}",
  "get /v1/groups/{group}/peers/{kind}/{id}/seq",
  "put /v1/groups/{group}/peers/{kind}/{id}/seq",
  "post /v1/groups/{group}/devices/{device}/commands",
  "get /v1/groups/{group}/devices/{device}/commands",
  "get /v1/groups/{group}/devices/{device}/commands/{id}",
  "put /v1/groups/{group}/devices/{device}/config",
  "get /v1/groups/{group}/devices/{device}/config",
  "put /v1/groups/{group}/config",
  "get /v1/groups/{group}/storage",
  "get /v1/groups/{group}/retention",
  "put /v1/groups/{group}/retention",
];

interface Operation {
  operationId?: string;
  parameters?: { name: string; in: string; required?: boolean; schema?: unknown }[];
  requestBody?: unknown;
  responses?: Record<string, unknown>;
  security?: unknown[];
}

interface Doc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
}

async function document(): Promise<Doc> {
  const res = await SELF.fetch("http://hub.test/v1/openapi.json");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return (await res.json()) as Doc;
}

/** Every `$ref` anywhere in `value`. */
function refs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) refs(v, out);
  else if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe("GET /v1/openapi.json", () => {
  it("is an OpenAPI 3.1 document listing exactly the contract's routes", async () => {
    const doc = await document();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.title).toBe("Telemetry Hub");
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed.sort()).toEqual([...CONTRACT].sort());
  });

  it("is well formed: unique operation ids, path parameters match the templates, every $ref resolves", async () => {
    const doc = await document();
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method} ${path}`;
        expect(op.operationId, where).toBeTypeOf("string");
        expect(ids.has(op.operationId ?? ""), `${where}: duplicate operationId`).toBe(false);
        ids.add(op.operationId ?? "");
        const pathParams = (op.parameters ?? []).filter((p) => p.in === "path");
        expect(pathParams.map((p) => p.name).sort(), where).toEqual(templated);
        for (const p of op.parameters ?? []) {
          expect(["path", "query"], where).toContain(p.in);
          expect(p.schema, `${where} ${p.name}`).toBeTypeOf("object");
          if (p.in === "path") expect(p.required, `${where} ${p.name}`).toBe(true);
        }
        const statuses = Object.keys(op.responses ?? {});
        expect(statuses.some((s) => s === "200" || s === "202" || s === "101"), where).toBe(true);
        expect(statuses, where).toContain("503");
        if (path !== "/v1/health") expect(statuses, where).toContain("405");
        for (const scheme of (op.security ?? []).flatMap((s) => Object.keys(s as object))) {
          expect(doc.components.securitySchemes, where).toHaveProperty(scheme);
        }
      }
    }
    const targets = refs(doc);
    expect(targets.length).toBeGreaterThan(10);
    for (const target of targets) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(target)?.[1];
      expect(name, target).toBeDefined();
      expect(doc.components.schemas, target).toHaveProperty(name ?? "");
    }
  });

  it("documents the query filters and the error body", async () => {
    const doc = await document();
    const aggregates = doc.paths["/v1/groups/{group}/aggregates"]?.get;
    expect((aggregates?.parameters ?? []).filter((p) => p.in === "query").map((p) => [p.name, p.required])).toEqual([
      ["device", false],
      ["metric", false],
      ["from", false],
      ["to", false],
      ["resolution", false],
      ["maxPoints", false],
    ]);
    expect(doc.components.schemas.Error).toMatchObject({ type: "object", required: ["error", "message"] });
    expect(doc.components.schemas.AggregateBucket).toMatchObject({ required: ["device", "metric", "start", "count", "sum", "min", "max", "last"] });
    expect(doc.paths["/v1/groups/{group}/rules"]?.put?.requestBody).toMatchObject({ content: { "application/json": { schema: { $ref: "#/components/schemas/RulesDoc" } } } });
  });

  it("accepts GET only, like every route", async () => {
    const res = await SELF.fetch("http://hub.test/v1/openapi.json", { method: "POST" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET");
  });
});

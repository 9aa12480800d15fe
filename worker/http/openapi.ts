/**
 * `GET /v1/openapi.json`: an OpenAPI 3.1 document generated from the route
 * declarations (routes.ts) and the body schemas (schema/api.ts) with zod's
 * own JSON Schema output, so the document cannot drift from what the Worker
 * validates and answers.
 */
import * as z from "zod/mini";
import { PROTOCOL_VERSION } from "../../schema/protocol.ts";
import { ERROR_REASONS, ROUTES, type Caller, type RouteSpec } from "./routes.ts";

type Json = Record<string, unknown>;

const ref = (id: string): string => `#/components/schemas/${id}`;

/** A schema with an id (`.meta({ id })`) is a component and referenced; any other is inlined. */
function schemaOf(schema: z.ZodMiniType): Json {
  const id = z.globalRegistry.get(schema)?.id;
  if (typeof id === "string") return { $ref: ref(id) };
  // Parameters are documented as they arrive (strings), before any transform.
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
  return rest;
}

function parameters(spec: RouteSpec): Json[] {
  const out: Json[] = [];
  for (const [where, obj] of [["path", spec.params], ["query", spec.query]] as const) {
    if (!obj) continue;
    for (const [name, prop] of Object.entries(obj.shape as Record<string, z.ZodMiniType>)) {
      const description = z.globalRegistry.get(prop)?.description;
      out.push({
        name,
        in: where,
        required: where === "path" || !prop.safeParse(undefined).success,
        ...(description ? { description } : {}),
        schema: schemaOf(prop),
      });
    }
  }
  return out;
}

const SECURITY: Record<Caller, Json[]> = {
  anyone: [],
  operator: [{ bearer: [] }, { token: [] }, { access: [] }],
  "all-groups operator": [{ bearer: [] }, { token: [] }, { access: [] }],
  device: [{ bearer: [] }, { token: [] }],
  gateway: [{ bearer: [] }, { token: [] }],
};

function json(schema: Json): Json {
  return { "application/json": { schema } };
}

function operation(operationId: string, spec: RouteSpec): Json {
  const responses: Json = {};
  if (spec.ok) responses[spec.status ?? 200] = { description: spec.status === 202 ? "Accepted" : "OK", content: json(schemaOf(spec.ok)) };
  else if (spec.path.endsWith("/ws") || spec.path.endsWith("/live")) responses[101] = { description: "WebSocket upgrade; frames in docs/protocol.md" };
  else responses[200] = { description: "OK", content: json({ type: "object" }) };
  const always = spec.path === ROUTES.health.path ? [503] : [405, 503];
  for (const status of [...spec.errors, ...always]) {
    responses[status] = { description: ERROR_REASONS[status] ?? "error", content: json({ $ref: ref("Error") }) };
  }
  return {
    operationId,
    summary: spec.summary,
    security: SECURITY[spec.caller],
    ...(spec.params || spec.query ? { parameters: parameters(spec) } : {}),
    ...(spec.body ? { requestBody: { required: true, content: json(schemaOf(spec.body)) } } : {}),
    responses,
  };
}

function components(): Json {
  // Input mode: no `additionalProperties: false`, since fields may be added to a body (extend, never change).
  const { schemas } = z.toJSONSchema(z.globalRegistry, { uri: ref, io: "input" });
  const out: Json = {};
  for (const [id, s] of Object.entries(schemas)) {
    const { $schema: _s, $id: _i, ...rest } = s;
    out[id] = rest;
  }
  return out;
}

/** The document; built on first use, since most isolates never serve it. */
export function openApiDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const [id, spec] of Object.entries(ROUTES) as [string, RouteSpec][]) {
    paths[spec.path] = { ...paths[spec.path], [spec.method]: operation(id, spec) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Telemetry Hub",
      version: String(PROTOCOL_VERSION),
      description: "The hub's REST routes (docs/protocol.md). Socket frames are CBOR, described there. Every error is `{error, message}`.",
    },
    paths,
    components: {
      schemas: components(),
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: 'a hub token (docs/protocol.md, "Auth")' },
        token: { type: "apiKey", in: "query", name: "token", description: "the same token, for WebSocket clients that cannot set headers" },
        access: { type: "apiKey", in: "header", name: "Cf-Access-Jwt-Assertion", description: "a Cloudflare Access JWT (operators; docs/security.md)" },
      },
    },
  };
}

/** URL routing for the public API (docs/protocol.md). */

export type Route =
  | { kind: "device-socket"; group: string; device: string }
  | { kind: "gateway-socket"; group: string; gateway: string }
  | { kind: "devices"; group: string }
  | { kind: "aggregates"; group: string }
  | { kind: "live"; group: string }
  | { kind: "rules"; group: string }
  | { kind: "alerts"; group: string }
  | { kind: "rates"; group: string }
  | { kind: "revocations"; group: string }
  | { kind: "revocation"; group: string; peer: string; id: string };

/** Methods each route accepts; everything else is 405. */
export function allowedMethods(route: Route): readonly string[] {
  if (route.kind === "rules") return ["GET", "PUT"];
  if (route.kind === "revocation") return ["PUT", "DELETE"];
  return ["GET"];
}

/**
 * Matches a path against the API routes. Returns the route with its raw
 * (still unvalidated) path segments, or null. Segments are percent-decoded
 * so an encoded bad character is caught by id validation, not missed.
 */
export function matchRoute(pathname: string): Route | null {
  const parts = pathname.split("/");
  // ["", "v1", "groups", group, ...rest]
  if (parts[0] !== "" || parts[1] !== "v1" || parts[2] !== "groups" || parts.length < 5) return null;
  const group = safeDecode(parts[3] ?? "");
  const rest = parts.slice(4);
  if (rest.length === 1 && rest[0] === "devices") return { kind: "devices", group };
  if (rest.length === 1 && rest[0] === "aggregates") return { kind: "aggregates", group };
  if (rest.length === 1 && rest[0] === "live") return { kind: "live", group };
  if (rest.length === 1 && rest[0] === "rules") return { kind: "rules", group };
  if (rest.length === 1 && rest[0] === "alerts") return { kind: "alerts", group };
  if (rest.length === 1 && rest[0] === "rates") return { kind: "rates", group };
  if (rest.length === 1 && rest[0] === "revocations") return { kind: "revocations", group };
  if (rest.length === 3 && rest[0] === "revocations") {
    return { kind: "revocation", group, peer: safeDecode(rest[1] ?? ""), id: safeDecode(rest[2] ?? "") };
  }
  if (rest.length === 3 && rest[0] === "devices" && rest[2] === "ws") {
    return { kind: "device-socket", group, device: safeDecode(rest[1] ?? "") };
  }
  if (rest.length === 3 && rest[0] === "gateways" && rest[2] === "ws") {
    return { kind: "gateway-socket", group, gateway: safeDecode(rest[1] ?? "") };
  }
  return null;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return "\u0000"; // never a valid id
  }
}

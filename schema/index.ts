/** Everything a client of the protocol needs, from one import. */
export * from "./protocol.ts";
export * from "./cbor.ts";
export * from "./validate.ts";
export * from "./limits.ts";
export * from "./token.ts";

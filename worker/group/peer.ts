/**
 * One model for everything that sends batches: a device speaks for itself, a
 * gateway (such as the MQTT bridge) for many devices of the group. Both are
 * a `Peer`; every stage (connections, ingest, store, reporting) takes a Peer,
 * so the two kinds cannot drift apart. Ids of the two kinds are separate
 * namespaces: a gateway named like a device is another peer with its own seq.
 */

import type { PeerKind } from "../../schema/protocol.ts";

export { PEER_KINDS, type PeerKind } from "../../schema/protocol.ts";

/** A device or gateway of the group. */
export interface Peer {
  readonly kind: PeerKind;
  readonly id: string;
}

/** Per-kind prefix of socket tags and map keys: short, because tags are limited to 256 characters. */
const PREFIX: Readonly<Record<PeerKind, string>> = { device: "d:", gateway: "w:" };

/** The hibernation tag of a peer's socket (also the key of per-peer maps). */
export function peerTag(peer: Peer): string {
  return PREFIX[peer.kind] + peer.id;
}

/** For logs and messages: `device:boiler-1`, `gateway:bridge-1`. */
export function peerName(peer: Peer): string {
  return `${peer.kind}:${peer.id}`;
}

/** Per-kind maps, e.g. highest seq per device and per gateway. */
export type ByKind<T> = Record<PeerKind, T>;

/** A fresh `ByKind` with one value per kind. */
export function byKind<T>(make: () => T): ByKind<T> {
  return { device: make(), gateway: make() };
}

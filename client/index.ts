/**
 * The device client: what a device, a gateway or a bridge needs to talk to
 * the hub's device and gateway sockets (docs/protocol.md).
 */
export { DeviceClient } from "./device-client.ts";
export type { ClientState, DeviceClientEvents, DeviceClientOptions } from "./options.ts";
export { DownlinkRunner } from "./downlink.ts";
export type { CommandHandler, CommandOutcome, ConfigHandler, ExecutedCommand } from "./downlink.ts";

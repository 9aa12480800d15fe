/** @deprecated The device client moved to client/ (import from "client/index.ts"); README documented this path, so it stays as a re-export. */
export { DeviceClient, type ClientState, type DeviceClientEvents, type DeviceClientOptions } from "../client/index.ts";

/**
 * The hub's gateway socket from Node: the device client's connect, hello,
 * ack and resend-after-reconnect logic, on `/gateways/{gateway}/ws`, with
 * readings that carry their device.
 */
import { DeviceClient, type DeviceClientOptions } from "../client/index.ts";
import type { GatewayReading } from "../schema/protocol.ts";

export interface GatewayClientOptions extends Omit<DeviceClientOptions<GatewayReading>, "device" | "endpoint"> {
  gateway: string;
}

export class GatewayClient extends DeviceClient<GatewayReading> {
  constructor(opts: GatewayClientOptions) {
    const { gateway, ...rest } = opts;
    super({ ...rest, device: gateway, endpoint: "gateways" });
  }
}

/** @deprecated Moved to harness/ (wrangler-dev.ts, ports.ts); kept until the last importers move. */
export { ROOT, startHub, type HubProcess, type StartOptions } from "../harness/wrangler-dev.ts";
export { freePort } from "../harness/ports.ts";

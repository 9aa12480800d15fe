/**
 * The node project's globalSetup (vitest.config.ts): one `wrangler dev` hub
 * for every file of the project, started once before the first file and
 * stopped after the last, so files stop paying wrangler's start-up (several
 * seconds of CPU each on a two-core machine) and can run side by side. Its
 * address reaches the test files through vitest's provide/inject; tests use
 * it through `sharedHub()` in ./hub.ts, each in a group of its own
 * (uniqueGroup). https://vitest.dev/config/globalsetup
 */
import type { TestProject } from "vitest/node";
import { startTestHub } from "./hub.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** The shared hub's base URL, http://127.0.0.1:<port>. */
    sharedHubUrl: string;
    /** Its port, for proxies put in front of it. */
    sharedHubPort: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t = await startTestHub();
  project.provide("sharedHubUrl", t.url);
  project.provide("sharedHubPort", t.hub.port);
  return () => t.stop();
}

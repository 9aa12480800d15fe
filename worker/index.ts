/**
 * The Worker: the REST and socket routes of worker/http/app.ts, and the
 * Durable Object classes wrangler.jsonc binds.
 */
import { app } from "./http/app.ts";

export { GroupHub } from "./group/GroupHub.ts";
export { GroupRegistry } from "./registry.ts";

export default {
  async fetch(request, env, ctx?: ExecutionContext): Promise<Response> {
    return app.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;

import { defineConfig } from "drizzle-kit";

// The durable-sqlite driver makes drizzle-kit emit migrations.js, which
// imports each .sql file; wrangler bundles those as text (see "rules" in
// wrangler.jsonc). https://orm.drizzle.team/docs/connect-cloudflare-do
export default defineConfig({
  dialect: "sqlite",
  driver: "durable-sqlite",
  schema: "./schema/tables.ts",
  out: "./schema/migrations",
});

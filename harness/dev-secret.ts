/**
 * The local development secret. `npm start` writes a random HUB_SECRET to
 * .dev.vars (git-ignored, read by `wrangler dev`, never deployed) when there
 * is none, so a fresh checkout works without setup.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

export const DEV_VARS = resolve(import.meta.dirname, "..", ".dev.vars");

/** HUB_SECRET from a .dev.vars file, or null. */
export function readDevSecret(path = DEV_VARS): string | null {
  if (!existsSync(path)) return null;
  const m = /^HUB_SECRET\s*=\s*"?([^"\n]*)"?\s*$/m.exec(readFileSync(path, "utf8"));
  return m?.[1] ? m[1] : null;
}

/** Returns the development secret, creating .dev.vars with a random one when missing. */
export function ensureDevSecret(path = DEV_VARS): { secret: string; created: boolean } {
  const existing = readDevSecret(path);
  if (existing) return { secret: existing, created: false };
  const secret = `dev-${randomBytes(24).toString("base64url")}`;
  const prefix = existsSync(path) ? readFileSync(path, "utf8").replace(/\n?$/, "\n") : "";
  writeFileSync(
    path,
    `${prefix}# Local development only; never deployed. Production: wrangler secret put HUB_SECRET\nHUB_SECRET="${secret}"\n`,
  );
  return { secret, created: true };
}

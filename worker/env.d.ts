// Optional bindings that `wrangler types` cannot see because they are
// secrets set only in some deployments (docs/security.md).
interface Env {
  /** The previous HUB_SECRET, accepted during a key rotation window. */
  HUB_SECRET_PREVIOUS?: string;
  /** Cloudflare Access team domain, e.g. "acme.cloudflareaccess.com" (operators via Access). */
  ACCESS_TEAM_DOMAIN?: string;
  /** Audience tag of the Access application in front of the hub. */
  ACCESS_AUD?: string;
  /** Pinned Access signing keys (JWKS JSON) instead of fetching them. */
  ACCESS_JWKS?: string;
}

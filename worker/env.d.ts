// Optional bindings that `wrangler types` cannot see because they are
// secrets set only in some deployments (docs/security.md).
interface Env {
  /** The previous HUB_SECRET, accepted during a key rotation window. */
  HUB_SECRET_PREVIOUS?: string;
}

/** Names that no other test, run or benchmark uses: tests share one hub and its groups. */

let counter = 0;

/** A group id unique to this call, `prefix-<time>-<n>-<random>`, well within the 64-character id limit. */
export function uniqueGroup(prefix = "g"): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

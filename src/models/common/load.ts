/**
 * What every checkpoint loader shares: the context length check.
 * @module
 */
import { ConfigError } from "../../errors.ts";

/** The KV-cache context to allocate: `requested`, or max_position_embeddings capped at 8192. */
export function resolveMaxContext(requested: number | undefined, limit: number, where: string): number {
  const maxContext = requested ?? Math.min(limit, 8192);
  if (!Number.isInteger(maxContext) || maxContext < 1 || maxContext > limit) {
    throw new ConfigError(where, [
      `maxContext=${maxContext} must be an integer in [1, max_position_embeddings=${limit}]`,
    ]);
  }
  return maxContext;
}

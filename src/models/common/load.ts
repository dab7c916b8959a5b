/**
 * What every checkpoint loader shares: the context length check, and handing loaded weights to the model
 * that then owns (and frees) them.
 * @module
 */
import type { Tensor } from "../../runtime/tensor.ts";
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

/**
 * Builds a model over loaded weights (looked up by text-model name through `rowName`) and makes its
 * dispose() free them too; if building fails, the weights are freed before the error is rethrown.
 */
export function adoptWeights<M extends { dispose(): void }>(
  weights: Map<string, Tensor>,
  rowName: (name: string) => string,
  build: (lookup: (name: string) => Tensor) => M,
): M {
  const lookup = (name: string): Tensor => {
    const t = weights.get(rowName(name)) ?? weights.get(name);
    if (!t) throw new Error(`weight ${name} is not in the table`);
    return t;
  };
  try {
    const model = build(lookup);
    const dispose = model.dispose.bind(model);
    model.dispose = () => {
      dispose();
      for (const t of weights.values()) t.dispose();
    };
    return model;
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    throw e;
  }
}

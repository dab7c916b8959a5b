import { repackForBackend } from "../../ops/repack.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import type { ModelWeights, WeightTree } from "./weight_table.ts";

/**
 * Puts each of `linears` (weights only ever multiplied by linear, or also gathered by embedding: a tied lm_head) in the
 * layout the backend multiplies fastest (src/ops/repack.ts), throughout `weights`. On the CPU library with AVX512-VNNI
 * that turns the Q8_0, Q5_0, Q4_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K matrices of a GGUF into its 16-row layouts, in place
 * (docs/benchmarks.md has what they gain).
 */
export function repackLinears<T extends WeightTree>(weights: ModelWeights<T>, linears: (Tensor | undefined)[]): void {
  for (const w of new Set(linears)) if (w) weights.replaceTensor(w, repackForBackend(w));
}

import { DTYPE_CODE, Q8_0X16_ROWS } from "../runtime/dtype.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectRank } from "./check.ts";

/** gk_status GK_ERR_UNSUPPORTED: the library makes no such layout (kernels/include/gemmakit.h). */
const UNSUPPORTED = 5;

/**
 * The weight [n, k] in the layout the backend's kernels multiply fastest, rewritten in place: on the CPU library
 * built with AVX512-VNNI a Q8_0 matrix with n a multiple of 16 becomes q8_0x16 (its rows interleaved 16 at a time
 * for integer dot products; the same bytes, the same values for linear and embedding). Anything else — the CUDA
 * library, another dtype or shape, `GEMMAKIT_CPU_REPACK=0` — comes back as it was.
 *
 * On a change the returned tensor shares the memory and `weight` must not be used any more: every holder of
 * it takes the result (a tied lm_head is also the embedding table).
 */
export function repackForBackend(weight: Tensor): Tensor {
  const op = "repack";
  expectRank(op, "weight", weight, 2);
  const [n, k] = weight.shape;
  if (weight.dtype !== "q8_0" || n % Q8_0X16_ROWS !== 0) return weight;
  const status = weight.backend.symbols.gk_repack(
    weight.backend.stream,
    weight.pointer,
    DTYPE_CODE.q8_0,
    DTYPE_CODE.q8_0x16,
    n,
    k,
  );
  if (status === UNSUPPORTED) return weight;
  weight.backend.check(op, status);
  return weight.retyped("q8_0x16");
}

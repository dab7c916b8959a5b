import { DTYPE_CODE, REPACK_ROWS, type RepackableDType, type RepackedDType } from "../runtime/dtype.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectRank } from "./check.ts";

/** gk_status GK_ERR_UNSUPPORTED: the library makes no such layout (kernels/include/gemmakit.h). */
const UNSUPPORTED = 5;

/** The layout each file format is repacked into. */
const LAYOUT: Readonly<Record<RepackableDType, RepackedDType>> = {
  q8_0: "q8_0x16",
  q5_0: "q5_0x16",
  q4_0: "q4_0x16",
  q4_1: "q4_1x16",
  q5_1: "q5_1x16",
  q4_k: "q4_kx16",
  q5_k: "q5_kx16",
  q6_k: "q6_kx16",
};

/**
 * The weight [n, k] in the layout the backend's kernels multiply fastest. On the CPU library built with AVX512-VNNI a
 * Q8_0, Q5_0, Q4_0, Q4_1, Q5_1, Q4_K, Q5_K or Q6_K matrix with n a multiple of 16 becomes its 16-row layout (q8_0x16
 * and kin: 16 rows interleaved for integer dot products, the same values in the same bytes, reordered): rewritten in
 * place, the result a view of `weight`'s memory that `weight` must no longer be read as (a tied lm_head is also the
 * embedding table; ModelWeights.replaceTensor hands every holder the result). Anything else — the CUDA library, another
 * dtype or shape, `GEMMAKIT_CPU_REPACK=0` or `GEMMAKIT_CPU_Q8_ACTIVATIONS=1` — comes back as it was.
 */
export function repackForBackend(weight: Tensor): Tensor {
  const op = "repack";
  expectRank(op, "weight", weight, 2);
  const [n, k] = weight.shape;
  if (!(weight.dtype in LAYOUT) || n % REPACK_ROWS !== 0) return weight;
  const layout = LAYOUT[weight.dtype as RepackableDType];
  const status = weight.backend.symbols.gk_repack(
    weight.backend.stream,
    weight.pointer,
    DTYPE_CODE[weight.dtype],
    DTYPE_CODE[layout],
    n,
    k,
  );
  if (status === UNSUPPORTED) return weight;
  weight.backend.check(op, status);
  return weight.retyped(layout);
}

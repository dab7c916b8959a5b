import { DTYPE_CODE, Q8_0X16_ROWS } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";
import { expectRank } from "./check.ts";

/** gk_status GK_ERR_UNSUPPORTED: the library makes no such layout (kernels/include/gemmakit.h). */
const UNSUPPORTED = 5;

/**
 * The weight [n, k] in the layout the backend's kernels multiply fastest. On the CPU library built with AVX512-VNNI a
 * Q8_0 or Q5_0 matrix with n a multiple of 16 becomes q8_0x16 (Q8_0 with its rows interleaved 16 at a time for
 * integer dot products; every Q5_0 value is a Q8_0 one, so the same values for linear and embedding): a Q8_0 weight
 * rewritten in place (the result views its memory), a Q5_0 one into a new tensor of 34/22 its size (the caller owns
 * it, and may free `weight`). Anything else — the CUDA library, another dtype or shape, `GEMMAKIT_CPU_REPACK=0` —
 * comes back as it was.
 *
 * When the result is not `weight`, `weight` must not be read any more: every holder of it takes the result (a tied
 * lm_head is also the embedding table; ModelWeights.replaceTensor does that for a model's weights).
 */
export function repackForBackend(weight: Tensor): Tensor {
  const op = "repack";
  expectRank(op, "weight", weight, 2);
  const [n, k] = weight.shape;
  if ((weight.dtype !== "q8_0" && weight.dtype !== "q5_0") || n % Q8_0X16_ROWS !== 0 || k % 32 !== 0) return weight;
  const inPlace = weight.dtype === "q8_0";
  const out = inPlace ? weight : Tensor.empty(weight.backend, weight.shape, "q8_0x16");
  const status = weight.backend.symbols.gk_repack(
    weight.backend.stream,
    weight.pointer,
    DTYPE_CODE[weight.dtype],
    out.pointer,
    DTYPE_CODE.q8_0x16,
    n,
    k,
  );
  if (status !== 0 && !inPlace) out.dispose();
  if (status === UNSUPPORTED) return weight;
  weight.backend.check(op, status);
  return inPlace ? weight.retyped("q8_0x16") : out;
}

// gk_greedy_logits on CUDA: every value written — gk_linear's product, then gk_softcap's. The CPU library screens the
// rows a greedy draw cannot land on because its 8-row products are arithmetic-bound there (kernels/cpu/repack.cpp);
// on a GPU the same product is bound by reading the matrix, so the full product costs what a screen would.
#include "cuda_common.cuh"

using gk::cuda::begin_op;

GK_API gk_status gk_greedy_logits(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype,
                                  const int32_t* keep_ids, int32_t n_keep, int32_t m, int32_t n, int32_t k, float cap,
                                  float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_greedy_logits", &st));
  GK_TRY(gk::validate_linear(x, weight, weight_dtype, m, n, k, y, "gk_greedy_logits"));
  GK_TRY(gk::validate_greedy_keep(keep_ids, n_keep, cap));
  GK_TRY(gk_linear(s, x, weight, weight_dtype, nullptr, m, n, k, y));
  if (cap > 0.0f) GK_TRY(gk_softcap(s, y, y, (int64_t)m * n, cap));
  return GK_OK;
}

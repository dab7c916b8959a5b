// gk_repack on CUDA: no layout to make. The CUDA kernels read the GGUF block layouts as stored (the CPU library's
// 16-row layouts exist for its integer dot products, kernels/cpu/repack.cpp), so every request is UNSUPPORTED and the
// weight stays as it was, which is what the caller (src/ops/repack.ts) then keeps.
#include "cuda_common.cuh"

GK_API gk_status gk_repack(gk_stream* s, void* weight, int32_t from_dtype, int32_t to_dtype, int32_t n, int32_t k) {
  GK_TRY(gk::validate_stream(s, "gk_repack"));
  GK_REQUIRE(weight, "gk_repack: NULL weight");
  return gk_fail(GK_ERR_UNSUPPORTED, "gk_repack: %d -> %d for [%d, %d]: the CUDA kernels read weights as stored",
                 from_dtype, to_dtype, n, k);
}

// gk_clamp: torch.clamp(x, lo, hi) elementwise (Gemma 4's clipped linears).
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;

// NaN propagates (both comparisons false), as in torch; fminf/fmaxf would drop it.
__global__ void clamp_kernel(const float* x, float* y, int64_t n, float lo, float hi) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = x[i];
    y[i] = v < lo ? lo : (v > hi ? hi : v);
  }
}

}  // namespace

GK_API gk_status gk_clamp(gk_stream* s, const float* x, float* y, int64_t n, float lo, float hi) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_clamp", &st));
  GK_TRY(gk::validate_clamp(x, y, n, lo, hi));
  clamp_kernel<<<grid_for(n, kThreads), kThreads, 0, st>>>(x, y, n, lo, hi);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// gk_gather_sum: y[o] = scale · Σ_j x[idx[o·k + j]], ids outside [0, rows) skipped (the factored 2-D position
// table and the spatial pooler of Gemma 4's vision tower).
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;

// One thread per output element; consecutive threads read consecutive columns of the same gathered rows.
// The ids live in device memory, so an out-of-range id is skipped rather than reported.
__global__ void gather_sum_kernel(const float* __restrict__ x, int32_t rows, int32_t cols,
                                  const int32_t* __restrict__ idx, int32_t k, float scale, int64_t total,
                                  float* __restrict__ y) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t c = (int32_t)(i % cols);
    const int64_t o = i / cols;
    float sum = 0.0f;
    for (int32_t j = 0; j < k; ++j) {
      const int32_t r = idx[o * k + j];
      if (r >= 0 && r < rows) sum += x[(int64_t)r * cols + c];
    }
    y[i] = scale == 1.0f ? sum : sum * scale;
  }
}

}  // namespace

GK_API gk_status gk_gather_sum(gk_stream* s, const float* x, int32_t rows, int32_t cols, const int32_t* idx,
                               int32_t out_rows, int32_t k, float scale, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_gather_sum", &st));
  GK_TRY(gk::validate_gather_sum(x, rows, cols, idx, out_rows, k, scale, y));
  const int64_t total = (int64_t)out_rows * cols;
  gather_sum_kernel<<<grid_for(total, kThreads), kThreads, 0, st>>>(x, rows, cols, idx, k, scale, total, y);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

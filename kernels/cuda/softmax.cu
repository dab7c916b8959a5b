// Row-wise softmax in f32: subtract the row max, exponentiate, divide by the sum.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One block per row. exp is recomputed in the last pass instead of being stored, so y is written once and
// may alias x (each element is read and written by the same thread, after both reductions).
__global__ void softmax_kernel(const float* x, float* y, int32_t cols) {
  __shared__ float scratch[32];
  const int64_t off = (int64_t)blockIdx.x * cols;
  const float* xr = x + off;
  float* yr = y + off;
  float m = -INFINITY;
  for (int32_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, xr[j]);
  m = block_max(m, scratch);
  float sum = 0.0f;
  for (int32_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - m);
  sum = block_sum(sum, scratch);
  for (int32_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - m) / sum;
}

}  // namespace

GK_API gk_status gk_softmax(gk_stream* s, const float* x, float* y, int32_t rows, int32_t cols) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_softmax", &st));
  GK_TRY(gk::validate_rows("gk_softmax", x, y, rows, cols));
  softmax_kernel<<<rows, row_threads(cols), 0, st>>>(x, y, cols);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

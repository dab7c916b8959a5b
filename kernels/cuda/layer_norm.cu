// Row-wise LayerNorm (biased variance, as torch.nn.LayerNorm), f32 statistics.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One block per row. The variance is taken around the mean in a second pass (not E[x^2] - mean^2), which
// keeps it accurate for rows with a large mean. Same-thread read/write per element, so y may alias x.
template <int DT>
__global__ void layer_norm_kernel(const float* x, const void* __restrict__ w, const void* __restrict__ b, float eps,
                                  int32_t dim, float* y) {
  __shared__ float scratch[32];
  const int64_t off = (int64_t)blockIdx.x * dim;
  const float* xr = x + off;
  float* yr = y + off;
  float sum = 0.0f;
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) sum += xr[j];
  const float mean = block_sum(sum, scratch) / (float)dim;
  float sq = 0.0f;
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float d = xr[j] - mean;
    sq = fmaf(d, d, sq);
  }
  const float var = block_sum(sq, scratch) / (float)dim;
  const float inv = 1.0f / sqrtf(var + eps);
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float v = (xr[j] - mean) * inv * load_w<DT>(w, j);
    if (b) v += load_w<DT>(b, j);
    yr[j] = v;
  }
}

}  // namespace

GK_API gk_status gk_layer_norm(gk_stream* s, const float* x, const void* weight, const void* bias, int32_t param_dtype,
                               float eps, int32_t rows, int32_t dim, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_layer_norm", &st));
  GK_TRY(gk::validate_layer_norm(x, weight, param_dtype, eps, rows, dim, y));
  const int threads = row_threads(dim);
  switch (param_dtype) {
    case GK_F32: layer_norm_kernel<GK_F32><<<rows, threads, 0, st>>>(x, weight, bias, eps, dim, y); break;
    case GK_F16: layer_norm_kernel<GK_F16><<<rows, threads, 0, st>>>(x, weight, bias, eps, dim, y); break;
    default: layer_norm_kernel<GK_BF16><<<rows, threads, 0, st>>>(x, weight, bias, eps, dim, y); break;
  }
  GK_LAUNCH_CHECK();
  return GK_OK;
}

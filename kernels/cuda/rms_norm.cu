// Row-wise RMSNorm in f32 with the three Gemma weight conventions (gk_norm_mode).
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One block per row, two passes: sum of squares, then scale and write. Every element is read and written
// by the same thread, and all reads of pass 1 finish at the reduction barrier, so y may alias x.
template <int DT, int MODE>
__global__ void rms_norm_kernel(const float* x, const void* __restrict__ w, float eps, int32_t dim, float* y) {
  __shared__ float scratch[32];
  const int64_t off = (int64_t)blockIdx.x * dim;
  const float* xr = x + off;
  float* yr = y + off;
  float ss = 0.0f;
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float v = xr[j];
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, scratch);
  // 1/sqrtf rather than rsqrtf: rsqrtf is an approximation, and results are compared with the CPU.
  const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float v = xr[j] * inv;
    if constexpr (MODE == GK_NORM_SCALE) v = v * load_w<DT>(w, j);
    else if constexpr (MODE == GK_NORM_ONE_PLUS) v = v * (1.0f + load_w<DT>(w, j));
    yr[j] = v;
  }
}

template <int MODE>
void launch_mode(const float* x, const void* w, int32_t dtype, float eps, int32_t rows, int32_t dim, float* y,
                 cudaStream_t st) {
  const int threads = row_threads(dim);
  switch (dtype) {
    case GK_F32: rms_norm_kernel<GK_F32, MODE><<<rows, threads, 0, st>>>(x, w, eps, dim, y); break;
    case GK_F16: rms_norm_kernel<GK_F16, MODE><<<rows, threads, 0, st>>>(x, w, eps, dim, y); break;
    default: rms_norm_kernel<GK_BF16, MODE><<<rows, threads, 0, st>>>(x, w, eps, dim, y); break;
  }
}

}  // namespace

GK_API gk_status gk_rms_norm(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, int32_t mode,
                             float eps, int32_t rows, int32_t dim, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_rms_norm", &st));
  GK_TRY(gk::validate_rms_norm(x, weight, weight_dtype, mode, eps, rows, dim, y));
  switch (mode) {
    case GK_NORM_PLAIN:
      rms_norm_kernel<GK_F32, GK_NORM_PLAIN><<<rows, row_threads(dim), 0, st>>>(x, nullptr, eps, dim, y);
      break;
    case GK_NORM_SCALE: launch_mode<GK_NORM_SCALE>(x, weight, weight_dtype, eps, rows, dim, y, st); break;
    default: launch_mode<GK_NORM_ONE_PLUS>(x, weight, weight_dtype, eps, rows, dim, y, st); break;
  }
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// gk_avg_pool2d: AvgPool2d(kernel = stride) over a token-major patch grid [n, grid_h·grid_w, channels]
// (the Gemma 3 projector's pooling, without its NCHW transposes).
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;

// One thread per output element; consecutive threads read consecutive channels of the same tokens.
__global__ void avg_pool2d_kernel(const float* __restrict__ x, int32_t grid_h, int32_t grid_w, int32_t channels,
                                  int32_t kernel, int64_t total, float* __restrict__ y) {
  const int32_t oh = grid_h / kernel, ow = grid_w / kernel;
  const float inv = 1.0f / (float)(kernel * kernel);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t c = (int32_t)(i % channels);
    const int64_t t = i / channels;
    const int32_t ox = (int32_t)(t % ow), oy = (int32_t)((t / ow) % oh);
    const int64_t b = t / ((int64_t)oh * ow);
    float sum = 0.0f;
    for (int32_t ky = 0; ky < kernel; ++ky) {
      const float* xr = x + ((b * grid_h + (int64_t)oy * kernel + ky) * grid_w + (int64_t)ox * kernel) * channels + c;
      for (int32_t kx = 0; kx < kernel; ++kx) sum += xr[(int64_t)kx * channels];
    }
    y[i] = sum * inv;
  }
}

}  // namespace

GK_API gk_status gk_avg_pool2d(gk_stream* s, const float* x, int32_t n, int32_t grid_h, int32_t grid_w,
                               int32_t channels, int32_t kernel, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_avg_pool2d", &st));
  GK_TRY(gk::validate_avg_pool2d(x, n, grid_h, grid_w, channels, kernel, y));
  const int64_t total = (int64_t)n * (grid_h / kernel) * (grid_w / kernel) * channels;
  avg_pool2d_kernel<<<grid_for(total, kThreads), kThreads, 0, st>>>(x, grid_h, grid_w, channels, kernel, total, y);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

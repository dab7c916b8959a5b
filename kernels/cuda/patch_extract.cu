// gk_patch_extract: im2col for the SigLIP patch embedding (Conv2d with kernel = stride = patch); rows in the
// conv weight's (channel, ky, kx) order, one row per patch in row-major grid order.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;

// One thread per output element; consecutive threads write consecutive floats of a patch row.
__global__ void patch_extract_kernel(const float* __restrict__ pixels, int32_t channels, int32_t height,
                                     int32_t width, int32_t patch, int64_t total, float* __restrict__ out) {
  const int32_t gh = height / patch, gw = width / patch;
  const int64_t row = (int64_t)channels * patch * patch;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / row;
    const int32_t e = (int32_t)(i % row);
    const int32_t c = e / (patch * patch), ky = (e / patch) % patch, kx = e % patch;
    const int64_t b = r / ((int64_t)gh * gw);
    const int32_t cell = (int32_t)(r % ((int64_t)gh * gw));
    const int32_t py = cell / gw, px = cell % gw;
    out[i] = pixels[((b * channels + c) * height + (int64_t)py * patch + ky) * width + (int64_t)px * patch + kx];
  }
}

}  // namespace

GK_API gk_status gk_patch_extract(gk_stream* s, const float* pixels, int32_t n, int32_t channels, int32_t height,
                                  int32_t width, int32_t patch, float* out) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_patch_extract", &st));
  GK_TRY(gk::validate_patch_extract(pixels, n, channels, height, width, patch, out));
  const int64_t total = (int64_t)n * channels * height * width;
  patch_extract_kernel<<<grid_for(total, kThreads), kThreads, 0, st>>>(pixels, channels, height, width, patch, total,
                                                                       out);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// gk_avg_pool2d: the Gemma 3 projector's AvgPool2d(kernel = stride) over the vision patch grid, on
// token-major rows ([n, grid_h·grid_w, channels], as the tower emits them) instead of NCHW: the same
// windows and the same row-major order of the pooled tokens, without the two transposes.
#include "cpu.h"

GK_API gk_status gk_avg_pool2d(gk_stream* s, const float* x, int32_t n, int32_t grid_h, int32_t grid_w,
                               int32_t channels, int32_t kernel, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_avg_pool2d"));
  GK_TRY(gk::validate_avg_pool2d(x, n, grid_h, grid_w, channels, kernel, y));
  GK_CPU_RECORD(s, gk_avg_pool2d(s, x, n, grid_h, grid_w, channels, kernel, y));
  const int32_t oh = grid_h / kernel, ow = grid_w / kernel;
  const float inv = 1.0f / (float)(kernel * kernel);
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)n * grid_h * grid_w * channels > 65536)
  for (int32_t b = 0; b < n; ++b) {
    for (int32_t oy = 0; oy < oh; ++oy) {
      for (int32_t ox = 0; ox < ow; ++ox) {
        float* yr = y + (((int64_t)b * oh + oy) * ow + ox) * channels;
        for (int32_t c = 0; c < channels; ++c) yr[c] = 0.0f;
        for (int32_t ky = 0; ky < kernel; ++ky) {
          for (int32_t kx = 0; kx < kernel; ++kx) {
            const float* xr = x + (((int64_t)b * grid_h + (int64_t)oy * kernel + ky) * grid_w +
                                   (int64_t)ox * kernel + kx) * channels;
#pragma omp simd
            for (int32_t c = 0; c < channels; ++c) yr[c] += xr[c];
          }
        }
        for (int32_t c = 0; c < channels; ++c) yr[c] *= inv;
      }
    }
  }
  return GK_OK;
}

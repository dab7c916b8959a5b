// gk_patch_extract: the SigLIP patch embedding's Conv2d(kernel = stride = patch) as im2col. Each patch
// becomes one row in the conv weight's (channel, ky, kx) order, so `linear` with the weight viewed as
// [hidden, channels·patch²] finishes the convolution.
#include "cpu.h"

GK_API gk_status gk_patch_extract(gk_stream* s, const float* pixels, int32_t n, int32_t channels, int32_t height,
                                  int32_t width, int32_t patch, float* out) {
  GK_TRY(gk::validate_stream(s, "gk_patch_extract"));
  GK_TRY(gk::validate_patch_extract(pixels, n, channels, height, width, patch, out));
  GK_CPU_RECORD(s, gk_patch_extract(s, pixels, n, channels, height, width, patch, out));
  const int32_t gh = height / patch, gw = width / patch;
  const int64_t row = (int64_t)channels * patch * patch;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)n * channels * height * width > 65536)
  for (int32_t b = 0; b < n; ++b) {
    for (int32_t py = 0; py < gh; ++py) {
      for (int32_t px = 0; px < gw; ++px) {
        float* o = out + (((int64_t)b * gh + py) * gw + px) * row;
        for (int32_t c = 0; c < channels; ++c) {
          for (int32_t ky = 0; ky < patch; ++ky) {
            const float* src = pixels + (((int64_t)b * channels + c) * height + (int64_t)py * patch + ky) * width +
                               (int64_t)px * patch;
            for (int32_t kx = 0; kx < patch; ++kx) *o++ = src[kx];
          }
        }
      }
    }
  }
  return GK_OK;
}

// gk_rms_norm: both Gemma conventions (x·w for Gemma 4, x·(1+w) for Gemma 3) and the weightless form.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu.h"

GK_API gk_status gk_rms_norm(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, int32_t mode,
                             float eps, int32_t rows, int32_t dim, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_rms_norm"));
  GK_TRY(gk::validate_rms_norm(x, weight, weight_dtype, mode, eps, rows, dim, y));
  GK_CPU_RECORD(s, gk_rms_norm(s, x, weight, weight_dtype, mode, eps, rows, dim, y));
  // The multiplier is computed once in f32, as transformers does (1 + w.float()); on the stack for the usual
  // widths (a heap vector per call was a measurable part of the decode step's 109 short calls).
  constexpr int32_t kStack = 4096;
  float stack_w[kStack];
  std::vector<float> heap_w;
  float* w = stack_w;
  if (dim > kStack) heap_w.resize(dim), w = heap_w.data();
  std::fill(w, w + dim, 1.0f);
  if (mode != GK_NORM_PLAIN) {
    gk::cpu::load_row_f32(weight, weight_dtype, 0, dim, w);
    if (mode == GK_NORM_ONE_PLUS)
      for (int32_t j = 0; j < dim; ++j) w[j] += 1.0f;
  }
  auto row = [&](int32_t r) {
    const float* xr = x + (int64_t)r * dim;
    float* yr = y + (int64_t)r * dim;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int32_t j = 0; j < dim; ++j) ss += xr[j] * xr[j];
    const float inv = 1.0f / std::sqrt(ss / (float)dim + eps);
    for (int32_t j = 0; j < dim; ++j) yr[j] = xr[j] * inv * w[j];
  };
  // No OpenMP region at all below the threshold: entering a one-thread team costs about a microsecond.
  if ((int64_t)rows * dim <= 65536) {
    for (int32_t r = 0; r < rows; ++r) row(r);
  } else {
#pragma omp parallel for schedule(static)
    for (int32_t r = 0; r < rows; ++r) row(r);
  }
  return GK_OK;
}

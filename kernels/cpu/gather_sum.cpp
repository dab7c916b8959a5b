// gk_gather_sum: y[o] = scale · Σ_j x[idx[o·k + j]], ids outside [0, rows) skipped. Gemma 4's vision tower
// uses it twice: the factored 2-D position table (k = 2: table[0][x] + table[1][y]) and the spatial pooler
// (k = 9 patches per 3×3 cell, listed by id so that images of any size, packed one after another, pool at once).
#include "cpu.h"

GK_API gk_status gk_gather_sum(gk_stream* s, const float* x, int32_t rows, int32_t cols, const int32_t* idx,
                               int32_t out_rows, int32_t k, float scale, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_gather_sum"));
  GK_TRY(gk::validate_gather_sum(x, rows, cols, idx, out_rows, k, scale, y));
  GK_CPU_RECORD(s, gk_gather_sum(s, x, rows, cols, idx, out_rows, k, scale, y));
#pragma omp parallel for schedule(static) if ((int64_t)out_rows * k * cols > 65536)
  for (int32_t o = 0; o < out_rows; ++o) {
    float* yr = y + (int64_t)o * cols;
    for (int32_t c = 0; c < cols; ++c) yr[c] = 0.0f;
    // Summed in list order, as the reference adds them.
    for (int32_t j = 0; j < k; ++j) {
      const int32_t r = idx[(int64_t)o * k + j];
      if (r < 0 || r >= rows) continue;
      const float* xr = x + (int64_t)r * cols;
#pragma omp simd
      for (int32_t c = 0; c < cols; ++c) yr[c] += xr[c];
    }
    if (scale != 1.0f) {
      for (int32_t c = 0; c < cols; ++c) yr[c] *= scale;
    }
  }
  return GK_OK;
}

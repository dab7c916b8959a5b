// gk_softmax: row-wise, max-subtracted, in f32.
#include "cpu.h"

GK_API gk_status gk_softmax(gk_stream* s, const float* x, float* y, int32_t rows, int32_t cols) {
  GK_TRY(gk::validate_stream(s, "gk_softmax"));
  GK_TRY(gk::validate_rows("gk_softmax", x, y, rows, cols));
  GK_CPU_RECORD(s, gk_softmax(s, x, y, rows, cols));
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > 65536)
  for (int32_t r = 0; r < rows; ++r) {
    const float* xr = x + (int64_t)r * cols;
    float* yr = y + (int64_t)r * cols;
    float mx = xr[0];
    for (int32_t j = 1; j < cols; ++j) mx = std::max(mx, xr[j]);
    double sum = 0.0;  // a 262144-wide vocabulary row loses ~1e-5 in a sequential f32 sum
    for (int32_t j = 0; j < cols; ++j) sum += (yr[j] = std::exp(xr[j] - mx));
    const float inv = (float)(1.0 / sum);
    for (int32_t j = 0; j < cols; ++j) yr[j] *= inv;
  }
  return GK_OK;
}

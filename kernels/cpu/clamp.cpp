// gk_clamp: torch.clamp(x, lo, hi) elementwise (Gemma 4's clipped linears clamp their input and output).
#include "cpu.h"

GK_API gk_status gk_clamp(gk_stream* s, const float* x, float* y, int64_t n, float lo, float hi) {
  GK_TRY(gk::validate_stream(s, "gk_clamp"));
  GK_TRY(gk::validate_clamp(x, y, n, lo, hi));
  GK_CPU_RECORD(s, gk_clamp(s, x, y, n, lo, hi));
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    // NaN propagates (both comparisons false), as in torch.
    y[i] = v < lo ? lo : (v > hi ? hi : v);
  }
  return GK_OK;
}

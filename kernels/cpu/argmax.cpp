// gk_argmax: torch semantics — the first maximum wins, and NaN is larger than any number.
#include "cpu.h"
#include "simd.h"

GK_API gk_status gk_argmax(gk_stream* s, const float* x, int32_t* out, int32_t rows, int32_t cols) {
  GK_TRY(gk::validate_stream(s, "gk_argmax"));
  GK_TRY(gk::validate_rows("gk_argmax", x, out, rows, cols));
  GK_CPU_RECORD(s, gk_argmax(s, x, out, rows, cols));
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > 65536)
  for (int32_t r = 0; r < rows; ++r) {
    out[r] = gk::cpu::simd::argmax(x + (int64_t)r * cols, cols);
  }
  return GK_OK;
}

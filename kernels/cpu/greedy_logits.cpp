// gk_greedy_logits: gk_linear's logits where a greedy draw could land, -inf elsewhere. The screen itself is in
// repack.cpp, beside the integer kernel whose chunk loop it runs with one byte of x instead of three.
#include <cstdio>

#include "cpu.h"

namespace {
// Below this many rows of x the integer kernel reads the matrix at memory speed already (one row: ~2 vpdpbusd a cycle
// of headroom), so the screen would only add its bookkeeping. GEMMAKIT_CPU_GREEDY_SCREEN=0 turns it off (A/B runs).
constexpr int64_t kScreenMinRows = 2;
bool screen_enabled() {
  static const bool on = gk::cpu::env_switch("GEMMAKIT_CPU_GREEDY_SCREEN", true);
  return on;
}
}  // namespace

GK_API gk_status gk_greedy_logits(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype,
                                  const int32_t* keep_ids, int32_t n_keep, int32_t m, int32_t n, int32_t k, float cap,
                                  float* y) {
  GK_TRY(gk::validate_stream(s, "gk_greedy_logits"));
  const bool x16 = gk::cpu::is_x16_dtype(weight_dtype);
  GK_TRY(gk::validate_linear(x, weight, x16 ? gk::cpu::x16_file_dtype(weight_dtype) : weight_dtype, m, n, k, y,
                             "gk_greedy_logits"));
  if (x16) GK_TRY(gk::cpu::validate_x16("gk_greedy_logits", weight_dtype, n, k));
  GK_TRY(gk::validate_greedy_keep(keep_ids, n_keep, cap));
  GK_CPU_RECORD(s, gk_greedy_logits(s, x, weight, weight_dtype, keep_ids, n_keep, m, n, k, cap, y));
  if (x16 && screen_enabled() && gk::cpu::screen_x16_supported(weight_dtype) && m >= kScreenMinRows &&
      m <= gk::cpu::x16_int_rows_max(weight_dtype)) {
    int64_t computed = 0;
    GK_TRY(gk::cpu::screen_x16(x, weight, weight_dtype, keep_ids, n_keep, m, n, k, cap, y, &computed));
    // GEMMAKIT_CPU_GREEDY_STATS=1: how much of the vocabulary each call computed (for the docs' figures).
    static const bool stats = gk::cpu::env_switch("GEMMAKIT_CPU_GREEDY_STATS", false);
    if (stats) {
      fprintf(stderr, "gk_greedy_logits: %d rows of x, %lld of %lld groups x rows computed (%.3f%%)\n", m,
              (long long)computed, (long long)m * (n / 16), 100.0 * (double)computed / ((double)m * (n / 16)));
    }
    return GK_OK;
  }
  GK_TRY(gk::cpu::linear(x, weight, weight_dtype, nullptr, m, n, k, y));
  if (cap > 0.0f) gk::cpu::softcap(y, y, (int64_t)m * n, cap);
  return GK_OK;
}

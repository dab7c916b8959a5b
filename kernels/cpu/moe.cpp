// Gemma 4's mixture of experts on the CPU: gk_moe_route (softmax, top-k, renormalise, per-expert scale) and
// gk_moe_experts (the selected experts' gated MLPs, weighted and summed).
//
// gk_moe_experts groups the (token, slot) pairs by expert with a counting sort, so each selected expert's weights
// are streamed once per call however many tokens chose it, and runs its two projections through gk_linear's
// kernels (gk::cpu::linear: the streaming GEMV for a few rows, the packed GEMM for many, every weight dtype
// including GGUF blocks; gate_up and down each in its own). The pairs' outputs are then combined per token in
// ascending expert id, the order of transformers' loop over experts, so the result does not depend on the thread
// count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../common/moe.h"
#include "cpu.h"
#include "simd.h"

namespace {

using gk::moe::ranks_before;

void route_token(const float* logits, const void* scale, int32_t scale_dtype, int32_t experts, int32_t top_k,
                 int32_t* ids, float* weights) {
  float mx = logits[0];
  for (int32_t j = 1; j < experts; ++j) mx = std::max(mx, logits[j]);
  // softmax in f32 as transformers (the f64 sum only trims rounding; the top-k renormalisation cancels it anyway).
  double sum = 0.0;
  for (int32_t j = 0; j < experts; ++j) sum += std::exp(logits[j] - mx);
  const float inv = (float)(1.0 / sum);
  // Experts are ranked by logit, not by probability: softmax is monotone, so the order is the same, except that
  // logits a few ulp apart can round to one f32 probability on one backend and not on the other (CUDA sums in f32
  // with expf). The logit order is exact everywhere.
  float best[gk::moe::kMaxTopK];
  int32_t n = 0;
  for (int32_t j = 0; j < experts; ++j) {
    const float p = logits[j];
    if (n == top_k && !ranks_before(p, j, best[n - 1], ids[n - 1])) continue;
    int32_t at = n < top_k ? n++ : n - 1;  // insertion into the sorted running top-k
    for (; at > 0 && ranks_before(p, j, best[at - 1], ids[at - 1]); --at) {
      best[at] = best[at - 1];
      ids[at] = ids[at - 1];
    }
    best[at] = p;
    ids[at] = j;
  }
  for (int32_t i = 0; i < top_k; ++i) best[i] = std::exp(best[i] - mx) * inv;  // the chosen logits' probabilities
  float total = 0.0f;
  for (int32_t i = 0; i < top_k; ++i) total += best[i];
  for (int32_t i = 0; i < top_k; ++i) {
    weights[i] = best[i] / total * (scale ? gk::load_f32(scale, scale_dtype, ids[i]) : 1.0f);
  }
}

// Bytes of one [rows, cols] matrix in dtype (cols a whole number of blocks for GGUF dtypes).
inline int64_t matrix_bytes(int32_t dtype, int64_t rows, int64_t cols) {
  if (gk::is_quant_dtype(dtype)) return rows * (cols / gk::block_elems(dtype)) * gk::block_bytes(dtype);
  return rows * cols * (dtype == GK_F32 ? 4 : 2);
}

}  // namespace

GK_API gk_status gk_moe_route(gk_stream* s, const float* logits, const void* per_expert_scale, int32_t scale_dtype,
                              int32_t tokens, int32_t experts, int32_t top_k, int32_t* ids, float* weights) {
  GK_TRY(gk::validate_stream(s, "gk_moe_route"));
  GK_TRY(gk::moe::validate_route(logits, per_expert_scale, scale_dtype, tokens, experts, top_k, ids, weights));
  GK_CPU_RECORD(s, gk_moe_route(s, logits, per_expert_scale, scale_dtype, tokens, experts, top_k, ids, weights));
#pragma omp parallel for schedule(static) if ((int64_t)tokens * experts > 65536)
  for (int32_t t = 0; t < tokens; ++t) {
    route_token(logits + (int64_t)t * experts, per_expert_scale, scale_dtype, experts, top_k, ids + (int64_t)t * top_k,
                weights + (int64_t)t * top_k);
  }
  return GK_OK;
}

GK_API gk_status gk_moe_experts(gk_stream* s, const float* x, const int32_t* ids, const float* weights, int32_t tokens,
                                int32_t top_k, const void* gate_up, int32_t gate_up_dtype, const void* down,
                                int32_t down_dtype, int32_t experts, int32_t hidden, int32_t inter, void* scratch,
                                uint64_t scratch_bytes, float* out) {
  GK_TRY(gk::validate_stream(s, "gk_moe_experts"));
  GK_TRY(gk::moe::validate_experts(x, ids, weights, tokens, top_k, gate_up, gate_up_dtype, down, down_dtype, experts,
                                   hidden, inter, scratch, scratch_bytes, out));
  GK_CPU_RECORD(s, gk_moe_experts(s, x, ids, weights, tokens, top_k, gate_up, gate_up_dtype, down, down_dtype,
                                  experts, hidden, inter, scratch, scratch_bytes, out));
  const int64_t P = (int64_t)tokens * top_k, H = hidden, I = inter;
  const gk::moe::Scratch sc = gk::moe::carve(scratch, P, experts, H, I);
  // start[e] .. start[e + 1]: expert e's pairs in `pairs`, ascending; at[p]: where pair p's row landed.
  int32_t* start = sc.ints;
  int32_t* pairs = start + experts + 1;
  int32_t* at = pairs + P;
  std::fill(start, start + experts + 1, 0);
  for (int64_t p = 0; p < P; ++p) {
    const int32_t e = ids[p];
    GK_REQUIRE(e >= 0 && e < experts, "gk_moe_experts: ids[%lld] = %d is outside [0, %d)", (long long)p, e, experts);
    ++start[e + 1];
  }
  for (int32_t e = 0; e < experts; ++e) start[e + 1] += start[e];
  for (int64_t p = 0; p < P; ++p) {
    at[p] = start[ids[p]]++;
    pairs[at[p]] = (int32_t)p;
  }
  for (int32_t e = experts; e > 0; --e) start[e] = start[e - 1];  // the fill advanced each start to its end
  start[0] = 0;

  // Each projection in its own type (llama-quantize's mixes often store down in another one).
  const int64_t gu_bytes = matrix_bytes(gate_up_dtype, 2 * I, H), down_bytes = matrix_bytes(down_dtype, H, I);
  for (int32_t e = 0; e < experts; ++e) {
    const int64_t r0 = start[e], rows = start[e + 1] - r0;
    if (rows == 0) continue;
    float* xg = sc.xg + r0 * H;
    float* g = sc.g + r0 * 2 * I;
    float* h = sc.h + r0 * I;
    for (int64_t r = 0; r < rows; ++r) memcpy(xg + r * H, x + pairs[r0 + r] / top_k * H, sizeof(float) * H);
    GK_TRY(gk::cpu::linear(xg, (const char*)gate_up + e * gu_bytes, gate_up_dtype, nullptr, rows, 2 * I, H, g));
#pragma omp parallel for schedule(static) if (rows * I > 65536)
    for (int64_t r = 0; r < rows; ++r) {
      gk::cpu::simd::gelu_tanh_mul_row(g + r * 2 * I, g + r * 2 * I + I, h + r * I, I);  // as gk_gelu_tanh_mul
    }
    GK_TRY(gk::cpu::linear(h, (const char*)down + e * down_bytes, down_dtype, nullptr, rows, H, I, sc.y + r0 * H));
  }

#pragma omp parallel for schedule(static) if (P * H > 65536)
  for (int32_t t = 0; t < tokens; ++t) {
    // This token's slots in ascending expert id (ids within a token are distinct: top-k of one row).
    int32_t order[gk::moe::kMaxTopK];
    for (int32_t j = 0; j < top_k; ++j) order[j] = j;
    const int32_t* tid = ids + (int64_t)t * top_k;
    std::sort(order, order + top_k, [&](int32_t a, int32_t b) { return tid[a] < tid[b]; });
    float* o = out + (int64_t)t * H;
    std::fill(o, o + H, 0.0f);
    for (int32_t j = 0; j < top_k; ++j) {
      const int64_t p = (int64_t)t * top_k + order[j];
      const float w = weights[p];
      const float* y = sc.y + (int64_t)at[p] * H;
      for (int64_t c = 0; c < H; ++c) o[c] += y[c] * w;
    }
  }
  return GK_OK;
}

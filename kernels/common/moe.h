// Argument checks and the scratch layout of the mixture-of-experts ops (gk_moe_route, gk_moe_experts), shared by
// both backends so they accept exactly the same calls. (Kept out of validate.h: one file per op family.)
#pragma once
#include "dtype.h"
#include "validate.h"

namespace gk::moe {

// torch.topk's order with a deterministic tie-break (torch leaves ties unordered): larger first, NaN largest,
// equal values by lower expert id. (x != x: NaN, without std::isnan, so device code can call it too.)
GK_HD bool ranks_before(float a, int32_t ia, float b, int32_t ib) {
  const bool na = a != a, nb = b != b;
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

// gk_moe_route keeps the running top-k in registers / shared memory: a bound well above any released model (8).
constexpr int32_t kMaxTopK = 64;

// The scratch both backends carve up (the header's formula). P = tokens · top_k (token, slot) pairs.
//   f32: y [P, hidden] per-pair expert outputs, xg [P, hidden] gathered inputs, g [P, 2·inter] gate/up
//        projections, h [P, inter] activations;
//   i32: 4·(experts + P) words of per-expert counts, offsets, pair lists and tile tables;
//   256 words of slack for alignment.
inline uint64_t scratch_bytes(int64_t tokens, int64_t top_k, int64_t experts, int64_t hidden, int64_t inter) {
  const int64_t p = tokens * top_k;
  return 4 * (uint64_t)(p * (2 * hidden + 3 * inter) + 4 * (experts + p) + 256);
}

struct Scratch {
  float* y;
  float* xg;
  float* g;
  float* h;
  int32_t* ints;  // 4·(experts + P) words
};

inline Scratch carve(void* scratch, int64_t pairs, int64_t experts, int64_t hidden, int64_t inter) {
  (void)experts;
  float* f = (float*)scratch;
  Scratch s;
  s.y = f;
  s.xg = s.y + pairs * hidden;
  s.g = s.xg + pairs * hidden;
  s.h = s.g + pairs * 2 * inter;
  // 16-byte aligned whatever the sizes, for vector loads of the integer tables.
  s.ints = (int32_t*)(((uintptr_t)(s.h + pairs * inter) + 15) & ~(uintptr_t)15);
  return s;
}

inline gk_status validate_route(const float* logits, const void* scale, int32_t scale_dtype, int32_t tokens,
                                int32_t experts, int32_t top_k, const int32_t* ids, const float* weights) {
  GK_REQUIRE(logits && ids && weights, "gk_moe_route: NULL logits, ids or weights");
  GK_REQUIRE(scale == nullptr || is_float_dtype(scale_dtype),
             "gk_moe_route: per_expert_scale dtype %d is not f32, f16 or bf16", scale_dtype);
  GK_REQUIRE(tokens > 0 && experts > 0, "gk_moe_route: tokens=%d experts=%d must be positive", tokens, experts);
  GK_REQUIRE(top_k >= 1 && top_k <= experts && top_k <= kMaxTopK, "gk_moe_route: top_k=%d must be in [1, min(experts=%d, %d)]",
             top_k, experts, kMaxTopK);
  GK_REQUIRE((const void*)ids != (const void*)logits && (const void*)weights != (const void*)logits &&
                 (const void*)ids != (const void*)weights,
             "gk_moe_route: logits, ids and weights must not alias");
  return GK_OK;
}

inline gk_status validate_experts(const float* x, const int32_t* ids, const float* weights, int32_t tokens,
                                  int32_t top_k, const void* gate_up, int32_t gate_up_dtype, const void* down,
                                  int32_t down_dtype, int32_t experts, int32_t hidden, int32_t inter,
                                  const void* scratch, uint64_t scratch_size, const float* out) {
  GK_REQUIRE(x && ids && weights && gate_up && down && scratch && out,
             "gk_moe_experts: NULL x, ids, weights, gate_up, down, scratch or out");
  GK_REQUIRE(is_float_dtype(gate_up_dtype) || is_quant_dtype(gate_up_dtype),
             "gk_moe_experts: gate_up dtype %d is not f32, f16, bf16 or a supported GGUF quantization", gate_up_dtype);
  GK_REQUIRE(is_float_dtype(down_dtype) || is_quant_dtype(down_dtype),
             "gk_moe_experts: down dtype %d is not f32, f16, bf16 or a supported GGUF quantization", down_dtype);
  GK_REQUIRE(tokens > 0 && experts > 0 && hidden > 0 && inter > 0,
             "gk_moe_experts: tokens=%d experts=%d hidden=%d inter=%d must be positive", tokens, experts, hidden, inter);
  GK_REQUIRE(top_k >= 1 && top_k <= experts && top_k <= kMaxTopK,
             "gk_moe_experts: top_k=%d must be in [1, min(experts=%d, %d)]", top_k, experts, kMaxTopK);
  // Each projection's rows are whole blocks of its own type: gate_up's rows are hidden long, down's inter.
  GK_REQUIRE(hidden % block_elems(gate_up_dtype) == 0,
             "gk_moe_experts: hidden=%d must be a multiple of the %d-element blocks of gate_up dtype %d", hidden,
             block_elems(gate_up_dtype), gate_up_dtype);
  GK_REQUIRE(inter % block_elems(down_dtype) == 0,
             "gk_moe_experts: inter=%d must be a multiple of the %d-element blocks of down dtype %d", inter,
             block_elems(down_dtype), down_dtype);
  const uint64_t need = scratch_bytes(tokens, top_k, experts, hidden, inter);
  GK_REQUIRE(scratch_size >= need, "gk_moe_experts: scratch is %llu bytes, needs %llu",
             (unsigned long long)scratch_size, (unsigned long long)need);
  GK_REQUIRE((const void*)out != (const void*)x, "gk_moe_experts: out must not alias x");
  return GK_OK;
}

}  // namespace gk::moe

// gk_linear on the CPU: y[m, n] = x[m, k] · W[n, k]^T (+ bias), W in f32/f16/bf16 or a GGUF block
// quantization (every format of kernels/cpu/quant.h), f32 accumulation.
//
// m == 1 is memory-bound (every weight is read once), so it streams W rows and keeps several FMA chains
// in flight. m > 1 is compute-bound: a W panel is converted to f32 once into a k-major layout and an
// MR×NR register-blocked outer-product kernel reuses it across all rows of x.
// Quantized W takes the same two paths: the streaming one decodes each 32-element group of a block to f32
// in registers (scale · q + offset, exactly the dequantized value) and FMAs it against x, which stays f32;
// the packed one decodes a panel's rows once, straight into the packed layout. Between them, 16..128 rows
// of x take a third path (gemm_bcast) that decodes W rows once and broadcasts them against x^T, with no
// transpose of W. So a quantized product equals the f32 product with the dequantized W, up to f32
// summation order — except decode's m = 1 for Q8_0, Q5_0 and Q6_K on AVX-512 (block_dot), which applies each
// block's (group's) scale to its partial sum instead of to every weight: the same sum to f32 rounding. On
// AVX512-VNNI builds decode's m = 1 for Q5_0, Q4_K and Q6_K goes to linear_q8act.cpp instead (x as 24-bit integers,
// integer products: again the same sum to f32 rounding; GEMMAKIT_CPU_X24_ACTIVATIONS=0 keeps it here).
// Every y element is produced by one thread in a fixed order, so results do not depend on thread count.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "../common/error.h"
#include "cpu.h"
#include "pool.h"
#include "quant.h"
#include "simd.h"

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
// GCC 12's AVX-512 intrinsics self-initialise their `__Y` operand (PR 105593) and -Wmaybe-uninitialized
// flags every inlined use; the pragma covers only the header's own lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

// arm64: the portable vf (plain loops GCC vectorises) everywhere, plus NEON intrinsics in the matrix-vector
// kernel (dot_block: decode's products with f32/bf16/f16 W), where the widening loads and fused multiply-adds
// must stay in registers. -DGK_PORTABLE_SIMD keeps the portable code there too (the arm64 task tests both).
#if defined(__ARM_NEON) && !defined(GK_PORTABLE_SIMD) && !defined(__AVX2__)
#define GK_LINEAR_NEON 1
#include <arm_neon.h>
#endif

namespace {

// ---- simd.h's vector, plus bf16/f16 loads, transposes and block decoders for AVX-512, AVX2 and plain C++ ----
using namespace gk::cpu::simd;
// The formats without a hand-written unit decoder below (every one added after Q8_0, Q5_0, Q4_K, Q6_K): one
// 32-element group, decoded from a small integer-vector vocabulary each ISA section defines (decode_group_simd).
template <int DT>
constexpr bool generic_group() {
  return DT != GK_Q8_0 && DT != GK_Q5_0 && DT != GK_Q4_K && DT != GK_Q6_K;
}
template <int DT>
inline void decode_group_simd(const uint8_t* blk, int g, vf* w);
#if defined(__AVX512F__)
constexpr int kMR = 8;  // 8×32 tile: 16 accumulators of 32 zmm registers
inline vf vload_bf16(const uint16_t* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
inline vf vload_f16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p));
}
// 16×16 transpose in four stages; stage B swaps bit B of the register index with bit B of the lane index.
template <int B>
inline void transpose_stage(vf r[16]) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __mmask16 upper = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(B));
  const __m512i flip = _mm512_xor_si512(lane, _mm512_set1_epi32(B));
  // lo: lane l of r[i] for lanes without bit B, else lane l^B of r[i|B] (index + 16 picks the 2nd source);
  // hi is the other half of each swapped pair.
  const __m512i lo = _mm512_mask_or_epi32(lane, upper, flip, _mm512_set1_epi32(16));
  const __m512i hi = _mm512_xor_si512(lo, _mm512_set1_epi32(B));
  for (int i = 0; i < 16; ++i) {
    if (i & B) continue;
    const vf a = r[i], c = r[i | B];
    r[i] = _mm512_permutex2var_ps(a, lo, c);
    r[i | B] = _mm512_permutex2var_ps(a, hi, c);
  }
}
inline void transpose(vf r[16]) {
  transpose_stage<1>(r);
  transpose_stage<2>(r);
  transpose_stage<4>(r);
  transpose_stage<8>(r);
}
// out[i] = hsum(r[i]) for 16 vectors at once: four folding stages of permutes and adds (45 ops) instead of 16
// reductions (~128). Each stage adds lane l to lane l + 8, then + 4, + 2, + 1: the tree _mm512_reduce_add_ps
// uses, so every sum is bit-identical to hsum's.
template <int H>
inline vf fold_pair(vf a, vf b) {  // lanes of a then of b, each group of 2H lanes folded to H
  // lo / hi: the first / second H lanes of each group of 2H in the 32 lanes of (a, b).
  if constexpr (H == 8) {
    return _mm512_add_ps(
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23), b),
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31), b));
  } else if constexpr (H == 4) {
    return _mm512_add_ps(
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27), b),
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31), b));
  } else if constexpr (H == 2) {
    return _mm512_add_ps(
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29), b),
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31), b));
  } else if constexpr (H == 1) {
    return _mm512_add_ps(
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b),
        _mm512_permutex2var_ps(a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b));
  }
}
__attribute__((always_inline)) inline void hsum16(const vf* r, float* out) {
  vf s8[8], s4[4], s2[2];
  for (int p = 0; p < 8; ++p) s8[p] = fold_pair<8>(r[2 * p], r[2 * p + 1]);
  for (int p = 0; p < 4; ++p) s4[p] = fold_pair<4>(s8[2 * p], s8[2 * p + 1]);
  for (int p = 0; p < 2; ++p) s2[p] = fold_pair<2>(s4[2 * p], s4[2 * p + 1]);
  _mm512_storeu_ps(out, fold_pair<1>(s2[0], s2[1]));
}
// ---- quantized blocks, decoded in registers: unit u of a block (unit_elems<DT>() elements) to f32 ----
// A unit is the span whose codes come from the same loaded bytes: a Q8_0 / Q5_0 block, a Q4_K pair of
// sub-blocks (the low and high nibbles of 32 bytes), half a Q6_K block (64 ql bytes, 32 qh bytes). Codes
// are widened to 32-bit lanes, assembled there, converted, and scaled: scale * q + offset (quant.h).
template <int DT>
constexpr int unit_elems() {
  return DT == GK_Q4_K ? 64 : DT == GK_Q6_K ? 128 : 32;
}
inline __m512i u8x16(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)p)); }
// decode_group_simd's integer vocabulary: kW lanes of int32.
using vi = __m512i;
inline vi u8v(const uint8_t* p) { return u8x16(p); }
inline vi vi_set1(int a) { return _mm512_set1_epi32(a); }
inline vi vi_and(vi a, vi b) { return _mm512_and_si512(a, b); }
inline vi vi_or(vi a, vi b) { return _mm512_or_si512(a, b); }
inline vi vi_srl(vi a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
inline vi vi_sll(vi a, int n) { return _mm512_sll_epi32(a, _mm_cvtsi32_si128(n)); }
inline vi vi_lane_bits(uint32_t bits, int first) {  // bit first + lane of bits, per lane
  return _mm512_maskz_set1_epi32((__mmask16)(bits >> first), 1);
}
inline vi vi_lut16(vi idx, const int8_t* table) {  // table[idx], idx in 0..15: one permute
  return _mm512_permutexvar_epi32(idx, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)table)));
}
inline vf scaled(__m512i q, float scale, float offset) {
  return vfma(_mm512_cvtepi32_ps(q), vset1(scale), vset1(offset));
}
// Q5_0's codes minus 16 as two vectors of 16 int32 lanes (elements 0..15, 16..31): element e takes bit e of qh as
// its fifth bit; q − 16 is formed in the integers (lanes whose fifth bit is clear lose 16).
inline void q5_0_codes(const uint8_t* blk, __m512i q[2]) {
  const uint32_t qh = gk::quant::u32_at(blk + 2);
  const __m512i b = u8x16(blk + 6), sixteen = _mm512_set1_epi32(16), low4 = _mm512_set1_epi32(0xF);
  const __m512i lo = _mm512_and_si512(b, low4), hi = _mm512_srli_epi32(b, 4);
  q[0] = _mm512_mask_sub_epi32(lo, (__mmask16)~qh, lo, sixteen);
  q[1] = _mm512_mask_sub_epi32(hi, (__mmask16)~(qh >> 16), hi, sixteen);
}
// Half u of a Q6_K block: vector v (0, 1) of group t (0..3) as q[t] minus 32, and the half's 8 scales d · sc
// (exact: 11 × 8 significant bits), scale[2t + v] for q[t] of vector v. Group t (elements 32t .. 32t + 32 of the
// half) takes nibble t >> 1 of ql[32(t & 1) + l] and bits 2t, 2t + 1 of qh[l].
inline void q6_k_scales(const uint8_t* blk, int u, float scale[8]) {
  _mm256_storeu_ps(scale, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                            _mm_loadl_epi64((const __m128i*)(blk + 192 + 8 * u)))),
                                        _mm256_set1_ps(gk::quant::f16_at(blk + 208))));
}
inline void q6_k_codes(const uint8_t* blk, int u, int v, __m512i q[4]) {
  const uint8_t* ql = blk + 64 * u;
  const uint8_t* qh = blk + 128 + 32 * u;
  const __m512i low4 = _mm512_set1_epi32(0xF), top2 = _mm512_set1_epi32(0x30), k32 = _mm512_set1_epi32(32);
  const __m512i a = u8x16(ql + 16 * v), b = u8x16(ql + 32 + 16 * v), h = u8x16(qh + 16 * v);
  q[0] = _mm512_or_si512(_mm512_and_si512(a, low4), _mm512_and_si512(_mm512_slli_epi32(h, 4), top2));
  q[1] = _mm512_or_si512(_mm512_and_si512(b, low4), _mm512_and_si512(_mm512_slli_epi32(h, 2), top2));
  q[2] = _mm512_or_si512(_mm512_srli_epi32(a, 4), _mm512_and_si512(h, top2));
  q[3] = _mm512_or_si512(_mm512_srli_epi32(b, 4), _mm512_and_si512(_mm512_srli_epi32(h, 2), top2));
  for (int t = 0; t < 4; ++t) q[t] = _mm512_sub_epi32(q[t], k32);
}
template <int DT>
inline void decode_unit(const uint8_t* blk, int u, vf* w) {
  using namespace gk::quant;
  const __m512i low4 = _mm512_set1_epi32(0xF);
  if constexpr (DT == GK_Q8_0) {
    (void)u;
    const vf d = vset1(f16_at(blk));
    for (int v = 0; v < 2; ++v) {
      w[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(blk + 2 + 16 * v)))), d);
    }
  } else if constexpr (DT == GK_Q5_0) {
    (void)u;
    // d · (q − 16): the same exactly representable value as scale · q + offset, one broadcast and no offset.
    __m512i q[2];
    q5_0_codes(blk, q);
    const vf d = vset1(f16_at(blk));
    for (int v = 0; v < 2; ++v) w[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(q[v]), d);
  } else if constexpr (DT == GK_Q4_K) {
    // Sub-blocks 2u (low nibbles) and 2u + 1 (high nibbles) of qs[32u .. 32u + 32).
    const GroupParams p0 = group_params<DT>(blk, 2 * u), p1 = group_params<DT>(blk, 2 * u + 1);
    for (int v = 0; v < 2; ++v) {
      const __m512i b = u8x16(blk + 16 + 32 * u + 16 * v);
      w[v] = scaled(_mm512_and_si512(b, low4), p0.scale[0], p0.offset[0]);
      w[2 + v] = scaled(_mm512_srli_epi32(b, 4), p1.scale[0], p1.offset[0]);
    }
  } else if constexpr (generic_group<DT>()) {
    decode_group_simd<DT>(blk, u, w);
  } else {
    // Half u, each weight scale · (q − 32) with q − 32 formed in the integers: one rounding of the same product as
    // scale · q + offset, so the same value, without two broadcasts and two scalar products per 16 weights.
    alignas(32) float scale[8];
    q6_k_scales(blk, u, scale);
    for (int v = 0; v < 2; ++v) {
      __m512i q[4];
      q6_k_codes(blk, u, v, q);
      for (int t = 0; t < 4; ++t) w[2 * t + v] = _mm512_mul_ps(_mm512_cvtepi32_ps(q[t]), vset1(scale[2 * t + v]));
    }
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kMR = 6;  // 6×16 tile: 12 accumulators of 16 ymm registers
inline vf vload_bf16(const uint16_t* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
inline void transpose(vf r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
#if defined(__F16C__)
inline vf vload_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
#else
inline vf vload_f16(const uint16_t* p) {
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = gk::f16_to_f32(p[i]);
  return _mm256_loadu_ps(t);
}
#endif
// ---- quantized blocks, decoded in registers (see the AVX-512 version); Q6_K in 32-element groups here,
// as a 128-element unit would need 16 of the 16 ymm registers ----
template <int DT>
constexpr int unit_elems() {
  return DT == GK_Q4_K ? 64 : 32;
}
inline __m256i u8x8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)p)); }
// decode_group_simd's integer vocabulary: kW lanes of int32.
using vi = __m256i;
inline vi u8v(const uint8_t* p) { return u8x8(p); }
inline vi vi_set1(int a) { return _mm256_set1_epi32(a); }
inline vi vi_and(vi a, vi b) { return _mm256_and_si256(a, b); }
inline vi vi_or(vi a, vi b) { return _mm256_or_si256(a, b); }
inline vi vi_srl(vi a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
inline vi vi_sll(vi a, int n) { return _mm256_sll_epi32(a, _mm_cvtsi32_si128(n)); }
inline vi vi_lane_bits(uint32_t bits, int first) {  // bit first + lane of bits, per lane
  const vi lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(bits >> first)), lane), _mm256_set1_epi32(1));
}
inline vi vi_lut16(vi idx, const int8_t* table) {  // table[idx], idx in 0..15: two 8-entry permutes and a blend
  const vi lo = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)table));
  const vi hi = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(table + 8)));
  return _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(lo, idx), _mm256_permutevar8x32_epi32(hi, idx),
                            _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
}
inline vf scaled(__m256i q, float scale, float offset) {
  return vfma(_mm256_cvtepi32_ps(q), vset1(scale), vset1(offset));
}
template <int DT>
inline void decode_unit(const uint8_t* blk, int u, vf* w) {
  using namespace gk::quant;
  const __m256i low4 = _mm256_set1_epi32(0xF);
  if constexpr (DT == GK_Q8_0) {
    (void)u;
    const vf d = vset1(f16_at(blk));
    for (int v = 0; v < 4; ++v) {
      w[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(blk + 2 + 8 * v)))), d);
    }
  } else if constexpr (DT == GK_Q5_0) {
    (void)u;
    // Element e = 8v + lane: nibble (v >> 1) of qs[8(v & 1) + lane], fifth bit = bit e of qh.
    const GroupParams p = group_params<DT>(blk, 0);
    const __m256i qh = _mm256_set1_epi32((int)u32_at(blk + 2));
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int v = 0; v < 4; ++v) {
      const __m256i b = u8x8(blk + 6 + 8 * (v & 1));
      const __m256i nib = v < 2 ? _mm256_and_si256(b, low4) : _mm256_srli_epi32(b, 4);
      const __m256i bit = _mm256_srlv_epi32(qh, _mm256_add_epi32(lane, _mm256_set1_epi32(8 * v)));
      w[v] = scaled(_mm256_or_si256(nib, _mm256_slli_epi32(_mm256_and_si256(bit, _mm256_set1_epi32(1)), 4)), p.scale[0],
                    p.offset[0]);
    }
  } else if constexpr (DT == GK_Q4_K) {
    const GroupParams p0 = group_params<DT>(blk, 2 * u), p1 = group_params<DT>(blk, 2 * u + 1);
    for (int v = 0; v < 4; ++v) {
      const __m256i b = u8x8(blk + 16 + 32 * u + 8 * v);
      w[v] = scaled(_mm256_and_si256(b, low4), p0.scale[0], p0.offset[0]);
      w[4 + v] = scaled(_mm256_srli_epi32(b, 4), p1.scale[0], p1.offset[0]);
    }
  } else if constexpr (generic_group<DT>()) {
    decode_group_simd<DT>(blk, u, w);
  } else {
    // Group u = 4h + t: nibble t >> 1 of ql[64h + 32(t & 1) + l], bits 2t, 2t + 1 of qh[32h + l].
    const GroupParams p = group_params<DT>(blk, u);
    const int h = u >> 2, t = u & 3;
    const uint8_t* ql = blk + 64 * h + 32 * (t & 1);
    const uint8_t* qh = blk + 128 + 32 * h;
    const __m128i lshift = _mm_cvtsi32_si128(4 * (t >> 1)), hshift = _mm_cvtsi32_si128(2 * t);
    for (int v = 0; v < 4; ++v) {
      const __m256i hi2 = _mm256_and_si256(_mm256_srl_epi32(u8x8(qh + 8 * v), hshift), _mm256_set1_epi32(3));
      const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srl_epi32(u8x8(ql + 8 * v), lshift), low4),
                                        _mm256_slli_epi32(hi2, 4));
      w[v] = scaled(q, p.scale[v >> 1], p.offset[v >> 1]);
    }
  }
}
#else
// Portable: fixed-width lanes in plain loops, which GCC turns into whatever SIMD -march allows.
constexpr int kMR = 4;
// Branch-free binary16 -> f32 (exact, subnormals included) so the conversion loops vectorise.
inline float f16_fast(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t mag = (uint32_t)(h & 0x7fffu) << 13;
  float f;
  memcpy(&f, &mag, sizeof f);
  f *= 0x1p112f;  // rebias the exponent; f16 subnormals land on exact f32 normals
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  bits = (h & 0x7c00u) == 0x7c00u ? (0x7f800000u | mag) : bits;  // inf / NaN keep their payload
  bits |= sign;
  memcpy(&f, &bits, sizeof f);
  return f;
}
inline vf vload_bf16(const uint16_t* p) {
  vf r;
  for (int i = 0; i < kW; ++i) r.v[i] = gk::bf16_to_f32(p[i]);
  return r;
}
inline vf vload_f16(const uint16_t* p) {
  vf r;
  for (int i = 0; i < kW; ++i) r.v[i] = f16_fast(p[i]);
  return r;
}
inline void transpose(vf r[kW]) {
  for (int i = 0; i < kW; ++i)
    for (int j = i + 1; j < kW; ++j) std::swap(r[i].v[j], r[j].v[i]);
}
// ---- quantized blocks: 32-element groups from quant.h's plain decoders ----
template <int DT>
constexpr int unit_elems() {
  return 32;
}
template <int DT>
inline void decode_unit(const uint8_t* blk, int u, vf* w) {
  const gk::quant::GroupParams p = gk::quant::group_params<DT>(blk, u);
  int32_t q[32];
  gk::quant::group_codes<DT>(blk, u, q);
  for (int l = 0; l < 32; ++l) w[l / kW].v[l % kW] = p.scale[l >> 4] * (float)q[l] + p.offset[l >> 4];
}
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
// Group g of a block, kW lanes at a time (elements e .. e + kW of the group), codes assembled as quant.h's
// group_codes states them: 4-bit codes (nibbles of 16 bytes, with Q5_1's fifth bits and the IQ4 / MXFP4
// codebooks), Q5_K's nibble pairs with a fifth bit, Q2_K / Q3_K's 2-bit fields with Q3_K's third bit.
template <int DT>
inline void decode_group_simd(const uint8_t* blk, int g, vf* w) {
  using namespace gk::quant;
  const GroupParams p = group_params<DT>(blk, g);
  const vi low4 = vi_set1(0xF), one = vi_set1(1);
#pragma GCC unroll 4
  for (int e = 0; e < 32; e += kW) {
    vi q;
    if constexpr (DT == GK_Q2_K || DT == GK_Q3_K) {
      const uint8_t* qs = blk + (DT == GK_Q2_K ? 16 : 32) + 32 * (g >> 2);
      q = vi_and(vi_srl(u8v(qs + e), 2 * (g & 3)), vi_set1(3));
      if constexpr (DT == GK_Q3_K) q = vi_or(q, vi_sll(vi_and(vi_srl(u8v(blk + e), g), one), 2));
    } else if constexpr (DT == GK_Q5_K) {
      q = vi_and(vi_srl(u8v(blk + 48 + 32 * (g >> 1) + e), 4 * (g & 1)), low4);
      q = vi_or(q, vi_sll(vi_and(vi_srl(u8v(blk + 16 + e), g), one), 4));
    } else {
      constexpr int qs_at = DT == GK_MXFP4 ? 1 : DT == GK_Q4_1 ? 4 : DT == GK_Q5_1 || DT == GK_IQ4_XS ? 8 : 2;
      const vi b = u8v(blk + qs_at + (DT == GK_IQ4_XS ? 16 * g : 0) + (e & 15));
      q = e < 16 ? vi_and(b, low4) : vi_srl(b, 4);
      if constexpr (DT == GK_Q5_1) q = vi_or(q, vi_sll(vi_lane_bits(u32_at(blk + 4), e), 4));
      if constexpr (DT == GK_IQ4_NL || DT == GK_IQ4_XS) q = vi_lut16(q, kIq4nlValues);
      if constexpr (DT == GK_MXFP4) q = vi_lut16(q, kMxfp4Values);
    }
    w[e / kW] = scaled(q, p.scale[e >> 4], p.offset[e >> 4]);
  }
}
#else
template <int DT>
inline void decode_group_simd(const uint8_t* blk, int g, vf* w) {
  decode_unit<DT>(blk, g, w);
}
#endif

constexpr int kNR = 2 * kW;         // output columns per micro-tile
constexpr int kKB = 256;            // k block: the micro-kernel sweeps a kKB×kNR sliver of the panel
constexpr int kNB = 128;            // n block: one task's packed panel, kNB×kKB f32 = 128 KB (L2)
constexpr int kMC = 512;            // x rows per task: kMC×kKB of x stays in L2 while a panel is swept
constexpr int kSmallM = 5;          // below this many rows W is streamed rather than packed
constexpr int kQuantStreamM = 16;   // the same for quantized W, in groups of up to 8 rows (gemv_groups)
constexpr int kPackPrefetch = 128;  // W elements ahead of the packing loads

template <int DT>
inline vf vloadw(const void* w, int64_t i) {
  if constexpr (DT == GK_F32) return vload((const float*)w + i);
  if constexpr (DT == GK_BF16) return vload_bf16((const uint16_t*)w + i);
  return vload_f16((const uint16_t*)w + i);
}

inline float bias_at(const void* bias, int32_t dtype, int64_t j) {
  return bias ? gk::load_f32(bias, dtype, j) : 0.0f;
}

using gk::is_quant_dtype;
template <int DT>
constexpr int unit_vectors() {
  return unit_elems<DT>() / kW;
}
// The bias is stored like the weight for float weights and as f32 for quantized ones (the header's rule).
constexpr int bias_dtype(int DT) { return is_quant_dtype(DT) || gk::cpu::is_x16_dtype(DT) ? GK_F32 : DT; }

// ---- small m (1 = decode): stream W once, R rows of it at a time against all M rows of x ----

#if defined(GK_LINEAR_NEON)
// 4 W elements widened to f32: bf16 is the high half of an f32 (a 16-bit left shift), f16 converts exactly.
template <int DT>
inline float32x4_t neon_loadw4(const void* w, int64_t i) {
  if constexpr (DT == GK_F32) return vld1q_f32((const float*)w + i);
  if constexpr (DT == GK_BF16) return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t*)w + i), 16));
  return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t*)w + i)));
}
#endif

// y[i, r .. r+R) for i < M. M·R independent FMA chains hide the FMA latency; each W vector is loaded
// (and widened) once and used M times.
template <int DT, int M, int R>
inline void dot_block(const float* x, const void* w, const void* bias, int64_t r, int64_t n, int64_t k, float* y) {
  // The block's R rows are R short streams, too many for the hardware prefetcher to follow well: pull the
  // next block toward L2 (prefetcht1) at the rate this one is consumed, one block of look-ahead.
  // Measured on the 1.3 GB lm_head: ~10-15 GB/s without, ~20 (1 thread) / ~39 GB/s (2 threads) with.
  constexpr int64_t esz = DT == GK_F32 ? 4 : 2;
  const char* next = (const char*)w + (r + R) * k * esz;
  int64_t c = 0;
#if defined(GK_LINEAR_NEON)
  // Two q registers per 8 columns; each W pair is loaded once and used against all M rows of x.
  float32x4_t nacc[M][R][2];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) nacc[i][j][0] = nacc[i][j][1] = vdupq_n_f32(0.0f);
  for (; c + 8 <= k; c += 8) {
    for (int64_t b = 0; b < R * 8 * esz; b += 64) __builtin_prefetch(next + c * R * esz + b, 0, 2);
    for (int j = 0; j < R; ++j) {
      const float32x4_t w0 = neon_loadw4<DT>(w, (r + j) * k + c), w1 = neon_loadw4<DT>(w, (r + j) * k + c + 4);
      for (int i = 0; i < M; ++i) {
        nacc[i][j][0] = vfmaq_f32(nacc[i][j][0], w0, vld1q_f32(x + i * k + c));
        nacc[i][j][1] = vfmaq_f32(nacc[i][j][1], w1, vld1q_f32(x + i * k + c + 4));
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < R; ++j) {
      float s = vaddvq_f32(vaddq_f32(nacc[i][j][0], nacc[i][j][1]));
      for (int64_t t = c; t < k; ++t) s += gk::load_f32(w, DT, (r + j) * k + t) * x[i * k + t];
      y[i * n + r + j] = s + bias_at(bias, DT, r + j);
    }
  }
#else
  vf acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = vzero();
  for (; c + kW <= k; c += kW) {
    for (int64_t b = 0; b < R * kW * esz; b += 64) __builtin_prefetch(next + c * R * esz + b, 0, 2);
    vf wv[R];
    for (int j = 0; j < R; ++j) wv[j] = vloadw<DT>(w, (r + j) * k + c);
    for (int i = 0; i < M; ++i) {
      const vf xv = vload(x + i * k + c);
      for (int j = 0; j < R; ++j) acc[i][j] = vfma(wv[j], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < R; ++j) {
      float s = hsum(acc[i][j]);
      for (int64_t t = c; t < k; ++t) s += gk::load_f32(w, DT, (r + j) * k + t) * x[i * k + t];
      y[i * n + r + j] = s + bias_at(bias, DT, r + j);
    }
  }
#endif
}

#if defined(__AVX512F__)
// Decode (m = 1) is bound by the decoding work per weight, not by memory. For Q8_0 (a tied-embedding lm_head, nearly
// half of a 270M token), Q5_0 and Q6_K each block's (16-element group's) scale is applied once to its partial sum,
// d · Σ q·x, rather than to every weight, (d · q) · x: 16-17% less time per Q5_0 / Q6_K product. The same sum to f32
// rounding, no longer the FMA of the exactly dequantized weights (the file header's one exception).
template <int DT>
constexpr bool factored_gemv() {
  return DT == GK_Q8_0 || DT == GK_Q5_0 || DT == GK_Q6_K;
}
// acc + one W row's block `blk` dotted with its inputs x, scale by scale.
template <int DT>
inline vf block_dot(const uint8_t* blk, const float* x, vf acc) {
  using gk::quant::f16_at;
  if constexpr (DT == GK_Q8_0) {
    const vf q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(blk + 2))));
    const vf q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(blk + 18))));
    return vfma(vfma(q1, vload(x + 16), _mm512_mul_ps(q0, vload(x))), vset1(f16_at(blk)), acc);
  } else if constexpr (DT == GK_Q5_0) {
    __m512i q[2];
    q5_0_codes(blk, q);
    const vf s = vfma(_mm512_cvtepi32_ps(q[1]), vload(x + 16), _mm512_mul_ps(_mm512_cvtepi32_ps(q[0]), vload(x)));
    return vfma(s, vset1(f16_at(blk)), acc);
  } else {
    static_assert(DT == GK_Q6_K);
    for (int u = 0; u < 2; ++u) {
      alignas(32) float scale[8];
      q6_k_scales(blk, u, scale);
      for (int v = 0; v < 2; ++v) {
        __m512i q[4];
        q6_k_codes(blk, u, v, q);
        for (int t = 0; t < 4; ++t) {
          const vf p = _mm512_mul_ps(_mm512_cvtepi32_ps(q[t]), vload(x + 128 * u + 32 * t + 16 * v));
          acc = vfma(p, vset1(scale[2 * t + v]), acc);
        }
      }
    }
    return acc;
  }
}
#endif

// Where qdot_block prefetches: the rows one call ahead, pulled in at the rate these are consumed.
inline const char* prefetch_base(const uint8_t* rows, int rows_per_call, int64_t row_bytes) {
  return (const char*)rows + rows_per_call * row_bytes;
}
// Quantized W: y[i, r .. r+R) for i < M, block by block. Each unit of a row is decoded to f32 in registers
// once and FMA'd against the M rows of x.
template <int DT, int M, int R>
inline void qdot_block(const float* x, const void* w, const void* bias, int64_t r, int64_t n, int64_t k, float* y) {
  using B = gk::quant::Block<DT>;
  constexpr int U = unit_elems<DT>();
  const int64_t blocks = k / B::elems, row_bytes = blocks * B::bytes;
  const uint8_t* rows = (const uint8_t*)w + r * row_bytes;
#if defined(__AVX512F__)
  if constexpr (M == 1 && factored_gemv<DT>()) {
    vf acc[R];
    for (int j = 0; j < R; ++j) acc[j] = vzero();
    const char* ahead = prefetch_base(rows, R, row_bytes);
    for (int64_t b = 0; b < blocks; ++b) {
      for (int64_t at = 0; at < R * B::bytes; at += 64) __builtin_prefetch(ahead + b * R * B::bytes + at, 0, 3);
#pragma GCC unroll 16
      for (int j = 0; j < R; ++j) acc[j] = block_dot<DT>(rows + j * row_bytes + b * B::bytes, x + b * B::elems, acc[j]);
    }
    for (int j = 0; j < R; ++j) y[r + j] = hsum(acc[j]) + bias_at(bias, GK_F32, r + j);
    return;
  }
#endif
  vf acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = vzero();
  // As dot_block: pull the next R rows in at the rate these are consumed (R blocks' bytes per block), here
  // all the way to L1 (prefetcht0): on the Q8_0 lm_head that measured ~18 GB/s per core against ~13 for
  // prefetcht1, neutral for the K-quants, which decode longer per byte.
  const char* next = prefetch_base(rows, R, row_bytes);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t at = 0; at < R * B::bytes; at += 64) __builtin_prefetch(next + b * R * B::bytes + at, 0, 3);
    for (int u = 0; u < B::elems / U; ++u) {
      const int64_t c = b * B::elems + U * u;
      // Fully unrolled, so acc stays in registers (GCC keeps a rolled loop's acc[j] on the stack).
#pragma GCC unroll 16
      for (int j = 0; j < R; ++j) {
        vf wv[unit_vectors<DT>()];
        decode_unit<DT>(rows + j * row_bytes + b * B::bytes, u, wv);
        // Unrolled for every M <= 8 (gemv_groups' groups), so acc[i][j] stays in registers: with unroll 4, M = 5..8
        // kept acc on the stack, a load and a store around every FMA (m = 8 products 5-35% slower).
#pragma GCC unroll 8
        for (int i = 0; i < M; ++i) {
          // (A constant trip count, often 1: GCC unrolls it without a pragma, and warns on one.)
          for (int v = 0; v < unit_vectors<DT>(); ++v) acc[i][j] = vfma(wv[v], vload(x + i * k + c + v * kW), acc[i][j]);
        }
      }
    }
  }
#if defined(__AVX512F__)
  if constexpr (M * R == 16) {
    alignas(64) float sums[16];
    hsum16(&acc[0][0], sums);
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < R; ++j) y[i * n + r + j] = sums[i * R + j] + bias_at(bias, GK_F32, r + j);
    }
    return;
  }
#endif
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < R; ++j) y[i * n + r + j] = hsum(acc[i][j]) + bias_at(bias, GK_F32, r + j);
  }
}

// Rows per block for M rows of x: as many accumulators as the register file comfortably holds.
template <int M>
constexpr int rows_per_block() {
  constexpr int acc = kW == 16 ? 16 : 8;
  return M == 1 ? 8 : std::max(1, acc / M);
}

// W rows [r0, r1) against M rows of x.
template <int DT, int M>
inline void stream_rows(const float* x, const void* w, const void* bias, int64_t r0, int64_t r1, int64_t n, int64_t k,
                        float* y) {
  constexpr int R = rows_per_block<M>();
  int64_t r = r0;
  if constexpr (is_quant_dtype(DT)) {
    for (; r + R <= r1; r += R) qdot_block<DT, M, R>(x, w, bias, r, n, k, y);
    for (; r < r1; ++r) qdot_block<DT, M, 1>(x, w, bias, r, n, k, y);
  } else {
    for (; r + R <= r1; r += R) dot_block<DT, M, R>(x, w, bias, r, n, k, y);
    for (; r < r1; ++r) dot_block<DT, M, 1>(x, w, bias, r, n, k, y);
  }
}

// This thread's share of W's rows: contiguous ranges keep each thread on a few sequential streams.
template <int M>
inline std::pair<int64_t, int64_t> thread_rows(int64_t n, int64_t t, int64_t nt) {
  constexpr int R = rows_per_block<M>();
  const int64_t blocks = (n + R - 1) / R;
  return {blocks * t / nt * R, std::min(n, blocks * (t + 1) / nt * R)};
}
template <int M>
inline std::pair<int64_t, int64_t> thread_rows(int64_t n) {
  return thread_rows<M>(n, omp_get_thread_num(), omp_get_num_threads());
}

// On the decode pool (pool.h), not OpenMP: decode runs ~150 of these short products per token, and OpenMP's
// spinning hand-offs collapse when the cores are shared.
template <int DT, int M>
void gemv(const float* x, const void* w, const void* bias, int64_t n, int64_t k, float* y) {
  const bool par = n * k * M >= (1 << 15) && n >= 2 * rows_per_block<M>();
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const auto [r0, r1] = thread_rows<M>(n, t, nt);
    stream_rows<DT, M>(x, w, bias, r0, r1, n, k, y);
  });
}

// W rows [r0, r1) against g <= 8 rows of x.
template <int DT>
inline void stream_rows_any(int g, const float* x, const void* w, const void* bias, int64_t r0, int64_t r1, int64_t n,
                            int64_t k, float* y) {
  switch (g) {
    case 8: return stream_rows<DT, 8>(x, w, bias, r0, r1, n, k, y);
    case 7: return stream_rows<DT, 7>(x, w, bias, r0, r1, n, k, y);
    case 6: return stream_rows<DT, 6>(x, w, bias, r0, r1, n, k, y);
    case 5: return stream_rows<DT, 5>(x, w, bias, r0, r1, n, k, y);
    case 4: return stream_rows<DT, 4>(x, w, bias, r0, r1, n, k, y);
    case 3: return stream_rows<DT, 3>(x, w, bias, r0, r1, n, k, y);
    case 2: return stream_rows<DT, 2>(x, w, bias, r0, r1, n, k, y);
    default: return stream_rows<DT, 1>(x, w, bias, r0, r1, n, k, y);
  }
}

// Quantized W and a few more rows of x than gemv takes (kSmallM <= m < kQuantStreamM). Packing decodes W
// into a panel and transposes it, which costs about 3x decoding it in registers (measured: one thread,
// 270M's up_proj Q5_0 2048x640: m=4 streamed 0.17 ms, m=5 packed 0.47 ms, m=16 packed 0.87 ms). So W is
// streamed once per group of at most kGroup rows of x instead, the groups as even as possible (6 rows: one
// pass of 6, not 4 + 2). Each thread keeps the same W rows for every group; a 270M projection's half
// (<= 0.6 MB) stays in L2 between groups, so later passes decode from cache.
//
// On the decode pool, as gemv: a batched decode step (src/generate/batch.ts) runs its products with 5..15 rows
// ~150 times per step, where OpenMP's hand-offs cost as much as the products on shared cores.
template <int DT>
void gemv_groups(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  constexpr int kGroup = 8;
  const int64_t groups = (m + kGroup - 1) / kGroup;
  gk::cpu::pool_for(n >= 2 * rows_per_block<1>() ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const auto [r0, r1] = thread_rows<1>(n, t, nt);  // stream_rows takes any range (a ragged tail goes row by row)
    for (int64_t g = 0, i = 0; g < groups; ++g) {
      const int64_t rows = m * (g + 1) / groups - i;
      stream_rows_any<DT>((int)rows, x + i * k, w, bias, r0, r1, n, k, y + i * n);
      i += rows;
    }
  });
}

// ---- m > 1: packed-panel GEMM ----

// W[n0 .. n0+nb, k0 .. k0+kb] as f32, in slivers of kNR rows laid out [kb][kNR] (rows past n are 0),
// so the micro-kernel reads kNR consecutive outputs' weights for one k with plain vector loads.
// kW×kW blocks are transposed in registers: the naive strided scatter thrashes L1 (stride 128 B).
template <int DT>
void pack_panel(const void* w, int64_t k, int64_t n0, int nb, int64_t k0, int kb, float* panel) {
  for (int s = 0; s * kNR < nb; ++s) {
    float* dst = panel + (int64_t)s * kb * kNR;
    int i = 0;
    for (; i + kW <= kb; i += kW) {
      for (int h = 0; h < kNR; h += kW) {
        vf r[kW];
        for (int j = 0; j < kW; ++j) {
          const int row = s * kNR + h + j;
          const int64_t at = (n0 + row) * k + k0 + i;
          // kW rows are kW concurrent streams, more than the hardware prefetcher follows.
          __builtin_prefetch((const char*)w + (at + kPackPrefetch) * (DT == GK_F32 ? 4 : 2));
          r[j] = row < nb ? vloadw<DT>(w, at) : vzero();
        }
        transpose(r);
        for (int j = 0; j < kW; ++j) vstore(dst + (int64_t)(i + j) * kNR + h, r[j]);
      }
    }
    for (; i < kb; ++i) {
      for (int r = 0; r < kNR; ++r) {
        const int row = s * kNR + r;
        dst[(int64_t)i * kNR + r] = row < nb ? gk::load_f32(w, DT, (n0 + row) * k + k0 + i) : 0.0f;
      }
    }
  }
}

// Quantized W: rows n0 .. n0+nb, columns k0 .. k0+kb (whole blocks), in pack_panel's layout. Each unit of
// kW rows is decoded in registers and transposed straight into the panel, rather than decoded into a
// scratch buffer that is then packed like f32 weights (a store and a reload of every element, 1-2%).
template <int DT>
void pack_panel_quant(const void* w, int64_t k, int64_t n0, int nb, int64_t k0, int kb, float* panel) {
  using B = gk::quant::Block<DT>;
  constexpr int U = unit_elems<DT>(), V = unit_vectors<DT>();
  const int64_t row_bytes = k / B::elems * B::bytes;
  const uint8_t* slab = (const uint8_t*)w + k0 / B::elems * B::bytes;
  for (int s = 0; s * kNR < nb; ++s) {
    float* dst = panel + (int64_t)s * kb * kNR;
    for (int h = 0; h < kNR; h += kW) {
      const int row0 = s * kNR + h, count = std::max(0, std::min(kW, nb - row0));  // rows past nb pack as 0
      for (int c = 0; c < kb; c += U) {
        vf r[V][kW];
        for (int j = 0; j < kW; ++j) {
          vf wv[V];
          if (j < count) {
            decode_unit<DT>(slab + (n0 + row0 + j) * row_bytes + c / B::elems * B::bytes, c % B::elems / U, wv);
          } else {
            for (int v = 0; v < V; ++v) wv[v] = vzero();
          }
          for (int v = 0; v < V; ++v) r[v][j] = wv[v];
        }
        for (int v = 0; v < V; ++v) {
          transpose(r[v]);
          for (int j = 0; j < kW; ++j) vstore(dst + (int64_t)(c + v * kW + j) * kNR + h, r[v][j]);
        }
      }
    }
  }
}

// c[R, kNR] += x[R, kb] · sliver[kb, kNR]; x rows are ldx apart, c rows ldc apart.
template <int R>
void micro(const float* x, int64_t ldx, const float* b, int kb, float* c, int64_t ldc) {
  vf lo[R], hi[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = vzero();
  for (int i = 0; i < kb; ++i) {
    const vf b0 = vload(b + (int64_t)i * kNR), b1 = vload(b + (int64_t)i * kNR + kW);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const vf a = vset1(x[r * ldx + i]);
      lo[r] = vfma(a, b0, lo[r]);
      hi[r] = vfma(a, b1, hi[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    vstore(c + r * ldc, vadd(vload(c + r * ldc), lo[r]));
    vstore(c + r * ldc + kW, vadd(vload(c + r * ldc + kW), hi[r]));
  }
}

using MicroFn = void (*)(const float*, int64_t, const float*, int, float*, int64_t);

template <int... Rs>
MicroFn micro_for(int rows, std::integer_sequence<int, Rs...>) {
  MicroFn fns[] = {micro<Rs + 1>...};
  return fns[rows - 1];
}

inline MicroFn micro_for(int rows) { return micro_for(rows, std::make_integer_sequence<int, kMR>{}); }

// Rows [m0, m1) × columns [n0, n0+nb) of y, the whole k range.
// `panel` holds kNB×kKB floats.
template <int DT>
void gemm_task(const float* x, const void* w, const void* bias, int64_t m0, int64_t m1, int64_t n0, int nb,
               int64_t k, float* y, int64_t n, float* panel) {
  for (int64_t i = m0; i < m1; ++i)
    for (int j = 0; j < nb; ++j) y[i * n + n0 + j] = bias_at(bias, bias_dtype(DT), n0 + j);
  alignas(64) float tile[kMR * kNR];
  for (int64_t k0 = 0; k0 < k; k0 += kKB) {
    // kKB is a whole number of blocks of every quantized dtype, so each k slab is too.
    static_assert(kKB % 256 == 0, "k slabs must hold whole quantized blocks");
    const int kb = (int)std::min<int64_t>(kKB, k - k0);
    if constexpr (gk::cpu::is_x16_dtype(DT)) {
      // (Written to depend on DT, so that only an instantiation checks it: builds without AVX-512, kNR = 16, never
      // instantiate a layout's GEMM.)
      static_assert(kNR == 32 || !gk::cpu::is_x16_dtype(DT), "x16_panel packs slivers of 32 rows");
      gk::cpu::x16_panel(w, DT, k, n0, nb, k0, kb, panel);
    } else if constexpr (is_quant_dtype(DT)) {
      pack_panel_quant<DT>(w, k, n0, nb, k0, kb, panel);
    } else {
      pack_panel<DT>(w, k, n0, nb, k0, kb, panel);
    }
    for (int s = 0; s * kNR < nb; ++s) {
      const float* sliver = panel + (int64_t)s * kb * kNR;
      const int cols = std::min(kNR, nb - s * kNR);
      for (int64_t i = m0; i < m1; i += kMR) {
        const int rows = (int)std::min<int64_t>(kMR, m1 - i);
        const float* xs = x + i * k + k0;
        float* ys = y + i * n + n0 + s * kNR;
        if (cols == kNR) {
          micro_for(rows)(xs, k, sliver, kb, ys, n);
        } else {  // the n edge: accumulate in a full-width tile, copy back the real columns
          for (int r = 0; r < rows; ++r) {
            for (int j = 0; j < kNR; ++j) tile[r * kNR + j] = j < cols ? ys[r * n + j] : 0.0f;
          }
          micro_for(rows)(xs, k, sliver, kb, tile, kNR);
          for (int r = 0; r < rows; ++r) memcpy(ys + r * n, tile + r * kNR, sizeof(float) * cols);
        }
      }
    }
  }
}

// This thread's packing panel (kNB×kKB floats), allocated on first
// use and kept for the thread's life: at 160 KB it is above glibc's mmap threshold, so a fresh allocation per
// call was an mmap, page faults on every page and an munmap, each GEMM call (~4% of a 270M prefill).
inline float* thread_panel() {
  struct Panel {
    float* p = (float*)std::aligned_alloc(64, sizeof(float) * kNB * kKB);
    ~Panel() { std::free(p); }
  };
  thread_local Panel panel;
  return panel.p;
}

// A buffer of the calling thread, grown on demand and kept (as thread_panel, to spare an mmap per call); nullptr
// when it cannot grow. One per Tag: gemm_bcast's x^T and its W strips.
template <typename Tag>
inline float* thread_buffer(int64_t floats) {
  struct Buffer {
    float* p = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer buf;
  if (buf.size < floats) {
    std::free(buf.p);
    buf.p = (float*)std::aligned_alloc(64, (size_t)floats * sizeof(float));
    buf.size = buf.p ? floats : 0;
  }
  return buf.p;
}
struct XtTag;
struct StripTag;
inline float* thread_xt(int64_t floats) { return thread_buffer<XtTag>(floats); }

template <int DT>
gk_status gemm(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  const int64_t threads = omp_get_max_threads();
  // Narrower panels when n has few blocks: 270M's o_proj and down_proj (n = 640) made 5 tasks of 128
  // columns for 2 threads, one idle for a fifth of the time; 10 of 64 balance. (m could be split instead,
  // but then every m chunk decodes W again.)
  int64_t nb = kNB;
  while (nb > kNR && (n + nb - 1) / nb < 4 * threads) nb /= 2;
  const int64_t n_blocks = (n + nb - 1) / nb;
  // Split m as well when there are too few n blocks to keep every thread busy.
  int64_t m_chunks = (m + kMC - 1) / kMC;
  if (n_blocks * m_chunks < 2 * threads) {
    m_chunks = std::max<int64_t>(m_chunks, std::min((2 * threads + n_blocks - 1) / n_blocks, (m + kMR - 1) / kMR));
  }
  const int64_t mc = ((m + m_chunks - 1) / m_chunks + kMR - 1) / kMR * kMR;
  m_chunks = (m + mc - 1) / mc;
  const int64_t tasks = n_blocks * m_chunks;
  const bool par = tasks > 1 && m * n * k >= (1 << 18);
  bool oom = false;
#pragma omp parallel if (par) reduction(|| : oom)
  {
    float* panel = thread_panel();
    oom = panel == nullptr;
    // Every thread must reach the worksharing loop, so one without a panel just skips its tasks.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      if (!panel) continue;
      const int64_t n0 = t % n_blocks * nb, m0 = t / n_blocks * mc;
      gemm_task<DT>(x, w, bias, m0, std::min(m, m0 + mc), n0, (int)std::min<int64_t>(nb, n - n0), k, y, n, panel);
    }
  }
  if (oom) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate a %d×%d packing panel", kNB, kKB);
  return GK_OK;
}

// ---- 16 <= m <= kQuantBcastM, quantized W: decoded W rows broadcast against x^T ----
// The packed GEMM wants W transposed (kNR outputs per k), so every decoded vector also goes through a
// kW×kW register transpose: per call that cost as much as ~11 rows of x's FMAs (one thread, 270M's up_proj
// Q5_0: 0.25 ms fixed + 0.023 ms per row), a third of a 32-token product. Here the vectors run along m
// instead: x is transposed once per call (m·k elements, shared by every W row), W rows are decoded with
// plain stores into a strip, and each W element is broadcast against up to kBcastMV vectors of x^T
// (0.09 ms fixed, the same per row). Every y element is still one fixed-order f32 sum over k.
constexpr int kQuantBcastM = 128;            // measured: faster than the packed GEMM at 16..128, mixed at 256
// W rows per strip: kBcastNR × kBcastMV accumulators. AVX2 (16 ymm registers): 6 × 2 = 12 accumulators, 2 vectors of
// x^T and a broadcast, 12 FMAs per 8 loads, against 8 per 6 with 4 rows: a 16-token 270M prefill 178 -> 220 and 284 ->
// 333 tok/s (2-core EPYC, two interleaved sets; docs/benchmarks.md has the command). The same sums in the same order.
// The portable vectors (two registers each on SSE or NEON) keep 4, the value nothing has been measured against.
#if defined(__AVX512F__)
constexpr int kBcastNR = 8;
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kBcastNR = 6;
#else
constexpr int kBcastNR = 4;
#endif
constexpr int kBcastMV = 2;                  // vectors of x^T (kW rows of x each) per micro-tile
// Longest k taken: a strip of 2·kBcastNR rows is then at most 1 MB, within a core's L2 (2 MB here). Up to k = 4096 the
// strip lived in the packing panel; Gemma 4 E2B's down_proj (k = 6144) and 1B's (6912) went to the packed GEMM,
// measured slower at 16 rows.
constexpr int64_t kBcastMaxK = 16384;
// And the most x^T it streams per strip (m·k floats, 1 MB, half a core's L2): past that every strip re-reads x^T from
// L3 and the packed GEMM wins (measured, 2 threads: a 1536×6144 Q4_K weight at 128 rows 48 against 123 GMAC/s; a
// 1152×6912 Q6_K one at 48 / 64 rows 58-67 / 53-56 against 82-94 / 98-101).
constexpr int64_t kBcastMaxXt = 1 << 18;
inline bool bcast_fits(int64_t m, int64_t k) { return k <= kBcastMaxK && m * k <= kBcastMaxXt; }

// W rows [r0, r0 + rows) decoded into strip, laid out [k / kW][kBcastNR][kW] so the micro-kernel walks it
// as one stream; rows past `rows` are 0.
template <int DT, int NR>
void decode_strip_rows(const void* w, int64_t k, int64_t r0, int rows, float* strip) {
  using B = gk::quant::Block<DT>;
  constexpr int U = unit_elems<DT>(), V = unit_vectors<DT>();
  const int64_t row_bytes = k / B::elems * B::bytes;
  for (int j = 0; j < NR; ++j) {
    const uint8_t* row = (const uint8_t*)w + (r0 + j) * row_bytes;
    for (int64_t c = 0; c < k; c += U) {
      vf wv[V];
      if (j < rows) {
        decode_unit<DT>(row + c / B::elems * B::bytes, (int)(c % B::elems / U), wv);
      } else {
        for (int v = 0; v < V; ++v) wv[v] = vzero();
      }
      for (int v = 0; v < V; ++v) vstore(strip + ((c / kW + v) * NR + j) * kW, wv[v]);
    }
  }
}
template <int DT, int NR>
void decode_strip(const void* w, int64_t k, int64_t r0, int rows, float* strip) {
  if constexpr (gk::cpu::is_x16_dtype(DT)) {
    gk::cpu::x16_strip(w, DT, k, r0, rows, NR, strip);  // (strips of 8 or 16 rows: never across a 16-row group)
  } else {
    decode_strip_rows<DT, NR>(w, k, r0, rows, strip);
  }
}

// y[m0 + i, r0 + j] (+ bias) for i < MV·kW, j < cols: vectors of x^T (rows m0 .. m0 + MV·kW of x; x^T's
// rows are mp apart) against the strip, over the whole k.
template <int MV, int NR>
void bcast_tile(const float* xt, int64_t mp, const float* strip, int64_t k, const void* bias, int64_t m0, int64_t r0,
                int cols, int64_t n, float* y) {
  vf acc[NR][MV];
  for (int j = 0; j < NR; ++j)
    for (int v = 0; v < MV; ++v) acc[j][v] = vzero();
  for (int64_t c = 0; c < k; c += kW) {
    const float* wb = strip + c * NR;
    for (int l = 0; l < kW; ++l) {
      vf xv[MV];
      for (int v = 0; v < MV; ++v) xv[v] = vload(xt + (c + l) * mp + m0 + v * kW);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) {
        const vf b = vset1(wb[j * kW + l]);
        for (int v = 0; v < MV; ++v) acc[j][v] = vfma(b, xv[v], acc[j][v]);
      }
    }
  }
  alignas(64) float tile[NR][MV * kW];
  for (int j = 0; j < NR; ++j)
    for (int v = 0; v < MV; ++v) vstore(&tile[j][v * kW], acc[j][v]);
  for (int i = 0; i < MV * kW; ++i) {
    for (int j = 0; j < cols; ++j) y[(m0 + i) * n + r0 + j] = tile[j][i] + bias_at(bias, GK_F32, r0 + j);
  }
}

// The rows past the last whole vector of x^T (m % kW of them): R rows of x dotted with the strip's rows
// along k, so a lone 17th row costs one row's FMAs rather than a padded vector's kW.
template <int R, int NR>
void dot_tile(const float* x, int64_t k, const float* strip, const void* bias, int64_t i0, int64_t r0, int cols,
              int64_t n, float* y) {
  vf acc[R][NR];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = vzero();
  for (int64_t c = 0; c < k; c += kW) {
    vf xv[R];
    for (int i = 0; i < R; ++i) xv[i] = vload(x + (i0 + i) * k + c);
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      const vf wv = vload(strip + c * NR + j * kW);
      for (int i = 0; i < R; ++i) acc[i][j] = vfma(wv, xv[i], acc[i][j]);
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < cols; ++j) y[(i0 + i) * n + r0 + j] = hsum(acc[i][j]) + bias_at(bias, GK_F32, r0 + j);
  }
}

// gemm_bcast's products over strips of NR W rows.
template <int DT, int NR>
gk_status bcast_strips(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y,
                       const float* xt, int64_t mp) {
  const int64_t strips = (n + NR - 1) / NR;
  // On the decode pool (pool.h), each thread a contiguous range of strips: a prefill runs ~130 of these
  // products, and OpenMP's fork/join (futex wakes of threads that went to sleep between ops) cost ~10% of a
  // 16-token prefill.
  std::atomic<bool> oom{false};
  gk::cpu::pool_for(m * n * k >= (1 << 18) ? omp_get_max_threads() : 1, [&](int t, int nt) {
    float* strip = thread_buffer<StripTag>(NR * k);
    if (!strip) {
      oom = true;
      return;
    }
    for (int64_t s = strips * t / nt; s < strips * (t + 1) / nt; ++s) {
      const int64_t r0 = s * NR;
      const int cols = (int)std::min<int64_t>(NR, n - r0);
      decode_strip<DT, NR>(w, k, r0, cols, strip);
      [[maybe_unused]] int64_t m0 = 0;
      if constexpr (NR > kBcastNR) {  // one vector of x^T; the rest a row at a time (two would spill)
        bcast_tile<1, NR>(xt, mp, strip, k, bias, 0, r0, cols, n, y);
        for (int64_t i = mp; i < m; ++i) dot_tile<1, NR>(x, k, strip, bias, i, r0, cols, n, y);
        continue;
      }
      for (; m0 < mp;) {
        switch (std::min<int64_t>(kBcastMV, (mp - m0) / kW)) {
          case 1: bcast_tile<1, NR>(xt, mp, strip, k, bias, m0, r0, cols, n, y); m0 += kW; break;
          default: bcast_tile<2, NR>(xt, mp, strip, k, bias, m0, r0, cols, n, y); m0 += 2 * kW; break;
        }
      }
      for (; m0 + 2 <= m; m0 += 2) dot_tile<2, NR>(x, k, strip, bias, m0, r0, cols, n, y);
      if (m0 < m) dot_tile<1, NR>(x, k, strip, bias, m0, r0, cols, n, y);
    }
  });
  if (oom) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate a %d×%lld strip", NR, (long long)k);
  return GK_OK;
}

template <int DT>
gk_status gemm_bcast(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y,
                     float* xt) {
  const int64_t mp = m / kW * kW;  // rows in whole vectors of x^T; dot_tile takes the rest
  // In kW×kW register transposes: a column-wise scalar copy reads x with a stride of k floats, which at
  // k = 1024 or 2048 maps every row to the same L1 set and made this copy cost more than it saves.
  for (int64_t i0 = 0; i0 < mp; i0 += kW) {
    for (int64_t c = 0; c < k; c += kW) {
      vf r[kW];
      for (int j = 0; j < kW; ++j) r[j] = vload(x + (i0 + j) * k + c);
      transpose(r);
      for (int j = 0; j < kW; ++j) vstore(xt + (c + j) * mp + i0, r[j]);
    }
  }
  // One vector of x^T (16..31 rows of x): strips of twice the rows, so the tile has 2·kBcastNR FMA chains on one x
  // vector rather than kBcastNR (too few to cover the FMA latency with both ports busy).
  if (mp == kW) return bcast_strips<DT, 2 * kBcastNR>(x, w, bias, m, n, k, y, xt, mp);
  return bcast_strips<DT, kBcastNR>(x, w, bias, m, n, k, y, xt, mp);
}

// gemm_bcast with this thread's x^T buffer.
template <int DT>
gk_status bcast_product(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  float* xt = thread_xt(m / kW * kW * k);
  if (!xt) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate x^T (%lld×%lld)", (long long)k, (long long)m);
  return gemm_bcast<DT>(x, w, bias, m, n, k, y, xt);
}

template <int DT>
gk_status linear_dt(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  if constexpr (is_quant_dtype(DT)) {
    if (m <= 8 && gk::cpu::q8_activations_enabled() && gk::cpu::linear_q8act(x, w, DT, bias, m, n, k, y)) return GK_OK;
    if (m == 1 && gk::cpu::x24_activations_enabled() && gk::cpu::linear_x24act(x, w, DT, bias, n, k, y)) return GK_OK;
  }
  // A few rows of x: packing W would cost more than streaming it once (the header's m == 1 rule, widened).
  static_assert(kSmallM <= 5, "the streaming path takes at most 4 rows of x");
  switch (m < kSmallM ? m : 0) {
    case 1: gemv<DT, 1>(x, w, bias, n, k, y); return GK_OK;
    case 2: gemv<DT, 2>(x, w, bias, n, k, y); return GK_OK;
    case 3: gemv<DT, 3>(x, w, bias, n, k, y); return GK_OK;
    case 4: gemv<DT, 4>(x, w, bias, n, k, y); return GK_OK;
    default: break;
  }
  if constexpr (is_quant_dtype(DT)) {
    if (m < kQuantStreamM) {
      gemv_groups<DT>(x, w, bias, m, n, k, y);
      return GK_OK;
    }
    // The strip (kBcastNR or 2·kBcastNR whole rows of W) lives in a buffer of its own, so k up to kBcastMaxK here.
    if (m <= kQuantBcastM && bcast_fits(m, k)) return bcast_product<DT>(x, w, bias, m, n, k, y);
  }
  return gemm<DT>(x, w, bias, m, n, k, y);
}

// The 16-row layouts (kernels/cpu/repack.cpp): up to int_rows_max(DT) rows of x their integer kernel, which reads W
// once for all rows; more take f32: the packed GEMM, its panels straight from the layout (whose code vectors already
// hold 16 rows per column: no transposes, unlike the file formats' panels), or from 48 rows to kQuantBcastM the x^T
// broadcast against W strips (gemm_bcast). Measured (2 threads, 640-row weights; ms packed / broadcast): k = 640 Q5_0
// 17 rows 0.076 / 0.088, 32 rows 0.107 / 0.136, 64 rows 0.23 / 0.23, 128 rows 0.44 / 0.43; k = 2048 Q4_K 17 rows
// 0.235 / 0.274, 32 rows 0.333 / 0.377, 64 rows 0.71 / 0.69, 128 rows 1.29 / 1.38 (Q8_0 and Q6_K alike).
constexpr int kX16BcastMinM = 48;

// Where the integer kernel stops winning: three vpdpbusd per 64 codes and row of x against one FMA per 16, on a core
// that runs one 512-bit FMA a cycle. Measured in cache with warm pool threads (2 threads, ms integer / f32): the
// 32-element formats at [2048, 640] 16 rows 0.17 / 0.24, 32 rows 0.34 / 0.42, 40 rows 0.42 / 0.51 (Q8_0, Q5_0, Q4_0,
// Q4_1, Q5_1 alike), equal at 48; Q5_0 [6912, 1152] 16 rows 0.98 / 1.37, 40 rows 2.57 / 2.87. Q4_K [640, 2048] 16 rows
// 0.20 / 0.22, 24 rows 0.29 / 0.29; [1152, 6912] 16 rows 1.05 / 1.42, 24 rows 1.58 / 1.84 (Q5_K a little slower to
// unpack). Q6_K, whose 16-element scales take two conversions per block: [640, 2048] 12 rows 0.18 / 0.18, 16 rows
// 0.25 / 0.22.
constexpr int64_t int_rows_max(int DT) {
  if (DT == GK_Q6_KX16) return 15;
  if (DT == GK_Q4_KX16 || DT == GK_Q5_KX16) return 20;
  return 40;
}

template <int DT>
gk_status linear_rows16(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
#if defined(__AVX512F__)  // (the strips and panels are decoded 16 rows a vector: kW = 16)
  if (m > int_rows_max(DT)) {
    if (m >= kX16BcastMinM && m <= kQuantBcastM && bcast_fits(m, k)) return bcast_product<DT>(x, w, bias, m, n, k, y);
    return gemm<DT>(x, w, bias, m, n, k, y);
  }
#endif
  return gk::cpu::linear_x16(x, w, DT, bias, m, n, k, y);
}

}  // namespace

int64_t gk::cpu::x16_int_rows_max(int32_t dtype) {
  switch (dtype) {
    case GK_Q6_KX16: return int_rows_max(GK_Q6_KX16);
    case GK_Q4_KX16: return int_rows_max(GK_Q4_KX16);
    case GK_Q5_KX16: return int_rows_max(GK_Q5_KX16);
    default: return int_rows_max(GK_Q8_0X16);
  }
}

GK_API gk_status gk_linear(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, const void* bias,
                           int32_t m, int32_t n, int32_t k, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_linear"));
  if (gk::cpu::is_x16_dtype(weight_dtype)) {  // the CPU library's own layouts (kernels/cpu/repack.cpp)
    GK_TRY(gk::validate_linear(x, weight, gk::cpu::x16_file_dtype(weight_dtype), m, n, k, y));
    GK_TRY(gk::cpu::validate_x16("gk_linear", weight_dtype, n, k));
  } else {
    GK_TRY(gk::validate_linear(x, weight, weight_dtype, m, n, k, y));
  }
  GK_CPU_RECORD(s, gk_linear(s, x, weight, weight_dtype, bias, m, n, k, y));
  return gk::cpu::linear(x, weight, weight_dtype, bias, m, n, k, y);
}

// Also the matmul of other ops (gk_moe_experts' per-expert projections): arguments already validated.
gk_status gk::cpu::linear(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t m,
                          int64_t n, int64_t k, float* y) {
  switch (weight_dtype) {
    case GK_F32: return linear_dt<GK_F32>(x, weight, bias, m, n, k, y);
    case GK_F16: return linear_dt<GK_F16>(x, weight, bias, m, n, k, y);
    case GK_BF16: return linear_dt<GK_BF16>(x, weight, bias, m, n, k, y);
#define GK_LINEAR_CASE(DT) \
  case DT: return linear_dt<DT>(x, weight, bias, m, n, k, y);
    GK_QUANT_DTYPES(GK_LINEAR_CASE)
#undef GK_LINEAR_CASE
    case GK_Q8_0X16: return linear_rows16<GK_Q8_0X16>(x, weight, bias, m, n, k, y);
    case GK_Q5_0X16: return linear_rows16<GK_Q5_0X16>(x, weight, bias, m, n, k, y);
    case GK_Q4_0X16: return linear_rows16<GK_Q4_0X16>(x, weight, bias, m, n, k, y);
    case GK_Q4_1X16: return linear_rows16<GK_Q4_1X16>(x, weight, bias, m, n, k, y);
    case GK_Q5_1X16: return linear_rows16<GK_Q5_1X16>(x, weight, bias, m, n, k, y);
    case GK_Q4_KX16: return linear_rows16<GK_Q4_KX16>(x, weight, bias, m, n, k, y);
    case GK_Q5_KX16: return linear_rows16<GK_Q5_KX16>(x, weight, bias, m, n, k, y);
    case GK_Q6_KX16: return linear_rows16<GK_Q6_KX16>(x, weight, bias, m, n, k, y);
    default: return gk_fail(GK_ERR_INVALID_ARGUMENT, "gk_linear: weight dtype %d", weight_dtype);
  }
}

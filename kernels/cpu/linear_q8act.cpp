// gk_linear's integer-activation paths. At the end of the file, the default decode path of AVX512-VNNI builds: one
// row of x as 24-bit integers (x24_block; GEMMAKIT_CPU_X24_ACTIVATIONS=0 turns it off). First, sharing its weight
// decoding (decode_unit8), the int8-activation path (opt-in: GEMMAKIT_CPU_Q8_ACTIVATIONS=1), for quantized W and a
// few rows of x:
// the decode step (m = 1), batched decode and the shortest prefills (linear.cpp sends m <= 8 here; this file
// takes up to 32).
//
// x is quantized per 32-element block to int8 as llama.cpp's Q8_0 does (d = max|x| / 127, q = round(x / d)), and
// each 64-element unit of a W row is reduced to unsigned 8-bit codes u plus a float scale per 16 elements, so
// that W = scale · (u − c) (+ a per-32 min for Q4_K). The products are AVX512-VNNI vpdpbusd (u8 × s8 summed in
// groups of 4 into int32 lanes: lane l covers elements 4l .. 4l + 3), started from −c · Σ q over the lane's four
// elements (precomputed per row of x), converted to f32 and scaled by scale · d_x per lane. m = 1 decodes 4 W rows
// in registers and uses them at once (prefetching the next 4); m >= 2 decodes 4 W rows once into an L1 scratch and
// sweeps every row of x against it, so W is read from memory once for all rows.
//
// Numerics differ from the default path (which keeps x in f32, so that our logits match transformers' to
// ~1e-4): the int8 rounding of x moves logits by ~1e-2 (docs/benchmarks.md states top-1 agreement and KL
// divergence on the real 270M fidelity prompts). Hence opt-in. Every y element is still produced by one thread in
// a fixed order, so results do not depend on the thread count.
//
// Formats: Q8_0 (u = q + 128, c = 128), Q5_0 (c = 16), Q4_K (c = 0, mins), Q6_K (c = 32): the Gemma 3 270M
// Q4_K_M file's. Others, and builds without AVX512-VNNI, return false and take the f32 path (AVX2 builds have their own
// version, for up to 8 rows of x, in linear_x24_avx2.cpp).
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cpu.h"
#include "pool.h"
#include "quant.h"

#include "vnni.h"
#if defined(GK_VNNI)
#define GK_Q8ACT 1
#endif
// AVX2 builds without VNNI have their own 24-bit decode path and int8 path (linear_x24_avx2.cpp).
#if !defined(GK_Q8ACT) && defined(__AVX2__) && defined(__FMA__) && !defined(GK_PORTABLE_SIMD)
#define GK_X24_AVX2 1
#endif

namespace {
// An environment switch (cpu.h's env_switch); false in builds without the paths.
bool path_switch(const char* name, bool when_unset) {
#if defined(GK_Q8ACT) || defined(GK_X24_AVX2)
  return gk::cpu::env_switch(name, when_unset);
#else
  (void)name, (void)when_unset;
  return false;
#endif
}
}  // namespace

bool gk::cpu::q8_activations_enabled() {
  static const bool on = path_switch("GEMMAKIT_CPU_Q8_ACTIVATIONS", false);
  return on;
}

bool gk::cpu::x24_activations_enabled() {
  static const bool on = path_switch("GEMMAKIT_CPU_X24_ACTIVATIONS", true);
  return on;
}

#if !defined(GK_Q8ACT)
#if !defined(GK_X24_AVX2)
bool gk::cpu::linear_q8act(const float*, const void*, int32_t, const void*, int64_t, int64_t, int64_t, float*) {
  return false;
}
bool gk::cpu::linear_x24act(const float*, const void*, int32_t, const void*, int64_t, int64_t, float*) { return false; }
#endif
#else
namespace {

using gk::quant::f16_at;

// x quantized: per row, k int8 codes, and per 4-element lane the block's d (dl) and −c · Σ q (corr), and per
// 32-element block d · Σ q (ds, for Q4_K's mins).
struct QX {
  std::vector<int8_t> q;
  std::vector<float> dl, ds;
  std::vector<int32_t> corr;
};

// False (x untouched) when the buffers cannot grow: the caller falls back to the f32 path.
bool quantize_x(const float* x, int64_t m, int64_t k, int c, QX& out) {
  try {
    out.q.resize(m * k);
    out.dl.resize(m * k / 4);
    out.corr.resize(m * k / 4);
    out.ds.resize(m * k / 32);
  } catch (const std::bad_alloc&) {
    return false;
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < k / 32; ++b) {
      const float* xb = x + i * k + 32 * b;
      const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
      const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
      // A NaN or infinity in the block makes its d NaN, so the rows it reaches come out NaN as on the f32 path
      // (max_ps would drop a NaN, and the codes of such a block mean nothing).
      const __m512 big = _mm512_set1_ps(3.402823466e38f);
      const bool finite = !(_mm512_cmp_ps_mask(_mm512_abs_ps(v0), big, _CMP_NLE_UQ) |
                            _mm512_cmp_ps_mask(_mm512_abs_ps(v1), big, _CMP_NLE_UQ));
      const float d = finite ? amax / 127.0f : __builtin_nanf(""), id = finite && amax > 0.0f ? 127.0f / amax : 0.0f;
      const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
      const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
      int8_t* qb = out.q.data() + i * k + 32 * b;
      _mm_storeu_si128((__m128i*)qb, _mm512_cvtsepi32_epi8(q0));
      _mm_storeu_si128((__m128i*)(qb + 16), _mm512_cvtsepi32_epi8(q1));
      int32_t sum = 0;
      for (int l = 0; l < 8; ++l) {
        const int32_t s4 = qb[4 * l] + qb[4 * l + 1] + qb[4 * l + 2] + qb[4 * l + 3];
        out.corr[i * k / 4 + 8 * b + l] = -c * s4;
        out.dl[i * k / 4 + 8 * b + l] = d;
        sum += s4;
      }
      out.ds[i * k / 32 + b] = d * (float)sum;
    }
  }
  return true;
}

// Unit U (elements 64U .. 64U + 63) of a W row: codes (64 u8) and a per-lane scale (16 f32, lane l covering
// elements 4l .. 4l + 3). Q4_K also adds its mins once per superblock (min_lanes: 8 f32, −dmin · m per
// 32-element sub-block), from the unit that starts it; that unit also sets `block` (its 8 scales d · sc), which the
// superblock's later units read: a row's units go in order.
template <int DT>
constexpr int code_offset() {
  return DT == GK_Q8_0 ? 128 : DT == GK_Q5_0 ? 16 : DT == GK_Q6_K ? 32 : 0;
}

template <int DT>
inline void decode_unit8(const uint8_t* row, int64_t U, __m512i& codes, __m512& scale, __m256& mins, __m256& block) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  if constexpr (DT == GK_Q8_0) {
    const uint8_t* b0 = row + 34 * (2 * U);
    const uint8_t* b1 = b0 + 34;
    const __m256i c0 = _mm256_loadu_si256((const __m256i*)(b0 + 2)), c1 = _mm256_loadu_si256((const __m256i*)(b1 + 2));
    codes = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(c0), c1, 1), _mm512_set1_epi8((char)0x80));
    scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16_at(b0)), _mm512_set1_ps(f16_at(b1)));
    (void)mins, (void)block;
  } else if constexpr (DT == GK_Q5_0) {
    const uint8_t* b0 = row + 22 * (2 * U);
    const uint8_t* b1 = b0 + 22;
    const __m128i q0 = _mm_loadu_si128((const __m128i*)(b0 + 6)), q1 = _mm_loadu_si128((const __m128i*)(b1 + 6));
    // Bytes: [q0, q0 >> 4, q1, q1 >> 4] (16-bit shifts; the & 0x0F drops what crossed from the next byte).
    const __m512i both = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(q0), q0, 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(q1), q1, 1), 1);
    const __m512i shifted = _mm512_mask_srli_epi16(both, 0xFF00FF00u, both, 4);  // the 2nd and 4th 16 bytes
    const __m512i nib = _mm512_and_si512(shifted, low4);
    const uint64_t qh = (uint64_t)gk::quant::u32_at(b0 + 2) | (uint64_t)gk::quant::u32_at(b1 + 2) << 32;
    codes = _mm512_or_si512(nib, _mm512_maskz_mov_epi8(qh, _mm512_set1_epi8(0x10)));
    scale = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16_at(b0)), _mm512_set1_ps(f16_at(b1)));
    (void)mins, (void)block;
  } else if constexpr (DT == GK_Q4_K) {
    const uint8_t* blk = row + 144 * (U / 4);
    const int s = (int)(U % 4);
    const __m256i b = _mm256_loadu_si256((const __m256i*)(blk + 16 + 32 * s));
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(b), _mm256_srli_epi16(b, 4), 1);
    codes = _mm512_and_si512(both, low4);
    if (s == 0) {
      // The superblock's 8 scales d · sc and mins −dmin · m, once per superblock: the 6-bit fields unpacked 4 at a
      // time (quant.h's scales_mins_k4), then widened and scaled 8 at a time.
      uint32_t u[4];
      gk::quant::scales_mins_k4(blk + 4, u);
      const __m128i bytes = _mm_loadu_si128((const __m128i*)u);  // sc0..7, m0..7
      block = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(f16_at(blk)));
      mins = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))),
                           _mm256_set1_ps(-f16_at(blk + 2)));
    }
    // Lanes 0..7: sub-block 2s (the low nibbles), 8..15: sub-block 2s + 1.
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(2 * s),
                                         _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    scale = _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(block));
  } else {
    static_assert(DT == GK_Q6_K, "decode_unit8: unhandled dtype");
    // Half h = (U % 4) / 2 of the block, groups t = 2tp, 2tp + 1 (tp = U % 2): low 4 bits from nibble tp of
    // ql[64h .. 64h + 64), top 2 bits from bits 2t, 2t + 1 of qh[32h .. 32h + 32).
    const uint8_t* blk = row + 210 * (U / 4);
    const int h = (int)(U % 4) / 2, tp = (int)(U % 2);
    const __m512i ql = _mm512_loadu_si512((const void*)(blk + 64 * h));
    const __m512i lo = _mm512_and_si512(tp ? _mm512_srli_epi16(ql, 4) : ql, low4);
    const __m256i qh = _mm256_loadu_si256((const __m256i*)(blk + 128 + 32 * h));
    // Bits 2t, 2t + 1 to bits 4, 5: t = 0: << 4, t = 1: << 2, t = 2: as is, t = 3: >> 2.
    const __m256i h0 = tp ? qh : _mm256_slli_epi16(qh, 4);
    const __m256i h1 = tp ? _mm256_srli_epi16(qh, 2) : _mm256_slli_epi16(qh, 2);
    const __m512i hi = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1), _mm512_set1_epi8(0x30));
    codes = _mm512_or_si512(lo, hi);
    int32_t sc4;
    memcpy(&sc4, blk + 192 + 8 * h + 4 * tp, 4);
    const __m128 s = _mm_mul_ps(_mm_cvtepi32_ps(_mm_cvtepi8_epi32(_mm_cvtsi32_si128(sc4))), _mm_set1_ps(f16_at(blk + 208)));
    const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    scale = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
    (void)mins, (void)block;
  }
}

// y[i, r .. r + R) for the M rows of x starting at row i0 (codes xq, lanes dl / corr, blocks ds).
template <int DT, int M, int R>
inline void q8_block(const QX& qx, int64_t i0, const uint8_t* w, int64_t row_bytes, const void* bias, int64_t r,
                     int64_t n, int64_t k, float* y) {
  __m512 acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = _mm512_setzero_ps();
  const int8_t* xq = qx.q.data() + i0 * k;
  const float* dl = qx.dl.data() + i0 * k / 4;
  const float* ds = qx.ds.data() + i0 * k / 32;
  const int32_t* corr = qx.corr.data() + i0 * k / 4;
  const uint8_t* rows = w + r * row_bytes;
  const int64_t units = k / 64;
  // As the f32 path's qdot_block: pull the next R rows (contiguous) toward L1 at the rate these are consumed.
  const char* next = (const char*)rows + R * row_bytes;
  const int64_t ahead = R * row_bytes / units;  // bytes of the next rows per unit of these
  __m256 mins[R], block[R];  // set by each superblock's first unit (Q4_K)
  for (int64_t U = 0; U < units; ++U) {
    for (int64_t at = 0; at < ahead + 63; at += 64) __builtin_prefetch(next + U * ahead + at, 0, 3);
    __m512i codes[R];
    __m512 scale[R];
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) decode_unit8<DT>(rows + j * row_bytes, U, codes[j], scale[j], mins[j], block[j]);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m512i xv = _mm512_loadu_si512((const void*)(xq + i * k + 64 * U));
      const __m512 dv = _mm512_loadu_ps(dl + i * k / 4 + 16 * U);
      const __m512i c0 = code_offset<DT>() ? _mm512_loadu_si512((const void*)(corr + i * k / 4 + 16 * U))
                                           : _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int j = 0; j < R; ++j) {
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c0, codes[j], xv));
        acc[i][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(scale[j], dv), acc[i][j]);
      }
      if constexpr (DT == GK_Q4_K) {
        if (U % 4 == 0) {
          // Σ over the superblock's 8 sub-blocks of (−dmin · m) · d_x · Σ q, in the low 8 lanes.
          const __m512 sv = _mm512_zextps256_ps512(_mm256_loadu_ps(ds + i * k / 32 + 2 * U));
#pragma GCC unroll 8
          for (int j = 0; j < R; ++j) acc[i][j] = _mm512_fmadd_ps(_mm512_zextps256_ps512(mins[j]), sv, acc[i][j]);
        }
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < R; ++j) {
      y[(i0 + i) * n + r + j] = _mm512_reduce_add_ps(acc[i][j]) + (bias ? ((const float*)bias)[r + j] : 0.0f);
    }
  }
}

// m >= 2: R W rows' units decoded once into an L1 scratch (codes and lane scales, Q4_K's mins), then every row of
// x swept against it with R accumulators (keeping M x R accumulators in registers spilled them to the stack).
constexpr int kScratchR = 4;
// kScratchR rows × units: 64 code bytes, 16 lane scales, 8 mins per unit (64-byte aligned, kept per thread).
struct Scratch {
  __m512i* codes = nullptr;
  __m512* scale = nullptr;
  __m256* mins = nullptr;
  int64_t units = 0;
  void reserve(int64_t u) {
    if (u <= units) return;
    std::free(codes);
    std::free(scale);
    std::free(mins);
    codes = (__m512i*)std::aligned_alloc(64, sizeof(__m512i) * kScratchR * u);
    scale = (__m512*)std::aligned_alloc(64, sizeof(__m512) * kScratchR * u);
    mins = (__m256*)std::aligned_alloc(64, sizeof(__m256) * kScratchR * u + 32);
    units = codes && scale && mins ? u : 0;
  }
  ~Scratch() {
    std::free(codes);
    std::free(scale);
    std::free(mins);
  }
};

// Rows i .. i + M of x against R scratch rows (W rows r .. r + R).
template <int DT, int M, int R>
inline void q8_apply(const QX& qx, int64_t i, const __m512i* codes, const __m512* scale, const __m256* mins,
                     int64_t stride, const void* bias, int64_t r, int64_t n, int64_t k, float* y) {
  const int64_t units = k / 64;
  __m512 acc[M][R];
  for (int a = 0; a < M; ++a)
    for (int j = 0; j < R; ++j) acc[a][j] = _mm512_setzero_ps();
  for (int64_t U = 0; U < units; ++U) {
    __m512i xv[M], c0[M];
    __m512 dv[M];
    for (int a = 0; a < M; ++a) {
      xv[a] = _mm512_loadu_si512((const void*)(qx.q.data() + (i + a) * k + 64 * U));
      dv[a] = _mm512_loadu_ps(qx.dl.data() + (i + a) * k / 4 + 16 * U);
      c0[a] = code_offset<DT>() ? _mm512_loadu_si512((const void*)(qx.corr.data() + (i + a) * k / 4 + 16 * U))
                                : _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      const __m512i cj = codes[j * stride + U];
      const __m512 sj = scale[j * stride + U];
      for (int a = 0; a < M; ++a) {
        const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c0[a], cj, xv[a]));
        acc[a][j] = _mm512_fmadd_ps(p, _mm512_mul_ps(sj, dv[a]), acc[a][j]);
      }
    }
    if constexpr (DT == GK_Q4_K) {
      if (U % 4 == 0) {
        for (int a = 0; a < M; ++a) {
          const __m512 sv = _mm512_zextps256_ps512(_mm256_loadu_ps(qx.ds.data() + (i + a) * k / 32 + 2 * U));
#pragma GCC unroll 8
          for (int j = 0; j < R; ++j) {
            acc[a][j] = _mm512_fmadd_ps(_mm512_zextps256_ps512(mins[j * stride + U / 4]), sv, acc[a][j]);
          }
        }
      }
    }
  }
  for (int a = 0; a < M; ++a) {
    for (int j = 0; j < R; ++j) {
      y[(i + a) * n + r + j] = _mm512_reduce_add_ps(acc[a][j]) + (bias ? ((const float*)bias)[r + j] : 0.0f);
    }
  }
}

// W rows [r0, r1) against every row of x (m >= 2).
template <int DT>
void q8_rows_multi(const QX& qx, int64_t m, const uint8_t* w, int64_t row_bytes, const void* bias, int64_t r0,
                   int64_t r1, int64_t n, int64_t k, float* y) {
  thread_local Scratch sc;
  const int64_t units = k / 64;
  sc.reserve(units);
  if (sc.units < units) {  // no scratch: decode in registers per row of x (slower, the same sums)
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t i = 0; i < m; ++i) q8_block<DT, 1, 1>(qx, i, w, row_bytes, bias, r, n, k, y);
    }
    return;
  }
  for (int64_t r = r0; r < r1; r += kScratchR) {
    const int rows = (int)std::min<int64_t>(kScratchR, r1 - r);
    for (int j = 0; j < rows; ++j) {
      const uint8_t* row = w + (r + j) * row_bytes;
      __m256 mins = _mm256_setzero_ps(), block = _mm256_setzero_ps();
      for (int64_t U = 0; U < units; ++U) {
        decode_unit8<DT>(row, U, sc.codes[j * units + U], sc.scale[j * units + U], mins, block);
        if (U % 4 == 0) sc.mins[j * units + U / 4] = mins;
      }
    }
    if (rows == kScratchR) {
      int64_t i = 0;
      for (; i + 2 <= m; i += 2) q8_apply<DT, 2, kScratchR>(qx, i, sc.codes, sc.scale, sc.mins, units, bias, r, n, k, y);
      if (i < m) q8_apply<DT, 1, kScratchR>(qx, i, sc.codes, sc.scale, sc.mins, units, bias, r, n, k, y);
    } else {  // the range's last rows, one at a time
      for (int j = 0; j < rows; ++j) {
        for (int64_t i = 0; i < m; ++i) {
          q8_apply<DT, 1, 1>(qx, i, sc.codes + j * units, sc.scale + j * units, sc.mins + j * units,
                          units, bias, r + j, n, k, y);
        }
      }
    }
  }
}

template <int DT>
bool linear_q8(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  thread_local QX qx;
  if (!quantize_x(x, m, k, code_offset<DT>(), qx)) return false;
  const int64_t row_bytes = k / gk::quant::Block<DT>::elems * gk::quant::Block<DT>::bytes;
  // Blocks of 16 W rows per chunk of work: each thread's range is contiguous (a few sequential streams), and
  // within it a block of W rows is swept by every tile of x while it sits in L1.
  constexpr int64_t kRowChunk = 16;
  const bool par = n * k * m >= (1 << 15) && n >= 2 * kRowChunk;
  const QX& q = qx;
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
    const int64_t r0 = std::min(n, chunks * t / nt * kRowChunk), r1 = std::min(n, chunks * (t + 1) / nt * kRowChunk);
    if (m == 1) {
      // Decode: the units decoded in registers and used at once (4 W rows at a time, prefetching the next 4).
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) q8_block<DT, 1, 4>(q, 0, (const uint8_t*)w, row_bytes, bias, r, n, k, y);
      for (; r < r1; ++r) q8_block<DT, 1, 1>(q, 0, (const uint8_t*)w, row_bytes, bias, r, n, k, y);
    } else {
      q8_rows_multi<DT>(q, m, (const uint8_t*)w, row_bytes, bias, r0, r1, n, k, y);
    }
  });
  return true;
}


// ---- decode (m = 1) with x in 24-bit integers: the default on AVX512-VNNI builds ----
//
// Decode is bound by the decoding work per weight (on this path's 2-core target, not by memory): the f32 path
// widens every code to an int32 lane, converts, scales and FMAs it, ~20 vector ops per 64 weights. Here the codes
// stay bytes (decode_unit8's units) and x is an integer too, so vpdpbusd multiplies 64 codes at once. int8 x (above)
// moves logits by ~1e-2; x here keeps 24 bits: per 4-element lane, d = max |x| / kX24Max and q = round(x / d),
// |q| <= kX24Max, split into three signed bytes q = 65536 · h + 256 · m + l, each byte a vpdpbusd against the same
// codes. A lane's d of its own (not a block's) keeps a large |x| (Gemma's activations have a few) from coarsening
// its neighbours. Then x's rounding is at most 2^-24 of its lane's largest |x|, the size of an f32 rounding: on the
// 270M fidelity prompts the logits are as close to transformers' as the f32 path's (docs/benchmarks.md).
// 16-bit x (two bytes, d per lane) was measured too: top-1 and KL the same, the largest logit error 1.4e-3 against
// the f32 path's 4.0e-4.

// x's codes for the 24-bit form: bytes l, m, h (k each), per 4-element lane d (dl) and the offset terms −c · Σ over
// the lane of (256 · h + m) (corr_hm) and of l (corr_l), and per 32-element block Σ x (sum, for Q4_K's mins).
struct QX24 {
  std::vector<int8_t> l, m, h;
  std::vector<float> dl, sum;
  std::vector<int32_t> corr_hm, corr_l;
};

bool quantize_x24(const float* x, int64_t k, int c, QX24& out) {
  try {
    for (auto* v : {&out.l, &out.m, &out.h}) v->resize(k);
    for (auto* v : {&out.corr_hm, &out.corr_l}) v->resize(k / 4);
    out.dl.resize(k / 4);
    out.sum.resize(k / 32);
  } catch (const std::bad_alloc&) {
    return false;
  }
  const __m512 qmax = _mm512_set1_ps(gk::cpu::kX24Max), big = _mm512_set1_ps(3.402823466e38f);
  for (int64_t e = 0; e < k; e += 16) {
    const __m512 v = _mm512_loadu_ps(x + e), a = _mm512_abs_ps(v);
    const __m512 m2 = _mm512_max_ps(a, _mm512_permute_ps(a, 0xB1));
    const __m512 m4 = _mm512_max_ps(m2, _mm512_permute_ps(m2, 0x4E));  // each lane's max |x|, in all 4 elements
    // A NaN or infinity makes its lane's d NaN, so the rows it reaches come out NaN as on the f32 path. (Found per
    // element: max_ps drops a NaN operand, so m4 may not hold it.)
    const uint32_t odd = _mm512_cmp_ps_mask(a, big, _CMP_NLE_UQ);
    const __mmask16 bad = (__mmask16)(((odd | odd >> 1 | odd >> 2 | odd >> 3) & 0x1111u) * 0xFu);
    // A lane whose largest |x| is below 2^-96 goes in as 0 (its codes 0): qmax / m would overflow from ~2.5e-32 on,
    // and the d of such a lane is subnormal anyway; its products are below 2^-73 of any unit-sized weight.
    const __mmask16 live = _mm512_cmp_ps_mask(m4, _mm512_set1_ps(0x1p-96f), _CMP_GT_OQ) & ~bad;
    const __m512 inv = _mm512_maskz_div_ps(live, qmax, m4);
    const __m512 d = _mm512_mask_mov_ps(_mm512_div_ps(m4, qmax), bad, _mm512_set1_ps(__builtin_nanf("")));
    const auto [lb, mb, hb, hm] = gk::cpu::split_x24(_mm512_mul_ps(v, inv));
    _mm_storeu_si128((__m128i*)(out.l.data() + e), _mm512_cvtepi32_epi8(lb));
    _mm_storeu_si128((__m128i*)(out.m.data() + e), _mm512_cvtepi32_epi8(mb));
    _mm_storeu_si128((__m128i*)(out.h.data() + e), _mm512_cvtepi32_epi8(hb));
    alignas(64) int32_t hms[16], ls[16];
    alignas(64) float ds[16];
    _mm512_store_si512((void*)hms, hm);
    _mm512_store_si512((void*)ls, lb);
    _mm512_store_ps(ds, d);
    for (int g = 0; g < 4; ++g) {
      const int64_t lane = e / 4 + g;
      out.dl[lane] = ds[4 * g];
      out.corr_hm[lane] = -c * (hms[4 * g] + hms[4 * g + 1] + hms[4 * g + 2] + hms[4 * g + 3]);
      out.corr_l[lane] = -c * (ls[4 * g] + ls[4 * g + 1] + ls[4 * g + 2] + ls[4 * g + 3]);
    }
    if (e % 32 == 16) out.sum[e / 32] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + e - 16), v));
  }
  return true;
}

// y[r .. r + R) for the one row of x: per unit, the lane sums 256 · Σ codes · h + Σ codes · m (+ corr_hm, at most
// 255 · 4 · 32767 + 128 · 4 · 32767 in magnitude) and Σ codes · l (+ corr_l) exactly in int32, each converted and
// scaled by the lane's W scale · d into its own accumulator; y = 256 · Σ acc_hm + Σ acc_l.
template <int DT, int R>
inline void x24_block(const QX24& qx, const uint8_t* w, int64_t row_bytes, const void* bias, int64_t r, int64_t k,
                      float* y) {
  __m512 acc_hm[R], acc_l[R];
  for (int j = 0; j < R; ++j) acc_hm[j] = acc_l[j] = _mm512_setzero_ps();
  const uint8_t* rows = w + r * row_bytes;
  const int64_t units = k / 64;
  const char* next = (const char*)rows + R * row_bytes;  // prefetched as q8_block does
  const int64_t ahead = R * row_bytes / units;
  __m256 mins[R], block[R];
  for (int64_t U = 0; U < units; ++U) {
    for (int64_t at = 0; at < ahead + 63; at += 64) __builtin_prefetch(next + U * ahead + at, 0, 3);
    const __m512i xl = _mm512_loadu_si512((const void*)(qx.l.data() + 64 * U));
    const __m512i xm = _mm512_loadu_si512((const void*)(qx.m.data() + 64 * U));
    const __m512i xh = _mm512_loadu_si512((const void*)(qx.h.data() + 64 * U));
    const __m512 dv = _mm512_loadu_ps(qx.dl.data() + 16 * U);
    const bool offset = code_offset<DT>() != 0;
    const __m512i c_hm = offset ? _mm512_loadu_si512((const void*)(qx.corr_hm.data() + 16 * U)) : _mm512_setzero_si512();
    const __m512i c_l = offset ? _mm512_loadu_si512((const void*)(qx.corr_l.data() + 16 * U)) : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < R; ++j) {
      __m512i codes;
      __m512 scale;
      decode_unit8<DT>(rows + j * row_bytes, U, codes, scale, mins[j], block[j]);
      const __m512i hm = _mm512_add_epi32(_mm512_slli_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, xh), 8),
                                          _mm512_dpbusd_epi32(c_hm, codes, xm));
      const __m512i lo = _mm512_dpbusd_epi32(c_l, codes, xl);
      const __m512 s = _mm512_mul_ps(scale, dv);
      acc_hm[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hm), s, acc_hm[j]);
      acc_l[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), s, acc_l[j]);
      if constexpr (DT == GK_Q4_K) {
        if (U % 4 == 0) {  // the superblock's mins: Σ over its 8 sub-blocks of (−dmin · m) · Σ x, in the low 8 lanes
          const __m512 sv = _mm512_zextps256_ps512(_mm256_loadu_ps(qx.sum.data() + 2 * U));
          acc_l[j] = _mm512_fmadd_ps(_mm512_zextps256_ps512(mins[j]), sv, acc_l[j]);
        }
      }
    }
  }
  for (int j = 0; j < R; ++j) {
    y[r + j] = 256.0f * _mm512_reduce_add_ps(acc_hm[j]) + _mm512_reduce_add_ps(acc_l[j]) +
               (bias ? ((const float*)bias)[r + j] : 0.0f);
  }
}

template <int DT>
bool linear_x24(const float* x, const void* w, const void* bias, int64_t n, int64_t k, float* y) {
  thread_local QX24 qx;
  if (!quantize_x24(x, k, code_offset<DT>(), qx)) return false;
  const int64_t row_bytes = k / gk::quant::Block<DT>::elems * gk::quant::Block<DT>::bytes;
  constexpr int64_t kRowChunk = 16;  // as linear_q8
  const bool par = n * k >= (1 << 15) && n >= 2 * kRowChunk;
  const QX24& q = qx;
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
    const int64_t r0 = std::min(n, chunks * t / nt * kRowChunk), r1 = std::min(n, chunks * (t + 1) / nt * kRowChunk);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) x24_block<DT, 4>(q, (const uint8_t*)w, row_bytes, bias, r, k, y);
    for (; r < r1; ++r) x24_block<DT, 1>(q, (const uint8_t*)w, row_bytes, bias, r, k, y);
  });
  return true;
}

}  // namespace

bool gk::cpu::linear_q8act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t m,
                           int64_t n, int64_t k, float* y) {
  if (m < 1 || m > 32 || k % 64 != 0) return false;
  switch (weight_dtype) {
    case GK_Q8_0: return linear_q8<GK_Q8_0>(x, weight, bias, m, n, k, y);
    case GK_Q5_0: return linear_q8<GK_Q5_0>(x, weight, bias, m, n, k, y);
    case GK_Q4_K: return linear_q8<GK_Q4_K>(x, weight, bias, m, n, k, y);
    case GK_Q6_K: return linear_q8<GK_Q6_K>(x, weight, bias, m, n, k, y);
    default: return false;
  }
}

bool gk::cpu::linear_x24act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t n,
                            int64_t k, float* y) {
  if (k % 64 != 0) return false;
  // Q8_0 stays on the f32 path: a byte per weight, so its products are bound by memory there already (measured:
  // the 270M lm_head no faster here, its k = 640 projections 5-20% slower).
  switch (weight_dtype) {
    case GK_Q5_0: return linear_x24<GK_Q5_0>(x, weight, bias, n, k, y);
    case GK_Q4_K: return linear_x24<GK_Q4_K>(x, weight, bias, n, k, y);
    case GK_Q6_K: return linear_x24<GK_Q6_K>(x, weight, bias, n, k, y);
    default: return false;
  }
}
#endif

// gk_linear's decode path (m = 1) on AVX2 hosts without AVX512-VNNI (AMD EPYC Zen 2/3, older Xeons): the same x as
// 24-bit integers as linear_q8act.cpp's x24_block, the same exact integer lane sums, with vpmaddubsw + vpmaddwd
// standing in for vpdpbusd. On a 2-core EPYC (14.5 GB/s) the f32 path decoded the 270M's Q5_0 / Q4_K / Q6_K
// projections at ~4.7 GB/s, bound by widening, converting and scaling every code; here the codes stay bytes.
//
// vpmaddubsw multiplies unsigned codes by signed bytes of x and adds pairs into int16, saturating: with codes of at
// most 6 bits (Q5_0 q + 16 <= 31, Q4_K <= 15, Q6_K q + 32 <= 63) a pair is at most 2 · 63 · 128 = 16128, so it never
// saturates and vpmaddwd against ones gives exactly vpdpbusd's 4-element lane sums. (Q8_0, 8-bit codes, could
// saturate; it stays on the f32 path, where its products are bound by memory anyway.)
//
// Q4_K's and Q6_K's 24-bit products have a kernel of their own (lanes_row, below), whose integer sums last a
// superblock.
// At the end of the file, the same kernel with one byte of x: these builds' opt-in int8 path for up to 8 rows of x
// (GEMMAKIT_CPU_Q8_ACTIVATIONS=1).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "cpu.h"
#include "pool.h"
#include "quant.h"
#include "vnni.h"

#if !defined(GK_VNNI) && defined(__AVX2__) && defined(__FMA__) && !defined(GK_PORTABLE_SIMD)
#include <immintrin.h>

namespace {

using gk::quant::f16_at;

template <int DT>
constexpr int code_offset() {
  return DT == GK_Q5_0 ? 16 : DT == GK_Q6_K ? 32 : 0;
}

// x's 24-bit form as linear_q8act.cpp's QX24 (its two offset terms as one): bytes l, m, h; per 4-element lane d
// and the offset term corr (−c · Σ q over the lane); per 32-element block Σ x. The int8 form at the end of the file
// fills h (its codes), dl, corr and sum (d · Σ q per block).
struct QX24 {
  std::vector<int8_t> l, m, h;
  std::vector<float> dl, sum;
  std::vector<int32_t> corr;
};

// The low bytes of 8 int32 lanes, in order, as one u64.
inline uint64_t low_bytes(__m256i v) {
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                                        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i t = _mm256_shuffle_epi8(v, pick);
  return (uint64_t)(uint32_t)_mm256_cvtsi256_si32(t) | (uint64_t)(uint32_t)_mm256_extract_epi32(t, 4) << 32;
}

// The sum of each 128-bit half's four int32 lanes of v: out[0] lanes 0-3, out[1] lanes 4-7.
inline void lane_sums(__m256i v, int32_t out[2]) {
  const __m256i s = _mm256_hadd_epi32(v, v);
  const __m256i t = _mm256_hadd_epi32(s, s);
  out[0] = _mm256_cvtsi256_si32(t);
  out[1] = _mm256_extract_epi32(t, 4);
}

// v scaled by inv, rounded and clamped to ±kX24Max (q), as its three signed bytes: q = 65536 h + 256 mid + l. hm is
// 256 h + mid.
inline void split_x24(__m256 v, __m256 inv, __m256i& h, __m256i& hm, __m256i& mid, __m256i& l) {
  const __m256i lim = _mm256_set1_epi32((int)gk::cpu::kX24Max), k128 = _mm256_set1_epi32(128);
  const __m256i k255 = _mm256_set1_epi32(255);
  const auto low_byte = [&](__m256i u) {
    return _mm256_sub_epi32(_mm256_and_si256(_mm256_add_epi32(u, k128), k255), k128);
  };
  const __m256i q = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v, inv)), lim),
                                     _mm256_sub_epi32(_mm256_setzero_si256(), lim));
  l = low_byte(q), hm = _mm256_srai_epi32(_mm256_sub_epi32(q, l), 8);
  mid = low_byte(hm), h = _mm256_srai_epi32(_mm256_sub_epi32(hm, mid), 8);
}

// The 32 elements at x loaded into v, and their largest |x|; finite: no NaN or infinity among them.
inline float block_absmax(const float* x, __m256 v[4], bool& finite) {
  const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(3.402823466e38f);
  __m256 amax = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  for (int j = 0; j < 4; ++j) {
    v[j] = _mm256_loadu_ps(x + 8 * j);
    const __m256 a = _mm256_andnot_ps(sign, v[j]);
    amax = _mm256_max_ps(amax, a);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
  }
  finite = _mm256_movemask_ps(bad) == 0;
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  return _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
}

bool quantize_x24(const float* x, int64_t k, int c, QX24& out) {
  try {
    for (auto* v : {&out.l, &out.m, &out.h}) v->resize(k);
    out.corr.resize(k / 4);
    out.dl.resize(k / 4);
    out.sum.resize(k / 32);
  } catch (const std::bad_alloc&) {
    return false;
  }
  const __m256 sign = _mm256_set1_ps(-0.0f), qmax = _mm256_set1_ps(gk::cpu::kX24Max);
  const __m256 big = _mm256_set1_ps(3.402823466e38f), tiny = _mm256_set1_ps(0x1p-96f);
  for (int64_t e = 0; e < k; e += 8) {
    const __m256 v = _mm256_loadu_ps(x + e), a = _mm256_andnot_ps(sign, v);
    const __m256 m2 = _mm256_max_ps(a, _mm256_permute_ps(a, 0xB1));
    const __m256 m4 = _mm256_max_ps(m2, _mm256_permute_ps(m2, 0x4E));  // each lane's max |x|, in its 4 elements
    // A NaN or infinity anywhere in a lane makes its d NaN and its codes 0 (as the VNNI path: rows it reaches are NaN).
    __m256 bad = _mm256_cmp_ps(a, big, _CMP_NLE_UQ);
    bad = _mm256_or_ps(bad, _mm256_permute_ps(bad, 0xB1));
    bad = _mm256_or_ps(bad, _mm256_permute_ps(bad, 0x4E));
    const __m256 live = _mm256_andnot_ps(bad, _mm256_cmp_ps(m4, tiny, _CMP_GT_OQ));
    const __m256 inv = _mm256_and_ps(live, _mm256_div_ps(qmax, m4));
    const __m256 d = _mm256_blendv_ps(_mm256_div_ps(m4, qmax), _mm256_set1_ps(__builtin_nanf("")), bad);
    __m256i h, hm, mid, l;
    split_x24(v, inv, h, hm, mid, l);
    const uint64_t lb = low_bytes(l), mb = low_bytes(mid), hb = low_bytes(h);
    memcpy(out.l.data() + e, &lb, 8), memcpy(out.m.data() + e, &mb, 8), memcpy(out.h.data() + e, &hb, 8);
    int32_t shm[2], sl[2];
    lane_sums(hm, shm), lane_sums(l, sl);
    alignas(32) float ds[8];
    _mm256_store_ps(ds, d);
    for (int g = 0; g < 2; ++g) {
      out.dl[e / 4 + g] = ds[4 * g];
      out.corr[e / 4 + g] = -c * (256 * shm[g] + sl[g]);  // (|Σ q| <= 4 · kX24Max: fits with c <= 32)
    }
    if (e % 32 == 24) {
      const __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x + e - 24), _mm256_loadu_ps(x + e - 16)),
                                     _mm256_add_ps(_mm256_loadu_ps(x + e - 8), v));
      alignas(32) float t[8];
      _mm256_store_ps(t, s);
      float sum = 0.0f;
      for (float f : t) sum += f;
      out.sum[e / 32] = sum;
    }
  }
  return true;
}

// Byte j of the result: 0xFF when bit j of x is set (ggml's bytes_from_bits_32).
inline __m256i bits_to_bytes(uint32_t x) {
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i bytes = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf),
                                        _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// A row is walked a group at a time: a Q4_K / Q6_K superblock (4 units of 64 elements), a Q5_0 unit (two blocks).
// Inside a group the unit index is a compile-time constant, so the per-unit branches, index arithmetic and prefetch
// loop are gone: on a Zen 3 core the products are bound by instruction count, and those were ~20 of a unit's ~50.
template <int DT>
constexpr int group_units() {
  return DT == GK_Q5_0 ? 1 : 4;
}

template <int DT>
constexpr int64_t group_bytes() {
  return group_units<DT>() * 64 / gk::quant::Block<DT>::elems * gk::quant::Block<DT>::bytes;
}

// f(std::integral_constant<int, S>{}) for S = 0 .. N − 1, in order.
template <int S, int N, typename F>
inline void static_for(const F& f) {
  if constexpr (S < N) {
    f(std::integral_constant<int, S>{});
    static_for<S + 1, N>(f);
  }
}

// A group's scales, decoded once for its units. Q4_K: sc[0..7] = d · sc per 32-element sub-block, and the mins
// −dmin · m; Q6_K: sc[0..15] = d · sc per 16 elements; Q5_0: none (each block's scale is read with its codes).
template <int DT>
inline void group_scales(const uint8_t* blk, float sc[16], __m256& mins) {
  if constexpr (DT == GK_Q4_K) {
    uint32_t u[4];
    gk::quant::scales_mins_k4(blk + 4, u);
    const __m128i bytes = _mm_loadu_si128((const __m128i*)u);  // sc0..7, m0..7
    _mm256_store_ps(sc, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(f16_at(blk))));
    mins = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))),
                         _mm256_set1_ps(-f16_at(blk + 2)));
  } else if constexpr (DT == GK_Q6_K) {
    const __m128i s16 = _mm_loadu_si128((const __m128i*)(blk + 192));
    const __m256 d = _mm256_set1_ps(f16_at(blk + 208));
    _mm256_store_ps(sc, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s16)), d));
    _mm256_store_ps(sc + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(s16, 8))), d));
  } else {
    (void)blk, (void)sc, (void)mins;
  }
}

// Unit S of a group: its unsigned codes as two vectors of 32 (elements 0-31, 32-63) and per 4-element lane the
// scale (scale[0]: lanes of the first 32, scale[1]: the second).
template <int DT, int S>
inline void decode_unit(const uint8_t* blk, const float sc[16], __m256i codes[2], __m256 scale[2]) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  if constexpr (DT == GK_Q5_0) {
    for (int b = 0; b < 2; ++b) {
      const uint8_t* q5 = blk + 22 * b;
      // The 16 code bytes in both halves (a load), the upper half's shifted to its high nibbles.
      const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(q5 + 6)));
      const __m256i nib = _mm256_and_si256(_mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4)), low4);
      const __m256i fifth = _mm256_and_si256(bits_to_bytes(gk::quant::u32_at(q5 + 2)), _mm256_set1_epi8(0x10));
      codes[b] = _mm256_or_si256(nib, fifth);
      scale[b] = _mm256_set1_ps(f16_at(q5));
    }
  } else if constexpr (DT == GK_Q4_K) {
    const __m256i b = _mm256_loadu_si256((const __m256i*)(blk + 16 + 32 * S));
    codes[0] = _mm256_and_si256(b, low4);  // sub-block 2S
    codes[1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), low4);  // sub-block 2S + 1
    scale[0] = _mm256_set1_ps(sc[2 * S]);
    scale[1] = _mm256_set1_ps(sc[2 * S + 1]);
  } else {
    static_assert(DT == GK_Q6_K, "decode_unit: unhandled dtype");
    constexpr int h = S / 2, tp = S % 2;
    const __m256i qh = _mm256_loadu_si256((const __m256i*)(blk + 128 + 32 * h));
    const __m256i h0 = tp ? qh : _mm256_slli_epi16(qh, 4);  // bits 2t, 2t + 1 to bits 4, 5 (as decode_unit8)
    const __m256i h1 = tp ? _mm256_srli_epi16(qh, 2) : _mm256_slli_epi16(qh, 2);
    const __m256i top = _mm256_set1_epi8(0x30);
    for (int half = 0; half < 2; ++half) {
      const __m256i ql = _mm256_loadu_si256((const __m256i*)(blk + 64 * h + 32 * half));
      const __m256i lo = _mm256_and_si256(tp ? _mm256_srli_epi16(ql, 4) : ql, low4);
      codes[half] = _mm256_or_si256(lo, _mm256_and_si256(half ? h1 : h0, top));
    }
    // Unit S's 4 scales are sc[4S .. 4S + 3]: lanes 0-3 of a half take one, lanes 4-7 the next.
    const __m256 s8 = _mm256_load_ps(sc + 8 * h);
    constexpr int a = 4 * tp;
    scale[0] = _mm256_permutevar8x32_ps(s8, _mm256_setr_epi32(a, a, a, a, a + 1, a + 1, a + 1, a + 1));
    scale[1] = _mm256_permutevar8x32_ps(s8, _mm256_setr_epi32(a + 2, a + 2, a + 2, a + 2, a + 3, a + 3, a + 3, a + 3));
  }
}

// vpdpbusd's 4-element lane sums of codes (unsigned, <= 63) × x (signed bytes), times w, exactly (see the header).
inline __m256i dot4(__m256i codes, __m256i x, int16_t w = 1) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(codes, x), _mm256_set1_epi16(w));
}

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

// One row of W (its bytes at row) times M rows of x (qx[i]: row i's form), prefetching the W row after it (next),
// as linear_q8act.cpp's x24_block. Each 4-element lane's sum Σ c · q is exact in int32 (24-bit x: |q| <= kX24Max =
// 127 · (65536 + 256 + 1) and c <= 63, at most 4 · 63 · kX24Max < 2^31; the offset term keeps the true value smaller
// still, and int32 adds wrap, so the sum comes out exact whatever the order), then converted once and scaled: one
// conversion and one FMA per 32 codes and row of x, where keeping the bytes' sums apart took two of each. Each half of
// a unit (32 codes) has its own accumulator, so that a unit's two halves do not wait on one FMA chain. BYTES = 1: x is
// the int8 form (h alone), whose few rows share each decoded unit.
template <int DT, int BYTES, int M>
inline void x24_rows(const QX24* const qx[M], const uint8_t* row, const char* next, int64_t k, float out[M]) {
  static_assert(BYTES == 1 || M == 1, "x24_rows: the 24-bit form takes one row of x");
  constexpr int GU = group_units<DT>();
  constexpr int64_t GB = group_bytes<DT>();
  __m256 acc[M][2];
  for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const int64_t groups = k / (64 * GU);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t at = 0; at < GB; at += 64) __builtin_prefetch(next + g * GB + at, 0, 3);
    const uint8_t* blk = row + g * GB;
    alignas(32) float sc[16];
    __m256 mins;
    group_scales<DT>(blk, sc, mins);
    static_for<0, GU>([&](auto S) {
      __m256i codes[2];
      __m256 scale[2];
      decode_unit<DT, decltype(S)::value>(blk, sc, codes, scale);
      for (int half = 0; half < 2; ++half) {
        const int64_t at = 64 * (GU * g + S) + 32 * half, lane = at / 4;
        for (int i = 0; i < M; ++i) {
          const auto x_at = [&](const std::vector<int8_t>& v) {
            return _mm256_loadu_si256((const __m256i*)(v.data() + at));
          };
          __m256i q = dot4(codes[half], x_at(qx[i]->h), BYTES == 3 ? 256 : 1);  // per lane Σ c · q
          if constexpr (BYTES == 3) {
            q = _mm256_add_epi32(_mm256_slli_epi32(_mm256_add_epi32(q, dot4(codes[half], x_at(qx[i]->m))), 8),
                                 dot4(codes[half], x_at(qx[i]->l)));
          }
          if constexpr (code_offset<DT>() != 0) {
            q = _mm256_add_epi32(q, _mm256_loadu_si256((const __m256i*)(qx[i]->corr.data() + lane)));
          }
          const __m256 s = _mm256_mul_ps(scale[half], _mm256_loadu_ps(qx[i]->dl.data() + lane));
          acc[i][half] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), s, acc[i][half]);
        }
      }
      if constexpr (DT == GK_Q4_K && decltype(S)::value == 0) {
        for (int i = 0; i < M; ++i) {
          acc[i][0] = _mm256_fmadd_ps(mins, _mm256_loadu_ps(qx[i]->sum.data() + 8 * g), acc[i][0]);
        }
      }
    });
  }
  for (int i = 0; i < M; ++i) out[i] = hsum(_mm256_add_ps(acc[i][0], acc[i][1]));
}

// row(r) for every row of W, in chunks of 16 rows over the decode pool (each thread a contiguous range).
template <typename RowFn>
void for_rows(int64_t n, int64_t k, const RowFn& row) {
  constexpr int64_t kRowChunk = 16;
  const bool par = n * k >= (1 << 15) && n >= 2 * kRowChunk;
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
    const int64_t r0 = std::min(n, chunks * t / nt * kRowChunk), r1 = std::min(n, chunks * (t + 1) / nt * kRowChunk);
    for (int64_t r = r0; r < r1; ++r) row(r);
  });
}

// fn(std::integral_constant<int, DT>) for the formats these paths take; false for the others.
template <typename Fn>
bool by_dtype(int32_t dtype, const Fn& fn) {
  switch (dtype) {
    case GK_Q5_0: return fn(std::integral_constant<int, GK_Q5_0>{});
    case GK_Q4_K: return fn(std::integral_constant<int, GK_Q4_K>{});
    case GK_Q6_K: return fn(std::integral_constant<int, GK_Q6_K>{});
    default: return false;
  }
}

constexpr int kMaxRows = 8;  // rows of x the int8 path takes (linear.cpp sends it at most 8)
constexpr int kRowBlock = 4;  // rows of x sharing one decoded unit: 2 accumulators each, in 16 ymm registers

// y = x W^T + bias for m (<= kMaxRows) rows of x: each quantized into this thread's QX24s (false when their buffers
// cannot grow), then for every row of W, x24_rows over blocks of up to kRowBlock rows of x (the W row is read from
// memory once; a second block finds it in L1). One W row at a time: 2 and 4 sharing x's loads measured no faster.
template <int DT, int BYTES>
bool linear_rows(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y,
                 bool (*quantize)(const float*, int64_t, int, QX24&)) {
  thread_local QX24 qx[kMaxRows];
  if (m < 1 || m > (BYTES == 3 ? 1 : kMaxRows)) return false;
  const QX24* rows_x[kMaxRows];
  for (int64_t i = 0; i < m; ++i) {
    if (!quantize(x + i * k, k, code_offset<DT>(), qx[i])) return false;
    rows_x[i] = &qx[i];  // (the pool's threads must not name the thread_local)
  }
  const int64_t row_bytes = k / gk::quant::Block<DT>::elems * gk::quant::Block<DT>::bytes;
  const uint8_t* rows = (const uint8_t*)w;
  for_rows(n, k, [&](int64_t r) {
    const uint8_t* row = rows + r * row_bytes;
    const char* next = (const char*)(row + row_bytes);
    const float b = bias ? ((const float*)bias)[r] : 0.0f;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
      float out[kRowBlock] = {};
      const QX24* const* xs = rows_x + i0;
      if constexpr (BYTES == 3) {
        x24_rows<DT, BYTES, 1>(xs, row, next, k, out);  // (m = 1)
      } else {
        switch (std::min<int64_t>(kRowBlock, m - i0)) {
          case 1: x24_rows<DT, BYTES, 1>(xs, row, next, k, out); break;
          case 2: x24_rows<DT, BYTES, 2>(xs, row, next, k, out); break;
          case 3: x24_rows<DT, BYTES, 3>(xs, row, next, k, out); break;
          default: x24_rows<DT, BYTES, 4>(xs, row, next, k, out); break;
        }
      }
      for (int64_t i = i0; i < std::min<int64_t>(m, i0 + kRowBlock); ++i) y[i * n + r] = out[i - i0] + b;
    }
  });
  return true;
}

template <int DT>
bool linear_x24(const float* x, const void* w, const void* bias, int64_t n, int64_t k, float* y) {
  return linear_rows<DT, 3>(x, w, bias, 1, n, k, y, quantize_x24);
}

// ---- Q4_K's and Q6_K's decode products with sub-block lanes ----
//
// x24_rows spends per 32 codes an int32 → f32 conversion, a multiply of the sub-block's scale by x's per-lane scales,
// two shuffles to broadcast that scale and an FMA beside its 6 integer multiplies; on a Zen 3 core, whose FP pipes
// bound it (llvm-mca -mcpu=znver3), that is a third of the work. Here a superblock's 8 code vectors (32 codes each)
// are transposed by 4-byte lanes (two unpack steps), so that every lane of every vector belongs to one sub-block
// (Q4_K's 32 codes, Q6_K's 16); x's bytes are stored in the same order and scaled per 32 elements (d = max|x| /
// kX24Max, as the AVX512-VNNI layouts' x: a rounding of at most 2^-24 of the block's largest |x|), so vpmaddubsw's
// pair sums of each of x's three bytes add up in int16 over several steps and in int32 over the superblock, and the
// conversion, the scales and the FMAs come once a superblock, lane-wise, with no broadcast. Each lane's sum Σ c · q
// is exact; the superblock's value is rounded once, in f32. On a Zen 3 (tests/bench/probes/linear_probe.cpp,
// docs/benchmarks.md), from memory with 2 threads: Q4_K [6144, 1536] 1.13-1.28x x24_rows' speed, Q6_K 1.09-1.23x.

// x's bytes in the order the transposition reads them: half s (x blocks, code vectors 4s .. 4s + 3) of a superblock,
// step t (0..3) holds in lane j (0..7) the 4 elements 4 (t + 4 (j / 4)) .. + 3 of block 4s + j % 4.
inline int64_t lanes_pos(int64_t v, int64_t i) {  // element i (0..31) of block v (0..7) → byte of the superblock
  const int64_t d = i / 4;
  return 32 * (4 * (v / 4) + d % 4) + 4 * (v % 4 + 4 * (d / 4)) + i % 4;
}

struct QXL {
  std::vector<int8_t> h, m, l;  // x = d · (65536 h + 256 m + l), in lanes_pos order
  std::vector<float> d, sum;  // per 32 elements: the scale, and Σ x (Q4_K's mins)
  // Q6_K's offset terms (its codes are q + 32): per 16 elements −32 Σ h and −32 Σ (256 m + l), in the lane order of
  // lanes_row<GK_Q6_K> (per superblock and half s, lane j: the 16 elements 16 (j / 4) .. of x block 4s + j % 4).
  std::vector<int32_t> corr_h, corr_ml;
};

// Where the superblock's 16 elements e16 (0..15) go in QXL::corr_*: half e16 / 8, lane (e16 / 2) % 4 + 4 (e16 % 2).
inline int64_t corr_lane(int64_t e16) { return 8 * (e16 / 8) + (e16 / 2) % 4 + 4 * (e16 % 2); }

// x as QXL; with offsets, also its Q6_K offset terms.
bool quantize_x24_lanes(const float* x, int64_t k, bool offsets, QXL& out) {
  try {
    for (auto* v : {&out.h, &out.m, &out.l}) v->resize(k);
    out.d.resize(k / 32);
    out.sum.resize(k / 32);
    if (offsets) out.corr_h.resize(k / 16), out.corr_ml.resize(k / 16);
  } catch (const std::bad_alloc&) {
    return false;
  }
  for (int64_t b = 0; b < k / 32; ++b) {
    __m256 v[4];
    bool finite;
    const float mx = block_absmax(x + 32 * b, v, finite);
    out.sum[b] = hsum(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(v[0], v[1]), v[2]), v[3]));
    // As x24_block: a NaN or infinity makes the block's d NaN (its rows' outputs NaN) and its codes 0; a block whose
    // largest |x| is below 2^-96 goes in as zeros.
    const bool live = finite && mx > 0x1p-96f;
    out.d[b] = finite ? mx / gk::cpu::kX24Max : __builtin_nanf("");
    const __m256 id = _mm256_set1_ps(live ? gk::cpu::kX24Max / mx : 0.0f);
    const int64_t g = b / 8, sub = b % 8;
    for (int j = 0; j < 4; ++j) {  // elements 8j .. 8j + 7: dwords 2j, 2j + 1
      __m256i h, hm, mid, l;
      split_x24(v[j], id, h, hm, mid, l);
      if (offsets) {  // (vectors 0-1 are the block's first 16 elements, 2-3 its second)
        const int64_t at = 16 * g + corr_lane(2 * sub + j / 2);
        int32_t sh[2], sml[2];
        lane_sums(h, sh), lane_sums(_mm256_add_epi32(_mm256_slli_epi32(mid, 8), l), sml);
        out.corr_h[at] = (j % 2 ? out.corr_h[at] : 0) - 32 * (sh[0] + sh[1]);
        out.corr_ml[at] = (j % 2 ? out.corr_ml[at] : 0) - 32 * (sml[0] + sml[1]);
      }
      const uint64_t bytes[3] = {low_bytes(h), low_bytes(mid), low_bytes(l)};
      std::vector<int8_t>* planes[3] = {&out.h, &out.m, &out.l};
      for (int p = 0; p < 3; ++p) {
        for (int half = 0; half < 2; ++half) {
          const uint32_t dword = (uint32_t)(bytes[p] >> (32 * half));
          memcpy(planes[p]->data() + 256 * g + lanes_pos(sub, 8 * j + 4 * half), &dword, 4);
        }
      }
    }
  }
  return true;
}

// Half s of a superblock, its 4 code vectors c (32 codes each, of x blocks 4s .. 4s + 3) transposed by 4-byte
// lanes in two unpack steps, each step's vector used as it is made (the half's unpacked vectors, accumulators and
// loads fit the 16 ymm registers): lane j sums codes 4t .. 4t + 3 (t = 0..3) of c[j] (lanes 0-3) or codes 16 + 4t ..
// of c[j - 4] (lanes 4-7) times x's bytes there (x at the superblock's h, m, l, in lanes_pos order). Returns per lane
// Σ c · h and Σ c · (256 m + l), exact in int32. FLUSH: steps whose vpmaddubsw pair sums add up in int16 before a
// vpmaddwd — 4 for codes <= 15 (4 · 2 · 15 · 128 = 15360), 2 for codes <= 63 (2 · 2 · 63 · 128 = 32256).
template <int FLUSH>
inline void lanes_half(const __m256i c[4], int s, const int8_t* xh, const int8_t* xm, const int8_t* xl, __m256i& h32,
                       __m256i& ml32) {
  const __m256i ones = _mm256_set1_epi16(1), k256 = _mm256_set1_epi16(256);
  const __m256i a0 = _mm256_unpacklo_epi32(c[0], c[1]), a1 = _mm256_unpackhi_epi32(c[0], c[1]);
  const __m256i a2 = _mm256_unpacklo_epi32(c[2], c[3]), a3 = _mm256_unpackhi_epi32(c[2], c[3]);
  __m256i h = _mm256_setzero_si256(), m = h, l = h;
  h32 = ml32 = h;
  const auto step = [&](__m256i codes, int t) {
    const int64_t at = 32 * (4 * s + t);
    h = _mm256_add_epi16(h, _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i*)(xh + at))));
    m = _mm256_add_epi16(m, _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i*)(xm + at))));
    l = _mm256_add_epi16(l, _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i*)(xl + at))));
    if ((t + 1) % FLUSH == 0) {
      h32 = _mm256_add_epi32(h32, _mm256_madd_epi16(h, ones));
      ml32 = _mm256_add_epi32(ml32, _mm256_add_epi32(_mm256_madd_epi16(m, k256), _mm256_madd_epi16(l, ones)));
      h = m = l = _mm256_setzero_si256();
    }
  };
  step(_mm256_unpacklo_epi64(a0, a2), 0);
  step(_mm256_unpackhi_epi64(a0, a2), 1);
  step(_mm256_unpacklo_epi64(a1, a3), 2);
  step(_mm256_unpackhi_epi64(a1, a3), 3);
}

// 65536 h + ml per lane as f32: each term exact, the sum rounded once.
inline __m256 lanes_value(__m256i h32, __m256i ml32) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(h32), _mm256_set1_ps(65536.0f), _mm256_cvtepi32_ps(ml32));
}

// One row (its bytes at row, k / 256 superblocks) times x, prefetching the row after it (next). Q4_K: a half's lanes
// j and j + 4 are its sub-block j, folded; Q6_K: every lane of a half is one 16-element sub-block, scaled as it is.
template <int DT>
inline float lanes_row(const QXL& x, const uint8_t* row, const char* next, int64_t k) {
  constexpr int64_t GB = group_bytes<DT>();
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t g = 0; g < k / 256; ++g) {
    for (int64_t at = 0; at < GB; at += 64) __builtin_prefetch(next + GB * g + at, 0, 3);
    const uint8_t* blk = row + GB * g;
    const int8_t* xh = x.h.data() + 256 * g;
    const int8_t* xm = x.m.data() + 256 * g;
    const int8_t* xl = x.l.data() + 256 * g;
    alignas(32) float sc[16];  // (group_scales stores aligned)
    __m256 mins;
    group_scales<DT>(blk, sc, mins);
    if constexpr (DT == GK_Q4_K) {
      __m256i h32[2], ml32[2];
      for (int s = 0; s < 2; ++s) {  // sub-blocks 4s .. 4s + 3: code bytes 64s .. 64s + 63
        const __m256i b0 = _mm256_loadu_si256((const __m256i*)(blk + 16 + 64 * s));
        const __m256i b1 = _mm256_loadu_si256((const __m256i*)(blk + 48 + 64 * s));
        const __m256i c[4] = {_mm256_and_si256(b0, low4), _mm256_and_si256(_mm256_srli_epi16(b0, 4), low4),
                              _mm256_and_si256(b1, low4), _mm256_and_si256(_mm256_srli_epi16(b1, 4), low4)};
        lanes_half<4>(c, s, xh, xm, xl, h32[s], ml32[s]);
      }
      const auto fold = [](const __m256i v[2]) {  // lanes j and j + 4 of half s → lane 4s + j
        return _mm256_add_epi32(_mm256_permute2x128_si256(v[0], v[1], 0x20),
                                _mm256_permute2x128_si256(v[0], v[1], 0x31));
      };
      const __m256 dx = _mm256_loadu_ps(x.d.data() + 8 * g);
      acc = _mm256_fmadd_ps(lanes_value(fold(h32), fold(ml32)), _mm256_mul_ps(_mm256_load_ps(sc), dx), acc);
      acc = _mm256_fmadd_ps(mins, _mm256_loadu_ps(x.sum.data() + 8 * g), acc);
    } else {
      static_assert(DT == GK_Q6_K, "lanes_row: Q4_K or Q6_K");
      const __m256i top = _mm256_set1_epi8(0x30);
      for (int s = 0; s < 2; ++s) {  // x blocks 4s .. 4s + 3: ggml's element groups q1..q4 of the 128 at 128s
        const __m256i qh = _mm256_loadu_si256((const __m256i*)(blk + 128 + 32 * s));
        const __m256i ql0 = _mm256_loadu_si256((const __m256i*)(blk + 64 * s));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i*)(blk + 64 * s + 32));
        const __m256i c[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), top)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), _mm256_and_si256(qh, top)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), top))};
        __m256i h32, ml32;
        lanes_half<2>(c, s, xh, xm, xl, h32, ml32);
        const int64_t at = 16 * g + 8 * s;
        h32 = _mm256_add_epi32(h32, _mm256_loadu_si256((const __m256i*)(x.corr_h.data() + at)));
        ml32 = _mm256_add_epi32(ml32, _mm256_loadu_si256((const __m256i*)(x.corr_ml.data() + at)));
        // Lane j: sub-block 2 (4s + j % 4) + j / 4 (its scale), x block 4s + j % 4 (its d).
        const __m256 scale = _mm256_permutevar8x32_ps(_mm256_load_ps(sc + 8 * s),
                                                      _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
        const __m256 dx = _mm256_broadcast_ps((const __m128*)(x.d.data() + 8 * g + 4 * s));
        acc = _mm256_fmadd_ps(lanes_value(h32, ml32), _mm256_mul_ps(scale, dx), acc);
      }
    }
  }
  return hsum(acc);
}

template <int DT>
bool linear_lanes(const float* x, const void* w, const void* bias, int64_t n, int64_t k, float* y) {
  thread_local QXL qx;
  if (k % 256 != 0 || !quantize_x24_lanes(x, k, DT == GK_Q6_K, qx)) return false;
  const QXL& xq = qx;  // (the pool's threads must not name the thread_local)
  const int64_t row_bytes = k / 256 * group_bytes<DT>();
  const uint8_t* rows = (const uint8_t*)w;
  for_rows(n, k, [&](int64_t r) {
    const uint8_t* row = rows + r * row_bytes;
    y[r] = lanes_row<DT>(xq, row, (const char*)(row + row_bytes), k) + (bias ? ((const float*)bias)[r] : 0.0f);
  });
  return true;
}

// ---- The opt-in int8 path (GEMMAKIT_CPU_Q8_ACTIVATIONS=1) for up to 8 rows of x ----
//
// x as linear_q8act.cpp's quantize_x makes it (per 32 elements d = max|x| / 127, q = round(x / d), the same codes):
// one byte of x (x24_rows with BYTES = 1) where the 24-bit path multiplies three, so a third of its integer
// products, and the AVX512-VNNI int8 path's numbers up to the order of the float sums. Up to 8 rows of x (the decode
// step, a batched one; as there) for Q5_0 / Q4_K / Q6_K; Q8_0 and more rows take the f32 path.
bool quantize_x8(const float* x, int64_t k, int c, QX24& out) {
  try {
    out.h.resize(k);
    out.dl.resize(k / 4);
    out.corr.resize(k / 4);
    out.sum.resize(k / 32);
  } catch (const std::bad_alloc&) {
    return false;
  }
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < k / 32; ++b) {
    __m256 v[4];
    bool finite;  // (a NaN or infinity in the block makes its d NaN, so the row's output is NaN as on the f32 path)
    const float mx = block_absmax(x + 32 * b, v, finite);
    const float d = finite ? mx / 127.0f : __builtin_nanf(""), id = finite && mx > 0.0f ? 127.0f / mx : 0.0f;
    __m256i q[4];
    for (int j = 0; j < 4; ++j) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], _mm256_set1_ps(id)));
    // Saturating packs interleave the 128-bit lanes: 4-byte groups 0, 2, 4, 6, 1, 3, 5, 7 until permuted back.
    const __m256i bytes = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])), order);
    _mm256_storeu_si256((__m256i*)(out.h.data() + 32 * b), bytes);
    const __m256i s4 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), bytes), _mm256_set1_epi16(1));
    _mm256_storeu_si256((__m256i*)(out.corr.data() + 8 * b), _mm256_mullo_epi32(s4, _mm256_set1_epi32(-c)));
    _mm256_storeu_ps(out.dl.data() + 8 * b, _mm256_set1_ps(d));
    int32_t lanes[2];
    lane_sums(s4, lanes);  // (each half's 4 lanes)
    out.sum[b] = d * (float)(lanes[0] + lanes[1]);
  }
  return true;
}

template <int DT>
bool linear_x8(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  return linear_rows<DT, 1>(x, w, bias, m, n, k, y, quantize_x8);
}

}  // namespace

bool gk::cpu::linear_q8act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t m,
                           int64_t n, int64_t k, float* y) {
  // Rows of x up to where this beats the f32 path (2 threads, in-cache products, docs/benchmarks.md): 8 for Q4_K and
  // Q6_K; 4 for Q5_0, whose 8 rows took 1.13x the f32 path's time ([6912, 1152]; its units are the dearest to decode,
  // and 8 rows decode each twice). Q8_0 stays on the f32 path: at 1 row it is bound by memory there, and a sign flip
  // of x per unit (its codes are signed) made the integer path no faster at 4 rows and slower at 8.
  return k % 64 == 0 && m <= (weight_dtype == GK_Q5_0 ? 4 : kMaxRows) && by_dtype(weight_dtype, [&](auto dt) {
           return linear_x8<decltype(dt)::value>(x, weight, bias, m, n, k, y);
         });
}

bool gk::cpu::linear_x24act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t n,
                            int64_t k, float* y) {
  switch (weight_dtype) {
    case GK_Q4_K: return linear_lanes<GK_Q4_K>(x, weight, bias, n, k, y);
    case GK_Q6_K: return linear_lanes<GK_Q6_K>(x, weight, bias, n, k, y);
    case GK_Q5_0: return k % 64 == 0 && linear_x24<GK_Q5_0>(x, weight, bias, n, k, y);  // (lanes measured no faster)
    default: return false;
  }
}
#endif

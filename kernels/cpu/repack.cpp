// gk_repack and the CPU library's own layouts of a quantized matrix (kernels/include/gemmakit.h), made in place from a
// file's, the same bytes reordered: GK_Q8_0X16 from Q8_0, GK_Q5_0X16 from Q5_0, GK_Q4_0X16 from Q4_0, GK_Q4_1X16 from
// Q4_1, GK_Q5_1X16 from Q5_1, GK_Q4_KX16 from Q4_K, GK_Q5_KX16 from Q5_K, GK_Q6_KX16 from Q6_K. gk_linear and
// gk_embedding read them (linear_x16 up to linear.cpp's int_rows_max rows of x, 15-40; x16_panel / x16_strip for its
// f32 paths beyond, x16_row for the gather). The Gemma models repack their matrices when they load
// (src/models/common/repack.ts): on the 270M, the 262,144-row tied lm_head (and the embedding table it is), half of a
// decode token's time, and every projection.
//
// Why a layout: multiplied as stored, a Q8_0 row's 32-element blocks each need their codes widened to f32, their scale
// broadcast, and every row a horizontal sum at the end — about 10 vector ops per 32 weights, so the product ran at ~17
// GB/s a core in cache and ~22-25 GB/s for both cores from memory, about half of what a read-only stream gets. With 16
// rows interleaved 4 elements at a time, one 64-byte vector of codes holds 4 codes of each of 16 rows, the lanes of a
// vpdpbusd are the 16 rows (each lane sums its row's 4 products exactly in int32), the 16 rows' scales are one f16
// vector, and the outputs come out as a vector with no horizontal sum: ~3 ops per 32 weights. The others keep their
// format's bytes — a decode step reads its weights from memory (Q5_0 as Q8_0X16 took 34 bytes a block for 22) — and
// unpack each vector of codes in ~3 ops (nibbles; Q5_0's and Q5_K's fifth bits by a masked add, Q6_K's top two) once
// per 32 columns for all rows of x, with the 16 rows' scales (and Q4_K's mins) as vectors. The K-quants' scales change
// within a block of x's: Q4_K's and Q5_K's mins enter as − dmin · m · Σ x (Q4_1's and Q5_1's m as + m · Σ x), Q6_K's
// 16-element sub-blocks get sums of their own.
//
// x is taken as 24-bit integers with one scale per 32-element block (d = max|x| / 8355711), split into three signed
// bytes (l, m, h: x = 65536 h + 256 m + l), each a vpdpbusd against the codes (unsigned: Q8_0's q + 128, Q5_0's q5 =
// q + 16, Q4_0's q + 8, Q6_K's q + 32, so the sums carry that offset · Σ of x's bytes, subtracted once per block). A
// block's sums are exact; x's rounding is at most 2^-24 of its block's largest |x|, the size of an f32 rounding of that
// element, so logits stay as close to transformers' as the f32 path's (docs/benchmarks.md states the fidelity figures).
// A non-finite x makes its block's scale NaN, so the rows it reaches come out NaN as on the f32 path; a block whose
// largest |x| is below 2^-96 goes in as zeros.
//
// The rows are read once per call whatever m is (each 16-row group's blocks stay in L1 while every row of x passes
// over them, 8 rows of x at a time), prefetched ~4 KB ahead: without that the loads of this light loop wait on memory
// and the product reads at half the stream's rate (measured on the 270M lm_head: 8.0 -> 4.0 ms, 2 threads).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <new>
#include <type_traits>
#include <vector>

#include "cpu.h"
#include "pool.h"
#include "quant.h"

#include "vnni.h"
#if defined(GK_VNNI)
#define GK_X16 1
#endif

namespace {
constexpr int kRows = 16;  // rows per group

// A layout's unit: `cols` columns of a group (a block of its file format) take `bytes`; its stored codes are unsigned,
// `offset` above the signed code (Q8_0 q + 128, Q5_0 q + 16, Q4_0 q + 8, Q6_K q + 32; Q4_1, Q5_1, Q4_K and Q5_K store
// their unsigned q, their m or min kept apart).
struct Format {
  int cols;
  int64_t bytes;
  int offset;
};
constexpr Format format(int32_t dt) {
  return dt == GK_Q8_0X16   ? Format{32, 34 * kRows, 128}
         : dt == GK_Q5_0X16 ? Format{32, 22 * kRows, 16}
         : dt == GK_Q4_0X16 ? Format{32, 18 * kRows, 8}
         : dt == GK_Q4_1X16 ? Format{32, 20 * kRows, 0}
         : dt == GK_Q5_1X16 ? Format{32, 24 * kRows, 0}
         : dt == GK_Q4_KX16 ? Format{256, 144 * kRows, 0}
         : dt == GK_Q5_KX16 ? Format{256, 176 * kRows, 0}
                            : Format{256, 210 * kRows, 32};
}
// Q4_K and Q5_K: per row a d, a dmin and 12 bytes of packed 6-bit scales and mins per superblock.
constexpr bool has_mins(int32_t dt) { return dt == GK_Q4_KX16 || dt == GK_Q5_KX16; }
// Q4_1 and Q5_1: per row and block an f16 m added to every value (x = d · q + m).
constexpr bool has_m(int32_t dt) { return dt == GK_Q4_1X16 || dt == GK_Q5_1X16; }
// Q5_0, Q5_1 and Q5_K: a fifth bit per code, kept as a u64 mask per vector of codes after the nibbles.
constexpr bool has_fifth_bit(int32_t dt) { return dt == GK_Q5_0X16 || dt == GK_Q5_1X16 || dt == GK_Q5_KX16; }

// Where 32-column chunk c of a group is: its format block (`base`) and the chunk's place in it (`cc`).
struct ChunkAt {
  const uint8_t* base;
  int cc;
};
template <int DT>
inline ChunkAt chunk_at(const uint8_t* group, int64_t c) {
  constexpr Format f = format(DT);
  constexpr int per = f.cols / 32;
  return {group + c / per * f.bytes, (int)(c % per)};
}

// Where a chunk's codes start in its block: Q8_0's whole bytes, the others' nibble vectors (with their high bits, if
// any, 256 bytes on).
template <int DT>
inline const uint8_t* chunk_codes_at(const uint8_t* base, int cc) {
  if constexpr (DT == GK_Q4_KX16) return base + 256 + 256 * cc;
  if constexpr (DT == GK_Q5_KX16) return base + 256 + 320 * cc;
  if constexpr (DT == GK_Q6_KX16) return base + 288 + 384 * cc;
  (void)cc;
  return base + (has_m(DT) ? 64 : 32);
}
template <int DT>
inline uint8_t* chunk_codes_at(uint8_t* base, int cc) {
  return (uint8_t*)chunk_codes_at<DT>((const uint8_t*)base, cc);
}

// Low 4 bits of the code of row j, element 4t + e (at = 4j + e) from 4 vectors of nibbles: t < 4 low, t >= 4 high.
inline int nibble(const uint8_t* p, int t, int at) { return p[64 * (t % 4) + at] >> (t < 4 ? 0 : 4) & 0xF; }

// The stored code of row j, element 4t + e of chunk c.
template <int DT>
inline int code_at(const uint8_t* group, int64_t c, int j, int t, int e) {
  const ChunkAt ch = chunk_at<DT>(group, c);
  const uint8_t* p = chunk_codes_at<DT>(ch.base, ch.cc);
  const int at = 4 * j + e;
  if constexpr (DT == GK_Q8_0X16) return p[64 * t + at];
  if constexpr (has_fifth_bit(DT)) return nibble(p, t, at) | (p[256 + 8 * t + at / 8] >> (at % 8) & 1) << 4;
  if constexpr (DT == GK_Q6_KX16) return nibble(p, t, at) | (p[256 + 64 * (t / 4) + at] >> (2 * (t % 4)) & 3) << 4;
  return nibble(p, t, at);
}

// Row j's value = scale[h] · (code − offset) − min over chunk c's half h (elements 16h .. 16h + 15).
template <int DT>
inline void row_params(const uint8_t* group, int64_t c, int j, float scale[2], float& min) {
  const ChunkAt ch = chunk_at<DT>(group, c);
  uint16_t dh;
  memcpy(&dh, ch.base + 2 * j, 2);
  const float d = gk::f16_to_f32(dh);
  scale[0] = scale[1] = d;
  min = 0.0f;
  if constexpr (has_mins(DT)) {
    memcpy(&dh, ch.base + 32 + 2 * j, 2);
    uint8_t packed[12];
    for (int w = 0; w < 3; ++w) memcpy(packed + 4 * w, ch.base + 64 + 64 * w + 4 * j, 4);
    int sc, m;
    gk::quant::scale_min_k4(packed, ch.cc, sc, m);
    scale[0] = scale[1] = d * (float)sc;
    min = gk::f16_to_f32(dh) * (float)m;
  } else if constexpr (DT == GK_Q6_KX16) {
    for (int h = 0; h < 2; ++h) scale[h] = d * (float)(int8_t)ch.base[32 + 16 * (2 * ch.cc + h) + j];
  } else if constexpr (has_m(DT)) {
    memcpy(&dh, ch.base + 32 + 2 * j, 2);
    min = -gk::f16_to_f32(dh);
  }
}

template <int DT>
void x16_row_dt(const void* w, int64_t k, int64_t r, float* out) {
  const int64_t chunks = k / 32;
  const int j = (int)(r % kRows);
  const uint8_t* group = (const uint8_t*)w + r / kRows * (k / format(DT).cols) * format(DT).bytes;
  for (int64_t c = 0; c < chunks; ++c) {
    float scale[2], min;
    row_params<DT>(group, c, j, scale, min);
    for (int t = 0; t < 8; ++t) {
      for (int e = 0; e < 4; ++e) {
        out[32 * c + 4 * t + e] = scale[t / 4] * (float)(code_at<DT>(group, c, j, t, e) - format(DT).offset) - min;
      }
    }
  }
}

// Sets the code of row j, element 4t + e (at = 4j + e) of a chunk whose nibbles are at p (the rest of the code's bits
// at `high`, as the layout keeps them); the chunk's bytes start zeroed.
template <int DT>
inline void put_code(uint8_t* p, uint8_t* high, int t, int at, int q) {
  if constexpr (DT == GK_Q8_0X16) {
    p[64 * t + at] = (uint8_t)q;
    (void)high;
  } else {
    p[64 * (t % 4) + at] |= (uint8_t)((q & 0xF) << (t < 4 ? 0 : 4));
    if constexpr (has_fifth_bit(DT)) high[8 * t + at / 8] |= (uint8_t)((q >> 4 & 1) << (at % 8));
    if constexpr (DT == GK_Q6_KX16) high[64 * (t / 4) + at] |= (uint8_t)((q >> 4 & 3) << (2 * (t % 4)));
  }
}

// A group (its 16 rows as the file stores them, copied out: `rows`) written in layout DT at `out`.
template <int DT>
void interleave_group(const uint8_t* rows, int64_t blocks, uint8_t* out) {
  constexpr Format f = format(DT);
  constexpr int64_t file_bytes = f.bytes / kRows;  // a block of one row as stored
  memset(out, 0, blocks * f.bytes);
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* base = out + b * f.bytes;
    for (int j = 0; j < kRows; ++j) {
      const uint8_t* fb = rows + (j * blocks + b) * file_bytes;
      int32_t q[32];
      if constexpr (f.cols == 32) {
        memcpy(base + 2 * j, fb, 2);                            // d
        if constexpr (has_m(DT)) memcpy(base + 32 + 2 * j, fb + 2, 2);  // m
        gk::quant::group_codes<gk::cpu::x16_file_dtype(DT)>(fb, 0, q);
        const int offset = DT == GK_Q8_0X16 ? 128 : 0;  // (Q8_0's q is signed; the others' already unsigned)
        uint8_t* p = chunk_codes_at<DT>(base, 0);
        for (int l = 0; l < 32; ++l) put_code<DT>(p, p + 256, l / 4, 4 * j + l % 4, q[l] + offset);
      } else if constexpr (has_mins(DT)) {
        memcpy(base + 2 * j, fb, 2);                                              // d
        memcpy(base + 32 + 2 * j, fb + 2, 2);                                     // dmin
        for (int w = 0; w < 3; ++w) memcpy(base + 64 + 64 * w + 4 * j, fb + 4 + 4 * w, 4);  // packed scales
        for (int cc = 0; cc < 8; ++cc) {
          gk::quant::group_codes<gk::cpu::x16_file_dtype(DT)>(fb, cc, q);
          uint8_t* p = chunk_codes_at<DT>(base, cc);
          for (int l = 0; l < 32; ++l) put_code<DT>(p, p + 256, l / 4, 4 * j + l % 4, q[l]);
        }
      } else {
        memcpy(base + 2 * j, fb + 208, 2);                              // d
        for (int sb = 0; sb < 16; ++sb) base[32 + 16 * sb + j] = fb[192 + sb];  // int8 scales
        for (int cc = 0; cc < 8; ++cc) {
          gk::quant::group_codes<GK_Q6_K>(fb, cc, q);
          uint8_t* p = chunk_codes_at<DT>(base, cc);
          for (int l = 0; l < 32; ++l) put_code<DT>(p, p + 256, l / 4, 4 * j + l % 4, q[l]);
        }
      }
    }
  }
}

// Layout DT's function F<DT>(args...) for a runtime dtype.
#define GK_X16_DISPATCH(dt, F, ...)                                          \
  switch (dt) {                                                              \
    case GK_Q8_0X16: return F<GK_Q8_0X16>(__VA_ARGS__);                      \
    case GK_Q5_0X16: return F<GK_Q5_0X16>(__VA_ARGS__);                      \
    case GK_Q4_0X16: return F<GK_Q4_0X16>(__VA_ARGS__);                      \
    case GK_Q4_1X16: return F<GK_Q4_1X16>(__VA_ARGS__);                      \
    case GK_Q5_1X16: return F<GK_Q5_1X16>(__VA_ARGS__);                      \
    case GK_Q4_KX16: return F<GK_Q4_KX16>(__VA_ARGS__);                      \
    case GK_Q5_KX16: return F<GK_Q5_KX16>(__VA_ARGS__);                      \
    default: return F<GK_Q6_KX16>(__VA_ARGS__);                              \
  }
}  // namespace

// GEMMAKIT_CPU_REPACK=0: gk_repack makes nothing (weights keep their file layout; for A/B and fidelity runs). Nor
// does it under GEMMAKIT_CPU_Q8_ACTIVATIONS=1, whose int8-activation kernels read the file layouts.
static bool repack_enabled() {
  static const bool on = gk::cpu::env_switch("GEMMAKIT_CPU_REPACK", true) && !gk::cpu::q8_activations_enabled();
  return on;
}

bool gk::cpu::x16_supported() {
#if defined(GK_X16)
  return true;
#else
  return false;
#endif
}

static const char* layout_name(int32_t dt) {
  return dt == GK_Q8_0X16   ? "Q8_0X16"
         : dt == GK_Q5_0X16 ? "Q5_0X16"
         : dt == GK_Q4_0X16 ? "Q4_0X16"
         : dt == GK_Q4_1X16 ? "Q4_1X16"
         : dt == GK_Q5_1X16 ? "Q5_1X16"
         : dt == GK_Q4_KX16 ? "Q4_KX16"
         : dt == GK_Q5_KX16 ? "Q5_KX16"
                            : "Q6_KX16";
}

gk_status gk::cpu::validate_x16(const char* op, int32_t dtype, int64_t n, int64_t k) {
  if (!x16_supported()) {
    return gk_fail(GK_ERR_UNSUPPORTED, "%s: this build of the CPU library cannot read %s (it needs AVX512-VNNI)", op,
                   layout_name(dtype));
  }
  const int cols = format(dtype).cols;
  GK_REQUIRE(n > 0 && k > 0 && n % kRows == 0 && k % cols == 0,
             "%s: a %s matrix has a multiple of 16 rows and of %d columns, not [%lld, %lld]", op, layout_name(dtype),
             cols, (long long)n, (long long)k);
  return GK_OK;
}

void gk::cpu::x16_row(const void* w, int32_t dtype, int64_t k, int64_t r, float* out) {
  GK_X16_DISPATCH(dtype, x16_row_dt, w, k, r, out)
}

GK_API gk_status gk_repack(gk_stream* s, void* weight, int32_t from_dtype, int32_t to_dtype, int32_t n, int32_t k) {
  GK_TRY(gk::validate_stream(s, "gk_repack"));
  GK_REQUIRE(weight, "gk_repack: NULL weight");
  // A load-time rewrite of a weight, not a step of a decode program.
  GK_REQUIRE(!s->recording, "gk_repack: cannot be recorded into a decode program");
  const bool pair = gk::cpu::is_x16_dtype(to_dtype) && gk::cpu::x16_file_dtype(to_dtype) == from_dtype;
  if (!pair || !gk::cpu::x16_supported() || !repack_enabled() || n <= 0 || k <= 0 || n % kRows != 0 ||
      k % format(to_dtype).cols != 0) {
    return gk_fail(GK_ERR_UNSUPPORTED, "gk_repack: %d -> %d for [%d, %d] is not a layout this build makes", from_dtype,
                   to_dtype, n, k);
  }
  const int64_t blocks = k / format(to_dtype).cols, groups = n / kRows;
  const int64_t group_bytes = blocks * format(to_dtype).bytes;  // as stored and repacked
  std::atomic<bool> oom{false};
  // Group by group through a copy of its 16 rows as stored, then written back interleaved.
#pragma omp parallel
  {
    std::vector<uint8_t> rows;
    try {
      rows.resize(group_bytes);
    } catch (const std::bad_alloc&) {
      oom = true;
    }
#pragma omp barrier
    if (!oom) {
#pragma omp for schedule(static)
      for (int64_t g = 0; g < groups; ++g) {
        uint8_t* out = (uint8_t*)weight + g * group_bytes;
        memcpy(rows.data(), out, group_bytes);
        const uint8_t* from = rows.data();
        [&] { GK_X16_DISPATCH(to_dtype, interleave_group, from, blocks, out) }();
      }
    }
  }
  // Every thread allocates before any writes, so on failure nothing was reordered.
  if (oom) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_repack: cannot allocate a %lld-byte group", (long long)group_bytes);
  return GK_OK;
}

#if defined(GK_X16)
namespace {

// The 8 vectors of chunk c's codes (vector t: elements 4t .. 4t + 3 of the 16 rows, row j's at bytes 4j .. 4j + 3),
// unsigned as stored. Q8_0X16 holds them as they are; the others are unpacked into `scratch` (~3 ops a vector).
template <int DT>
inline const uint8_t* chunk_codes(const uint8_t* group, int64_t c, uint8_t* scratch) {
  const ChunkAt ch = chunk_at<DT>(group, c);
  const uint8_t* p = chunk_codes_at<DT>(ch.base, ch.cc);
  if constexpr (DT == GK_Q8_0X16) {
    (void)scratch;
    return p;
  } else {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    [[maybe_unused]] __m512i high[2];
    if constexpr (DT == GK_Q6_KX16) {
      for (int i = 0; i < 2; ++i) high[i] = _mm512_loadu_si512((const void*)(p + 256 + 64 * i));
    }
    for (int u = 0; u < 4; ++u) {
      const __m512i nib = _mm512_loadu_si512((const void*)(p + 64 * u));
      __m512i lo = _mm512_and_si512(nib, low4), hi = _mm512_and_si512(_mm512_srli_epi16(nib, 4), low4);
      if constexpr (has_fifth_bit(DT)) {  // bit 4 from a u64 mask per vector
        const __m512i five = _mm512_set1_epi8(0x10);
        __mmask64 m_lo, m_hi;
        memcpy(&m_lo, p + 256 + 8 * u, 8);
        memcpy(&m_hi, p + 256 + 8 * (u + 4), 8);
        lo = _mm512_mask_add_epi8(lo, m_lo, lo, five);
        hi = _mm512_mask_add_epi8(hi, m_hi, hi, five);
      } else if constexpr (DT == GK_Q6_KX16) {  // bits 4-5 of vector t from bits 2(t % 4) of high[t / 4], to 4-5
        const __m512i mask = _mm512_set1_epi8(0x30);
        const auto place = [&](__m512i h) {
          return _mm512_and_si512(u == 0 ? _mm512_slli_epi16(h, 4)
                                  : u == 1 ? _mm512_slli_epi16(h, 2)
                                  : u == 2 ? h
                                           : _mm512_srli_epi16(h, 2),
                                  mask);
        };
        lo = _mm512_or_si512(lo, place(high[0]));
        hi = _mm512_or_si512(hi, place(high[1]));
      }
      _mm512_store_si512((void*)(scratch + 64 * u), lo);
      _mm512_store_si512((void*)(scratch + 64 * (u + 4)), hi);
    }
    return scratch;
  }
}

// Chunk c's per-row scales (one per 16-element half) and mins as vectors (lane j: row j): row_params, 16 rows at once.
template <int DT>
inline void chunk_params(const uint8_t* group, int64_t c, __m512 scale[2], __m512& min) {
  const ChunkAt ch = chunk_at<DT>(group, c);
  const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)ch.base));
  scale[0] = scale[1] = d;
  min = _mm512_setzero_ps();
  if constexpr (has_mins(DT)) {
    // The 6-bit scale and min of sub-block cc from each row's 12 packed bytes (as dwords u0, u1, u2 of its lane).
    __m512i u[3];
    for (int w = 0; w < 3; ++w) u[w] = _mm512_loadu_si512((const void*)(ch.base + 64 + 64 * w));
    const auto field = [](__m512i v, int shift, int bits) {
      return _mm512_and_si512(_mm512_srl_epi32(v, _mm_cvtsi32_si128(shift)), _mm512_set1_epi32((1 << bits) - 1));
    };
    __m512i sc, m;
    if (ch.cc < 4) {
      sc = field(u[0], 8 * ch.cc, 6);
      m = field(u[1], 8 * ch.cc, 6);
    } else {
      const int s4 = 8 * (ch.cc - 4);
      sc = _mm512_or_si512(field(u[2], s4, 4), _mm512_slli_epi32(field(u[0], s4 + 6, 2), 4));
      m = _mm512_or_si512(field(u[2], s4 + 4, 4), _mm512_slli_epi32(field(u[1], s4 + 6, 2), 4));
    }
    scale[0] = scale[1] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc));
    min = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(ch.base + 32))), _mm512_cvtepi32_ps(m));
  } else if constexpr (DT == GK_Q6_KX16) {
    for (int h = 0; h < 2; ++h) {
      const __m128i sc = _mm_loadu_si128((const __m128i*)(ch.base + 32 + 16 * (2 * ch.cc + h)));
      scale[h] = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(sc)));
    }
  } else if constexpr (has_m(DT)) {
    min = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(ch.base + 32))));
  }
}

template <int DT>
void x16_strip_dt(const void* w, int64_t k, int64_t r0, int rows, int nr, float* strip) {
  const int64_t chunks = k / 32;
  const uint8_t* group = (const uint8_t*)w + r0 / kRows * (k / format(DT).cols) * format(DT).bytes;
  const int j0 = (int)(r0 % kRows);
  alignas(64) uint8_t scratch[8 * 64];
  for (int64_t c = 0; c < chunks; ++c) {
    const uint8_t* codes8 = chunk_codes<DT>(group, c, scratch);
    __m512 scale[2], min;
    chunk_params<DT>(group, c, scale, min);
    for (int half = 0; half < 2; ++half) {  // elements 16·half .. 16·half + 15 of the chunk: codes t = 4·half .. + 3
      // value = code · s + o, with s the row's scale and o = −offset · s − min (exact for Q8_0 / Q5_0: q · d rounded
      // once, as their f32 path does).
      alignas(64) float sv[kRows], ov[kRows];
      _mm512_store_ps(sv, scale[half]);
      _mm512_store_ps(ov, _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(-(float)format(DT).offset), scale[half]), min));
      // A 4×16 transpose of dwords (each dword a row's 4 codes): row 4L + i's 16 codes end up in lane L of rows4[i].
      const uint8_t* codes = codes8 + 256 * half;
      __m512i cv[4];
      for (int t = 0; t < 4; ++t) cv[t] = _mm512_loadu_si512((const void*)(codes + 64 * t));
      const __m512i a0 = _mm512_unpacklo_epi32(cv[0], cv[1]), a1 = _mm512_unpackhi_epi32(cv[0], cv[1]);
      const __m512i a2 = _mm512_unpacklo_epi32(cv[2], cv[3]), a3 = _mm512_unpackhi_epi32(cv[2], cv[3]);
      alignas(64) uint8_t rows4[4][64];
      _mm512_store_si512((void*)rows4[0], _mm512_unpacklo_epi64(a0, a2));
      _mm512_store_si512((void*)rows4[1], _mm512_unpackhi_epi64(a0, a2));
      _mm512_store_si512((void*)rows4[2], _mm512_unpacklo_epi64(a1, a3));
      _mm512_store_si512((void*)rows4[3], _mm512_unpackhi_epi64(a1, a3));
      float* out = strip + (2 * c + half) * nr * 16;
      for (int j = 0; j < nr; ++j) {
        const int r = j0 + j;
        const __m512 v =
            j < rows ? _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                           _mm_load_si128((const __m128i*)(rows4[r % 4] + 16 * (r / 4))))),
                                       _mm512_set1_ps(sv[r]), _mm512_set1_ps(ov[r]))
                     : _mm512_setzero_ps();
        _mm512_storeu_ps(out + 16 * j, v);
      }
    }
  }
}

}  // namespace

void gk::cpu::x16_strip(const void* w, int32_t dtype, int64_t k, int64_t r0, int rows, int nr, float* strip) {
  GK_X16_DISPATCH(dtype, x16_strip_dt, w, k, r0, rows, nr, strip)
}

namespace {
template <int DT>
void x16_panel_dt(const void* w, int64_t k, int64_t n0, int nb, int64_t k0, int kb, float* panel) {
  constexpr int kSliver = 2 * kRows;
  const int64_t group_bytes = k / format(DT).cols * format(DT).bytes;
  alignas(64) uint8_t scratch[8 * 64];
  for (int s = 0; s * kSliver < nb; ++s) {
    float* dst = panel + (int64_t)s * kb * kSliver;
    for (int half = 0; half < 2; ++half) {
      const int row0 = s * kSliver + half * kRows;
      if (row0 >= nb) {  // rows past nb pack as 0
        for (int i = 0; i < kb; ++i) _mm512_storeu_ps(dst + (int64_t)i * kSliver + half * kRows, _mm512_setzero_ps());
        continue;
      }
      const uint8_t* group = (const uint8_t*)w + (n0 + row0) / kRows * group_bytes;
      for (int64_t c = k0 / 32; c < (k0 + kb) / 32; ++c) {
        // Each vector of codes holds, per row (lane), elements 4t .. 4t + 3 as its 4 bytes: byte e of every lane is
        // column 4t + e of the 16 rows, the panel's layout.
        const uint8_t* codes = chunk_codes<DT>(group, c, scratch);
        __m512 scale[2], min;
        chunk_params<DT>(group, c, scale, min);
        for (int t = 0; t < 8; ++t) {
          const __m512i cv = _mm512_loadu_si512((const void*)(codes + 64 * t));
          const __m512 s_ = scale[t / 4];
          const __m512 o = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(-(float)format(DT).offset), s_), min);
          for (int e = 0; e < 4; ++e) {
            const __m512i q = _mm512_and_si512(_mm512_srli_epi32(cv, 8 * e), _mm512_set1_epi32(0xFF));
            float* out = dst + (32 * (c - k0 / 32) + 4 * t + e) * kSliver + half * kRows;
            _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(q), s_, o));
          }
        }
      }
    }
  }
}
}  // namespace

void gk::cpu::x16_panel(const void* w, int32_t dtype, int64_t k, int64_t n0, int nb, int64_t k0, int kb,
                        float* panel) {
  GK_X16_DISPATCH(dtype, x16_panel_dt, w, k, n0, nb, k0, kb, panel)
}

namespace {

constexpr int64_t kAhead = 4096;       // prefetch distance (bytes)
constexpr int kMaxM = 8;               // rows of x per pass over a group (2·8 f32 accumulators + 3 int32)

// One row of x in 24-bit form: bytes l, m, h (k each), and per 32-element block its scale d, and per 16 elements the
// sums Σ (256 h + m) and Σ l, which the codes' offset (and a Q4_K min) multiplies into the products.
struct X24Row {
  const int8_t *l, *m, *h;
  const float* d;
  const int32_t *sum_hm, *sum_l;
};

struct X24Rows {
  std::vector<int8_t> l, m, h;
  std::vector<float> d;
  std::vector<int32_t> sum_hm, sum_l;
  bool resize(int64_t rows, int64_t k) {
    try {
      for (auto* v : {&l, &m, &h}) v->resize(rows * k);
      d.resize(rows * k / 32);
      for (auto* v : {&sum_hm, &sum_l}) v->resize(rows * k / 16);
    } catch (const std::bad_alloc&) {
      return false;
    }
    return true;
  }
  X24Row row(int64_t i, int64_t k) const {
    return {l.data() + i * k,          m.data() + i * k,          h.data() + i * k,
            d.data() + i * k / 32, sum_hm.data() + i * k / 16, sum_l.data() + i * k / 16};
  }
};

void quantize_row(const float* x, int64_t k, X24Rows& q, int64_t i) {
  const int64_t nb = k / 32;
  int8_t *l = q.l.data() + i * k, *m = q.m.data() + i * k, *h = q.h.data() + i * k;
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    // Per element (max_ps would drop a NaN operand): a NaN or infinity makes the block's scale NaN.
    const __m512 big = _mm512_set1_ps(3.402823466e38f);
    const bool bad = (_mm512_cmp_ps_mask(a0, big, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, big, _CMP_NLE_UQ)) != 0;
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    int32_t* hm_sum = q.sum_hm.data() + i * k / 16 + 2 * b;
    int32_t* l_sum = q.sum_l.data() + i * k / 16 + 2 * b;
    float* d = q.d.data() + i * nb + b;
    if (bad || !(mx > 0x1p-96f)) {  // (and a block below 2^-96: its kX24Max / mx would overflow, its d is subnormal)
      memset(l + 32 * b, 0, 32), memset(m + 32 * b, 0, 32), memset(h + 32 * b, 0, 32);
      hm_sum[0] = hm_sum[1] = l_sum[0] = l_sum[1] = 0;
      *d = bad ? __builtin_nanf("") : 0.0f;
      continue;
    }
    const __m512 inv = _mm512_set1_ps(gk::cpu::kX24Max / mx);
    *d = mx / gk::cpu::kX24Max;
    for (int half = 0; half < 2; ++half) {
      const auto [lb, mb, hb, hm] = gk::cpu::split_x24(_mm512_mul_ps(half ? v1 : v0, inv));
      const int64_t at = 32 * b + 16 * half;
      _mm_storeu_si128((__m128i*)(l + at), _mm512_cvtepi32_epi8(lb));
      _mm_storeu_si128((__m128i*)(m + at), _mm512_cvtepi32_epi8(mb));
      _mm_storeu_si128((__m128i*)(h + at), _mm512_cvtepi32_epi8(hb));
      hm_sum[half] = _mm512_reduce_add_epi32(hm);
      l_sum[half] = _mm512_reduce_add_epi32(lb);
    }
  }
}

// The exact int32 sums of codes × x's bytes over vectors t0 .. t1 − 1 of a chunk for one row of x (its bytes h4, m4, l4
// as dwords), less the codes' offset times x's sums: hm = 256 · Σ h + Σ m, lo = Σ l (one lane a row of W). t1 − t0 is
// even: two sets of accumulators, so that each chain of dependent vpdpbusd is half as long (~10% faster at 8-32 rows).
template <int kOffset>
inline void chunk_sums(const uint8_t* codes, int t0, int t1, const int32_t* h4, const int32_t* m4, const int32_t* l4,
                       int32_t sum_hm, int32_t sum_l, __m512i& hm, __m512i& lo) {
  __m512i ah = _mm512_setzero_si512(), am = ah, al = ah, bh = ah, bm = ah, bl = ah;
#pragma GCC unroll 8
  for (int t = t0; t < t1; t += 2) {
    const __m512i c = _mm512_loadu_si512((const void*)(codes + 64 * t));
    const __m512i c1 = _mm512_loadu_si512((const void*)(codes + 64 * t + 64));
    ah = _mm512_dpbusd_epi32(ah, c, _mm512_set1_epi32(h4[t]));
    am = _mm512_dpbusd_epi32(am, c, _mm512_set1_epi32(m4[t]));
    al = _mm512_dpbusd_epi32(al, c, _mm512_set1_epi32(l4[t]));
    bh = _mm512_dpbusd_epi32(bh, c1, _mm512_set1_epi32(h4[t + 1]));
    bm = _mm512_dpbusd_epi32(bm, c1, _mm512_set1_epi32(m4[t + 1]));
    bl = _mm512_dpbusd_epi32(bl, c1, _mm512_set1_epi32(l4[t + 1]));
  }
  ah = _mm512_add_epi32(ah, bh), am = _mm512_add_epi32(am, bm), al = _mm512_add_epi32(al, bl);
  hm = _mm512_add_epi32(_mm512_slli_epi32(ah, 8), am);
  lo = al;
  if constexpr (kOffset != 0) {
    hm = _mm512_sub_epi32(hm, _mm512_set1_epi32(kOffset * sum_hm));
    lo = _mm512_sub_epi32(lo, _mm512_set1_epi32(kOffset * sum_l));
  }
}

// Chunk c of a group as the integer kernel and the screen read it: the chunk ~kAhead bytes on prefetched, its codes
// (chunk_codes) and its rows' scales and mins (chunk_params).
template <int DT>
inline const uint8_t* chunk_begin(const uint8_t* group, int64_t c, uint8_t* scratch, __m512 scale[2], __m512& min) {
  constexpr Format f = format(DT);
  constexpr int64_t kChunkBytes = f.bytes / (f.cols / 32);  // (on average: a K-quant's scales come with its first)
  const char* next = (const char*)group + c * kChunkBytes + kAhead;
  for (int64_t at = 0; at < kChunkBytes; at += 64) _mm_prefetch(next + at, _MM_HINT_T0);
  chunk_params<DT>(group, c, scale, min);
  return chunk_codes<DT>(group, c, scratch);
}

// Calls f(std::integral_constant<int, M>{}) for M = rows (1..kMaxM): the kernels' row loops unrolled for each M.
template <typename F>
inline void with_rows(int rows, F&& f) {
  switch (rows) {
    case 8: return f(std::integral_constant<int, 8>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 1>{});
  }
}

// y[i, 16g .. 16g + 16) for M rows of x against group g: per chunk (per half for Q6_K's 16-element scales), int32
// vectors of the 16 rows' exact sums (one lane a row), converted and scaled by scale_w · d_x into acc_hm (256 h + m)
// and acc_l (l, and a Q4_K min · Σ x); y = 256 · acc_hm + acc_l.
template <int DT, int M>
inline void group_rows(const uint8_t* group, int64_t chunks, const X24Row* xr, const float* bias, int64_t g, int64_t n,
                       float* y) {
  constexpr Format f = format(DT);
  __m512 acc_hm[M], acc_l[M];
  for (int i = 0; i < M; ++i) acc_hm[i] = acc_l[i] = _mm512_setzero_ps();
  alignas(64) uint8_t scratch[8 * 64];
  for (int64_t c = 0; c < chunks; ++c) {
    __m512 scale[2], min;
    const uint8_t* codes = chunk_begin<DT>(group, c, scratch, scale, min);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const int32_t *h4 = (const int32_t*)(xr[i].h + 32 * c), *m4 = (const int32_t*)(xr[i].m + 32 * c),
                    *l4 = (const int32_t*)(xr[i].l + 32 * c);
      const int32_t *shm = xr[i].sum_hm + 2 * c, *sl = xr[i].sum_l + 2 * c;
      const __m512 dx = _mm512_set1_ps(xr[i].d[c]);
      __m512i hm, lo;
      if constexpr (DT == GK_Q6_KX16) {
        for (int half = 0; half < 2; ++half) {
          chunk_sums<f.offset>(codes, 4 * half, 4 * half + 4, h4, m4, l4, shm[half], sl[half], hm, lo);
          const __m512 sc = _mm512_mul_ps(scale[half], dx);
          acc_hm[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hm), sc, acc_hm[i]);
          acc_l[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), sc, acc_l[i]);
        }
      } else {
        chunk_sums<f.offset>(codes, 0, 8, h4, m4, l4, shm[0] + shm[1], sl[0] + sl[1], hm, lo);
        const __m512 sc = _mm512_mul_ps(scale[0], dx);
        acc_hm[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hm), sc, acc_hm[i]);
        acc_l[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), sc, acc_l[i]);
        if constexpr (has_mins(DT) || has_m(DT)) {  // − min · Σ x, Σ x = d_x · (256 · Σ (256 h + m) + Σ l)
          const float sum_x = xr[i].d[c] * (float)(256 * (shm[0] + shm[1]) + sl[0] + sl[1]);
          acc_l[i] = _mm512_fnmadd_ps(min, _mm512_set1_ps(sum_x), acc_l[i]);
        }
      }
    }
  }
  const __m512 bv = bias ? _mm512_loadu_ps(bias + kRows * g) : _mm512_setzero_ps();
  for (int i = 0; i < M; ++i) {
    _mm512_storeu_ps(y + i * n + kRows * g, _mm512_add_ps(_mm512_fmadd_ps(acc_hm[i], _mm512_set1_ps(256.0f), acc_l[i]), bv));
  }
}

template <int DT>
void groups_range(const uint8_t* w, int64_t k, const X24Row* xr, const float* bias, int64_t m, int64_t n, int64_t g0,
                  int64_t g1, float* y) {
  const int64_t group_bytes = k / format(DT).cols * format(DT).bytes;
  for (int64_t g = g0; g < g1; ++g) {
    // Every row of x against this group while it is in L1: passes of at most kMaxM rows, as even as possible.
    const int64_t passes = (m + kMaxM - 1) / kMaxM;
    for (int64_t p = 0, i = 0; p < passes; ++p) {
      const int64_t r = m * (p + 1) / passes - i;
      const uint8_t* group = w + g * group_bytes;
      with_rows((int)r, [&](auto M) { group_rows<DT, M()>(group, k / 32, xr + i, bias, g, n, y + i * n); });
      i += r;
    }
  }
}

// Pieces of the groups, handed out in order to whichever thread asks next. Each output is still computed whole by one
// thread in a fixed order: the result does not depend on which.
template <int DT>
void groups_pieces(const uint8_t* w, int64_t k, const X24Row* xr, const float* bias, int64_t m, int64_t n,
                   int64_t groups, int64_t pieces, std::atomic<int64_t>& next, float* y) {
  for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
    groups_range<DT>(w, k, xr, bias, m, n, groups * c / pieces, groups * (c + 1) / pieces, y);
  }
}

// x's rows in 24-bit form, kept between calls (a decode step makes ~130 products) in the calling thread's buffers;
// NULL when they cannot be allocated. (The pool's threads must not name these thread_locals: they would get their
// own, empty ones.)
X24Rows* x24_buffers(int64_t m, int64_t k, const X24Row*& xr) {
  thread_local X24Rows q;
  thread_local std::vector<X24Row> rows;
  try {
    if (!q.resize(m, k)) throw std::bad_alloc();
    rows.resize(m);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  for (int64_t i = 0; i < m; ++i) rows[i] = q.row(i, k);
  xr = rows.data();
  return &q;
}

// The groups go out in pieces of ~256 KB of W (at least 8), each thread taking the next when done with its last,
// rather than half each: on a shared machine one vCPU is often slower for a while, and a fixed split left the other
// waiting (270M decode, interleaved A/B: the lm_head 6.5-6.7 ms a token against 6.5-8.6 split in halves).
int64_t group_pieces(int32_t dtype, int64_t groups, int64_t k) {
  const int64_t bytes = groups * (k / format(dtype).cols) * format(dtype).bytes;
  return std::min<int64_t>(groups, std::max<int64_t>(8, bytes >> 18));
}

}  // namespace

gk_status gk::cpu::linear_x16(const float* x, const void* w, int32_t dtype, const void* bias, int64_t m, int64_t n,
                              int64_t k, float* y) {
  const X24Row* xr = nullptr;
  X24Rows* qx = x24_buffers(m, k, xr);
  if (!qx) {
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate x's 24-bit form (%lld×%lld)", (long long)m,
                   (long long)k);
  }
  X24Rows& q = *qx;
  const int64_t groups = n / kRows;
  const bool par = n * k * m >= (1 << 15) && groups >= 2;
  // Several rows of x (a prefill) are quantized by all threads, each its share, before any product: done first on
  // the calling thread alone they took ~6% of a 16-token prefill of the 270M (~0.7 µs a row per 640 columns) with
  // the other core waiting.
  const bool shared_quantize = par && m >= 4;
  if (!shared_quantize) {
    for (int64_t i = 0; i < m; ++i) quantize_row(x + i * k, k, q, i);
  }
  std::atomic<int> quantized{0};
  const int64_t pieces = group_pieces(dtype, groups, k);
  std::atomic<int64_t> next_piece{0};
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    if (shared_quantize) {
      for (int64_t i = m * t / nt; i < m * (t + 1) / nt; ++i) quantize_row(x + i * k, k, *qx, i);
      gk::cpu::pool_barrier(quantized, nt);
    }
    const auto* wb = (const uint8_t*)w;
    const auto* b = (const float*)bias;
    GK_X16_DISPATCH(dtype, groups_pieces, wb, k, xr, b, m, n, groups, pieces, next_piece, y)
  });
  return GK_OK;
}

// ---- gk_greedy_logits' screen (kernels/cpu/greedy_logits.cpp) ----
//
// A batch of greedy rows needs, of each row's logits, only those that could be its maximum. At 8 rows of x the 24-bit
// kernel above is arithmetic-bound on the 270M's 262,144-row lm_head (3 vpdpbusd per 64 codes and row of x: ~15 ms of
// a 33 ms step) where reading the matrix takes ~6.5. The screen runs the same chunk loop with x's high bytes h alone
// (x's 24-bit form is 65536 h + 256 m + l: h is an 8-bit rounding of x, one vpdpbusd per 64 codes) and bounds, per row
// of W and of x, how far that can be from the 24-bit kernel's value; a group (16 rows of W) whose upper bounds all lie
// below the best lower bound found so far for that row of x (a row that cannot be its maximum) gets −inf, the others
// get the 24-bit kernel's values, computed while the group is in L1 — so the argmax of each row of the output is the
// argmax of gk_linear's, ties and NaN included.
//
// The bound, for one row of W (codes q_i, offset removed, |q_i| <= qmax) and one 16- or 32-element scale block of x
// (scale d, 24-bit integers X_i = 65536 h_i + 256 m_i + l_i): the two kernels' exact sums differ by s · d · Σ q_i (256
// m_i + l_i), at most |s| · d · qmax · E with E = Σ |256 m_i + l_i|; each kernel's f32 rounding (conversions, scalings
// and the running sums: at most (k / 16 + 8) roundings of 2^-24 on sums of terms bounded by |s| · d · qmax · Y, Y =
// Σ (65536 |h_i| + 256 |m_i| + |l_i|)) adds γ · Y with γ = 2 (k / 16 + 8) 2^-24 for both. So per block bound =
// |s| · B with B = d · qmax · (E + γ Y) rounded up, one FMA per block next to the product's; the sum gets 2^-10 of
// itself and 2^-20 of |value| for its own rounding and that of value ± bound.
namespace {

constexpr int screen_qmax(int32_t dt) {
  return dt == GK_Q8_0X16 ? 128 : dt == GK_Q5_0X16 ? 16 : dt == GK_Q4_0X16 ? 8 : dt == GK_Q6_KX16 ? 32 : 0;
}

// One row of x for the screen: its high bytes, scales, and per 16 elements Σ h and the bound's B.
struct ScreenRow {
  const int8_t* h;
  const float* d;
  const int32_t* sum_h;
  const float* bound;
};

void screen_row_prepare(const X24Row& x, int64_t k, int qmax, int32_t* sum_h, float* bound) {
  const double gamma = 2.0 * ((double)k / 16 + 8) * 0x1p-24;
  for (int64_t j = 0; j < k / 16; ++j) {
    int64_t sh = 0, e = 0, y = 0;
    for (int64_t i = 16 * j; i < 16 * j + 16; ++i) {
      const int h = x.h[i], mid = x.m[i], lo = x.l[i];
      sh += h;
      e += std::abs(256 * mid + lo);
      y += 65536 * std::abs(h) + 256 * std::abs(mid) + std::abs(lo);
    }
    sum_h[j] = (int32_t)sh;
    // (A NaN scale — a non-finite x — makes B NaN, so the bound and every upper bound it reaches: nothing is dropped.)
    bound[j] = (float)((double)x.d[j / 2] * qmax * ((double)e + gamma * (double)y) * (1 + 0x1p-20));
  }
}

// The exact int32 sums of codes × h over vectors t0 .. t1 − 1 of a chunk (two chains, as chunk_sums), offset removed.
template <int kOffset>
inline __m512i screen_sums(const uint8_t* codes, int t0, int t1, const int32_t* h4, int32_t sum_h) {
  __m512i a = _mm512_setzero_si512(), b = a;
#pragma GCC unroll 4
  for (int t = t0; t < t1; t += 2) {
    a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512((const void*)(codes + 64 * t)), _mm512_set1_epi32(h4[t]));
    b = _mm512_dpbusd_epi32(b, _mm512_loadu_si512((const void*)(codes + 64 * t + 64)), _mm512_set1_epi32(h4[t + 1]));
  }
  a = _mm512_add_epi32(a, b);
  if constexpr (kOffset != 0) a = _mm512_sub_epi32(a, _mm512_set1_epi32(kOffset * sum_h));
  return a;
}

// The screen's value and bound of group g's 16 rows for M rows of x (one lane a row of W).
template <int DT, int M>
inline void group_screen(const uint8_t* group, int64_t chunks, const ScreenRow* xs, __m512* value, __m512* bound) {
  constexpr Format f = format(DT);
  for (int i = 0; i < M; ++i) value[i] = bound[i] = _mm512_setzero_ps();
  alignas(64) uint8_t scratch[8 * 64];
  for (int64_t c = 0; c < chunks; ++c) {
    __m512 scale[2], min;
    const uint8_t* codes = chunk_begin<DT>(group, c, scratch, scale, min);
    const __m512 abs0 = _mm512_abs_ps(scale[0]), abs1 = _mm512_abs_ps(scale[1]);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const int32_t* h4 = (const int32_t*)(xs[i].h + 32 * c);
      const int32_t* sh = xs[i].sum_h + 2 * c;
      const float* b = xs[i].bound + 2 * c;
      const __m512 dx = _mm512_set1_ps(xs[i].d[c] * 65536.0f);
      if constexpr (DT == GK_Q6_KX16) {
        for (int half = 0; half < 2; ++half) {
          const __m512i s = screen_sums<f.offset>(codes, 4 * half, 4 * half + 4, h4, sh[half]);
          value[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(scale[half], dx), value[i]);
          bound[i] = _mm512_fmadd_ps(half ? abs1 : abs0, _mm512_set1_ps(b[half]), bound[i]);
        }
      } else {
        const __m512i s = screen_sums<f.offset>(codes, 0, 8, h4, sh[0] + sh[1]);
        value[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(scale[0], dx), value[i]);
        bound[i] = _mm512_fmadd_ps(abs0, _mm512_set1_ps(b[0] + b[1]), bound[i]);
      }
    }
  }
}

// The upper bound below which a row of W cannot be a row of x's maximum, given `best`, a lower bound of that
// maximum: `best` itself, or with a softcap (cap > 0) the one below which even the rounded softcap, cap · tanh(v /
// cap) within 2^-22 · cap of its exact value (its tanh held to 2 ulp by tests/ops/tanh_test.ts, the division and
// product rounded once each), stays below best's: cap · atanh(tanh(best / cap) − 2^-19), rounded down.
float screen_threshold(float best, float cap) {
  if (!(cap > 0.0f)) return best;
  const double t = std::tanh((double)best / cap) - 0x1p-19;
  if (!(t > -1.0)) return -INFINITY;
  const double u = cap * std::atanh(t);
  float f = (float)u;
  if ((double)f > u) f = std::nextafter(f, -INFINITY);
  return f;
}

void atomic_max(std::atomic<float>& a, float v) {
  float cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

struct ScreenJob {
  const uint8_t* w;
  int64_t k, m, n, groups, pieces;
  const X24Row* xr;
  const ScreenRow* xs;
  const uint16_t* keep;     // per group: lanes always computed (logit-bias ids), left out of the lower bounds
  float cap;                // > 0: the output is softcapped
  std::atomic<float>* best;  // per row of x: the largest lower bound of its maximum found so far (by any thread)
  std::atomic<int64_t>* next_piece;
  std::atomic<int64_t>* computed;  // groups × rows of x given their 24-bit values (for GEMMAKIT_PROFILE-style counts)
  float* y;
};

// Group g for rows i0 .. i0 + r − 1 of x: screen, then per row either −inf or the 24-bit kernel's values (softcapped).
template <int DT>
void screen_group(const ScreenJob& j, int64_t g, int64_t i0, int r, float* best_seen, float* threshold) {
  const int64_t chunks = j.k / 32;
  const uint8_t* group = j.w + g * (j.k / format(DT).cols) * format(DT).bytes;
  __m512 value[kMaxM], bound[kMaxM];
  with_rows(r, [&](auto M) { group_screen<DT, M()>(group, chunks, j.xs + i0, value, bound); });
  const __mmask16 keep = j.keep[g];
  int64_t computed = 0;
  for (int q = 0; q < r; ++q) {
    const int64_t i = i0 + q;
    const float shared = j.best[i].load(std::memory_order_relaxed);
    if (shared > best_seen[i]) best_seen[i] = shared, threshold[i] = screen_threshold(shared, j.cap);
    const __m512 margin = _mm512_fmadd_ps(_mm512_abs_ps(value[q]), _mm512_set1_ps(0x1p-20f),
                                          _mm512_mul_ps(bound[q], _mm512_set1_ps(1.0f + 0x1p-10f)));
    const __m512 upper = _mm512_add_ps(value[q], margin), lower = _mm512_sub_ps(value[q], margin);
    // Not below the threshold (a NaN bound included): its 24-bit value.
    const __mmask16 pass = _mm512_cmp_ps_mask(upper, _mm512_set1_ps(threshold[i]), _CMP_NLT_UQ) | keep;
    const __mmask16 unkept = (__mmask16)~keep;
    float found = _mm512_mask_reduce_max_ps(unkept & _mm512_cmp_ps_mask(lower, lower, _CMP_ORD_Q), lower);
    float* out = j.y + i * j.n + kRows * g;
    if (pass) {
      group_rows<DT, 1>(group, chunks, j.xr + i, nullptr, g, j.n, j.y + i * j.n);
      const __m512 exact = _mm512_loadu_ps(out);
      found = std::max(found, _mm512_mask_reduce_max_ps(unkept & _mm512_cmp_ps_mask(exact, exact, _CMP_ORD_Q), exact));
      if (j.cap > 0.0f) gk::cpu::softcap(out, out, kRows, j.cap);
      ++computed;
    } else {
      _mm512_storeu_ps(out, _mm512_set1_ps(-INFINITY));
    }
    if (found > best_seen[i]) {
      best_seen[i] = found, threshold[i] = screen_threshold(found, j.cap);
      atomic_max(j.best[i], found);
    }
  }
  if (computed) j.computed->fetch_add(computed, std::memory_order_relaxed);
}

template <int DT>
void screen_pieces(const ScreenJob& j) {
  float best_seen[64], threshold[64];  // (m <= 40: linear.cpp's int_rows_max)
  for (int64_t i = 0; i < j.m; ++i) best_seen[i] = threshold[i] = -INFINITY;
  const int64_t passes = (j.m + kMaxM - 1) / kMaxM;
  for (int64_t c; (c = j.next_piece->fetch_add(1, std::memory_order_relaxed)) < j.pieces;) {
    for (int64_t g = j.groups * c / j.pieces; g < j.groups * (c + 1) / j.pieces; ++g) {
      for (int64_t p = 0, i = 0; p < passes; ++p) {
        const int64_t r = j.m * (p + 1) / passes - i;
        screen_group<DT>(j, g, i, (int)r, best_seen, threshold);
        i += r;
      }
    }
  }
}

void screen_dispatch(int32_t dtype, const ScreenJob& j) {
  switch (dtype) {
    case GK_Q8_0X16: return screen_pieces<GK_Q8_0X16>(j);
    case GK_Q5_0X16: return screen_pieces<GK_Q5_0X16>(j);
    case GK_Q4_0X16: return screen_pieces<GK_Q4_0X16>(j);
    default: return screen_pieces<GK_Q6_KX16>(j);
  }
}

}  // namespace

bool gk::cpu::screen_x16_supported(int32_t dtype) { return screen_qmax(dtype) != 0; }

gk_status gk::cpu::screen_x16(const float* x, const void* w, int32_t dtype, const int32_t* keep_ids, int32_t n_keep,
                              int64_t m, int64_t n, int64_t k, float cap, float* y, int64_t* computed_groups) {
  // (The caller keeps m within the integer kernel's limit, <= 40: the per-row state below is sized for 64.)
  if (m < 1 || m > 64) return gk_fail(GK_ERR_INVALID_ARGUMENT, "gk_greedy_logits: the screen takes 1..64 rows of x");
  const X24Row* xr = nullptr;
  X24Rows* q = x24_buffers(m, k, xr);
  thread_local std::vector<int32_t> sum_h;
  thread_local std::vector<float> bound;
  thread_local std::vector<ScreenRow> xs;
  thread_local std::vector<uint16_t> keep;
  try {
    if (!q) throw std::bad_alloc();
    sum_h.resize(m * k / 16), bound.resize(m * k / 16), xs.resize(m);
    keep.assign(n / kRows, 0);
  } catch (const std::bad_alloc&) {
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_greedy_logits: cannot allocate x's 24-bit form (%lld×%lld)",
                   (long long)m, (long long)k);
  }
  for (int32_t t = 0; t < n_keep; ++t) {
    const int32_t id = keep_ids[t];
    if (id >= 0 && id < n) keep[id / kRows] |= (uint16_t)(1u << (id % kRows));
  }
  const int qmax = screen_qmax(dtype);
  for (int64_t i = 0; i < m; ++i) {
    quantize_row(x + i * k, k, *q, i);
    screen_row_prepare(xr[i], k, qmax, sum_h.data() + i * k / 16, bound.data() + i * k / 16);
    xs[i] = {xr[i].h, xr[i].d, sum_h.data() + i * k / 16, bound.data() + i * k / 16};
  }
  std::atomic<float> best[64];
  for (int64_t i = 0; i < m; ++i) best[i].store(-INFINITY, std::memory_order_relaxed);
  std::atomic<int64_t> next_piece{0}, computed{0};
  const int64_t groups = n / kRows;
  const ScreenJob job{(const uint8_t*)w, k, m, n, groups, group_pieces(dtype, groups, k), xr, xs.data(),
                      keep.data(), cap, best, &next_piece, &computed, y};
  gk::cpu::pool_for(groups >= 2 ? omp_get_max_threads() : 1, [&](int, int) { screen_dispatch(dtype, job); });
  if (computed_groups) *computed_groups = computed.load();
  return GK_OK;
}
#else
gk_status gk::cpu::linear_x16(const float*, const void*, int32_t, const void*, int64_t, int64_t, int64_t, float*) {
  return gk_fail(GK_ERR_UNSUPPORTED, "gk_linear: this build of the CPU library cannot read the 16-row layouts");
}
void gk::cpu::x16_strip(const void*, int32_t, int64_t, int64_t, int, int, float*) {}
void gk::cpu::x16_panel(const void*, int32_t, int64_t, int64_t, int, int64_t, int, float*) {}
bool gk::cpu::screen_x16_supported(int32_t) { return false; }
gk_status gk::cpu::screen_x16(const float*, const void*, int32_t, const int32_t*, int32_t, int64_t, int64_t, int64_t,
                              float, float*, int64_t*) {
  return gk_fail(GK_ERR_UNSUPPORTED, "gk_greedy_logits: this build of the CPU library cannot read the 16-row layouts");
}
#endif

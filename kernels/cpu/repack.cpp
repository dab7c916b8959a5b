// gk_repack and the CPU library's own layouts of a quantized matrix (kernels/include/gemmakit.h), made in place from a
// file's: GK_Q8_0X16 from Q8_0 and GK_Q5_0X16 from Q5_0, the same bytes reordered. gk_linear and gk_embedding read them (linear_x16 up to 16 rows of x, x16_strip for
// linear.cpp's f32 strips beyond, x16_row for the gather). The Gemma models repack their matrices when they load
// (src/models/common/repack.ts): on the 270M, the 262,144-row tied lm_head (and the embedding table it is), half of a
// decode token's time, and the Q5_0 q/k/v/gate/up projections.
//
// Why a layout: multiplied as stored, a Q8_0 row's 32-element blocks each need their codes widened to f32, their
// scale broadcast, and every row a horizontal sum at the end — about 10 vector ops per 32 weights, so the product ran
// at ~17 GB/s a core in cache and ~22-25 GB/s for both cores from memory, about half of what a read-only stream gets.
// With 16 rows interleaved 4 elements at a time, one 64-byte vector of codes holds 4 codes of each of 16 rows, the
// lanes of a vpdpbusd are the 16 rows (each lane sums its row's 4 products exactly in int32), the 16 rows' scales are
// one f16 vector, and the outputs come out as a vector with no horizontal sum: ~3 ops per 32 weights. Q5_0X16 keeps
// Q5_0's 22 bytes a block — a decode step reads its weights from memory, and as Q8_0X16 they were 34 — and unpacks
// each vector of codes in ~3 ops (nibbles, a masked add of the fifth bits) once per block for all rows of x.
//
// x is taken as 24-bit integers with one scale per 32-element block (d = max|x| / 8355711), split into three signed
// bytes (l, m, h: x = 65536 h + 256 m + l), each a vpdpbusd against the codes (unsigned: Q8_0's q + 128, Q5_0's q5 =
// q + 16, so the sums carry 128 or 16 · Σ of x's bytes, subtracted once per block). A block's sums are exact; x's
// rounding is at most 2^-24 of its block's largest |x|, the size of an f32 rounding of that element, so logits stay as
// close to transformers' as the f32 path's (docs/benchmarks.md states the fidelity figures). A non-finite x makes its
// block's scale NaN, so the rows it reaches come out NaN as on the f32 path; a block whose largest |x| is below 2^-96
// goes in as zeros.
//
// The rows are read once per call whatever m is (each 16-row group's blocks stay in L1 while every row of x passes
// over them, 8 rows of x at a time), prefetched ~4 KB ahead: without that the loads of this light loop wait on memory
// and the product reads at half the stream's rate (measured on the 270M lm_head: 8.0 -> 4.0 ms, 2 threads).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
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

// Bytes of one 32-column block of a group: the 16 rows' f16 scales, then their codes.
constexpr int64_t x16_block_bytes(int32_t dt) { return dt == GK_Q8_0X16 ? 34 * kRows : 22 * kRows; }
// What the stored codes carry above the signed code: Q8_0X16 stores q + 128, Q5_0X16 q5 = q + 16.
template <int DT>
constexpr int code_offset() {
  return DT == GK_Q8_0X16 ? 128 : 16;
}

// The stored (unsigned) code of row j, element 4t + e of a block.
template <int DT>
inline int code_at(const uint8_t* blk, int j, int t, int e) {
  if constexpr (DT == GK_Q8_0X16) {
    return blk[32 + 64 * t + 4 * j + e];
  } else {
    const int low = blk[32 + 64 * (t % 4) + 4 * j + e] >> (t < 4 ? 0 : 4) & 0xF;
    return low | (blk[288 + 8 * t + (4 * j + e) / 8] >> ((4 * j + e) % 8) & 1) << 4;
  }
}
}  // namespace

// GEMMAKIT_CPU_REPACK=0: gk_repack makes nothing (weights keep their file layout; for A/B and fidelity runs).
static bool repack_enabled() {
  static const bool on = gk::cpu::env_switch("GEMMAKIT_CPU_REPACK", true);
  return on;
}

bool gk::cpu::x16_supported() {
#if defined(GK_X16)
  return true;
#else
  return false;
#endif
}

gk_status gk::cpu::validate_x16(const char* op, int32_t dtype, int64_t n, int64_t k) {
  const char* name = dtype == GK_Q8_0X16 ? "Q8_0X16" : "Q5_0X16";
  if (!x16_supported()) {
    return gk_fail(GK_ERR_UNSUPPORTED, "%s: this build of the CPU library cannot read %s (it needs AVX512-VNNI)", op,
                   name);
  }
  GK_REQUIRE(n > 0 && k > 0 && n % kRows == 0 && k % 32 == 0,
             "%s: a %s matrix has a multiple of 16 rows and of 32 columns, not [%lld, %lld]", op, name, (long long)n,
             (long long)k);
  return GK_OK;
}

namespace {
template <int DT>
void x16_row_dt(const void* w, int64_t k, int64_t r, float* out) {
  const int64_t nb = k / 32;
  const int j = (int)(r % kRows);
  const uint8_t* group = (const uint8_t*)w + r / kRows * nb * x16_block_bytes(DT);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = group + b * x16_block_bytes(DT);
    uint16_t dh;
    memcpy(&dh, blk + 2 * j, 2);
    const float d = gk::f16_to_f32(dh);
    for (int t = 0; t < 8; ++t) {
      for (int e = 0; e < 4; ++e) out[32 * b + 4 * t + e] = d * (float)(code_at<DT>(blk, j, t, e) - code_offset<DT>());
    }
  }
}

// A group (its 16 rows copied out as the file stores them, Q8_0 or Q5_0: `rows`) written in the layout `to` made from
// that format at `out`.
void interleave_group(const uint8_t* rows, int32_t to, int64_t nb, uint8_t* out) {
  const int64_t bytes = x16_block_bytes(to);  // (a block of 16 rows, as the file's 16 blocks)
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = out + b * bytes;
    if (to == GK_Q5_0X16) memset(blk, 0, bytes);  // (its codes are or-ed in bit fields)
    for (int j = 0; j < kRows; ++j) {
      const uint8_t* file_blk = rows + (j * nb + b) * (bytes / kRows);
      int32_t q[32];
      if (to == GK_Q8_0X16) {
        gk::quant::group_codes<GK_Q8_0>(file_blk, 0, q);
      } else {
        gk::quant::group_codes<GK_Q5_0>(file_blk, 0, q);
      }
      memcpy(blk + 2 * j, file_blk, 2);  // d
      for (int t = 0; t < 8; ++t) {
        for (int e = 0; e < 4; ++e) {
          const int l = 4 * t + e, at = 4 * j + e;
          if (to == GK_Q8_0X16) {
            blk[32 + 64 * t + at] = (uint8_t)(q[l] + 128);
          } else {
            blk[32 + 64 * (t % 4) + at] |= (uint8_t)((q[l] & 0xF) << (t < 4 ? 0 : 4));
            blk[288 + 8 * t + at / 8] |= (uint8_t)((q[l] >> 4 & 1) << (at % 8));
          }
        }
      }
    }
  }
}
}  // namespace

void gk::cpu::x16_row(const void* w, int32_t dtype, int64_t k, int64_t r, float* out) {
  if (dtype == GK_Q8_0X16) return x16_row_dt<GK_Q8_0X16>(w, k, r, out);
  x16_row_dt<GK_Q5_0X16>(w, k, r, out);
}

GK_API gk_status gk_repack(gk_stream* s, const void* src, int32_t from_dtype, void* dst, int32_t to_dtype, int32_t n,
                           int32_t k) {
  GK_TRY(gk::validate_stream(s, "gk_repack"));
  GK_REQUIRE(src && dst, "gk_repack: NULL src or dst");
  // A load-time rewrite of a weight, not a step of a decode program.
  GK_REQUIRE(!s->recording, "gk_repack: cannot be recorded into a decode program");
  const bool pair = (from_dtype == GK_Q8_0 && to_dtype == GK_Q8_0X16) || (from_dtype == GK_Q5_0 && to_dtype == GK_Q5_0X16);
  if (!pair || !gk::cpu::x16_supported() || !repack_enabled() || n <= 0 || k <= 0 || n % kRows != 0 || k % 32 != 0) {
    return gk_fail(GK_ERR_UNSUPPORTED, "gk_repack: %d -> %d for [%d, %d] is not a layout this build makes", from_dtype,
                   to_dtype, n, k);
  }
  const int64_t nb = k / 32, groups = n / kRows, group_bytes = nb * x16_block_bytes(to_dtype);  // as stored and repacked
  const uint8_t *s0 = (const uint8_t*)src, *d0 = (const uint8_t*)dst;
  GK_REQUIRE(s0 == d0 || d0 + groups * group_bytes <= s0 || s0 + groups * group_bytes <= d0,
             "gk_repack: dst overlaps src without being it");
  std::atomic<bool> oom{false};
  // Group by group through a copy of its 16 rows as stored, then written interleaved (in place when dst is src).
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
        memcpy(rows.data(), s0 + g * group_bytes, group_bytes);
        interleave_group(rows.data(), to_dtype, nb, (uint8_t*)dst + g * group_bytes);
      }
    }
  }
  // Every thread allocates before any writes, so on failure nothing was reordered.
  if (oom) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_repack: cannot allocate a %lld-byte group", (long long)group_bytes);
  return GK_OK;
}

#if defined(GK_X16)
namespace {

// The 8 vectors of a block's codes (vector t: elements 4t .. 4t + 3 of the 16 rows, row j's at bytes 4j .. 4j + 3),
// unsigned as stored. Q8_0X16 holds them as they are; Q5_0X16's are unpacked into `scratch`.
template <int DT>
inline const uint8_t* block_codes(const uint8_t* blk, uint8_t* scratch) {
  if constexpr (DT == GK_Q8_0X16) {
    (void)scratch;
    return blk + 32;
  } else {
    const __m512i low4 = _mm512_set1_epi8(0x0F), five = _mm512_set1_epi8(0x10);
    for (int u = 0; u < 4; ++u) {
      const __m512i nib = _mm512_loadu_si512((const void*)(blk + 32 + 64 * u));
      const __m512i lo = _mm512_and_si512(nib, low4), hi = _mm512_and_si512(_mm512_srli_epi16(nib, 4), low4);
      __mmask64 m_lo, m_hi;
      memcpy(&m_lo, blk + 288 + 8 * u, 8);
      memcpy(&m_hi, blk + 288 + 8 * (u + 4), 8);
      _mm512_store_si512((void*)(scratch + 64 * u), _mm512_mask_add_epi8(lo, m_lo, lo, five));
      _mm512_store_si512((void*)(scratch + 64 * (u + 4)), _mm512_mask_add_epi8(hi, m_hi, hi, five));
    }
    return scratch;
  }
}

}  // namespace

void gk::cpu::x16_strip(const void* w, int32_t dtype, int64_t k, int64_t r0, int rows, int nr, float* strip) {
  const int64_t nb = k / 32;
  const int64_t bb = x16_block_bytes(dtype);
  const uint8_t* group = (const uint8_t*)w + r0 / kRows * nb * bb;
  const int j0 = (int)(r0 % kRows);
  const __m512i offset = _mm512_set1_epi8((char)(dtype == GK_Q8_0X16 ? 128 : 16));
  alignas(64) uint8_t scratch[8 * 64];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = group + b * bb;
    const uint8_t* codes8 =
        dtype == GK_Q8_0X16 ? block_codes<GK_Q8_0X16>(blk, scratch) : block_codes<GK_Q5_0X16>(blk, scratch);
    alignas(64) float d[kRows];
    _mm512_store_ps(d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)blk)));
    for (int half = 0; half < 2; ++half) {  // elements 16·half .. 16·half + 15 of the block: codes t = 4·half .. + 3
      // A 4×16 transpose of dwords (each dword a row's 4 codes): row 4L + i's 16 codes end up in lane L of rows4[i].
      const uint8_t* codes = codes8 + 256 * half;
      __m512i c[4];
      for (int t = 0; t < 4; ++t) c[t] = _mm512_sub_epi8(_mm512_loadu_si512((const void*)(codes + 64 * t)), offset);
      const __m512i a0 = _mm512_unpacklo_epi32(c[0], c[1]), a1 = _mm512_unpackhi_epi32(c[0], c[1]);
      const __m512i a2 = _mm512_unpacklo_epi32(c[2], c[3]), a3 = _mm512_unpackhi_epi32(c[2], c[3]);
      alignas(64) int8_t rows4[4][64];
      _mm512_store_si512((void*)rows4[0], _mm512_unpacklo_epi64(a0, a2));
      _mm512_store_si512((void*)rows4[1], _mm512_unpackhi_epi64(a0, a2));
      _mm512_store_si512((void*)rows4[2], _mm512_unpacklo_epi64(a1, a3));
      _mm512_store_si512((void*)rows4[3], _mm512_unpackhi_epi64(a1, a3));
      float* out = strip + (2 * b + half) * nr * 16;
      for (int j = 0; j < nr; ++j) {
        const int r = j0 + j;
        const __m512 v = j < rows ? _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                                      _mm_load_si128((const __m128i*)(rows4[r % 4] + 16 * (r / 4))))),
                                                  _mm512_set1_ps(d[r]))
                                  : _mm512_setzero_ps();
        _mm512_storeu_ps(out + 16 * j, v);
      }
    }
  }
}

namespace {

constexpr float kX24Max = 8355711.0f;  // 127 · 65793 = 0x7F7F7F: after the carries of the split every byte fits an int8
constexpr int64_t kAhead = 4096;       // prefetch distance (bytes)
constexpr int kMaxM = 8;               // rows of x per pass over a group (2·8 f32 accumulators + 3 int32)

// One row of x in 24-bit form: bytes l, m, h (k each), and per 32-element block its scale d and the sums
// Σ (256 h + m) and Σ l, which the codes' offset multiplies into the products.
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
      for (auto* v : {&sum_hm, &sum_l}) v->resize(rows * k / 32);
    } catch (const std::bad_alloc&) {
      return false;
    }
    return true;
  }
  X24Row row(int64_t i, int64_t k) const {
    const int64_t nb = k / 32;
    return {l.data() + i * k, m.data() + i * k, h.data() + i * k, d.data() + i * nb, sum_hm.data() + i * nb,
            sum_l.data() + i * nb};
  }
};

void quantize_row(const float* x, int64_t k, X24Rows& q, int64_t i) {
  const int64_t nb = k / 32;
  int8_t *l = q.l.data() + i * k, *m = q.m.data() + i * k, *h = q.h.data() + i * k;
  const __m512i k128 = _mm512_set1_epi32(128), k255 = _mm512_set1_epi32(255), lim = _mm512_set1_epi32((int)kX24Max);
  // The signed byte of q's low 8 bits (−128..127), and the rest above it, (q − byte) / 256 exactly.
  const auto low_byte = [&](__m512i v) { return _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(v, k128), k255), k128); };
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    const __m512 a0 = _mm512_abs_ps(v0), a1 = _mm512_abs_ps(v1);
    // Per element (max_ps would drop a NaN operand): a NaN or infinity makes the block's scale NaN.
    const __m512 big = _mm512_set1_ps(3.402823466e38f);
    const bool bad = (_mm512_cmp_ps_mask(a0, big, _CMP_NLE_UQ) | _mm512_cmp_ps_mask(a1, big, _CMP_NLE_UQ)) != 0;
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    int32_t* hm_sum = q.sum_hm.data() + i * nb + b;
    int32_t* l_sum = q.sum_l.data() + i * nb + b;
    float* d = q.d.data() + i * nb + b;
    if (bad || !(mx > 0x1p-96f)) {  // (and a block below 2^-96: its kX24Max / mx would overflow, its d is subnormal)
      memset(l + 32 * b, 0, 32), memset(m + 32 * b, 0, 32), memset(h + 32 * b, 0, 32);
      *hm_sum = *l_sum = 0;
      *d = bad ? __builtin_nanf("") : 0.0f;
      continue;
    }
    const __m512 inv = _mm512_set1_ps(kX24Max / mx);
    *d = mx / kX24Max;
    __m512i shm = _mm512_setzero_si512(), sl = _mm512_setzero_si512();
    for (int half = 0; half < 2; ++half) {
      // Clamped: x · (kX24Max / mx) may round a hair past kX24Max.
      const __m512i qv = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(half ? v1 : v0, inv)), lim),
                                          _mm512_sub_epi32(_mm512_setzero_si512(), lim));
      const __m512i lb = low_byte(qv), hm = _mm512_srai_epi32(_mm512_sub_epi32(qv, lb), 8);
      const __m512i mb = low_byte(hm), hb = _mm512_srai_epi32(_mm512_sub_epi32(hm, mb), 8);
      const int64_t at = 32 * b + 16 * half;
      _mm_storeu_si128((__m128i*)(l + at), _mm512_cvtepi32_epi8(lb));
      _mm_storeu_si128((__m128i*)(m + at), _mm512_cvtepi32_epi8(mb));
      _mm_storeu_si128((__m128i*)(h + at), _mm512_cvtepi32_epi8(hb));
      shm = _mm512_add_epi32(shm, hm);
      sl = _mm512_add_epi32(sl, lb);
    }
    *hm_sum = _mm512_reduce_add_epi32(shm);
    *l_sum = _mm512_reduce_add_epi32(sl);
  }
}

// y[i, 16g .. 16g + 16) for M rows of x against group g: per block, three int32 vectors of the 16 rows' exact sums
// (one lane a row), converted and scaled by d_w · d_x into acc_hm (256 h + m) and acc_l (l); y = 256 · acc_hm + acc_l.
template <int DT, int M>
inline void group_rows(const uint8_t* group, int64_t nb, const X24Row* xr, const float* bias, int64_t g, int64_t n,
                       float* y) {
  constexpr int64_t kBytes = x16_block_bytes(DT);
  constexpr int kOffset = code_offset<DT>();
  __m512 acc_hm[M], acc_l[M];
  for (int i = 0; i < M; ++i) acc_hm[i] = acc_l[i] = _mm512_setzero_ps();
  alignas(64) uint8_t scratch[8 * 64];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = group + b * kBytes;
    for (int64_t at = 0; at < kBytes; at += 64) _mm_prefetch((const char*)blk + kAhead + at, _MM_HINT_T0);
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)blk));
    const uint8_t* codes = block_codes<DT>(blk, scratch);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const int32_t *h4 = (const int32_t*)(xr[i].h + 32 * b), *m4 = (const int32_t*)(xr[i].m + 32 * b),
                    *l4 = (const int32_t*)(xr[i].l + 32 * b);
      __m512i ah = _mm512_setzero_si512(), am = ah, al = ah;
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const __m512i c = _mm512_loadu_si512((const void*)(codes + 64 * t));
        ah = _mm512_dpbusd_epi32(ah, c, _mm512_set1_epi32(h4[t]));
        am = _mm512_dpbusd_epi32(am, c, _mm512_set1_epi32(m4[t]));
        al = _mm512_dpbusd_epi32(al, c, _mm512_set1_epi32(l4[t]));
      }
      const __m512i hm = _mm512_sub_epi32(_mm512_add_epi32(_mm512_slli_epi32(ah, 8), am),
                                          _mm512_set1_epi32(kOffset * xr[i].sum_hm[b]));
      const __m512i lo = _mm512_sub_epi32(al, _mm512_set1_epi32(kOffset * xr[i].sum_l[b]));
      const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(xr[i].d[b]));
      acc_hm[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hm), sc, acc_hm[i]);
      acc_l[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), sc, acc_l[i]);
    }
  }
  const __m512 bv = bias ? _mm512_loadu_ps(bias + kRows * g) : _mm512_setzero_ps();
  for (int i = 0; i < M; ++i) {
    _mm512_storeu_ps(y + i * n + kRows * g, _mm512_add_ps(_mm512_fmadd_ps(acc_hm[i], _mm512_set1_ps(256.0f), acc_l[i]), bv));
  }
}

template <int DT>
void group_any(int rows, const uint8_t* group, int64_t nb, const X24Row* xr, const float* bias, int64_t g, int64_t n,
               float* y) {
  switch (rows) {
    case 8: return group_rows<DT, 8>(group, nb, xr, bias, g, n, y);
    case 7: return group_rows<DT, 7>(group, nb, xr, bias, g, n, y);
    case 6: return group_rows<DT, 6>(group, nb, xr, bias, g, n, y);
    case 5: return group_rows<DT, 5>(group, nb, xr, bias, g, n, y);
    case 4: return group_rows<DT, 4>(group, nb, xr, bias, g, n, y);
    case 3: return group_rows<DT, 3>(group, nb, xr, bias, g, n, y);
    case 2: return group_rows<DT, 2>(group, nb, xr, bias, g, n, y);
    default: return group_rows<DT, 1>(group, nb, xr, bias, g, n, y);
  }
}

template <int DT>
void groups_range(const uint8_t* w, int64_t nb, const X24Row* xr, const float* bias, int64_t m, int64_t n, int64_t g0,
                  int64_t g1, float* y) {
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* group = w + g * nb * x16_block_bytes(DT);
    // Every row of x against this group while it is in L1: passes of at most kMaxM rows, as even as possible.
    const int64_t passes = (m + kMaxM - 1) / kMaxM;
    for (int64_t p = 0, i = 0; p < passes; ++p) {
      const int64_t r = m * (p + 1) / passes - i;
      group_any<DT>((int)r, group, nb, xr + i, bias, g, n, y + i * n);
      i += r;
    }
  }
}

}  // namespace

gk_status gk::cpu::linear_x16(const float* x, const void* w, int32_t dtype, const void* bias, int64_t m, int64_t n,
                              int64_t k, float* y) {
  // Kept between calls: a decode step makes ~130 of these products.
  thread_local X24Rows q;
  thread_local std::vector<X24Row> rows;
  try {
    if (!q.resize(m, k)) throw std::bad_alloc();
    rows.resize(m);
  } catch (const std::bad_alloc&) {
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate x's 24-bit form (%lld×%lld)", (long long)m,
                   (long long)k);
  }
  for (int64_t i = 0; i < m; ++i) {
    quantize_row(x + i * k, k, q, i);
    rows[i] = q.row(i, k);
  }
  // (The pool's threads must not name the thread_locals: they would get their own, empty ones.)
  const X24Row* xr = rows.data();
  const int64_t nb = k / 32, groups = n / kRows;
  const bool par = n * k * m >= (1 << 15) && groups >= 2;
  gk::cpu::pool_for(par ? omp_get_max_threads() : 1, [&](int t, int nt) {
    const int64_t g0 = groups * t / nt, g1 = groups * (t + 1) / nt;
    if (dtype == GK_Q8_0X16) {
      groups_range<GK_Q8_0X16>((const uint8_t*)w, nb, xr, (const float*)bias, m, n, g0, g1, y);
    } else {
      groups_range<GK_Q5_0X16>((const uint8_t*)w, nb, xr, (const float*)bias, m, n, g0, g1, y);
    }
  });
  return GK_OK;
}
#else
gk_status gk::cpu::linear_x16(const float*, const void*, int32_t, const void*, int64_t, int64_t, int64_t, float*) {
  return gk_fail(GK_ERR_UNSUPPORTED, "gk_linear: this build of the CPU library cannot read Q8_0X16 or Q5_0X16");
}
void gk::cpu::x16_strip(const void*, int32_t, int64_t, int64_t, int, int, float*) {}
#endif

// gk_linear on the CPU: y[m, n] = x[m, k] · W[n, k]^T (+ bias), W in f32/f16/bf16, f32 accumulation.
//
// m == 1 is memory-bound (every weight is read once), so it streams W rows and keeps several FMA chains
// in flight. m > 1 is compute-bound: a W panel is converted to f32 once into a k-major layout and an
// MR×NR register-blocked outer-product kernel reuses it across all rows of x.
// Every y element is produced by one thread in a fixed order, so results do not depend on thread count.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "../common/error.h"
#include "cpu.h"

#if defined(__AVX512F__) || defined(__AVX2__) || defined(__F16C__)
// GCC 12's AVX-512 intrinsics self-initialise their `__Y` operand (PR 105593) and -Wmaybe-uninitialized
// flags every inlined use; the pragma covers only the header's own lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace {

// ---- a small vector abstraction, so each kernel is written once for AVX-512, AVX2 and plain C++ ----
#if defined(__AVX512F__)
using vf = __m512;
constexpr int kW = 16;
constexpr int kMR = 8;  // 8×32 tile: 16 accumulators of 32 zmm registers
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vset1(float a) { return _mm512_set1_ps(a); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, vf a) { _mm512_storeu_ps(p, a); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline float vsum(vf a) {
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0x4e));
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xb1));
  __m128 s = _mm512_castps512_ps128(a);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
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
#elif defined(__AVX2__) && defined(__FMA__)
using vf = __m256;
constexpr int kW = 8;
constexpr int kMR = 6;  // 6×16 tile: 12 accumulators of 16 ymm registers
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vset1(float a) { return _mm256_set1_ps(a); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, vf a) { _mm256_storeu_ps(p, a); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline float vsum(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
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
#else
// Portable: fixed-width lanes in plain loops, which GCC turns into whatever SIMD -march allows.
struct vf {
  float v[8];
};
constexpr int kW = 8;
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
inline vf vzero() { return vf{}; }
inline vf vset1(float a) {
  vf r;
  for (int i = 0; i < kW; ++i) r.v[i] = a;
  return r;
}
inline vf vload(const float* p) {
  vf r;
  for (int i = 0; i < kW; ++i) r.v[i] = p[i];
  return r;
}
inline void vstore(float* p, vf a) {
  for (int i = 0; i < kW; ++i) p[i] = a.v[i];
}
inline vf vfma(vf a, vf b, vf c) {
  for (int i = 0; i < kW; ++i) c.v[i] += a.v[i] * b.v[i];
  return c;
}
inline vf vadd(vf a, vf b) {
  for (int i = 0; i < kW; ++i) a.v[i] += b.v[i];
  return a;
}
inline float vsum(vf a) {
  float s = 0.0f;
  for (int i = 0; i < kW; ++i) s += a.v[i];
  return s;
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
#endif

constexpr int kNR = 2 * kW;         // output columns per micro-tile
constexpr int kKB = 256;            // k block: the micro-kernel sweeps a kKB×kNR sliver of the panel
constexpr int kNB = 128;            // n block: one task's packed panel, kNB×kKB f32 = 128 KB (L2)
constexpr int kMC = 512;            // x rows per task: kMC×kKB of x stays in L2 while a panel is swept
constexpr int kSmallM = 5;          // below this many rows W is streamed rather than packed
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

// ---- small m (1 = decode): stream W once, R rows of it at a time against all M rows of x ----

// y[i, r .. r+R) for i < M. M·R independent FMA chains hide the FMA latency; each W vector is loaded
// (and widened) once and used M times.
template <int DT, int M, int R>
inline void dot_block(const float* x, const void* w, const void* bias, int64_t r, int64_t n, int64_t k, float* y) {
  vf acc[M][R];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) acc[i][j] = vzero();
  // The block's R rows are R short streams, too many for the hardware prefetcher to follow well: pull the
  // next block toward L2 (prefetcht1) at the rate this one is consumed, one block of look-ahead.
  // Measured on the 1.3 GB lm_head: ~10-15 GB/s without, ~20 (1 thread) / ~39 GB/s (2 threads) with.
  constexpr int64_t esz = DT == GK_F32 ? 4 : 2;
  const char* next = (const char*)w + (r + R) * k * esz;
  int64_t c = 0;
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
      float s = vsum(acc[i][j]);
      for (int64_t t = c; t < k; ++t) s += gk::load_f32(w, DT, (r + j) * k + t) * x[i * k + t];
      y[i * n + r + j] = s + bias_at(bias, DT, r + j);
    }
  }
}

// Rows per block for M rows of x: as many accumulators as the register file comfortably holds.
template <int M>
constexpr int rows_per_block() {
  constexpr int acc = kW == 16 ? 16 : 8;
  return M == 1 ? 8 : std::max(1, acc / M);
}

template <int DT, int M>
void gemv(const float* x, const void* w, const void* bias, int64_t n, int64_t k, float* y) {
  constexpr int R = rows_per_block<M>();
  // Contiguous row ranges per thread keep each thread on a few sequential streams.
  const bool par = n * k * M >= (1 << 15) && n >= 2 * R;
#pragma omp parallel if (par)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t blocks = (n + R - 1) / R;
    const int64_t r0 = blocks * t / nt * R, r1 = std::min(n, blocks * (t + 1) / nt * R);
    int64_t r = r0;
    for (; r + R <= r1; r += R) dot_block<DT, M, R>(x, w, bias, r, n, k, y);
    for (; r < r1; ++r) dot_block<DT, M, 1>(x, w, bias, r, n, k, y);
  }
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
template <int DT>
void gemm_task(const float* x, const void* w, const void* bias, int64_t m0, int64_t m1, int64_t n0, int nb,
               int64_t k, float* y, int64_t n, float* panel) {
  for (int64_t i = m0; i < m1; ++i)
    for (int j = 0; j < nb; ++j) y[i * n + n0 + j] = bias_at(bias, DT, n0 + j);
  alignas(64) float tile[kMR * kNR];
  for (int64_t k0 = 0; k0 < k; k0 += kKB) {
    const int kb = (int)std::min<int64_t>(kKB, k - k0);
    pack_panel<DT>(w, k, n0, nb, k0, kb, panel);
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

template <int DT>
gk_status gemm(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  const int64_t n_blocks = (n + kNB - 1) / kNB;
  const int64_t threads = omp_get_max_threads();
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
    float* panel = (float*)std::aligned_alloc(64, (size_t)kNB * kKB * sizeof(float));
    oom = panel == nullptr;
    // Every thread must reach the worksharing loop, so one without a panel just skips its tasks.
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      if (!panel) continue;
      const int64_t n0 = t % n_blocks * kNB, m0 = t / n_blocks * mc;
      gemm_task<DT>(x, w, bias, m0, std::min(m, m0 + mc), n0, (int)std::min<int64_t>(kNB, n - n0), k, y, n, panel);
    }
    std::free(panel);
  }
  if (oom) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_linear: cannot allocate a %d×%d packing panel", kNB, kKB);
  return GK_OK;
}

template <int DT>
gk_status linear_dt(const float* x, const void* w, const void* bias, int64_t m, int64_t n, int64_t k, float* y) {
  // A few rows of x: packing W would cost more than streaming it once (the header's m == 1 rule, widened).
  static_assert(kSmallM <= 5, "the streaming path takes at most 4 rows of x");
  switch (m < kSmallM ? m : 0) {
    case 1: gemv<DT, 1>(x, w, bias, n, k, y); return GK_OK;
    case 2: gemv<DT, 2>(x, w, bias, n, k, y); return GK_OK;
    case 3: gemv<DT, 3>(x, w, bias, n, k, y); return GK_OK;
    case 4: gemv<DT, 4>(x, w, bias, n, k, y); return GK_OK;
    default: break;
  }
  return gemm<DT>(x, w, bias, m, n, k, y);
}

}  // namespace

GK_API gk_status gk_linear(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, const void* bias,
                           int32_t m, int32_t n, int32_t k, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_linear"));
  GK_TRY(gk::validate_linear(x, weight, weight_dtype, m, n, k, y));
  GK_CPU_RECORD(s, gk_linear(s, x, weight, weight_dtype, bias, m, n, k, y));
  switch (weight_dtype) {
    case GK_F32: return linear_dt<GK_F32>(x, weight, bias, m, n, k, y);
    case GK_F16: return linear_dt<GK_F16>(x, weight, bias, m, n, k, y);
    default: return linear_dt<GK_BF16>(x, weight, bias, m, n, k, y);
  }
}

// gk_attention_prefill on the CPU.
//
// One task is (query, kv head): the whole grouped-query family of that kv head is handled together,
// so each visible K/V row is loaded once and used by every q head that shares it. Masked keys are
// never touched: visible keys are gathered into an index list first (a plain range without span_ids).
// Scores and softmax are f32; the softmax is exact (max-subtracted, expf), not online.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/error.h"
#include "cpu.h"

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12's AVX-512 intrinsics self-initialise their `__Y` operand (PR 105593) and -Wmaybe-uninitialized
// flags every inlined use; the pragma covers only the header's own lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace {

#if defined(__AVX512F__)
inline float hsum(__m512 a) {
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0x4e));
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xb1));
  __m128 s = _mm512_castps512_ps128(a);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float dot(const float* a, const float* b, int n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return hsum(_mm512_add_ps(s0, s1));
}
// y += a * x
inline void axpy(float a, const float* x, float* y, int n) {
  const __m512 va = _mm512_set1_ps(a);
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
inline float dot(const float* a, const float* b, int n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  s0 = _mm256_add_ps(s0, s1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float r = _mm_cvtss_f32(s);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}
inline void axpy(float a, const float* x, float* y, int n) {
  const __m256 va = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}
#else
// Eight independent lanes, so GCC vectorises the sum without reassociating it.
inline float dot(const float* a, const float* b, int n) {
  float lanes[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  float r = 0.0f;
  for (int l = 0; l < 8; ++l) r += lanes[l];
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}
inline void axpy(float a, const float* x, float* y, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
#endif

struct Params {
  const float *q, *k, *v;
  float* out;
  int32_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window;
  const int32_t* span_ids;
  float scale, softcap;
};

// Visible keys of the query at position p, ascending; returns how many were written to idx.
int visible_keys(const Params& a, int64_t p, int32_t* idx) {
  // The causal/window term is one contiguous range [lo, hi].
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
  const int64_t hi = a.causal ? p : (int64_t)a.kv_len - 1;
  const int32_t own = a.span_ids ? a.span_ids[p] : 0;
  int nk = 0;
  if (own == 0) {
    for (int64_t j = lo; j <= hi; ++j) idx[nk++] = (int32_t)j;
    return nk;
  }
  for (int64_t j = 0; j < a.kv_len; ++j) {
    if ((j >= lo && j <= hi) || a.span_ids[j] == own) idx[nk++] = (int32_t)j;
  }
  return nk;
}

struct Scratch {
  std::vector<int32_t> idx;  // [kv_len] visible keys
  std::vector<float> p;      // [group][kv_len] scores, then softmax weights
  std::vector<float> acc;    // [group][head_dim]
};

// All q heads of kv head `kvh` for query i.
void attend(const Params& a, int64_t i, int kvh, Scratch& w) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const int64_t kv_stride = (int64_t)a.kv_heads * hd;
  const float* qrow = a.q + (i * a.q_heads + (int64_t)kvh * group) * hd;
  float* orow = a.out + (i * a.q_heads + (int64_t)kvh * group) * hd;
  const int32_t* idx = w.idx.data();
  const int nk = visible_keys(a, a.q_pos0 + i, w.idx.data());
  if (nk == 0) {
    std::fill(orow, orow + (int64_t)group * hd, 0.0f);
    return;
  }
  const float* kbase = a.k + (int64_t)kvh * hd;
  const float* vbase = a.v + (int64_t)kvh * hd;
  for (int t = 0; t < nk; ++t) {
    const float* krow = kbase + idx[t] * kv_stride;
    for (int g = 0; g < group; ++g) {
      float s = dot(qrow + (int64_t)g * hd, krow, hd) * a.scale;
      if (a.softcap > 0.0f) s = a.softcap * std::tanh(s / a.softcap);
      w.p[(size_t)g * a.kv_len + t] = s;
    }
  }
  for (int g = 0; g < group; ++g) {
    float* s = w.p.data() + (size_t)g * a.kv_len;
    float mx = s[0];
    for (int t = 1; t < nk; ++t) mx = std::max(mx, s[t]);
    float sum = 0.0f;
    for (int t = 0; t < nk; ++t) {
      s[t] = std::exp(s[t] - mx);
      sum += s[t];
    }
    const float inv = 1.0f / sum;
    for (int t = 0; t < nk; ++t) s[t] *= inv;
  }
  float* acc = w.acc.data();
  std::fill(acc, acc + (int64_t)group * hd, 0.0f);
  for (int t = 0; t < nk; ++t) {
    const float* vrow = vbase + idx[t] * kv_stride;
    for (int g = 0; g < group; ++g) axpy(w.p[(size_t)g * a.kv_len + t], vrow, acc + (int64_t)g * hd, hd);
  }
  std::copy(acc, acc + (int64_t)group * hd, orow);
}

}  // namespace

GK_API gk_status gk_attention_prefill(gk_stream* s, const float* q, const float* k, const float* v, float* out,
                                      int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                                      int32_t head_dim, int32_t q_pos0, int32_t causal, int32_t window,
                                      const int32_t* span_ids, float scale, float softcap) {
  GK_TRY(gk::validate_stream(s, "gk_attention_prefill"));
  GK_TRY(gk::validate_attention_prefill(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, window,
                                        scale, softcap));
  const Params a{q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids,
                 scale, softcap};
  const int group = q_heads / kv_heads;
  const int64_t tasks = (int64_t)q_len * kv_heads;
  const double work = (double)q_len * kv_len * q_heads * head_dim;
#pragma omp parallel if (tasks > 1 && work > 65536.0)
  {
    Scratch w{std::vector<int32_t>((size_t)kv_len), std::vector<float>((size_t)group * kv_len),
              std::vector<float>((size_t)group * head_dim)};
    // kv-head-major order: a thread's consecutive tasks reuse the same K/V head from cache.
    // Dynamic: causal rows have very different amounts of work.
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; ++t) {
      attend(a, t % q_len, (int)(t / q_len), w);
    }
  }
  return GK_OK;
}

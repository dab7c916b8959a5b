// gk_attention_decode on the CPU.
//
// Decode is bound by reading the cache, so each K/V row is read once per kv head: a task covers every
// q head of one grouped-query family over one slice of the visible keys. Long contexts (or few kv
// heads) are split into several slices per head so every thread has work; each slice keeps its own
// max, sum and unnormalised output, and a final pass merges them (the split-softmax identity).
#include <omp.h>

#include <algorithm>
#include <climits>
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

constexpr int64_t kMinSlice = 256;  // keys; below this a split costs more than it saves

struct Params {
  const float *q, *k, *v;
  int32_t q_heads, kv_heads, head_dim, capacity;
  int64_t first;  // oldest visible position
  float scale, softcap;
};

// Keys at positions [p0, p1) for every q head of kv head kvh. Writes per q head g: mx[g], sum[g] and the
// unnormalised acc[g][head_dim] = Σ exp(s - mx) v. p is [group][p1 - p0] scratch.
void slice(const Params& a, int kvh, int64_t p0, int64_t p1, float* p, float* mx, float* sum, float* acc) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const int64_t n = p1 - p0, row = (int64_t)a.kv_heads * hd;
  const float* q = a.q + (int64_t)kvh * group * hd;
  const float* kbase = a.k + (int64_t)kvh * hd;
  const float* vbase = a.v + (int64_t)kvh * hd;
  for (int64_t t = 0; t < n; ++t) {
    const float* krow = kbase + ((p0 + t) % a.capacity) * row;
    for (int g = 0; g < group; ++g) {
      float s = dot(q + (int64_t)g * hd, krow, hd) * a.scale;
      if (a.softcap > 0.0f) s = a.softcap * std::tanh(s / a.softcap);
      p[g * n + t] = s;
    }
  }
  for (int g = 0; g < group; ++g) {
    float* s = p + g * n;
    float m = s[0];
    for (int64_t t = 1; t < n; ++t) m = std::max(m, s[t]);
    float l = 0.0f;
    for (int64_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - m);
      l += s[t];
    }
    mx[g] = m;
    sum[g] = l;
  }
  std::fill(acc, acc + (int64_t)group * hd, 0.0f);
  for (int64_t t = 0; t < n; ++t) {
    const float* vrow = vbase + ((p0 + t) % a.capacity) * row;
    for (int g = 0; g < group; ++g) axpy(p[g * n + t], vrow, acc + (int64_t)g * hd, hd);
  }
}

}  // namespace

GK_API gk_status gk_attention_decode(gk_stream* s, const float* q, const float* k_cache, const float* v_cache,
                                     float* out, int32_t q_heads, int32_t kv_heads, int32_t head_dim,
                                     int32_t capacity, int32_t window, const int32_t* position, float scale,
                                     float softcap) {
  GK_TRY(gk::validate_stream(s, "gk_attention_decode"));
  GK_TRY(gk::validate_attention_decode(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window,
                                       position, scale, softcap));
  const int32_t pos = *position;
  if (pos < 0) return gk_fail(GK_ERR_INVALID_ARGUMENT, "gk_attention_decode: position %d is negative", pos);
  const int64_t span = std::min<int64_t>(window > 0 ? window : INT_MAX, capacity);
  const int64_t first = std::max<int64_t>(0, (int64_t)pos - span + 1);
  const int64_t n_keys = (int64_t)pos - first + 1;
  const int group = q_heads / kv_heads, hd = head_dim;

  // Enough slices per kv head for about two tasks per thread, none shorter than kMinSlice keys.
  const int64_t threads = omp_get_max_threads();
  const int64_t want = (2 * threads + kv_heads - 1) / kv_heads;
  const int64_t slices = std::max<int64_t>(1, std::min(want, n_keys / kMinSlice));
  const int64_t tasks = (int64_t)kv_heads * slices;
  const int64_t max_slice = (n_keys + slices - 1) / slices;

  const Params a{q, k_cache, v_cache, q_heads, kv_heads, head_dim, capacity, first, scale, softcap};
  // Per task and q head of its group: [mx, sum] and acc [head_dim].
  std::vector<float> stats((size_t)tasks * group * 2), accs((size_t)tasks * group * hd);
  const bool par = tasks > 1 && n_keys * q_heads * hd > 32768;
#pragma omp parallel if (par)
  {
    std::vector<float> p((size_t)group * max_slice);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int kvh = (int)(t / slices);
      const int64_t c = t % slices;
      const int64_t p0 = first + n_keys * c / slices, p1 = first + n_keys * (c + 1) / slices;
      float* st = stats.data() + (size_t)t * group * 2;
      slice(a, kvh, p0, p1, p.data(), st, st + group, accs.data() + (size_t)t * group * hd);
    }
  }
  // Merge slices: out = Σ_c e^(mx_c - M) acc_c / Σ_c e^(mx_c - M) sum_c.
  for (int h = 0; h < q_heads; ++h) {
    const int kvh = h / group, g = h % group;
    float* o = out + (int64_t)h * hd;
    float m = -INFINITY;
    for (int64_t c = 0; c < slices; ++c) m = std::max(m, stats[((size_t)(kvh * slices + c)) * group * 2 + g]);
    float l = 0.0f;
    std::fill(o, o + hd, 0.0f);
    for (int64_t c = 0; c < slices; ++c) {
      const size_t t = (size_t)(kvh * slices + c);
      const float w = std::exp(stats[t * group * 2 + g] - m);
      l += w * stats[t * group * 2 + group + g];
      axpy(w, accs.data() + (t * group + g) * hd, o, hd);
    }
    const float inv = 1.0f / l;
    for (int d = 0; d < hd; ++d) o[d] *= inv;
  }
  return GK_OK;
}

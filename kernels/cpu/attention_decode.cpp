// gk_attention_decode on the CPU.
//
// Decode is bound by reading the cache, so each K/V row is read once per kv head, strictly in order: a
// task covers every q head of one grouped-query family over one slice of the visible keys, and each row
// is used by all of them while it is in L1. (Blocking several rows at once, as prefill does, measured
// ~1.5x slower once the cache no longer fits in L3: the hardware prefetchers follow one stream best.)
// Long contexts, or few kv heads, are split into several slices per head so every thread has work;
// each slice keeps its own max, sum and unnormalised output, and a final pass merges them.
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "../common/error.h"
#include "cpu.h"
#include "pool.h"
#include "simd.h"

namespace {

using namespace gk::cpu::simd;

// s[h] = q[h·ldq ..] · k for four q heads: k is loaded once per step, four chains run in parallel, and
// one transposing reduction finishes all four.
__attribute__((noinline)) void dot_4h(const float* q, int64_t ldq, const float* k, int n, float* s) {
  vf a[4] = {vzero(), vzero(), vzero(), vzero()};
  int i = 0;
  for (; i + kW <= n; i += kW) {
    const vf kv = vload(k + i);
    for (int h = 0; h < 4; ++h) a[h] = vfma(vload(q + h * ldq + i), kv, a[h]);
  }
  sum4(a, s);
  for (; i < n; ++i)
    for (int h = 0; h < 4; ++h) s[h] += q[h * ldq + i] * k[i];
}

inline float dot1(const float* q, const float* k, int n) {
  vf a0 = vzero(), a1 = vzero();
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    a0 = vfma(vload(q + i), vload(k + i), a0);
    a1 = vfma(vload(q + i + kW), vload(k + i + kW), a1);
  }
  for (; i + kW <= n; i += kW) a0 = vfma(vload(q + i), vload(k + i), a0);
  float s = hsum(a0) + hsum(a1);
  for (; i < n; ++i) s += q[i] * k[i];
  return s;
}

// acc[g][0, hd) = Σ_t p[g·n + t] · v_t for G q heads g: the outputs of kC vectors × G heads stay in registers
// across all n keys, where an axpy per (key, head) loaded and stored every accumulator once per key (~4x slower
// at 20-80 keys, the decode case). Each element still sums its terms in key order with one FMA each, as the axpy
// did, so the result is unchanged.
template <int G>
void pv_heads(const float* p, int64_t n, const float* vbase, int64_t row, int64_t capacity, int64_t p0, int hd,
              float* acc) {
  constexpr int kC = 4;
  int d = 0;
  for (; d + kC * kW <= hd; d += kC * kW) {
    vf a[G][kC];
    for (int g = 0; g < G; ++g)
      for (int c = 0; c < kC; ++c) a[g][c] = vzero();
    for (int64_t t = 0; t < n; ++t) {
      const float* v = vbase + ((p0 + t) % capacity) * row + d;
      vf vv[kC];
      for (int c = 0; c < kC; ++c) vv[c] = vload(v + c * kW);
      for (int g = 0; g < G; ++g) {
        const vf w = vset1(p[g * n + t]);
        for (int c = 0; c < kC; ++c) a[g][c] = vfma(w, vv[c], a[g][c]);
      }
    }
    for (int g = 0; g < G; ++g)
      for (int c = 0; c < kC; ++c) vstore(acc + (int64_t)g * hd + d + c * kW, a[g][c]);
  }
  for (; d + kW <= hd; d += kW) {
    vf a[G];
    for (int g = 0; g < G; ++g) a[g] = vzero();
    for (int64_t t = 0; t < n; ++t) {
      const vf vv = vload(vbase + ((p0 + t) % capacity) * row + d);
      for (int g = 0; g < G; ++g) a[g] = vfma(vset1(p[g * n + t]), vv, a[g]);
    }
    for (int g = 0; g < G; ++g) vstore(acc + (int64_t)g * hd + d, a[g]);
  }
  for (; d < hd; ++d) {
    for (int g = 0; g < G; ++g) {
      float a = 0.0f;
      for (int64_t t = 0; t < n; ++t) a += p[g * n + t] * vbase[((p0 + t) % capacity) * row + d];  // as axpy's tail
      acc[(int64_t)g * hd + d] = a;
    }
  }
}

// Keys; below this a split costs more than it saves. Measured on the 270M's one kv head at ~200 keys (2 threads):
// the 18 calls of a token took 1.2-1.5 ms on one thread, 0.6-0.8 ms split in 4 slices of ~50 keys.
constexpr int64_t kMinSlice = 32;

struct Params {
  const float *q, *k, *v;
  int32_t q_heads, kv_heads, head_dim, capacity;
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
    // The cache comes from memory (a token's weights pass through the caches between two calls for a layer):
    // K a few rows ahead toward L1, and this row's V toward L2 for pv_heads, whose passes over V are strided
    // (one head_dim chunk of every row at a time). ~30% off a call at 200 keys.
    const int64_t ahead = ((p0 + std::min<int64_t>(t + 4, n - 1)) % a.capacity) * row;
    const float* vrow = vbase + ((p0 + t) % a.capacity) * row;
    for (int b = 0; b < hd; b += 16) __builtin_prefetch(kbase + ahead + b, 0, 3), __builtin_prefetch(vrow + b, 0, 2);
    int g = 0;
    for (; g + 4 <= group; g += 4) {
      float s4[4];
      dot_4h(q + (int64_t)g * hd, hd, krow, hd, s4);
      for (int i = 0; i < 4; ++i) p[(g + i) * n + t] = s4[i];
    }
    for (; g < group; ++g) p[g * n + t] = dot1(q + (int64_t)g * hd, krow, hd);
  }
  for (int g = 0; g < group; ++g) {
    float* s = p + g * n;
    float m = -INFINITY;
    if (a.softcap > 0.0f) {
      for (int64_t t = 0; t < n; ++t) {
        const float x = a.softcap * std::tanh(s[t] * a.scale / a.softcap);
        s[t] = x;
        m = std::max(m, x);
      }
    } else {
      // Vectorised (the scalar loop with its libm exp calls was a third of a call at decode's 20-80 keys).
      // vmax(x, m) keeps m where x is NaN, as std::max(m, x) does.
      const vf sc = vset1(a.scale);
      vf vm = vset1(-INFINITY);
      int64_t t = 0;
      for (; t + kW <= n; t += kW) {
        const vf x = vmul(vload(s + t), sc);
        vstore(s + t, x);
        vm = vmax(x, vm);
      }
      m = hmax(vm);
      for (; t < n; ++t) {
        s[t] *= a.scale;
        m = std::max(m, s[t]);
      }
    }
    // A slice whose scores are all -inf (m = -inf) weighs nothing: 0, not exp(-inf - -inf) = NaN, so that the
    // merge gives its keys weight 0 when another slice has a finite score. When every slice is -inf the merge's
    // exp(-inf - -inf) makes the row NaN, as torch's softmax of an all -inf row. NaN scores stay NaN.
    float l = 0.0f;
    if (m == -INFINITY) {
      for (int64_t t = 0; t < n; ++t) {
        s[t] = s[t] == -INFINITY ? 0.0f : std::exp(s[t] - m);
        l += s[t];
      }
    } else {
      // simd.h's vexp, as prefill's softmax uses (about 1 ulp; -inf scores give 0); the last n % kW scores go
      // through a padded vector so that every weight comes from the same exp.
      const vf vm = vset1(m);
      int64_t t = 0;
      for (; t + kW <= n; t += kW) vstore(s + t, vexp(vsub(vload(s + t), vm)));
      if (t < n) {
        float tmp[kW] = {};
        std::copy(s + t, s + n, tmp);
        vstore(tmp, vexp(vsub(vload(tmp), vm)));
        std::copy(tmp, tmp + (n - t), s + t);
      }
      for (t = 0; t < n; ++t) l += s[t];
    }
    mx[g] = m;
    sum[g] = l;
  }
  for (int g = 0; g < group;) {  // up to 4 heads at a time: 16 accumulators of AVX-512's 32 registers
    const float* pg = p + g * n;
    float* ag = acc + (int64_t)g * hd;
    const int left = group - g;
    if (left >= 4) pv_heads<4>(pg, n, vbase, row, a.capacity, p0, hd, ag), g += 4;
    else if (left == 3) pv_heads<3>(pg, n, vbase, row, a.capacity, p0, hd, ag), g += 3;
    else if (left == 2) pv_heads<2>(pg, n, vbase, row, a.capacity, p0, hd, ag), g += 2;
    else pv_heads<1>(pg, n, vbase, row, a.capacity, p0, hd, ag), g += 1;
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
  GK_CPU_RECORD(s, gk_attention_decode(s, q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window,
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

  const Params a{q, k_cache, v_cache, q_heads, kv_heads, head_dim, capacity, scale, softcap};
  // Per task and q head of its group: [mx, sum] and acc [head_dim].
  std::vector<float> stats((size_t)tasks * group * 2), accs((size_t)tasks * group * hd);
  const bool par = tasks > 1 && n_keys * q_heads * hd > 32768;
  // On the decode pool (pool.h): see there why not OpenMP.
  gk::cpu::pool_for(par ? (int)threads : 1, [&](int th, int nth) {
    std::vector<float> p((size_t)group * max_slice);
    for (int64_t t = tasks * th / nth; t < tasks * (th + 1) / nth; ++t) {
      const int kvh = (int)(t / slices);
      const int64_t c = t % slices;
      const int64_t p0 = first + n_keys * c / slices, p1 = first + n_keys * (c + 1) / slices;
      float* st = stats.data() + (size_t)t * group * 2;
      slice(a, kvh, p0, p1, p.data(), st, st + group, accs.data() + (size_t)t * group * hd);
    }
  });
  // Merge slices: out = Σ_c e^(mx_c - M) acc_c / Σ_c e^(mx_c - M) sum_c.
  for (int h = 0; h < q_heads; ++h) {
    const int kvh = h / group, g = h % group;
    float* o = out + (int64_t)h * hd;
    float m = -INFINITY;
    for (int64_t c = 0; c < slices; ++c) m = std::max(m, stats[(size_t)(kvh * slices + c) * group * 2 + g]);
    float l = 0.0f;
    std::fill(o, o + hd, 0.0f);
    for (int64_t c = 0; c < slices; ++c) {
      const size_t t = (size_t)(kvh * slices + c);
      const float w = std::exp(stats[t * group * 2 + g] - m);
      l += w * stats[t * group * 2 + group + g];
      const float* src = accs.data() + (t * group + g) * hd;
      for (int d = 0; d < hd; ++d) o[d] += w * src[d];
    }
    const float inv = 1.0f / l;
    for (int d = 0; d < hd; ++d) o[d] *= inv;
  }
  return GK_OK;
}

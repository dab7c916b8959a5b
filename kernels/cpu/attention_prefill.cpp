// gk_attention_prefill on the CPU.
//
// One task is (query, kv head): the whole grouped-query family of that kv head is handled together,
// so each visible K/V row is fetched once into L1/L2 and used by every q head that shares it. Masked keys
// are never touched: visible keys are gathered into an index list first (a plain range without
// span_ids). Scores and softmax are f32; the softmax is exact (max-subtracted, expf), not online.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/error.h"
#include "cpu.h"
#include "simd.h"

namespace {

using namespace gk::cpu::simd;

// The hot loops stay out of line: inlined into the task body, GCC spilled their row pointers.
#define GK_HOT __attribute__((noinline))

// s[h·lds + j] = q[h·ldq ..] · r[j] for H q vectors and 4 key rows: 4H independent chains, and each
// loaded vector feeds H or 4 FMAs.
template <int H>
GK_HOT void dot_h4(const float* q, int64_t ldq, const float* const* r, int n, float* s, int64_t lds) {
  const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
  vf a[H][4];
  for (int h = 0; h < H; ++h) a[h][0] = a[h][1] = a[h][2] = a[h][3] = vzero();
  int i = 0;
  for (; i + kW <= n; i += kW) {
    const vf k0 = vload(r0 + i), k1 = vload(r1 + i), k2 = vload(r2 + i), k3 = vload(r3 + i);
    for (int h = 0; h < H; ++h) {
      const vf qv = vload(q + h * ldq + i);
      a[h][0] = vfma(qv, k0, a[h][0]);
      a[h][1] = vfma(qv, k1, a[h][1]);
      a[h][2] = vfma(qv, k2, a[h][2]);
      a[h][3] = vfma(qv, k3, a[h][3]);
    }
  }
  for (int h = 0; h < H; ++h) {
    float* sh = s + h * lds;
    sum4(a[h], sh);
    for (int t = i; t < n; ++t) {
      for (int j = 0; j < 4; ++j) sh[j] += q[h * ldq + t] * r[j][t];
    }
  }
}

inline float dot1(const float* q, const float* r, int n) {
  vf a = vzero();
  int i = 0;
  for (; i + kW <= n; i += kW) a = vfma(vload(q + i), vload(r + i), a);
  float lanes[kW];
  vstore(lanes, a);
  float s = 0.0f;
  for (int l = 0; l < kW; ++l) s += lanes[l];
  for (; i < n; ++i) s += q[i] * r[i];
  return s;
}

// acc[h·ldacc + d ..+C·kW) += Σ_j p[h·ldp + j] · v[j][d ..+C·kW): H·C chains held in registers across
// all nb keys, and each V vector feeds H heads.
template <int H, int C>
GK_HOT void weighted_sum_cols(const float* p, int64_t ldp, const float* const* v, int nb, int d, float* acc,
                              int64_t ldacc) {
  vf a[H][C];
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) a[h][c] = vload(acc + h * ldacc + d + c * kW);
  for (int j = 0; j < nb; ++j) {
    const float* vj = v[j] + d;
    vf ph[H];
    for (int h = 0; h < H; ++h) ph[h] = vset1(p[h * ldp + j]);
    for (int c = 0; c < C; ++c) {
      const vf vv = vload(vj + c * kW);
      for (int h = 0; h < H; ++h) a[h][c] = vfma(ph[h], vv, a[h][c]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) vstore(acc + h * ldacc + d + c * kW, a[h][c]);
}

constexpr int kKeyBlock = 32;   // keys whose K or V rows stay in L1 while every q head of the group uses them
constexpr int kHeads = 2;       // q heads sharing each loaded K/V vector
constexpr int kCols = kW == 16 ? 8 : 4;  // vectors of one output row kept in registers per head

// s[g·lds + j] = softcap(scale · q_g·k[j]) for g < heads, j < nb.
inline void scores(const float* q, int heads, int hd, const float* const* k, int nb, float scale, float softcap,
                   float* s, int64_t lds) {
  int g = 0;
  for (; g + kHeads <= heads; g += kHeads) {
    int j = 0;
    for (; j + 4 <= nb; j += 4) dot_h4<kHeads>(q + g * hd, hd, k + j, hd, s + g * lds + j, lds);
    for (; j < nb; ++j)
      for (int h = g; h < g + kHeads; ++h) s[h * lds + j] = dot1(q + h * hd, k[j], hd);
  }
  for (; g < heads; ++g) {
    int j = 0;
    for (; j + 4 <= nb; j += 4) dot_h4<1>(q + g * hd, hd, k + j, hd, s + g * lds + j, lds);
    for (; j < nb; ++j) s[g * lds + j] = dot1(q + g * hd, k[j], hd);
  }
  for (g = 0; g < heads; ++g) {
    for (int j = 0; j < nb; ++j) {
      float x = s[g * lds + j] * scale;
      if (softcap > 0.0f) x = softcap * std::tanh(x / softcap);
      s[g * lds + j] = x;
    }
  }
}

template <int H>
inline void weighted_sum_heads(const float* p, int64_t ldp, const float* const* v, int nb, int hd, float* acc) {
  int d = 0;
  for (; d + kCols * kW <= hd; d += kCols * kW) weighted_sum_cols<H, kCols>(p, ldp, v, nb, d, acc, hd);
  for (; d + kW <= hd; d += kW) weighted_sum_cols<H, 1>(p, ldp, v, nb, d, acc, hd);
  for (; d < hd; ++d) {
    for (int h = 0; h < H; ++h) {
      float a = acc[h * hd + d];
      for (int j = 0; j < nb; ++j) a += p[h * ldp + j] * v[j][d];
      acc[h * hd + d] = a;
    }
  }
}

// acc[g·hd + d] += Σ_j p[g·ldp + j] · v[j][d] for g < heads, j < nb.
inline void weighted_sum(const float* p, int64_t ldp, int heads, const float* const* v, int nb, int hd, float* acc) {
  int g = 0;
  for (; g + kHeads <= heads; g += kHeads) weighted_sum_heads<kHeads>(p + g * ldp, ldp, v, nb, hd, acc + g * hd);
  for (; g < heads; ++g) weighted_sum_heads<1>(p + g * ldp, ldp, v, nb, hd, acc + g * hd);
}

// In place: s[j] = exp(s[j] - max s); writes max s and Σ exp to *mx and *sum.
inline void softmax_unnormalised(float* s, int64_t n, float* mx, float* sum) {
  float m = s[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, s[j]);
  float l = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    l += s[j];
  }
  *mx = m;
  *sum = l;
}

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
  // The span lifts only the causal bound; the window still applies (AND(window, OR(causal, same span))).
  for (int64_t j = lo; j < a.kv_len; ++j) {
    if (j <= hi || a.span_ids[j] == own) idx[nk++] = (int32_t)j;
  }
  return nk;
}

struct Scratch {
  std::vector<int32_t> idx;  // [kv_len] visible keys
  std::vector<float> p;      // [group][kv_len] scores, then unnormalised softmax weights
  std::vector<float> acc;    // [group][head_dim]
  std::vector<float> inv;    // [group] 1 / softmax denominator
};

// All q heads of kv head `kvh` for query i.
void attend(const Params& a, int64_t i, int kvh, Scratch& w) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const int64_t kv_stride = (int64_t)a.kv_heads * hd;
  const float* q = a.q + (i * a.q_heads + (int64_t)kvh * group) * hd;
  float* out = a.out + (i * a.q_heads + (int64_t)kvh * group) * hd;
  const int32_t* idx = w.idx.data();
  const int nk = visible_keys(a, a.q_pos0 + i, w.idx.data());
  if (nk == 0) {
    std::fill(out, out + (int64_t)group * hd, 0.0f);
    return;
  }
  const float* kbase = a.k + (int64_t)kvh * hd;
  const float* vbase = a.v + (int64_t)kvh * hd;
  const float* rows[kKeyBlock];
  for (int t0 = 0; t0 < nk; t0 += kKeyBlock) {
    const int nb = std::min(kKeyBlock, nk - t0);
    for (int j = 0; j < nb; ++j) rows[j] = kbase + idx[t0 + j] * kv_stride;
    scores(q, group, hd, rows, nb, a.scale, a.softcap, w.p.data() + t0, a.kv_len);
  }
  float* acc = w.acc.data();
  std::fill(acc, acc + (int64_t)group * hd, 0.0f);
  for (int g = 0; g < group; ++g) {
    float mx, sum;
    softmax_unnormalised(w.p.data() + (size_t)g * a.kv_len, nk, &mx, &sum);
    w.inv[g] = 1.0f / sum;
  }
  for (int t0 = 0; t0 < nk; t0 += kKeyBlock) {
    const int nb = std::min(kKeyBlock, nk - t0);
    for (int j = 0; j < nb; ++j) rows[j] = vbase + idx[t0 + j] * kv_stride;
    weighted_sum(w.p.data() + t0, a.kv_len, group, rows, nb, hd, acc);
  }
  for (int g = 0; g < group; ++g) {
    for (int d = 0; d < hd; ++d) out[(int64_t)g * hd + d] = acc[(int64_t)g * hd + d] * w.inv[g];
  }
}

}  // namespace

GK_API gk_status gk_attention_prefill(gk_stream* s, const float* q, const float* k, const float* v, float* out,
                                      int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                                      int32_t head_dim, int32_t q_pos0, int32_t causal, int32_t window,
                                      const int32_t* span_ids, float scale, float softcap) {
  GK_TRY(gk::validate_stream(s, "gk_attention_prefill"));
  GK_TRY(gk::validate_attention_prefill(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, window,
                                        scale, softcap));
  GK_CPU_RECORD(s, gk_attention_prefill(s, q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                        window, span_ids, scale, softcap));
  const Params a{q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids,
                 scale, softcap};
  const int group = q_heads / kv_heads;
  const int64_t tasks = (int64_t)q_len * kv_heads;
  const double work = (double)q_len * kv_len * q_heads * head_dim;
#pragma omp parallel if (tasks > 1 && work > 65536.0)
  {
    Scratch w{std::vector<int32_t>((size_t)kv_len), std::vector<float>((size_t)group * kv_len),
              std::vector<float>((size_t)group * head_dim), std::vector<float>((size_t)group)};
    // kv-head-major order: a thread's consecutive tasks reuse the same K/V head from cache.
    // Dynamic: causal rows have very different amounts of work.
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; ++t) attend(a, t % q_len, (int)(t / q_len), w);
  }
  return GK_OK;
}

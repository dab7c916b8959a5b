// The CPU kernels' float vector: vf of kW lanes (AVX-512, AVX2+FMA, or a portable struct that GCC
// vectorises for whatever -march allows) with the handful of operations the attention kernels use.
// linear.cpp adds its wider set (bf16/f16 loads, transposes, block decoders) next to its microkernels.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12's AVX-512 intrinsics self-initialise their `__Y` operand (PR 105593) and -W(maybe-)uninitialized
// flags every inlined use; the pragma covers only the header's own lines.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace gk::cpu::simd {
#if defined(__AVX512F__)
using vf = __m512;
constexpr int kW = 16;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vset1(float a) { return _mm512_set1_ps(a); }
inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, vf a) { _mm512_storeu_ps(p, a); }
inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
inline vf vround(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline vf vpow2i(vf y, vf n) { return _mm512_scalef_ps(y, n); }  // y · 2^n, n integral
inline vf vzero_below(vf r, vf x, float lim) {  // 0 where x < lim (x = -inf included), else r (x = NaN included)
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lim), _CMP_NLT_UQ), r);
}
inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
inline vf vabs(vf a) { return _mm512_abs_ps(a); }
inline vf vcopysign(vf mag, vf s) {  // mag (sign bit clear) with the sign of s
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(INT32_MIN));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), sign));
}
inline vf vselect_lt(vf x, float lim, vf a, vf b) {  // x < lim ? a : b (NaN x: b)
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(lim), _CMP_LT_OQ), b, a);
}
inline float hmax(vf a) { return _mm512_reduce_max_ps(a); }
inline bool vhas_nan(vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q) != 0; }
inline __m128 vsum4(vf a) {  // to 4 partial sums
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0x4e));
  a = _mm512_add_ps(a, _mm512_shuffle_f32x4(a, a, 0xb1));
  return _mm512_castps512_ps128(a);
}
#elif defined(__AVX2__) && defined(__FMA__)
using vf = __m256;
constexpr int kW = 8;
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vset1(float a) { return _mm256_set1_ps(a); }
inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, vf a) { _mm256_storeu_ps(p, a); }
inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
inline vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
inline vf vpow2i(vf y, vf n) {  // y · 2^n for integral n in [-126, 127]: n goes straight into the exponent bits
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
inline vf vzero_below(vf r, vf x, float lim) {
  return _mm256_and_ps(r, _mm256_cmp_ps(x, _mm256_set1_ps(lim), _CMP_NLT_UQ));
}
inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
inline vf vabs(vf a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
inline vf vcopysign(vf mag, vf s) { return _mm256_or_ps(mag, _mm256_and_ps(s, _mm256_set1_ps(-0.0f))); }
inline vf vselect_lt(vf x, float lim, vf a, vf b) {
  return _mm256_blendv_ps(b, a, _mm256_cmp_ps(x, _mm256_set1_ps(lim), _CMP_LT_OQ));
}
inline bool vhas_nan(vf a) { return _mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)) != 0; }
inline float hmax(vf a) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
}
inline __m128 vsum4(vf a) { return _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1)); }
#else
// Portable: fixed-width lanes in plain loops, which GCC turns into whatever SIMD -march allows.
struct vf {
  float v[8];
};
constexpr int kW = 8;
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
// max/min return b when either lane is NaN, as the x86 instructions do.
#define GK_SIMD_LANEWISE(name, expr)                \
  inline vf name(vf a, vf b) {                      \
    for (int i = 0; i < kW; ++i) a.v[i] = (expr);   \
    return a;                                       \
  }
GK_SIMD_LANEWISE(vadd, a.v[i] + b.v[i])
GK_SIMD_LANEWISE(vsub, a.v[i] - b.v[i])
GK_SIMD_LANEWISE(vmul, a.v[i] * b.v[i])
GK_SIMD_LANEWISE(vmax, a.v[i] > b.v[i] ? a.v[i] : b.v[i])
GK_SIMD_LANEWISE(vmin, a.v[i] < b.v[i] ? a.v[i] : b.v[i])
GK_SIMD_LANEWISE(vpow2i, std::ldexp(a.v[i], b.v[i] == b.v[i] ? (int)b.v[i] : 0))  // NaN n: y is NaN too
#undef GK_SIMD_LANEWISE
inline vf vround(vf a) {
  for (int i = 0; i < kW; ++i) a.v[i] = std::nearbyint(a.v[i]);
  return a;
}
inline vf vzero_below(vf r, vf x, float lim) {
  for (int i = 0; i < kW; ++i) r.v[i] = x.v[i] < lim ? 0.0f : r.v[i];
  return r;
}
inline vf vdiv(vf a, vf b) {
  for (int i = 0; i < kW; ++i) a.v[i] /= b.v[i];
  return a;
}
inline vf vabs(vf a) {
  for (int i = 0; i < kW; ++i) a.v[i] = std::fabs(a.v[i]);
  return a;
}
inline vf vcopysign(vf mag, vf s) {
  for (int i = 0; i < kW; ++i) mag.v[i] = std::copysign(mag.v[i], s.v[i]);
  return mag;
}
inline vf vselect_lt(vf x, float lim, vf a, vf b) {
  for (int i = 0; i < kW; ++i) b.v[i] = x.v[i] < lim ? a.v[i] : b.v[i];
  return b;
}
inline bool vhas_nan(vf a) {
  bool n = false;
  for (int i = 0; i < kW; ++i) n |= a.v[i] != a.v[i];
  return n;
}
inline float hmax(vf a) {
  float m = a.v[0];
  for (int i = 1; i < kW; ++i) m = a.v[i] > m ? a.v[i] : m;
  return m;
}
#endif

// e^x for x <= 88 to about 1 ulp (Cephes' expf: x = n·ln2 + r with ln2 split in two, degree-6 polynomial
// in r, then scaled by 2^n). Lanes below -87 — e^x < 2^-125, nothing next to a softmax's largest term,
// which is 1 — and -inf (masked scores) give exactly 0. NaN stays NaN (min/max return their second operand
// when either is NaN, so x goes second).
inline vf vexp(vf x) {
  const vf t = vmax(vset1(-87.0f), vmin(vset1(88.0f), x));
  const vf n = vround(vmul(t, vset1(1.44269504088896341f)));
  vf r = vfma(n, vset1(-0.693359375f), t);
  r = vfma(n, vset1(2.12194440e-4f), r);
  vf y = vset1(1.9875691500e-4f);
  y = vfma(y, r, vset1(1.3981999507e-3f));
  y = vfma(y, r, vset1(8.3334519073e-3f));
  y = vfma(y, r, vset1(4.1665795894e-2f));
  y = vfma(y, r, vset1(1.6666665459e-1f));
  y = vfma(y, r, vset1(5.0000001201e-1f));
  y = vfma(y, vmul(r, r), vadd(r, vset1(1.0f)));
  return vzero_below(vpow2i(y, n), x, -87.0f);
}

// tanh to about 1.5 ulp over every float (odd, so computed on |x| and given x's sign back; ±0 stay ±0):
//   |x| < ln(3)/2 (tanh < 0.5): |x| + |x|^3 Q(x^2), Q a degree-4 least-squares fit (Chebyshev nodes, relative
//     error) of (tanh(a) - a) / a^3, 0.02 ulp from tanh before rounding. No cancellation near 0, and tiny or
//     subnormal x come back unchanged (|x|^3 underflows).
//   else: 1 - 2 / (e^(2|x|) + 1), where the subtracted term is at most 0.5 so vexp's ulp stays about one.
//     Large |x| saturates to ±1 (vexp clamps at 88), ±inf gives ±1, NaN stays NaN.
// tests/ops/tanh_test.ts holds it to 2 ulp of double tanh over a dense sweep of every binade.
inline vf vtanh(vf x) {
  const vf a = vabs(x);
  const vf s = vmul(a, a);
  vf q = vset1(-6.292931390e-03f);
  q = vfma(q, s, vset1(2.108552973e-02f));
  q = vfma(q, s, vset1(-5.385589590e-02f));
  q = vfma(q, s, vset1(1.333262356e-01f));
  q = vfma(q, s, vset1(-3.333331883e-01f));
  const vf small = vfma(vmul(a, s), q, a);
  const vf e = vexp(vadd(a, a));
  const vf large = vsub(vset1(1.0f), vdiv(vset1(2.0f), vadd(e, vset1(1.0f))));
  return vcopysign(vselect_lt(a, 0.54930614f, small, large), x);
}

// transformers' gelu_pytorch_tanh, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), on vtanh. For x below about
// -3, 1 + tanh cancels in f32 as it does in torch's own f32 evaluation of the same formula.
inline vf vgelu_tanh(vf x) {
  const vf inner = vmul(vset1(0.7978845608028654f), vfma(vset1(0.044715f), vmul(vmul(x, x), x), x));
  return vmul(vmul(vset1(0.5f), x), vadd(vset1(1.0f), vtanh(inner)));
}

// torch.argmax of x[0, n): the first maximum, and the first NaN beats every number. The plain loop (reading
// x[best] back every step) took ~0.3 ms over a 262144-entry vocabulary, a decode step's greedy sample.
inline int32_t argmax_scalar(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t j = 1; j < n && x[best] == x[best]; ++j) {
    if (x[j] != x[j] || x[j] > x[best]) best = j;
  }
  return best;
}

// The same index, vectorised: each lane keeps its largest value and that value's first index (strictly greater
// replaces, so a lane keeps its earliest maximum), two vectors at a time; then the lowest index among the lanes
// holding the overall maximum is the first maximum. Any NaN sends the whole row to the scalar loop (rare, and
// it finds the first NaN); the last n % (2 kW) elements continue the scalar rule from the vector part's winner.
inline int32_t argmax(const float* x, int32_t n) {
#if defined(__AVX512F__)
  if (n < 32) return argmax_scalar(x, n);
  __m512 b0 = _mm512_loadu_ps(x), b1 = _mm512_loadu_ps(x + 16);
  __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(16)), c0 = i0, c1 = i1;
  const __m512i step = _mm512_set1_epi32(32);
  __mmask16 nan = _mm512_cmp_ps_mask(b0, b0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(b1, b1, _CMP_UNORD_Q);
  int32_t j = 32;
  for (; j + 32 <= n; j += 32) {
    const __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);
    c0 = _mm512_add_epi32(c0, step);
    c1 = _mm512_add_epi32(c1, step);
    const __mmask16 g0 = _mm512_cmp_ps_mask(v0, b0, _CMP_GT_OQ), g1 = _mm512_cmp_ps_mask(v1, b1, _CMP_GT_OQ);
    nan |= _mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
    b0 = _mm512_mask_mov_ps(b0, g0, v0);
    b1 = _mm512_mask_mov_ps(b1, g1, v1);
    i0 = _mm512_mask_mov_epi32(i0, g0, c0);
    i1 = _mm512_mask_mov_epi32(i1, g1, c1);
  }
  if (nan) return argmax_scalar(x, n);
  float m = _mm512_reduce_max_ps(_mm512_max_ps(b0, b1));
  const __m512 vm = _mm512_set1_ps(m);
  const __m512i big = _mm512_set1_epi32(INT32_MAX);
  const __m512i c = _mm512_min_epi32(_mm512_mask_mov_epi32(big, _mm512_cmp_ps_mask(b0, vm, _CMP_EQ_OQ), i0),
                                     _mm512_mask_mov_epi32(big, _mm512_cmp_ps_mask(b1, vm, _CMP_EQ_OQ), i1));
  int32_t best = _mm512_reduce_min_epi32(c);
#elif defined(__AVX2__) && defined(__FMA__)
  if (n < 16) return argmax_scalar(x, n);
  __m256 b0 = _mm256_loadu_ps(x), b1 = _mm256_loadu_ps(x + 8);
  __m256i i0 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), i1 = _mm256_add_epi32(i0, _mm256_set1_epi32(8));
  __m256i c0 = i0, c1 = i1;
  const __m256i step = _mm256_set1_epi32(16);
  __m256 nan = _mm256_or_ps(_mm256_cmp_ps(b0, b0, _CMP_UNORD_Q), _mm256_cmp_ps(b1, b1, _CMP_UNORD_Q));
  int32_t j = 16;
  for (; j + 16 <= n; j += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
    c0 = _mm256_add_epi32(c0, step);
    c1 = _mm256_add_epi32(c1, step);
    const __m256 g0 = _mm256_cmp_ps(v0, b0, _CMP_GT_OQ), g1 = _mm256_cmp_ps(v1, b1, _CMP_GT_OQ);
    nan = _mm256_or_ps(nan, _mm256_or_ps(_mm256_cmp_ps(v0, v0, _CMP_UNORD_Q), _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)));
    b0 = _mm256_blendv_ps(b0, v0, g0);
    b1 = _mm256_blendv_ps(b1, v1, g1);
    i0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i0), _mm256_castsi256_ps(c0), g0));
    i1 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(i1), _mm256_castsi256_ps(c1), g1));
  }
  if (_mm256_movemask_ps(nan)) return argmax_scalar(x, n);
  float m = hmax(_mm256_max_ps(b0, b1));
  float bv[16];
  int32_t bi[16];
  _mm256_storeu_ps(bv, b0);
  _mm256_storeu_ps(bv + 8, b1);
  _mm256_storeu_si256((__m256i*)bi, i0);
  _mm256_storeu_si256((__m256i*)(bi + 8), i1);
  int32_t best = INT32_MAX;
  for (int l = 0; l < 16; ++l) {
    if (bv[l] == m && bi[l] < best) best = bi[l];
  }
#else
  return argmax_scalar(x, n);
#endif
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  for (; j < n; ++j) {
    if (x[j] != x[j]) return j;
    if (x[j] > m) m = x[j], best = j;
  }
  return best;
#endif
}

// y[i] = gelu_tanh(gate[i]) · up[i] for a row (the gated MLP product; gk_gelu_tanh_mul and the MoE experts). The
// last n % kW elements go through a zero-padded vector, so every element takes the same path.
inline void gelu_tanh_mul_row(const float* gate, const float* up, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) vstore(y + i, vmul(vgelu_tanh(vload(gate + i)), vload(up + i)));
  if (i < n) {
    float tg[kW] = {}, tu[kW] = {}, ty[kW];
    for (int64_t j = i; j < n; ++j) tg[j - i] = gate[j], tu[j - i] = up[j];
    vstore(ty, vmul(vgelu_tanh(vload(tg)), vload(tu)));
    for (int64_t j = i; j < n; ++j) y[j] = ty[j - i];
  }
}

// Pins a loaded vector in a register: reused by several FMAs, GCC may otherwise fold the load into each of
// them as a memory operand, turning one load into one per FMA.
inline void vkeep(vf& a) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  __asm__("" : "+v"(a));
#else
  (void)a;
#endif
}

inline float hsum(vf a) {
#if defined(__AVX512F__)
  return _mm512_reduce_add_ps(a);
#elif defined(__AVX2__) && defined(__FMA__)
  __m128 s = vsum4(a);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
#else
  float lanes[kW];
  vstore(lanes, a);
  float s = 0.0f;
  for (int l = 0; l < kW; ++l) s += lanes[l];
  return s;
#endif
}

// Reduces a[j] (j < 4) to s[j] = Σ lanes of a[j].
inline void sum4(const vf* a, float* s) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
  _mm_storeu_ps(s, _mm_hadd_ps(_mm_hadd_ps(vsum4(a[0]), vsum4(a[1])), _mm_hadd_ps(vsum4(a[2]), vsum4(a[3]))));
#else
  for (int j = 0; j < 4; ++j) s[j] = hsum(a[j]);
#endif
}

}  // namespace gk::cpu::simd

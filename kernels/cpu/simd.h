// The CPU kernels' float vector: vf of kW lanes (AVX-512, AVX2+FMA, or a portable struct that GCC
// vectorises for whatever -march allows) with the handful of operations the attention kernels use.
// linear.cpp keeps its own, wider set (bf16/f16 loads, register blocking) next to its microkernels.
#pragma once

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
#endif

inline float hsum(vf a) {
  float lanes[kW];
  vstore(lanes, a);
  float s = 0.0f;
  for (int l = 0; l < kW; ++l) s += lanes[l];
  return s;
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

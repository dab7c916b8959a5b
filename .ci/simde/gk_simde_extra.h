// .ci/avx512 only: the AVX-512 intrinsics kernels/cpu/repack.cpp and linear_q8act.cpp use that SIMDe 0.7 does not
// provide, as scalar loops with the instructions' documented results (conversions round to nearest even, as MXCSR's
// default).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

typedef uint16_t __mmask16;
typedef uint64_t __mmask64;

namespace gk_simde {
inline void f32(__m512 v, float* a) { memcpy(a, &v, 64); }
inline void i32(__m512i v, int32_t* a) { memcpy(a, &v, 64); }
inline __m512 from_f32(const float* a) {
  __m512 r;
  memcpy(&r, a, 64);
  return r;
}
inline __m512i from_i32(const int32_t* a) {
  __m512i r;
  memcpy(&r, a, 64);
  return r;
}
}  // namespace gk_simde

static inline __m512 _mm512_cvtepi32_ps(__m512i v) {
  int32_t a[16];
  float r[16];
  gk_simde::i32(v, a);
  for (int i = 0; i < 16; ++i) r[i] = (float)a[i];
  return gk_simde::from_f32(r);
}
static inline __m512i _mm512_cvtps_epi32(__m512 v) {
  float a[16];
  int32_t r[16];
  gk_simde::f32(v, a);
  for (int i = 0; i < 16; ++i) {
    r[i] = std::isnan(a[i]) || std::fabs(a[i]) >= 2147483648.0f ? INT32_MIN : (int32_t)std::nearbyint(a[i]);
  }
  return gk_simde::from_i32(r);
}
static inline __m512i _mm512_cvtepi8_epi32(__m128i v) {
  int8_t a[16];
  int32_t r[16];
  memcpy(a, &v, 16);
  for (int i = 0; i < 16; ++i) r[i] = a[i];
  return gk_simde::from_i32(r);
}
static inline __m512i _mm512_cvtepu8_epi32(__m128i v) {
  uint8_t a[16];
  int32_t r[16];
  memcpy(a, &v, 16);
  for (int i = 0; i < 16; ++i) r[i] = a[i];
  return gk_simde::from_i32(r);
}
static inline __m128i _mm512_cvtepi32_epi8(__m512i v) {
  int32_t a[16];
  int8_t r[16];
  gk_simde::i32(v, a);
  for (int i = 0; i < 16; ++i) r[i] = (int8_t)a[i];
  __m128i o;
  memcpy(&o, r, 16);
  return o;
}
static inline __m512 _mm512_cvtph_ps(__m256i v) {
  __m128i lo, hi;
  memcpy(&lo, &v, 16);
  memcpy(&hi, (const char*)&v + 16, 16);
  const __m256 a = _mm256_cvtph_ps(lo), b = _mm256_cvtph_ps(hi);
  __m512 r;
  memcpy(&r, &a, 32);
  memcpy((char*)&r + 32, &b, 32);
  return r;
}
static inline float _mm512_mask_reduce_max_ps(__mmask16 k, __m512 v) {
  float a[16], m = -INFINITY;
  gk_simde::f32(v, a);
  for (int i = 0; i < 16; ++i) {
    if (k >> i & 1) m = a[i] > m ? a[i] : m;
  }
  return m;
}
static inline float _mm512_reduce_max_ps(__m512 v) { return _mm512_mask_reduce_max_ps(0xFFFF, v); }
static inline int32_t _mm512_reduce_add_epi32(__m512i v) {
  int32_t a[16];
  uint32_t s = 0;
  gk_simde::i32(v, a);
  for (int i = 0; i < 16; ++i) s += (uint32_t)a[i];
  return (int32_t)s;
}
static inline __m512i _mm512_srai_epi32(__m512i v, unsigned int n) {
  int32_t a[16];
  gk_simde::i32(v, a);
  for (int i = 0; i < 16; ++i) a[i] >>= n > 31 ? 31 : n;
  return gk_simde::from_i32(a);
}
static inline float _cvtsh_ss(unsigned short h) { return _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16((short)h))); }
// The sum of the 16 lanes, grouped as GCC's <immintrin.h> groups it (halves, then quarters, then pairs).
static inline float _mm512_reduce_add_ps(__m512 v) {
  float a[16], t8[8], t4[4];
  gk_simde::f32(v, a);
  for (int i = 0; i < 8; ++i) t8[i] = a[i + 8] + a[i];
  for (int i = 0; i < 4; ++i) t4[i] = t8[i + 4] + t8[i];
  return (t4[0] + t4[2]) + (t4[1] + t4[3]);
}
static inline __m512 _mm512_zextps256_ps512(__m256 v) {
  float r[16] = {};
  memcpy(r, &v, 32);
  return gk_simde::from_f32(r);
}
// Within each 128-bit lane, element j takes element (imm >> 2j) & 3 of that lane.
static inline __m512 _mm512_permute_ps(__m512 v, int imm) {
  float a[16], r[16];
  gk_simde::f32(v, a);
  for (int l = 0; l < 4; ++l) {
    for (int j = 0; j < 4; ++j) r[4 * l + j] = a[4 * l + ((imm >> (2 * j)) & 3)];
  }
  return gk_simde::from_f32(r);
}
// 16-bit lanes whose mask bit is set: a's lane shifted right logically by n (0 past 15); the others src's.
static inline __m512i _mm512_mask_srli_epi16(__m512i src, uint32_t k, __m512i a, unsigned int n) {
  uint16_t s[32], x[32];
  memcpy(s, &src, 64);
  memcpy(x, &a, 64);
  for (int i = 0; i < 32; ++i) {
    if (k >> i & 1) s[i] = n > 15 ? 0 : (uint16_t)(x[i] >> n);
  }
  __m512i r;
  memcpy(&r, s, 64);
  return r;
}

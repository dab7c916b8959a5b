// The AVX512-VNNI intrinsics of the integer-activation kernels (linear_q8act.cpp, repack.cpp): GK_VNNI is defined
// where the build targets them (AVX512 F/BW/VL with VNNI, and F16C for the f16 scales). Also the 24-bit form of x both
// use.
#pragma once

namespace gk::cpu {
// The largest |q| of x's 24-bit form, 127 · 65793 = 0x7F7F7F: after the carries of the split every byte fits an int8.
// (Also linear_x24_avx2.cpp's.)
constexpr float kX24Max = 8355711.0f;
}  // namespace gk::cpu

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#define GK_VNNI 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

namespace gk::cpu {

// 16 elements of x already scaled by kX24Max / (their scale's max |x|), rounded to q and clamped to ±kX24Max (the
// scaling may round a hair past it), then split into signed bytes q = 65536 h + 256 m + l; hm = 256 h + m exactly.
struct X24Split {
  __m512i l, m, h, hm;
};
inline X24Split split_x24(__m512 scaled) {
  const __m512i lim = _mm512_set1_epi32((int)kX24Max), k128 = _mm512_set1_epi32(128), k255 = _mm512_set1_epi32(255);
  const __m512i q = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(scaled), lim),
                                     _mm512_sub_epi32(_mm512_setzero_si512(), lim));
  // The signed byte of v's low 8 bits (−128..127); (v − byte) / 256 is the rest, exactly.
  const auto low_byte = [&](__m512i v) { return _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(v, k128), k255), k128); };
  X24Split s;
  s.l = low_byte(q);
  s.hm = _mm512_srai_epi32(_mm512_sub_epi32(q, s.l), 8);
  s.m = low_byte(s.hm);
  s.h = _mm512_srai_epi32(_mm512_sub_epi32(s.hm, s.m), 8);
  return s;
}

}  // namespace gk::cpu
#endif

// GGUF block formats on the CPU: geometry and plain block decoders.
//
// Layouts (little-endian, as ggml stores them; kernels/include/gemmakit.h lists them with the dtypes):
//   Q4_0    18 B / 32:  f16 d, u8 qs[16]                                 x = d * (q4 - 8)
//   Q4_1    20 B / 32:  f16 d, f16 m, u8 qs[16]                          x = d * q4 + m
//   Q5_0    22 B / 32:  f16 d, u8 qh[4], u8 qs[16]                       x = d * (q5 - 16)
//   Q5_1    24 B / 32:  f16 d, f16 m, u8 qh[4], u8 qs[16]                x = d * q5 + m
//   Q8_0    34 B / 32:  f16 d, i8 qs[32]                                 x = d * q
//   IQ4_NL  18 B / 32:  f16 d, u8 qs[16]                                 x = d * kvalues_iq4nl[q4]
//   MXFP4   17 B / 32:  u8 e, u8 qs[16]                                  x = 2^(e-128) * kvalues_mxfp4[q4]
//   Q2_K    84 B / 256: u8 scales[16], u8 qs[64], f16 d, f16 dmin        x = (d * sc) * q2 - (dmin * m)
//   Q3_K   110 B / 256: u8 hmask[32], u8 qs[64], u8 scales[12], f16 d    x = (d * (sc - 32)) * (q3 - 4)
//   Q4_K   144 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qs[128]       x = (d * sc) * q4 - (dmin * m)
//   Q5_K   176 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]   x = (d * sc) * q5 - (dmin * m)
//   Q6_K   210 B / 256: u8 ql[128], u8 qh[64], i8 scales[16], f16 d      x = (d * sc) * (q6 - 32)
//   IQ4_XS 136 B / 256: f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]  x = (d * (ls - 32)) * kvalues_iq4nl[q4]
// Every format is decoded here in groups of 32 consecutive elements, each group with one (scale, offset)
// pair per 16 elements: x = scale * q + offset with a small integer q (the IQ4 and MXFP4 codes are the table
// values, not the indices). For every format scale * q is exact in f32 and ggml rounds once, as here, so the
// decoded values are bit-identical to ggml's dequantize_row_*. The SIMD kernels in linear.cpp read the same
// helpers for the per-group parameters and decode the integers in registers; the scalar decoders below are
// the plain statement of each format (embedding rows, tails, and the non-SIMD build).
#pragma once
#include <stdint.h>
#include <string.h>

#include "../common/dtype.h"
#include "../include/gemmakit.h"

#if defined(__F16C__)
// As in linear.cpp: GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized (PR 105593) wherever they inline.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace gk::quant {

template <int DT>
struct Block {
  static_assert(is_quant_dtype(DT), "Block<DT>: DT is not a GGUF block dtype");
  static constexpr int elems = block_elems(DT), bytes = block_bytes(DT);
};

// The f16 at p (unaligned). F16C where the build has it: the scales are read once per block.
inline float f16_at(const uint8_t* p) {
  uint16_t h;
  memcpy(&h, p, sizeof h);
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return f16_to_f32(h);
#endif
}

inline uint32_t u32_at(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

// The codebooks of the non-linear 4-bit formats (ggml's kvalues_iq4nl; kvalues_mxfp4 is e2m1 doubled, which
// ggml compensates by halving the E8M0 scale).
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes s (ggml's get_scale_min_k4).
inline void scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Q4_K / Q5_K: all 8 scales, then all 8 mins, of the 12 packed bytes s as 16 bytes in out (ggml's kmask steps: the
// 6-bit fields 4 at a time in 32-bit words, where scale_min_k4 takes one).
inline void scales_mins_k4(const uint8_t* s, uint32_t out[4]) {
  memcpy(out, s, 12);
  constexpr uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
  out[3] = ((out[2] >> 4) & k2) | (((out[1] >> 6) & k3) << 4);
  const uint32_t m03 = out[1] & k1;
  out[1] = (out[2] & k2) | (((out[0] >> 6) & k3) << 4);
  out[2] = m03;
  out[0] &= k1;
}

// Q3_K: the 6-bit scale i (0..15) of 16 elements, unbiased (ggml's aux[] unpacking of the 12 bytes s): low 4 bits
// are nibble i / 8 of s[i % 8], high 2 bits are bits 2(i / 4) of s[8 + i % 4].
inline int scale_k3(const uint8_t* s, int i) {
  return (((s[i & 7] >> (4 * (i >> 3))) & 0xF) | (((s[8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4)) - 32;
}

// IQ4_XS: the 6-bit scale of group g (0..7), unbiased.
inline int scale_iq4xs(const uint8_t* blk, int g) {
  const int sh = blk[2] | blk[3] << 8;
  return (((blk[4 + g / 2] >> (4 * (g & 1))) & 0xF) | (((sh >> (2 * g)) & 3) << 4)) - 32;
}

// MXFP4's scale: ggml's GGML_E8M0_TO_FP32_HALF, 2^(e - 128) (e < 2 give f32 subnormals, as in ggml).
inline float e8m0_half(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

// Group g (32 elements) of a block as x[l] = scale[l / 16] * q[l] + offset[l / 16].
struct GroupParams {
  float scale[2], offset[2];
};

template <int DT>
inline GroupParams group_params(const uint8_t* blk, int g) {
  GroupParams p;
  auto both = [&p](float scale, float offset) {
    p.scale[0] = p.scale[1] = scale;
    p.offset[0] = p.offset[1] = offset;
  };
  if constexpr (DT == GK_Q8_0 || DT == GK_IQ4_NL) {
    (void)g;
    both(f16_at(blk), 0.0f);
  } else if constexpr (DT == GK_MXFP4) {
    (void)g;
    both(e8m0_half(blk[0]), 0.0f);
  } else if constexpr (DT == GK_Q4_0) {
    (void)g;
    both(f16_at(blk), -8.0f * f16_at(blk));  // exact: a power-of-two multiple
  } else if constexpr (DT == GK_Q5_0) {
    (void)g;
    both(f16_at(blk), -16.0f * f16_at(blk));  // exact
  } else if constexpr (DT == GK_Q4_1 || DT == GK_Q5_1) {
    (void)g;
    both(f16_at(blk), f16_at(blk + 2));
  } else if constexpr (DT == GK_Q4_K || DT == GK_Q5_K) {
    int sc, m;
    scale_min_k4(blk + 4, g, sc, m);
    both(f16_at(blk) * (float)sc, -(f16_at(blk + 2) * (float)m));
  } else if constexpr (DT == GK_IQ4_XS) {
    both(f16_at(blk) * (float)scale_iq4xs(blk, g), 0.0f);
  } else if constexpr (DT == GK_Q2_K) {
    // scales[2g + i]: low nibble the scale, high nibble the min of elements 16i .. 16i + 16 of the group.
    const float d = f16_at(blk + 80), dmin = f16_at(blk + 82);
    for (int i = 0; i < 2; ++i) {
      const uint8_t s = blk[2 * g + i];
      p.scale[i] = d * (float)(s & 0xF);
      p.offset[i] = -(dmin * (float)(s >> 4));
    }
  } else if constexpr (DT == GK_Q3_K) {
    const float d = f16_at(blk + 108);
    for (int i = 0; i < 2; ++i) {
      p.scale[i] = d * (float)scale_k3(blk + 96, 2 * g + i);
      p.offset[i] = -4.0f * p.scale[i];  // exact
    }
  } else {
    static_assert(DT == GK_Q6_K, "group_params: unhandled dtype");
    // Group g = 4h + t: scales[8h + 2t] for its first 16 elements, scales[8h + 2t + 1] for the rest.
    const float d = f16_at(blk + 208);
    const int8_t* sc = (const int8_t*)(blk + 192) + 2 * g;
    for (int i = 0; i < 2; ++i) {
      p.scale[i] = d * (float)sc[i];
      p.offset[i] = -32.0f * p.scale[i];  // exact
    }
  }
  return p;
}

// The 4-bit codes of a 32-element group stored as 16 bytes: element l < 16 the low nibble of qs[l], l + 16 the
// high nibble (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, MXFP4, and each IQ4_XS group).
inline void nibbles32(const uint8_t* qs, int32_t q[32]) {
  for (int l = 0; l < 16; ++l) {
    q[l] = qs[l] & 0xF;
    q[l + 16] = qs[l] >> 4;
  }
}

// The fifth bits of Q5_0 / Q5_1: bit l of the 32-bit qh for element l.
inline void add_qh32(uint32_t qh, int32_t q[32]) {
  for (int l = 0; l < 32; ++l) q[l] |= (int32_t)(((qh >> l) & 1) << 4);
}

// The integer codes of group g (0..32/elems-1) of a block, before scale and offset.
template <int DT>
inline void group_codes(const uint8_t* blk, int g, int32_t q[32]) {
  if constexpr (DT == GK_Q8_0) {
    (void)g;
    for (int l = 0; l < 32; ++l) q[l] = (int8_t)blk[2 + l];
  } else if constexpr (DT == GK_Q4_0 || DT == GK_IQ4_NL) {
    (void)g;
    nibbles32(blk + 2, q);
    if constexpr (DT == GK_IQ4_NL) {
      for (int l = 0; l < 32; ++l) q[l] = kIq4nlValues[q[l]];
    }
  } else if constexpr (DT == GK_Q4_1) {
    (void)g;
    nibbles32(blk + 4, q);
  } else if constexpr (DT == GK_MXFP4) {
    (void)g;
    nibbles32(blk + 1, q);
    for (int l = 0; l < 32; ++l) q[l] = kMxfp4Values[q[l]];
  } else if constexpr (DT == GK_Q5_0) {
    (void)g;
    nibbles32(blk + 6, q);
    add_qh32(u32_at(blk + 2), q);
  } else if constexpr (DT == GK_Q5_1) {
    (void)g;
    nibbles32(blk + 8, q);
    add_qh32(u32_at(blk + 4), q);
  } else if constexpr (DT == GK_IQ4_XS) {
    nibbles32(blk + 8 + 16 * g, q);
    for (int l = 0; l < 32; ++l) q[l] = kIq4nlValues[q[l]];
  } else if constexpr (DT == GK_Q4_K || DT == GK_Q5_K) {
    // Sub-blocks 2p and 2p + 1 are the low and high nibbles of qs[32p .. 32p + 32); Q5_K's fifth bit of
    // sub-block g is bit g of qh[l].
    const uint8_t* qs = blk + (DT == GK_Q4_K ? 16 : 48) + 32 * (g >> 1);
    const int shift = 4 * (g & 1);
    for (int l = 0; l < 32; ++l) q[l] = (qs[l] >> shift) & 0xF;
    if constexpr (DT == GK_Q5_K) {
      for (int l = 0; l < 32; ++l) q[l] |= ((blk[16 + l] >> g) & 1) << 4;
    }
  } else if constexpr (DT == GK_Q2_K || DT == GK_Q3_K) {
    // Group g = 4h + t: bits 2t, 2t + 1 of qs[32h + l]; Q3_K's third bit is bit g of hmask[l].
    const uint8_t* qs = blk + (DT == GK_Q2_K ? 16 : 32) + 32 * (g >> 2);
    const int shift = 2 * (g & 3);
    for (int l = 0; l < 32; ++l) q[l] = (qs[l] >> shift) & 3;
    if constexpr (DT == GK_Q3_K) {
      for (int l = 0; l < 32; ++l) q[l] |= ((blk[l] >> g) & 1) << 2;
    }
  } else {
    static_assert(DT == GK_Q6_K, "group_codes: unhandled dtype");
    // Group g = 4h + t: low 4 bits from ql[64h + 32(t & 1) + l] (low nibble for t < 2, else high),
    // top 2 bits from bits 2t, 2t + 1 of qh[32h + l].
    const int h = g >> 2, t = g & 3;
    const uint8_t* ql = blk + 64 * h + 32 * (t & 1);
    const uint8_t* qh = blk + 128 + 32 * h;
    const int shift = 4 * (t >> 1);
    for (int l = 0; l < 32; ++l) q[l] = ((ql[l] >> shift) & 0xF) | (((qh[l] >> (2 * t)) & 3) << 4);
  }
}

// One block (Block<DT>::elems values) to f32.
template <int DT>
inline void decode_block(const uint8_t* blk, float* out) {
  for (int g = 0; g < Block<DT>::elems / 32; ++g) {
    const GroupParams p = group_params<DT>(blk, g);
    int32_t q[32];
    group_codes<DT>(blk, g, q);
    for (int l = 0; l < 32; ++l) out[32 * g + l] = p.scale[l >> 4] * (float)q[l] + p.offset[l >> 4];
  }
}

// Elements [first, first + n) of a quantized array to f32; first and n are whole blocks.
template <int DT>
inline void decode_range(const void* base, int64_t first, int64_t n, float* out) {
  using B = Block<DT>;
  const uint8_t* p = (const uint8_t*)base + first / B::elems * B::bytes;
  for (int64_t i = 0; i < n; i += B::elems, p += B::bytes) decode_block<DT>(p, out + i);
}

inline void decode_range(const void* base, int32_t dtype, int64_t first, int64_t n, float* out) {
  switch (dtype) {
#define GK_DECODE_CASE(DT) \
  case DT: decode_range<DT>(base, first, n, out); break;
    GK_QUANT_DTYPES(GK_DECODE_CASE)
#undef GK_DECODE_CASE
    default: break;
  }
}

}  // namespace gk::quant

// GGUF block formats on the CPU: geometry and plain block decoders.
//
// Layouts (little-endian, as ggml stores them; kernels/include/gemmakit.h lists them with the dtypes):
//   Q8_0  34 B / 32:  f16 d, i8 qs[32]                                  x = d * q
//   Q5_0  22 B / 32:  f16 d, u8 qh[4], u8 qs[16]                        x = d * (q5 - 16)
//   Q4_K 144 B / 256: f16 d, f16 dmin, u8 scales[12], u8 qs[128]        x = (d * sc) * q4 - (dmin * m)
//   Q6_K 210 B / 256: u8 ql[128], u8 qh[64], i8 scales[16], f16 d       x = (d * sc) * (q6 - 32)
// Every format is decoded here in groups of 32 consecutive elements, each group with one (scale, offset)
// pair per 16 elements: x = scale * q + offset with a small integer q. The SIMD kernels in linear.cpp read
// the same helpers for the per-group parameters and decode the integers in registers; the scalar decoders
// below are the plain statement of each format (embedding rows, tails, and the non-SIMD build).
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

// Q4_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes s (ggml's get_scale_min_k4).
inline void scale_min_k4(const uint8_t* s, int j, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Group g (32 elements) of a block as x[l] = scale[l / 16] * q[l] + offset[l / 16].
struct GroupParams {
  float scale[2], offset[2];
};

template <int DT>
inline GroupParams group_params(const uint8_t* blk, int g) {
  GroupParams p;
  if constexpr (DT == GK_Q8_0) {
    (void)g;
    p.scale[0] = p.scale[1] = f16_at(blk);
    p.offset[0] = p.offset[1] = 0.0f;
  } else if constexpr (DT == GK_Q5_0) {
    (void)g;
    const float d = f16_at(blk);
    p.scale[0] = p.scale[1] = d;
    p.offset[0] = p.offset[1] = -16.0f * d;  // exact: a power-of-two multiple
  } else if constexpr (DT == GK_Q4_K) {
    int sc, m;
    scale_min_k4(blk + 4, g, sc, m);
    p.scale[0] = p.scale[1] = f16_at(blk) * (float)sc;
    p.offset[0] = p.offset[1] = -(f16_at(blk + 2) * (float)m);
  } else {
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

// The integer codes of group g (0..32/elems-1) of a block, before scale and offset.
template <int DT>
inline void group_codes(const uint8_t* blk, int g, int32_t q[32]) {
  if constexpr (DT == GK_Q8_0) {
    (void)g;
    for (int l = 0; l < 32; ++l) q[l] = (int8_t)blk[2 + l];
  } else if constexpr (DT == GK_Q5_0) {
    (void)g;
    const uint32_t qh = u32_at(blk + 2);
    const uint8_t* qs = blk + 6;
    for (int l = 0; l < 16; ++l) {
      q[l] = (qs[l] & 0xF) | (int32_t)(((qh >> l) & 1) << 4);
      q[l + 16] = (qs[l] >> 4) | (int32_t)(((qh >> (l + 16)) & 1) << 4);
    }
  } else if constexpr (DT == GK_Q4_K) {
    // Sub-blocks 2p and 2p + 1 are the low and high nibbles of qs[32p .. 32p + 32).
    const uint8_t* qs = blk + 16 + 32 * (g >> 1);
    const int shift = 4 * (g & 1);
    for (int l = 0; l < 32; ++l) q[l] = (qs[l] >> shift) & 0xF;
  } else {
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
    case GK_Q8_0: decode_range<GK_Q8_0>(base, first, n, out); break;
    case GK_Q5_0: decode_range<GK_Q5_0>(base, first, n, out); break;
    case GK_Q4_K: decode_range<GK_Q4_K>(base, first, n, out); break;
    default: decode_range<GK_Q6_K>(base, first, n, out); break;
  }
}

}  // namespace gk::quant

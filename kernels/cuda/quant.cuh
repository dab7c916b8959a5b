// Block decoders for GGUF-quantized weights (every format of kernels/common/dtype.h; layouts in
// kernels/cpu/quant.h), shared by linear.cu (matrix-vector and tiled paths), moe.cu and embedding.cu.
//
// Everything here works on groups of 8 consecutive elements of one row: every block size (32, 256) is a multiple
// of 8, so a group never straddles two blocks, and 8 quants fit in two 32-bit registers for every format. A
// group is read in two steps so callers can keep loads in flight:
//   load_raw8<DT, L>(block, e0)  -> Raw8   the raw bytes of the group and of the block header it needs;
//                                          loads only, nothing depends on their values yet
//   decode8<DT>(raw, e0, out)             the 8 weights, bit-identical to ggml's dequantize_row_* (same
//                                          operations, same order), for embeddings and shared-memory tiles
//   dot8<DT>(raw, e0, x, xsum)             Σ x[i] * w[i], with the block scales factored out of the sum (fewer
//                                          multiplies per element for the matrix-vector path; f32 throughout)
// e0 is the group's first element inside its block (a multiple of 8).
//
// Blocks are packed back to back with no padding (17 .. 210 bytes), so most are only 2-byte aligned (Q4_K:
// 16-byte aligned when the tensor is, since 144 is a multiple of 16; MXFP4's 17 bytes not even that). Loads
// therefore never cast a block pointer to anything wider than its guaranteed alignment: AlignedLoad reads 16-bit
// words (32-bit for Q4_K) and needs the tensor base at quant_align(DT); ByteLoad assembles words from single bytes
// and needs nothing (MXFP4 always uses it). Every field of every other format sits at an even offset, so an even
// base keeps all 16-bit loads aligned.
//
// All functions are __host__ __device__ so the decoders can be checked against a scalar transcription of ggml on
// a machine without a GPU.
#pragma once
#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include "../common/dtype.h"
#include "../include/gemmakit.h"

// #pragma unroll inside the __host__ __device__ functions below, without -Wunknown-pragmas noise from the host pass.
#ifdef __CUDA_ARCH__
#define GK_QUANT_UNROLL _Pragma("unroll")
#else
#define GK_QUANT_UNROLL
#endif

namespace gk::cuda::quant {

using gk::block_bytes;  // block geometry: common/dtype.h
using gk::block_elems;
using gk::is_quant_dtype;
// Base alignment AlignedLoad needs: Q4_K reads 32-bit words (every field is at a multiple of 4 and 144 % 4 == 0),
// MXFP4 single bytes (17-byte blocks), the others 16-bit words (their block sizes are only even).
GK_HD constexpr int quant_align(int dt) { return dt == GK_Q4_K ? 4 : dt == GK_MXFP4 ? 1 : 2; }
// Formats whose blocks add an offset (x = scale * q + m, or - dmin * m): dot8 needs Σ x of the group.
GK_HD constexpr bool needs_xsum(int dt) {
  return dt == GK_Q4_K || dt == GK_Q5_K || dt == GK_Q2_K || dt == GK_Q4_1 || dt == GK_Q5_1;
}
// Formats whose 4-bit codes index a codebook (ggml's kvalues_iq4nl, kvalues_mxfp4) rather than being the value.
GK_HD constexpr bool has_codebook(int dt) { return dt == GK_IQ4_NL || dt == GK_IQ4_XS || dt == GK_MXFP4; }

// ---- scalar helpers -----------------------------------------------------------------------------------

GK_HD float bits_as_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// f16 bits to f32 (exact).
GK_HD float half_bits_to_f32(uint32_t h) {
#ifdef __CUDA_ARCH__
  return __half2float(__ushort_as_half((unsigned short)(h & 0xffffu)));
#else
  return gk::f16_to_f32((uint16_t)(h & 0xffffu));
#endif
}

GK_HD uint32_t byte_perm(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, sel);
#else
  const uint64_t v = ((uint64_t)b << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= (uint32_t)((v >> (8 * ((sel >> (4 * i)) & 7))) & 0xffu) << (8 * i);
  return r;
#endif
}

// Byte i of w (read as unsigned) minus `offset`, as an exact f32. The byte is placed in the mantissa of 2^23
// (one PRMT) and 2^23 + offset subtracted (one FADD): both operands lie in [2^23, 2^24), where every integer is
// representable, so the result is exact. This replaces I2F, which runs at a quarter of the FMA rate and would
// otherwise bound the Q8_0 matrix-vector kernel below DRAM bandwidth.
GK_HD float byte_to_f32(uint32_t w, int i, float offset) {
  return bits_as_float(byte_perm(w, 0x4B000000u, 0x7650u + (uint32_t)i)) - (8388608.0f + offset);
}

// Bits 0..3 of h to bit 0 of bytes 0..3 (the multiply places shifted copies at distinct positions: no carries).
GK_HD uint32_t spread4(uint32_t h) { return ((h & 0xfu) * 0x00204081u) & 0x01010101u; }

// ---- loads -------------------------------------------------------------------------------------------

// Naturally aligned loads through the read-only cache; p must be 2- (u16) or 4-byte (u32) aligned.
struct AlignedLoad {
  static GK_HD uint32_t u16(const uint8_t* p) {
#ifdef __CUDA_ARCH__
    return __ldg((const unsigned short*)p);
#else
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
#endif
  }
  static GK_HD uint32_t u32(const uint8_t* p) {
#ifdef __CUDA_ARCH__
    return __ldg((const unsigned int*)p);
#else
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#endif
  }
};

// Any alignment (little-endian assembly from single bytes).
struct ByteLoad {
  static GK_HD uint32_t u16(const uint8_t* p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
  static GK_HD uint32_t u32(const uint8_t* p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  }
};

// The raw bytes of one 8-element group. q0/q1: the 8 quant bytes (or nibble-carrying bytes) of the group, element
// order; a, b, c, e: format-specific header words (see load_raw8). Unused fields are optimised away.
struct Raw8 {
  uint32_t q0, q1, a, b, c, e, f, h;
};

// The 8 bytes at p (even address for AlignedLoad) as two words, element order.
template <class L>
GK_HD void load8_bytes(const uint8_t* p, uint32_t* w0, uint32_t* w1) {
  *w0 = L::u16(p) | L::u16(p + 2) << 16;
  *w1 = L::u16(p + 4) | L::u16(p + 6) << 16;
}

template <int DT, class L>
GK_HD Raw8 load_raw8(const uint8_t* blk, int e0) {
  Raw8 r{};
  if constexpr (DT == GK_Q8_0) {
    // {f16 d; i8 qs[32]}: group bytes qs[e0 .. e0+8).
    r.a = L::u16(blk);
    const uint8_t* q = blk + 2 + e0;
    r.q0 = L::u16(q) | L::u16(q + 2) << 16;
    r.q1 = L::u16(q + 4) | L::u16(q + 6) << 16;
  } else if constexpr (DT == GK_Q5_0) {
    // {f16 d; u8 qh[4]; u8 qs[16]}: element j < 16 is the low nibble of qs[j], element j >= 16 the high nibble of
    // qs[j - 16]; its fifth bit is bit j of qh. The group's 8 fifth bits are therefore qh byte e0 / 8, read as
    // part of the aligned 16-bit word holding it.
    r.a = L::u16(blk);
    r.b = L::u16(blk + 2 + ((e0 >> 3) & ~1));
    const uint8_t* q = blk + 6 + (e0 & 15);
    r.q0 = L::u16(q) | L::u16(q + 2) << 16;
    r.q1 = L::u16(q + 4) | L::u16(q + 6) << 16;
  } else if constexpr (DT == GK_Q4_K) {
    // {f16 d, dmin; u8 scales[12]; u8 qs[128]}: 64-element chunk c = e0 / 64 lives in qs[32c .. 32c+32), low
    // nibbles for its first 32 elements (sub-block 2c), high nibbles for the next 32 (sub-block 2c+1). All 12
    // scale bytes are kept: sub-blocks 4..7 combine bits from three of them.
    r.a = L::u32(blk);  // d | dmin << 16
    r.b = L::u32(blk + 4);
    r.c = L::u32(blk + 8);
    r.e = L::u32(blk + 12);
    const uint8_t* q = blk + 16 + 32 * (e0 >> 6) + (e0 & 31);
    r.q0 = L::u32(q);
    r.q1 = L::u32(q + 4);
  } else if constexpr (DT == GK_Q4_0 || DT == GK_IQ4_NL || DT == GK_Q4_1 || DT == GK_Q5_1) {
    // {f16 d; [f16 m;] [u8 qh[4];] u8 qs[16]}: element j < 16 is the low nibble of qs[j], element j >= 16 the high
    // nibble of qs[j - 16]; Q5_1's fifth bits as Q5_0's. a = d | m << 16.
    constexpr int qs_at = DT == GK_Q4_1 ? 4 : DT == GK_Q5_1 ? 8 : 2;
    r.a = L::u16(blk);
    if constexpr (DT == GK_Q4_1 || DT == GK_Q5_1) r.a |= L::u16(blk + 2) << 16;
    if constexpr (DT == GK_Q5_1) r.b = L::u16(blk + 4 + ((e0 >> 3) & ~1));
    load8_bytes<L>(blk + qs_at + (e0 & 15), &r.q0, &r.q1);
  } else if constexpr (DT == GK_MXFP4) {
    // {u8 e; u8 qs[16]}: odd offsets, so byte loads whatever L is.
    r.a = blk[0];
    load8_bytes<ByteLoad>(blk + 1 + (e0 & 15), &r.q0, &r.q1);
  } else if constexpr (DT == GK_IQ4_XS) {
    // {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: group g = e0 / 32 is an IQ4_NL block's qs at 8 + 16g.
    const int g = e0 >> 5;
    r.a = L::u16(blk) | L::u16(blk + 2) << 16;
    r.b = L::u16(blk + 4 + ((g >> 1) & ~1));  // the 16-bit word holding scales_l[g / 2]
    load8_bytes<L>(blk + 8 + 16 * g + (e0 & 15), &r.q0, &r.q1);
  } else if constexpr (DT == GK_Q2_K || DT == GK_Q3_K) {
    // Q2_K {u8 scales[16]; u8 qs[64]; f16 d, dmin}, Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: element
    // e = 128h + 32t + l takes bits 2t, 2t + 1 of qs[32h + l] (Q3_K: bit e / 32 of hmask[l] on top).
    const int h = e0 >> 7, l = e0 & 31, i = e0 >> 4;  // i: the 16-element scale
    load8_bytes<L>(blk + (DT == GK_Q2_K ? 16 : 32) + 32 * h + l, &r.q0, &r.q1);
    if constexpr (DT == GK_Q2_K) {
      r.a = L::u16(blk + 80) | L::u16(blk + 82) << 16;
      r.b = L::u16(blk + (i & ~1));  // holds scales[i]
    } else {
      load8_bytes<L>(blk + l, &r.c, &r.e);
      r.a = L::u16(blk + 108);
      // Scale i: low nibble from byte i % 8, top 2 bits from byte 8 + i % 4 of the 12 scale bytes at 96.
      r.b = L::u16(blk + 96 + ((i & 7) & ~1)) | L::u16(blk + 104 + ((i & 3) & ~1)) << 16;
    }
  } else if constexpr (DT == GK_Q5_K) {
    // Q4_K's layout with qh[32] between the scales and qs: the fifth bit of element e = 32g + l is bit g of qh[l].
    r.a = L::u16(blk) | L::u16(blk + 2) << 16;
    r.b = L::u16(blk + 4) | L::u16(blk + 6) << 16;
    r.c = L::u16(blk + 8) | L::u16(blk + 10) << 16;
    r.e = L::u16(blk + 12) | L::u16(blk + 14) << 16;
    load8_bytes<L>(blk + 16 + (e0 & 31), &r.f, &r.h);
    load8_bytes<L>(blk + 48 + 32 * (e0 >> 6) + (e0 & 31), &r.q0, &r.q1);
  } else if constexpr (DT == GK_Q6_K) {
    // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: element e = 128h + 32g + l (g = 0..3, l < 32) takes ql[64h +
    // 32(g&1) + l] (low nibble for g < 2, high for g >= 2), bits 2g..2g+1 of qh[32h + l], and scale e / 16.
    const int h = e0 >> 7, g = (e0 >> 5) & 3, l = e0 & 31;
    const uint8_t* ql = blk + 64 * h + 32 * (g & 1) + l;
    const uint8_t* qh = blk + 128 + 32 * h + l;
    r.q0 = L::u16(ql) | L::u16(ql + 2) << 16;
    r.q1 = L::u16(ql + 4) | L::u16(ql + 6) << 16;
    r.c = L::u16(qh) | L::u16(qh + 2) << 16;
    r.e = L::u16(qh + 4) | L::u16(qh + 6) << 16;
    r.b = L::u16(blk + 192 + ((e0 >> 4) & ~1));  // the 16-bit word holding scales[e0 / 16]
    r.a = L::u16(blk + 208);
  }
  return r;
}

// Q4_K sub-block s (0..7): 6-bit scale and min from the 12 packed bytes (ggml's get_scale_min_k4). Bytes 0..3
// hold scales 0..3 (and the top 2 bits of scales 4..7), bytes 4..7 mins 0..3 (and the top bits of mins 4..7),
// bytes 8..11 the low 4 bits of scale and min 4..7.
GK_HD void q4k_scale_min(const Raw8& r, int s, float* sc, float* mn) {
  const int t = 8 * (s & 3);
  const uint32_t b0 = (r.b >> t) & 0xffu, b1 = (r.c >> t) & 0xffu, b2 = (r.e >> t) & 0xffu;
  uint32_t d, m;
  if (s < 4) {
    d = b0 & 63u;
    m = b1 & 63u;
  } else {
    d = (b2 & 0xfu) | (b0 >> 6) << 4;
    m = (b2 >> 4) | (b1 >> 6) << 4;
  }
  *sc = (float)d;
  *mn = (float)m;
}

// Four codebook lookups at once: bytes 0..3 of idx (each 0..15) to the int8 bytes of ggml's kvalues_iq4nl or
// kvalues_mxfp4. Two byte permutes pick from the low and the high 8 entries; bit 3 of each index chooses.
GK_HD uint32_t codebook(uint32_t idx, bool mxfp4) {
  // The tables as little-endian words of int8 (kernels/cpu/quant.h has them as arrays).
  const uint32_t t0 = mxfp4 ? 0x03020100u : 0xBFAD9881u, t1 = mxfp4 ? 0x0C080604u : 0xF6EADDCFu;
  const uint32_t t2 = mxfp4 ? 0xFDFEFF00u : 0x26190D01u, t3 = mxfp4 ? 0xF4F8FAFCu : 0x71594535u;
  const uint32_t x = idx & 0x07070707u;
  const uint32_t sel = (x & 0x7u) | (x >> 4 & 0x70u) | (x >> 8 & 0x700u) | (x >> 12 & 0x7000u);
  const uint32_t lo = byte_perm(t0, t1, sel), hi = byte_perm(t2, t3, sel);
  const uint32_t high = ((idx >> 3) & 0x01010101u) * 0xffu;
  return (lo & ~high) | (hi & high);
}

// MXFP4's E8M0 scale, ggml's GGML_E8M0_TO_FP32_HALF: 2^(e - 128) (e < 2: f32 subnormals).
GK_HD float e8m0_half(uint32_t e) { return bits_as_float(e < 2 ? 0x00200000u << e : (e - 1) << 23); }

// The 8 group bytes as unsigned integers in 0..255 (Q8_0: biased by 128), one byte each, in w0 (elements 0..3)
// and w1 (elements 4..7); `offset` is what to subtract to get the signed quant. Shared by decode8 and dot8.
template <int DT>
GK_HD void quant_bytes(const Raw8& r, int e0, uint32_t* w0, uint32_t* w1, float* offset) {
  if constexpr (DT == GK_Q8_0) {
    *w0 = r.q0 ^ 0x80808080u;  // int8 q -> q + 128
    *w1 = r.q1 ^ 0x80808080u;
    *offset = 128.0f;
  } else if constexpr (DT == GK_Q5_0) {
    const int sh = e0 >= 16 ? 4 : 0;
    const uint32_t hb = (r.b >> (8 * ((e0 >> 3) & 1))) & 0xffu;  // fifth bits of the 8 elements
    *w0 = ((r.q0 >> sh) & 0x0f0f0f0fu) | spread4(hb) << 4;
    *w1 = ((r.q1 >> sh) & 0x0f0f0f0fu) | spread4(hb >> 4) << 4;
    *offset = 16.0f;
  } else if constexpr (DT == GK_Q4_K) {
    const int sh = ((e0 >> 5) & 1) * 4;
    *w0 = (r.q0 >> sh) & 0x0f0f0f0fu;
    *w1 = (r.q1 >> sh) & 0x0f0f0f0fu;
    *offset = 0.0f;
  } else if constexpr (DT == GK_Q4_0 || DT == GK_Q4_1 || DT == GK_Q5_1 || has_codebook(DT)) {
    const int sh = (e0 & 16) ? 4 : 0;
    *w0 = (r.q0 >> sh) & 0x0f0f0f0fu;
    *w1 = (r.q1 >> sh) & 0x0f0f0f0fu;
    *offset = DT == GK_Q4_0 ? 8.0f : 0.0f;
    if constexpr (DT == GK_Q5_1) {
      const uint32_t hb = (r.b >> (8 * ((e0 >> 3) & 1))) & 0xffu;
      *w0 |= spread4(hb) << 4;
      *w1 |= spread4(hb >> 4) << 4;
    }
    if constexpr (has_codebook(DT)) {
      *w0 = codebook(*w0, DT == GK_MXFP4) ^ 0x80808080u;  // signed values -> value + 128, as Q8_0
      *w1 = codebook(*w1, DT == GK_MXFP4) ^ 0x80808080u;
      *offset = 128.0f;
    }
  } else if constexpr (DT == GK_Q2_K || DT == GK_Q3_K) {
    const int sh = 2 * ((e0 >> 5) & 3);
    *w0 = (r.q0 >> sh) & 0x03030303u;
    *w1 = (r.q1 >> sh) & 0x03030303u;
    *offset = 0.0f;
    if constexpr (DT == GK_Q3_K) {
      const int g = e0 >> 5;
      *w0 |= ((r.c >> g) & 0x01010101u) << 2;
      *w1 |= ((r.e >> g) & 0x01010101u) << 2;
      *offset = 4.0f;
    }
  } else if constexpr (DT == GK_Q5_K) {
    const int g = e0 >> 5, sh = (g & 1) * 4;
    *w0 = ((r.q0 >> sh) & 0x0f0f0f0fu) | ((r.f >> g) & 0x01010101u) << 4;
    *w1 = ((r.q1 >> sh) & 0x0f0f0f0fu) | ((r.h >> g) & 0x01010101u) << 4;
    *offset = 0.0f;
  } else if constexpr (DT == GK_Q6_K) {
    const int g = (e0 >> 5) & 3, sh = (g >> 1) * 4, hs = 2 * g;
    *w0 = ((r.q0 >> sh) & 0x0f0f0f0fu) | ((r.c >> hs) & 0x03030303u) << 4;
    *w1 = ((r.q1 >> sh) & 0x0f0f0f0fu) | ((r.e >> hs) & 0x03030303u) << 4;
    *offset = 32.0f;
  }
}

// The group's x = scale * q - bias (q: the signed code, bias 0 but for needs_xsum formats). Q8_0, Q5_0, Q4_0: d;
// Q4_K / Q5_K: d * sc and dmin * m; Q6_K: d * sc; Q4_1 / Q5_1: d and -m; Q2_K: d * (sc & 15) and dmin * (sc >> 4);
// Q3_K: d * (sc - 32); IQ4_NL: d; IQ4_XS: d * (ls - 32); MXFP4: 2^(e - 128). Every product is of an f16 and an
// integer of at most 6 bits: exact in f32, as in ggml.
template <int DT>
GK_HD void group_scale(const Raw8& r, int e0, float* scale, float* bias) {
  *bias = 0.0f;
  if constexpr (DT == GK_Q4_K || DT == GK_Q5_K) {
    float sc, mn;
    q4k_scale_min(r, e0 >> 5, &sc, &mn);
    *scale = half_bits_to_f32(r.a) * sc;
    *bias = half_bits_to_f32(r.a >> 16) * mn;
  } else if constexpr (DT == GK_Q6_K) {
    const int8_t sc = (int8_t)((r.b >> (8 * ((e0 >> 4) & 1))) & 0xffu);
    *scale = half_bits_to_f32(r.a) * (float)sc;
  } else if constexpr (DT == GK_Q4_1 || DT == GK_Q5_1) {
    *scale = half_bits_to_f32(r.a);
    *bias = -half_bits_to_f32(r.a >> 16);
  } else if constexpr (DT == GK_Q2_K) {
    const uint32_t sc = (r.b >> (8 * ((e0 >> 4) & 1))) & 0xffu;
    *scale = half_bits_to_f32(r.a) * (float)(sc & 0xfu);
    *bias = half_bits_to_f32(r.a >> 16) * (float)(sc >> 4);
  } else if constexpr (DT == GK_Q3_K) {
    const int i = e0 >> 4;
    const uint32_t lo = (r.b >> (8 * (i & 1) + 4 * (i >> 3))) & 0xfu;
    const uint32_t hi = (r.b >> (16 + 8 * (i & 1) + 2 * (i >> 2))) & 3u;
    *scale = half_bits_to_f32(r.a) * (float)((int)(lo | hi << 4) - 32);
  } else if constexpr (DT == GK_IQ4_XS) {
    const int g = e0 >> 5;
    const uint32_t lo = (r.b >> (8 * ((g >> 1) & 1) + 4 * (g & 1))) & 0xfu;
    const uint32_t hi = (r.a >> (16 + 2 * g)) & 3u;
    *scale = half_bits_to_f32(r.a) * (float)((int)(lo | hi << 4) - 32);
  } else if constexpr (DT == GK_MXFP4) {
    *scale = e8m0_half(r.a);
  } else {
    *scale = half_bits_to_f32(r.a);
  }
}

// The 8 weights, exactly as ggml's dequantize_row_* computes them: scale * q is exact (group_scale), so
// scale * q - bias rounds once whether or not it is contracted to an FMA, as ggml's q * d + m or d * q - m does.
template <int DT>
GK_HD void decode8(const Raw8& r, int e0, float* out) {
  uint32_t w0, w1;
  float off;
  quant_bytes<DT>(r, e0, &w0, &w1, &off);
  float scale, bias;
  group_scale<DT>(r, e0, &scale, &bias);
GK_QUANT_UNROLL
  for (int i = 0; i < 4; ++i) {
    out[i] = scale * byte_to_f32(w0, i, off) - bias;
    out[4 + i] = scale * byte_to_f32(w1, i, off) - bias;
  }
}

// Σ x[i] * w[i] over the group with the scale applied once: scale * Σ x[i] q[i] (- bias * xsum for needs_xsum
// formats, where xsum = Σ x[i] is the caller's, computed once per group and shared by every row it multiplies).
template <int DT>
GK_HD float dot8(const Raw8& r, int e0, const float* x, float xsum) {
  uint32_t w0, w1;
  float off;
  quant_bytes<DT>(r, e0, &w0, &w1, &off);
  float s0 = 0.0f, s1 = 0.0f;  // two chains: half the FMA dependency latency
GK_QUANT_UNROLL
  for (int i = 0; i < 4; ++i) {
    s0 = fmaf(x[i], byte_to_f32(w0, i, off), s0);
    s1 = fmaf(x[4 + i], byte_to_f32(w1, i, off), s1);
  }
  float scale, bias;
  group_scale<DT>(r, e0, &scale, &bias);
  if constexpr (needs_xsum(DT)) return scale * (s0 + s1) - bias * xsum;
  (void)xsum;
  return scale * (s0 + s1);
}

}  // namespace gk::cuda::quant

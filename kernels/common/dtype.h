// Scalar conversions from stored weight dtypes to f32, usable from host C++ and CUDA device code.
#pragma once
#include <stdint.h>
#include <string.h>

#include "../include/gemmakit.h"

#ifdef __CUDACC__
#define GK_HD __host__ __device__ __forceinline__
#else
#define GK_HD inline
#endif

namespace gk {

// GGUF block geometry, for host and device code alike: elements and bytes per block (1 and 0 for float dtypes).
// The one statement of it in C++ (src/runtime/quant.ts states it for TypeScript; tests/formats/gguf_test.ts
// checks both against ggml's table).
GK_HD constexpr int32_t block_elems(int32_t d) {
  switch (d) {
    case GK_Q4_0: case GK_Q4_1: case GK_Q5_0: case GK_Q5_1: case GK_Q8_0: case GK_IQ4_NL: case GK_MXFP4: return 32;
    case GK_Q2_K: case GK_Q3_K: case GK_Q4_K: case GK_Q5_K: case GK_Q6_K: case GK_IQ4_XS: return 256;
    default: return 1;
  }
}
GK_HD constexpr int32_t block_bytes(int32_t d) {
  switch (d) {
    case GK_Q4_0: return 18;
    case GK_Q4_1: return 20;
    case GK_Q5_0: return 22;
    case GK_Q5_1: return 24;
    case GK_Q8_0: return 34;
    case GK_IQ4_NL: return 18;
    case GK_MXFP4: return 17;
    case GK_Q2_K: return 84;
    case GK_Q3_K: return 110;
    case GK_Q4_K: return 144;
    case GK_Q5_K: return 176;
    case GK_Q6_K: return 210;
    case GK_IQ4_XS: return 136;
    default: return 0;
  }
}
GK_HD constexpr bool is_quant_dtype(int32_t d) { return block_bytes(d) != 0; }
// X(DT) for every block dtype: the one list that dispatching switches on both backends expand.
#define GK_QUANT_DTYPES(X)                                                                                     \
  X(GK_Q4_0) X(GK_Q4_1) X(GK_Q5_0) X(GK_Q5_1) X(GK_Q8_0) X(GK_Q2_K) X(GK_Q3_K) X(GK_Q4_K) X(GK_Q5_K) X(GK_Q6_K) \
      X(GK_IQ4_NL) X(GK_IQ4_XS) X(GK_MXFP4)

// bf16 is the top half of an f32: widening is exact.
GK_HD float bf16_to_f32(uint16_t bits) {
  uint32_t u = (uint32_t)bits << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

// IEEE binary16 to f32 (exact), subnormals, infinities and NaN included.
GK_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1fu) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: renormalise
    int e = -1;
    do {
      man <<= 1;
      ++e;
    } while ((man & 0x400u) == 0);
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

// Element i of a weight array in dtype (GK_F32, GK_F16 or GK_BF16) as f32.
GK_HD float load_f32(const void* base, int32_t dtype, int64_t i) {
  if (dtype == 0) return ((const float*)base)[i];
  if (dtype == 2) return bf16_to_f32(((const uint16_t*)base)[i]);
  return f16_to_f32(((const uint16_t*)base)[i]);
}

}  // namespace gk

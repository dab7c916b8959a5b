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
GK_HD constexpr bool is_quant_dtype(int32_t d) { return d == GK_Q5_0 || d == GK_Q8_0 || d == GK_Q4_K || d == GK_Q6_K; }
GK_HD constexpr int32_t block_elems(int32_t d) {
  return d == GK_Q4_K || d == GK_Q6_K ? 256 : is_quant_dtype(d) ? 32 : 1;
}
GK_HD constexpr int32_t block_bytes(int32_t d) {
  return d == GK_Q5_0 ? 22 : d == GK_Q8_0 ? 34 : d == GK_Q4_K ? 144 : d == GK_Q6_K ? 210 : 0;
}

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

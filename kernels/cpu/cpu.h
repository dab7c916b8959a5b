// Helpers shared by the CPU kernels.
#pragma once
#include <stdint.h>
#include <unistd.h>

#include <cmath>

#include "../common/dtype.h"
#include "../common/validate.h"

namespace gk::cpu {

inline uint64_t physical_memory_bytes() {
  return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE);
}

// Converts n weights starting at element `first` to f32 (vectorises for each dtype).
inline void load_row_f32(const void* base, int32_t dtype, int64_t first, int64_t n, float* out) {
  if (dtype == GK_F32) {
    const float* p = (const float*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else if (dtype == GK_BF16) {
    const uint16_t* p = (const uint16_t*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
  } else {
    const uint16_t* p = (const uint16_t*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
  }
}

// transformers' gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

}  // namespace gk::cpu

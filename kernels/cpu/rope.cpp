// gk_rope: rotary embedding in transformers' rotate_half layout; inv_freq carries every rope variant.
#include "cpu.h"

GK_API gk_status gk_rope(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t rotary_dim,
                         const int32_t* positions, const float* inv_freq) {
  GK_TRY(gk::validate_stream(s, "gk_rope"));
  GK_TRY(gk::validate_rope(x, tokens, heads, head_dim, rotary_dim, positions, inv_freq));
  GK_CPU_RECORD(s, gk_rope(s, x, tokens, heads, head_dim, rotary_dim, positions, inv_freq));
  const int32_t half = rotary_dim / 2;
#pragma omp parallel for schedule(static) if ((int64_t)tokens * heads * head_dim > 65536)
  for (int32_t t = 0; t < tokens; ++t) {
    for (int32_t j = 0; j < half; ++j) {
      // transformers forms freqs = inv_freq @ position in f32, then cos/sin in f32.
      const float angle = (float)positions[t] * inv_freq[j];
      const float c = std::cos(angle), sn = std::sin(angle);
      for (int32_t h = 0; h < heads; ++h) {
        float* v = x + ((int64_t)t * heads + h) * head_dim;
        const float x1 = v[j], x2 = v[j + half];
        v[j] = x1 * c - x2 * sn;
        v[j + half] = x2 * c + x1 * sn;
      }
    }
  }
  return GK_OK;
}

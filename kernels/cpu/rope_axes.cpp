// gk_rope_axes: rotary embedding over several position axes (Gemma 4's vision tower: x and y of each patch).
// The head is split into `axes` equal parts; each part is an ordinary rotate_half RoPE at its own position.
#include "cpu.h"

GK_API gk_status gk_rope_axes(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t axes,
                              const int32_t* positions, const float* inv_freq) {
  GK_TRY(gk::validate_stream(s, "gk_rope_axes"));
  GK_TRY(gk::validate_rope_axes(x, tokens, heads, head_dim, axes, positions, inv_freq));
  GK_CPU_RECORD(s, gk_rope_axes(s, x, tokens, heads, head_dim, axes, positions, inv_freq));
  const int32_t part = head_dim / axes, half = part / 2;
#pragma omp parallel for schedule(static) if ((int64_t)tokens * heads * head_dim > 65536)
  for (int32_t t = 0; t < tokens; ++t) {
    for (int32_t a = 0; a < axes; ++a) {
      const float pos = (float)positions[(int64_t)t * axes + a];
      for (int32_t j = 0; j < half; ++j) {
        // freqs = position · inv_freq in f32, then f32 cos/sin, as transformers computes them.
        const float angle = pos * inv_freq[j];
        const float c = std::cos(angle), sn = std::sin(angle);
        for (int32_t h = 0; h < heads; ++h) {
          float* v = x + ((int64_t)t * heads + h) * head_dim + (int64_t)a * part;
          const float x1 = v[j], x2 = v[j + half];
          v[j] = x1 * c - x2 * sn;
          v[j + half] = x2 * c + x1 * sn;
        }
      }
    }
  }
  return GK_OK;
}

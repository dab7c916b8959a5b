// gk_rope: rotary embedding in transformers' rotate_half layout; inv_freq carries every rope variant.
#include <cstring>

#include "cpu.h"

namespace {

constexpr int32_t kCachedHalf = 512;
// Rows of cos/sin kept per thread: a batched decode step of up to 16 sequences rotates 16 positions with each of the
// model's (one or two) tables.
constexpr int kCachedRows = 32;
constexpr int32_t kCachedTokens = 16;

struct Angles {
  int32_t position = 0, half = -1;
  float inv[kCachedHalf], c[kCachedHalf], s[kCachedHalf];
};

// The last kCachedRows (position, inv_freq) rows of cos/sin on this thread.
const Angles& angles(int32_t position, int32_t half, const float* inv_freq) {
  thread_local Angles cache[kCachedRows];
  thread_local int next = 0;
  for (const Angles& a : cache) {
    const bool same = a.position == position && a.half == half;
    if (same && memcmp(a.inv, inv_freq, sizeof(float) * (size_t)half) == 0) return a;
  }
  Angles& a = cache[next];
  next = (next + 1) % kCachedRows;
  for (int32_t j = 0; j < half; ++j) {
    // transformers forms freqs = inv_freq @ position in f32, then cos/sin in f32.
    const float angle = (float)position * inv_freq[j];
    a.c[j] = std::cos(angle);
    a.s[j] = std::sin(angle);
  }
  memcpy(a.inv, inv_freq, sizeof(float) * (size_t)half);
  a.position = position;
  a.half = half;
  return a;
}

void rotate(float* v, int32_t half, const float* c, const float* s) {
  for (int32_t j = 0; j < half; ++j) {
    const float x1 = v[j], x2 = v[j + half];
    v[j] = x1 * c[j] - x2 * s[j];
    v[j + half] = x2 * c[j] + x1 * s[j];
  }
}

}  // namespace

GK_API gk_status gk_rope(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t rotary_dim,
                         const int32_t* positions, const float* inv_freq) {
  GK_TRY(gk::validate_stream(s, "gk_rope"));
  GK_TRY(gk::validate_rope(x, tokens, heads, head_dim, rotary_dim, positions, inv_freq));
  GK_CPU_RECORD(s, gk_rope(s, x, tokens, heads, head_dim, rotary_dim, positions, inv_freq));
  const int32_t half = rotary_dim / 2;
  if (tokens <= kCachedTokens && half <= kCachedHalf) {
    // Decode (one sequence or a batched step's few): q and then k of every layer rotate at the same positions with
    // one of the model's (one or two) inv_freq tables, so the cos/sin rows libm computed for q are reused for k, and
    // layers that share a table share them too. Keyed by the position and the table's contents (not its address), so
    // the values are the ones this call would compute. No OpenMP region: a few us of sin/cos and the team cost more
    // than the rotation.
    for (int32_t t = 0; t < tokens; ++t) {
      const Angles& a = angles(positions[t], half, inv_freq);
      for (int32_t h = 0; h < heads; ++h) rotate(x + ((int64_t)t * heads + h) * head_dim, half, a.c, a.s);
    }
    return GK_OK;
  }
#pragma omp parallel for schedule(static) if ((int64_t)tokens * heads * head_dim > 65536)
  for (int32_t t = 0; t < tokens; ++t) {
    for (int32_t j = 0; j < half; ++j) {
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

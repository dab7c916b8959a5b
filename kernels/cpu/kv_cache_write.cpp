// gk_kv_cache_write: rows land at position % capacity, so one kernel serves full and ring-buffer caches.
#include <cstring>

#include "cpu.h"

GK_API gk_status gk_kv_cache_write(gk_stream* s, const float* src, float* cache, int32_t tokens, int32_t row_elems,
                                   int32_t capacity, const int32_t* position0) {
  GK_TRY(gk::validate_stream(s, "gk_kv_cache_write"));
  GK_TRY(gk::validate_kv_cache_write(src, cache, tokens, row_elems, capacity, position0));
  GK_CPU_RECORD(s, gk_kv_cache_write(s, src, cache, tokens, row_elems, capacity, position0));
  const int64_t p0 = *position0;
  GK_REQUIRE(p0 >= 0, "gk_kv_cache_write: position %lld is negative", (long long)p0);
  // Rows older than the last `capacity` would be overwritten anyway; skipping them matches CUDA.
  for (int32_t t = tokens > capacity ? tokens - capacity : 0; t < tokens; ++t) {
    const int64_t slot = (p0 + t) % capacity;
    memcpy(cache + slot * row_elems, src + (int64_t)t * row_elems, sizeof(float) * (size_t)row_elems);
  }
  return GK_OK;
}

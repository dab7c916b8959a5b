// Writes new K or V rows into a (possibly ring-buffered) cache at slots derived from a device position.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// Rows before tokens - capacity would be overwritten by later rows of the same call; skipping them means no
// two threads ever write one slot, so the result does not depend on scheduling. *position0 is read on the
// device so a captured decode step can be replayed; a negative position writes nothing rather than
// landing outside the cache.
__global__ void kv_cache_write_kernel(const float* __restrict__ src, float* __restrict__ cache, int32_t tokens,
                                      int32_t row_elems, int32_t capacity, const int32_t* __restrict__ position0) {
  const int64_t pos0 = *position0;
  if (pos0 < 0) return;
  const int32_t first = tokens > capacity ? tokens - capacity : 0;
  const int64_t total = (int64_t)(tokens - first) * row_elems;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t t = first + i / row_elems;
    const int64_t e = i % row_elems;
    const int64_t slot = (pos0 + t) % capacity;
    cache[slot * row_elems + e] = src[t * row_elems + e];
  }
}

}  // namespace

GK_API gk_status gk_kv_cache_write(gk_stream* s, const float* src, float* cache, int32_t tokens, int32_t row_elems,
                                   int32_t capacity, const int32_t* position0) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_kv_cache_write", &st));
  GK_TRY(gk::validate_kv_cache_write(src, cache, tokens, row_elems, capacity, position0));
  const int32_t rows = tokens < capacity ? tokens : capacity;
  const int64_t total = (int64_t)rows * row_elems;
  kv_cache_write_kernel<<<grid_for(total, 256), 256, 0, st>>>(src, cache, tokens, row_elems, capacity, position0);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

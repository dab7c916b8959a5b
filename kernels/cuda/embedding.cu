// Token embedding lookup: out[i, :] = table[ids[i], :] * scale.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One block per output row. ids live on the device, so a bad id cannot be reported; its row is zeroed
// instead of reading outside the table.
template <int DT>
__global__ void embedding_kernel(const void* __restrict__ table, int32_t vocab, int32_t dim,
                                 const int32_t* __restrict__ ids, float scale, float* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  float* dst = out + row * (int64_t)dim;
  if (id < 0 || id >= vocab) {
    for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = 0.0f;
    return;
  }
  const int64_t base = (int64_t)id * dim;
  for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = load_w<DT>(table, base + j) * scale;
}

}  // namespace

GK_API gk_status gk_embedding(gk_stream* s, const void* table, int32_t table_dtype, int32_t vocab, int32_t dim,
                              const int32_t* ids, int32_t n, float scale, float* out) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_embedding", &st));
  GK_TRY(gk::validate_embedding(table, table_dtype, vocab, dim, ids, n, out));
  const int threads = row_threads(dim);
  switch (table_dtype) {
    case GK_F32: embedding_kernel<GK_F32><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
    case GK_F16: embedding_kernel<GK_F16><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
    default: embedding_kernel<GK_BF16><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
  }
  GK_LAUNCH_CHECK();
  return GK_OK;
}

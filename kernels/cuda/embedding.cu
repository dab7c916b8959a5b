// Token embedding lookup: out[i, :] = table[ids[i], :] * scale.
#include "cuda_common.cuh"
#include "quant.cuh"

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

// GGUF-quantized table: only the selected rows are decoded, one 8-element group per thread step, with the same
// values as ggml's dequantize_row_* (then * scale, like the float path). A lookup reads a few KB, so loads are
// byte-wise (quant::ByteLoad): no alignment requirement on the table, unlike gk_linear.
template <int DT>
__global__ void embedding_quant_kernel(const uint8_t* __restrict__ table, int32_t vocab, int32_t dim,
                                       const int32_t* __restrict__ ids, float scale, float* __restrict__ out) {
  namespace q = gk::cuda::quant;
  constexpr int BE = q::block_elems(DT), BB = q::block_bytes(DT);
  const int64_t row = blockIdx.x;
  const int32_t id = ids[row];
  float* dst = out + row * (int64_t)dim;
  if (id < 0 || id >= vocab) {
    for (int32_t j = threadIdx.x; j < dim; j += blockDim.x) dst[j] = 0.0f;
    return;
  }
  const uint8_t* src = table + (int64_t)id * (dim / BE) * BB;
  for (int32_t g = threadIdx.x; g < dim / 8; g += blockDim.x) {
    const int32_t e = 8 * g;
    float v[8];
    q::decode8<DT>(q::load_raw8<DT, q::ByteLoad>(src + (int64_t)(e / BE) * BB, e % BE), e % BE, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) dst[e + i] = v[i] * scale;
  }
}

}  // namespace

GK_API gk_status gk_embedding(gk_stream* s, const void* table, int32_t table_dtype, int32_t vocab, int32_t dim,
                              const int32_t* ids, int32_t n, float scale, float* out) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_embedding", &st));
  GK_TRY(gk::validate_embedding(table, table_dtype, vocab, dim, ids, n, out));
  const int threads = row_threads(dim);
  const int qthreads = row_threads(dim / 8);  // quantized: dim is a multiple of 32 (validated), one thread per 8
  const uint8_t* qt = (const uint8_t*)table;
  switch (table_dtype) {
#define GK_EMBEDDING_CASE(DT) \
  case DT: embedding_quant_kernel<DT><<<n, qthreads, 0, st>>>(qt, vocab, dim, ids, scale, out); break;
    GK_QUANT_DTYPES(GK_EMBEDDING_CASE)
#undef GK_EMBEDDING_CASE
    case GK_F32: embedding_kernel<GK_F32><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
    case GK_F16: embedding_kernel<GK_F16><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
    default: embedding_kernel<GK_BF16><<<n, threads, 0, st>>>(table, vocab, dim, ids, scale, out); break;
  }
  GK_LAUNCH_CHECK();
  return GK_OK;
}

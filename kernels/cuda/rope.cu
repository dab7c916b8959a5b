// In-place rotary position embedding, transformers' half-rotation layout.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One thread per rotated pair (t, h, j). The angle is an f32 product and cos/sin are the precise f32
// functions, as torch computes them (positions @ inv_freq in f32, then cos/sin of that).
__global__ void rope_kernel(float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t half,
                            const int32_t* __restrict__ positions, const float* __restrict__ inv_freq) {
  const int64_t pairs = (int64_t)tokens * heads * half;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t j = (int32_t)(i % half);
    const int64_t th = i / half;  // token * heads + head
    const int32_t t = (int32_t)(th / heads);
    const float angle = (float)positions[t] * inv_freq[j];
    const float c = cosf(angle), s = sinf(angle);
    float* row = x + th * head_dim;
    const float x1 = row[j], x2 = row[j + half];
    row[j] = x1 * c - x2 * s;
    row[j + half] = x2 * c + x1 * s;
  }
}

}  // namespace

GK_API gk_status gk_rope(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t rotary_dim,
                         const int32_t* positions, const float* inv_freq) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_rope", &st));
  GK_TRY(gk::validate_rope(x, tokens, heads, head_dim, rotary_dim, positions, inv_freq));
  const int32_t half = rotary_dim / 2;
  const int64_t pairs = (int64_t)tokens * heads * half;
  rope_kernel<<<grid_for(pairs, 256), 256, 0, st>>>(x, tokens, heads, head_dim, half, positions, inv_freq);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// gk_rope_axes: rotary embedding over several position axes (transformers' apply_multidimensional_rope).
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// One thread per rotated pair (t, h, a, j): part a of the head rotates by positions[t·axes + a]. The angle is an
// f32 product and cos/sin the precise f32 functions, as torch computes them.
__global__ void rope_axes_kernel(float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t axes,
                                 const int32_t* __restrict__ positions, const float* __restrict__ inv_freq) {
  const int32_t part = head_dim / axes, half = part / 2;
  const int64_t pairs = (int64_t)tokens * heads * axes * half;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += (int64_t)gridDim.x * blockDim.x) {
    const int32_t j = (int32_t)(i % half);
    const int32_t a = (int32_t)((i / half) % axes);
    const int64_t th = i / ((int64_t)half * axes);  // token * heads + head
    const int64_t t = th / heads;
    const float angle = (float)positions[t * axes + a] * inv_freq[j];
    const float c = cosf(angle), s = sinf(angle);
    float* v = x + th * head_dim + (int64_t)a * part;
    const float x1 = v[j], x2 = v[j + half];
    v[j] = x1 * c - x2 * s;
    v[j + half] = x2 * c + x1 * s;
  }
}

}  // namespace

GK_API gk_status gk_rope_axes(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t axes,
                              const int32_t* positions, const float* inv_freq) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_rope_axes", &st));
  GK_TRY(gk::validate_rope_axes(x, tokens, heads, head_dim, axes, positions, inv_freq));
  const int64_t pairs = (int64_t)tokens * heads * (head_dim / 2);
  rope_axes_kernel<<<grid_for(pairs, 256), 256, 0, st>>>(x, tokens, heads, head_dim, axes, positions, inv_freq);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// Decode attention: one query per head over a (ring-buffer) KV cache; the position is read on the device.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kWarps = 16;  // warps per block, splitting one head's keys
constexpr int kKeys = 4;    // consecutive keys a warp scores together, so their reductions overlap

// One block per q head. Warp w takes key groups w, w + kWarps, ... and keeps its own online-softmax state
// (running max, sum, f32 accumulator with lane l holding dims l, l + 32, ...); the warps' states are then
// merged through shared memory. Reading *position inside the kernel lets a captured graph be replayed.
template <int D>
__global__ void __launch_bounds__(kWarps * 32, 1)
    attention_decode_kernel(const float* __restrict__ q, const float* __restrict__ k_cache,
                            const float* __restrict__ v_cache, float* __restrict__ out, int32_t q_heads,
                            int32_t kv_heads, int32_t head_dim, int32_t capacity, int32_t window,
                            const int32_t* __restrict__ position, float scale, float softcap) {
  __shared__ float s_acc[kWarps][D * 32];
  __shared__ float s_max[kWarps], s_sum[kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t h = blockIdx.x;
  const int32_t kvh = h / (q_heads / kv_heads);
  // Key indices fit in 32 bits (positions are i32, at most capacity keys), which keeps the slot modulo cheap.
  const int32_t pos = *position;
  const int32_t span = window > 0 && window < capacity ? window : capacity;
  const int32_t first = pos - span + 1 > 0 ? pos - span + 1 : 0;
  const int32_t n_keys = pos >= 0 ? pos - first + 1 : 0;  // a negative position sees nothing

  const float* qr = q + (int64_t)h * head_dim;
  float qv[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int dim = lane + 32 * d;
    qv[d] = dim < head_dim ? qr[dim] : 0.0f;
    acc[d] = 0.0f;
  }
  const int64_t row_stride = (int64_t)kv_heads * head_dim;
  const float* kbase = k_cache + (int64_t)kvh * head_dim;
  const float* vbase = v_cache + (int64_t)kvh * head_dim;

  float mx = -INFINITY, l = 0.0f;
  for (int32_t i0 = warp * kKeys; i0 < n_keys; i0 += kWarps * kKeys) {
    float sc[kKeys];
    int64_t slot[kKeys];
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      const int32_t i = i0 + u;
      slot[u] = (first + i) % capacity;
      sc[u] = 0.0f;
      if (i < n_keys) {
        const float* kr = kbase + slot[u] * row_stride;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          const int dim = lane + 32 * d;
          if (dim < head_dim) sc[u] = fmaf(qv[d], kr[dim], sc[u]);
        }
      }
    }
    float m_new = mx;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      if (i0 + u < n_keys) {  // uniform across the warp
        float s = warp_sum(sc[u]) * scale;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        sc[u] = s;
        m_new = (s > m_new || s != s) ? s : m_new;  // not fmaxf, which drops NaN: a NaN score makes the row NaN
      }
    }
    if (m_new == -INFINITY) continue;
    const float corr = expf(mx - m_new);
    l *= corr;
#pragma unroll
    for (int d = 0; d < D; ++d) acc[d] *= corr;
    mx = m_new;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      if (i0 + u >= n_keys) continue;
      const float pr = expf(sc[u] - mx);
      l += pr;
      const float* vr = vbase + slot[u] * row_stride;
#pragma unroll
      for (int d = 0; d < D; ++d) {
        const int dim = lane + 32 * d;
        if (dim < head_dim) acc[d] = fmaf(pr, vr[dim], acc[d]);
      }
    }
  }

#pragma unroll
  for (int d = 0; d < D; ++d) s_acc[warp][lane + 32 * d] = acc[d];
  if (lane == 0) {
    s_max[warp] = mx;
    s_sum[warp] = l;
  }
  __syncthreads();

  // Merge: rescale every warp's partial state to the global max. Warps that saw no key have max -inf and
  // weight exp(-inf) = 0; if no warp saw a key the output is zeros.
  float gmax = -INFINITY;
  for (int w = 0; w < kWarps; ++w) gmax = (s_max[w] > gmax || s_max[w] != s_max[w]) ? s_max[w] : gmax;  // NaN wins
  float total = 0.0f;
  if (gmax != -INFINITY)
    for (int w = 0; w < kWarps; ++w) total += s_sum[w] * expf(s_max[w] - gmax);
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
  float* orow = out + (int64_t)h * head_dim;
  for (int dim = threadIdx.x; dim < head_dim; dim += blockDim.x) {
    float o = 0.0f;
    if (gmax != -INFINITY)
      for (int w = 0; w < kWarps; ++w) o += s_acc[w][dim] * expf(s_max[w] - gmax);
    orow[dim] = o * inv;
  }
}

template <int D>
void launch(const float* q, const float* k_cache, const float* v_cache, float* out, int32_t q_heads, int32_t kv_heads,
            int32_t head_dim, int32_t capacity, int32_t window, const int32_t* position, float scale, float softcap,
            cudaStream_t st) {
  attention_decode_kernel<D><<<q_heads, kWarps * 32, 0, st>>>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim,
                                                               capacity, window, position, scale, softcap);
}

}  // namespace

GK_API gk_status gk_attention_decode(gk_stream* s, const float* q, const float* k_cache, const float* v_cache,
                                     float* out, int32_t q_heads, int32_t kv_heads, int32_t head_dim,
                                     int32_t capacity, int32_t window, const int32_t* position, float scale,
                                     float softcap) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_attention_decode", &st));
  GK_TRY(gk::validate_attention_decode(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window,
                                       position, scale, softcap));
  // Registers and shared accumulators sized to the head: dims per lane rounded up to a power of two.
  const int per_lane = (head_dim + 31) / 32;
  if (per_lane <= 1)
    launch<1>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap, st);
  else if (per_lane <= 2)
    launch<2>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap, st);
  else if (per_lane <= 4)
    launch<4>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap, st);
  else if (per_lane <= 8)
    launch<8>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap, st);
  else
    launch<16>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap, st);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

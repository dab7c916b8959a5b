// Prefill attention: causal / sliding-window / span-bidirectional masks, softcap, grouped-query heads.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kWarps = 4;  // warps per block; each warp owns one (query, head)
constexpr int kKeys = 4;   // keys scored together, so their warp reductions overlap

// The header's visibility rule, verbatim.
__device__ __forceinline__ bool visible(int32_t j, int32_t p, bool causal, int32_t window,
                                        const int32_t* __restrict__ span_ids, int32_t span_p) {
  if (window > 0 && (int64_t)j <= (int64_t)p - window) return false;
  return !causal || j <= p || (span_p != 0 && span_ids[j] == span_p);
}

// Warp w handles query w / q_heads and head w % q_heads, so consecutive warps of a block are heads of one
// query that usually share a kv head: their K/V rows are fetched once into L1 and reused.
// Lane l holds dims l, l + 32, ... (D per lane) of q and of the output accumulator. Softmax is online:
// running max mx, running sum l, accumulator rescaled by exp(old max - new max) when the max grows.
template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    attention_prefill_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                             float* __restrict__ out, int32_t q_len, int32_t kv_len, int32_t q_heads,
                             int32_t kv_heads, int32_t head_dim, int32_t q_pos0, bool causal, int32_t window,
                             const int32_t* __restrict__ span_ids, float scale, float softcap) {
  const int lane = threadIdx.x & 31;
  const int64_t wid = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (wid >= (int64_t)q_len * q_heads) return;
  const int32_t i = (int32_t)(wid / q_heads), h = (int32_t)(wid % q_heads);
  const int32_t kvh = h / (q_heads / kv_heads);
  const int32_t p = q_pos0 + i;
  const int32_t span_p = span_ids ? span_ids[p] : 0;

  // Keys outside [lo, hi] are masked. A span lifts only the causal bound (its later keys); the window
  // bounds every query.
  int32_t lo = 0, hi = kv_len - 1;
  if (span_p == 0 && causal) hi = p;
  if (window > 0 && (int64_t)p - window + 1 > 0) lo = p - window + 1;

  const float* qr = q + wid * head_dim;
  float qv[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int dim = lane + 32 * d;
    qv[d] = dim < head_dim ? qr[dim] : 0.0f;
    acc[d] = 0.0f;
  }
  const int64_t kv_stride = (int64_t)kv_heads * head_dim;
  const float* kbase = k + (int64_t)kvh * head_dim;
  const float* vbase = v + (int64_t)kvh * head_dim;

  float mx = -INFINITY, l = 0.0f;
  for (int32_t j0 = lo; j0 <= hi; j0 += kKeys) {
    float sc[kKeys];
    bool vis[kKeys];  // uniform across the warp, so every lane takes part in the same shuffles
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      const int32_t j = j0 + u;
      vis[u] = j <= hi && visible(j, p, causal, window, span_ids, span_p);
      sc[u] = 0.0f;
      if (vis[u]) {
        const float* kr = kbase + j * kv_stride;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          const int dim = lane + 32 * d;
          if (dim < head_dim) sc[u] = fmaf(qv[d], kr[dim], sc[u]);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      if (vis[u]) {
        float s = warp_sum(sc[u]) * scale;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        sc[u] = s;
      } else {
        sc[u] = -INFINITY;  // masked: contributes exp(-inf) = 0
      }
    }
    float m_new = mx;
#pragma unroll
    // Not fmaxf, which drops NaN: a NaN score must make the row NaN, as torch's softmax does (and the CPU).
    for (int u = 0; u < kKeys; ++u) m_new = (sc[u] > m_new || sc[u] != sc[u]) ? sc[u] : m_new;
    if (m_new == -INFINITY) continue;  // nothing visible yet: avoid exp(-inf - -inf) = NaN
    const float corr = expf(mx - m_new);
    l *= corr;
#pragma unroll
    for (int d = 0; d < D; ++d) acc[d] *= corr;
    mx = m_new;
#pragma unroll
    for (int u = 0; u < kKeys; ++u) {
      if (!vis[u]) continue;
      const float pr = expf(sc[u] - mx);
      l += pr;
      const float* vr = vbase + (int64_t)(j0 + u) * kv_stride;
#pragma unroll
      for (int d = 0; d < D; ++d) {
        const int dim = lane + 32 * d;
        if (dim < head_dim) acc[d] = fmaf(pr, vr[dim], acc[d]);
      }
    }
  }

  // A query that sees no key at all (possible with unusual masks) gets zeros, not 0/0.
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  float* orow = out + wid * head_dim;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int dim = lane + 32 * d;
    if (dim < head_dim) orow[dim] = acc[d] * inv;
  }
}

template <int D>
void launch(const float* q, const float* k, const float* v, float* out, int32_t q_len, int32_t kv_len,
            int32_t q_heads, int32_t kv_heads, int32_t head_dim, int32_t q_pos0, int32_t causal, int32_t window,
            const int32_t* span_ids, float scale, float softcap, cudaStream_t st) {
  const int64_t warps = (int64_t)q_len * q_heads;
  const unsigned blocks = (unsigned)ceil_div<int64_t>(warps, kWarps);
  attention_prefill_kernel<D><<<blocks, kWarps * 32, 0, st>>>(q, k, v, out, q_len, kv_len, q_heads, kv_heads,
                                                               head_dim, q_pos0, causal != 0, window, span_ids,
                                                               scale, softcap);
}

}  // namespace

GK_API gk_status gk_attention_prefill(gk_stream* s, const float* q, const float* k, const float* v, float* out,
                                      int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                                      int32_t head_dim, int32_t q_pos0, int32_t causal, int32_t window,
                                      const int32_t* span_ids, float scale, float softcap) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_attention_prefill", &st));
  GK_TRY(gk::validate_attention_prefill(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, window,
                                        scale, softcap));
  // Registers per lane sized to the head: dims per lane rounded up to a power of two.
  const int per_lane = (head_dim + 31) / 32;
  if (per_lane <= 1)
    launch<1>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale, softcap, st);
  else if (per_lane <= 2)
    launch<2>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale, softcap, st);
  else if (per_lane <= 4)
    launch<4>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale, softcap, st);
  else if (per_lane <= 8)
    launch<8>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale, softcap, st);
  else
    launch<16>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale, softcap, st);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// Decode attention: one query per head over a (ring-buffer) KV cache; the position is read on the device.
//
// Decode reads the whole visible cache once per step, so it is bandwidth-bound, and one block per q head keeps
// only 4-32 of an H200's 132 SMs reading. On sm_90+ the keys of a head are split over a thread-block cluster of
// up to kMaxSplits blocks (split-K): each block runs the same online softmax over its share of the keys, and the
// blocks' partial states are merged through distributed shared memory, so no global scratch is needed, the ABI
// stays as it is and the launch can be captured into a decode program. Older GPUs (no clusters) keep one block
// per head. The split count depends only on the cache geometry (the position is device-side and changes on
// every replay of a recorded step), so a recording stays valid.
#include <cooperative_groups.h>

#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;
namespace cg = cooperative_groups;

constexpr int kWarps = 16;     // warps per block
constexpr int kKeys = 4;       // consecutive keys a warp scores together, so their reductions overlap
constexpr int kMaxSplits = 8;  // blocks per head: the portable cluster size limit

// NaN-propagating max: fmaxf drops NaN, but a NaN score must make the row NaN as torch's softmax does (and the CPU).
__device__ __forceinline__ float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }

// One warp's online softmax over key groups start, start + stride, ... (kKeys keys each) of one q head: running
// max mx, running sum l, and the accumulator (lane l holds dims l, l + 32, ...), rescaled by exp(old − new max)
// when the max grows. Key i of the visible range is the cache slot (first + i) % capacity.
template <int D>
__device__ __forceinline__ void warp_keys(const float (&qv)[D], float (&acc)[D], float& mx, float& l,
                                          const float* __restrict__ kbase, const float* __restrict__ vbase,
                                          int64_t row_stride, int32_t head_dim, int32_t first, int32_t n_keys,
                                          int32_t capacity, int32_t start, int32_t stride, float scale,
                                          float softcap) {
  const int lane = threadIdx.x & 31;
  for (int32_t i0 = start; i0 < n_keys; i0 += stride) {
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
        m_new = nan_max(m_new, s);
      }
    }
    if (m_new == -INFINITY) continue;  // nothing seen yet: avoid exp(-inf - -inf) = NaN
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
}

// Per-block shared state: every warp's partial softmax, then the block's merged one.
template <int D>
struct BlockState {
  float acc[kWarps][D * 32];
  float max[kWarps], sum[kWarps];
  float merged[D * 32];  // Σ_w acc_w · e^(max_w − block max), unnormalised (split kernel only)
  float block_max, block_sum;
};

// The warps' (max, sum) merged: warps that saw no key have max −inf and weight exp(−inf) = 0; when no warp saw a
// key the max is −inf and the sum 0. A NaN max wins and makes everything NaN, as in the warps.
template <int D>
__device__ __forceinline__ void merge_warps(const BlockState<D>& s, float* gmax, float* total) {
  float m = -INFINITY;
  for (int w = 0; w < kWarps; ++w) m = nan_max(m, s.max[w]);
  float t = 0.0f;
  if (m != -INFINITY)
    for (int w = 0; w < kWarps; ++w) t += s.sum[w] * expf(s.max[w] - m);
  *gmax = m;
  *total = t;
}

// Dimension dim of the block's unnormalised accumulator under the block max gmax.
template <int D>
__device__ __forceinline__ float merged_dim(const BlockState<D>& s, int dim, float gmax) {
  float o = 0.0f;
  if (gmax != -INFINITY)
    for (int w = 0; w < kWarps; ++w) o += s.acc[w][dim] * expf(s.max[w] - gmax);
  return o;
}

struct Geometry {
  int32_t first, n_keys;  // visible keys: positions first .. first + n_keys − 1
};

// The visible range for the query at *position: the last min(window, capacity) positions (window 0: capacity).
__device__ __forceinline__ Geometry geometry(const int32_t* position, int32_t capacity, int32_t window) {
  // Key indices fit in 32 bits (positions are i32, at most capacity keys), which keeps the slot modulo cheap.
  const int32_t pos = *position;
  const int32_t span = window > 0 && window < capacity ? window : capacity;
  const int32_t first = pos - span + 1 > 0 ? pos - span + 1 : 0;
  return {first, pos >= 0 ? pos - first + 1 : 0};  // a negative position sees nothing
}

template <int D>
__device__ __forceinline__ void load_q(const float* __restrict__ qr, int32_t head_dim, float (&qv)[D],
                                       float (&acc)[D]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const int dim = lane + 32 * d;
    qv[d] = dim < head_dim ? qr[dim] : 0.0f;
    acc[d] = 0.0f;
  }
}

template <int D>
__device__ __forceinline__ void store_warp(BlockState<D>& s, const float (&acc)[D], float mx, float l) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int d = 0; d < D; ++d) s.acc[warp][lane + 32 * d] = acc[d];
  if (lane == 0) {
    s.max[warp] = mx;
    s.sum[warp] = l;
  }
}

// One block per q head; warp w takes key groups w, w + kWarps, ... Used where clusters are unavailable (sm < 90)
// or one block per head already has enough keys per warp.
template <int D>
__global__ void __launch_bounds__(kWarps * 32, 1)
    attention_decode_kernel(const float* __restrict__ q, const float* __restrict__ k_cache,
                            const float* __restrict__ v_cache, float* __restrict__ out, int32_t q_heads,
                            int32_t kv_heads, int32_t head_dim, int32_t capacity, int32_t window,
                            const int32_t* __restrict__ position, float scale, float softcap) {
  __shared__ BlockState<D> s;
  const int warp = threadIdx.x >> 5;
  const int32_t h = blockIdx.x;
  const int32_t kvh = h / (q_heads / kv_heads);
  const Geometry g = geometry(position, capacity, window);
  const int64_t row_stride = (int64_t)kv_heads * head_dim;
  float qv[D], acc[D];
  load_q<D>(q + (int64_t)h * head_dim, head_dim, qv, acc);
  float mx = -INFINITY, l = 0.0f;
  warp_keys<D>(qv, acc, mx, l, k_cache + (int64_t)kvh * head_dim, v_cache + (int64_t)kvh * head_dim, row_stride,
               head_dim, g.first, g.n_keys, capacity, warp * kKeys, kWarps * kKeys, scale, softcap);
  store_warp<D>(s, acc, mx, l);
  __syncthreads();
  float gmax, total;
  merge_warps<D>(s, &gmax, &total);
  // A decode query always sees at least one key (its own position), so a -inf max means every visible score is
  // -inf: NaN, as torch's softmax of an all -inf row (and the CPU).
  const float inv = gmax == -INFINITY ? NAN : (total > 0.0f ? 1.0f / total : 0.0f);
  float* orow = out + (int64_t)h * head_dim;
  for (int dim = threadIdx.x; dim < head_dim; dim += blockDim.x) orow[dim] = merged_dim<D>(s, dim, gmax) * inv;
}

// Split-K: a cluster of `splits` blocks per q head (grid q_heads · splits, cluster (splits, 1, 1)). Warp w of
// cluster rank r is warp r · kWarps + w of the head, and takes key groups of that index, striding over all
// splits · kWarps warps: the same interleaving as above with more warps, so every block's share is the same
// whatever the position. Each block merges its warps, then rank 0 merges the blocks' (max, sum, accumulator)
// read from their shared memory — the same formula one level up, so NaN, −inf and empty blocks behave exactly as
// in the one-block kernel.
template <int D>
__global__ void __launch_bounds__(kWarps * 32, 1)
    attention_decode_split_kernel(const float* __restrict__ q, const float* __restrict__ k_cache,
                                  const float* __restrict__ v_cache, float* __restrict__ out, int32_t q_heads,
                                  int32_t kv_heads, int32_t head_dim, int32_t capacity, int32_t window,
                                  const int32_t* __restrict__ position, float scale, float softcap,
                                  int32_t splits) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ BlockState<D> s;
  cg::cluster_group cluster = cg::this_cluster();
  const int warp = threadIdx.x >> 5;
  const int32_t rank = (int32_t)cluster.block_rank();
  const int32_t h = blockIdx.x / splits;  // clusters are consecutive blocks along x
  const int32_t kvh = h / (q_heads / kv_heads);
  const Geometry g = geometry(position, capacity, window);
  const int64_t row_stride = (int64_t)kv_heads * head_dim;
  float qv[D], acc[D];
  load_q<D>(q + (int64_t)h * head_dim, head_dim, qv, acc);
  float mx = -INFINITY, l = 0.0f;
  warp_keys<D>(qv, acc, mx, l, k_cache + (int64_t)kvh * head_dim, v_cache + (int64_t)kvh * head_dim, row_stride,
               head_dim, g.first, g.n_keys, capacity, (rank * kWarps + warp) * kKeys, splits * kWarps * kKeys,
               scale, softcap);
  store_warp<D>(s, acc, mx, l);
  __syncthreads();
  float gmax, total;
  merge_warps<D>(s, &gmax, &total);
  for (int dim = threadIdx.x; dim < head_dim; dim += blockDim.x) s.merged[dim] = merged_dim<D>(s, dim, gmax);
  if (threadIdx.x == 0) {
    s.block_max = gmax;
    s.block_sum = total;
  }
  cluster.sync();  // every block's merged state is written and visible to the cluster

  if (rank == 0) {
    float bmax[kMaxSplits], bsum[kMaxSplits];
    float m = -INFINITY;
#pragma unroll
    for (int r = 0; r < kMaxSplits; ++r) {
      bmax[r] = -INFINITY;
      bsum[r] = 0.0f;
      if (r < splits) {
        const BlockState<D>* remote = cluster.map_shared_rank(&s, r);
        bmax[r] = remote->block_max;
        bsum[r] = remote->block_sum;
        m = nan_max(m, bmax[r]);
      }
    }
    float t = 0.0f;
    if (m != -INFINITY) {
#pragma unroll
      for (int r = 0; r < kMaxSplits; ++r)
        if (r < splits) t += bsum[r] * expf(bmax[r] - m);
    }
    const float inv = m == -INFINITY ? NAN : (t > 0.0f ? 1.0f / t : 0.0f);  // all visible scores -inf: NaN
    float* orow = out + (int64_t)h * head_dim;
    for (int dim = threadIdx.x; dim < head_dim; dim += blockDim.x) {
      float o = 0.0f;
      if (m != -INFINITY) {
#pragma unroll
        for (int r = 0; r < kMaxSplits; ++r)
          if (r < splits) o += cluster.map_shared_rank(s.merged, r)[dim] * expf(bmax[r] - m);
      }
      orow[dim] = o * inv;
    }
  }
  cluster.sync();  // no block may exit (freeing its shared memory) while rank 0 still reads it
#endif
}

// Blocks per head: enough to give every SM a block when the heads alone cannot, each split keeping at least one
// full round of key groups for its warps (kWarps · kKeys keys of the largest visible range), at most a portable
// cluster. Decided from the cache geometry only, never from the device-side position.
int split_count(int32_t q_heads, int32_t capacity, int32_t window, int sms) {
  const int32_t span = window > 0 && window < capacity ? window : capacity;
  const int by_keys = (int)ceil_div<int32_t>(span, kWarps * kKeys);
  const int by_sms = (int)ceil_div<int32_t>(sms, q_heads);
  const int n = by_keys < by_sms ? by_keys : by_sms;
  return n < 1 ? 1 : (n > kMaxSplits ? kMaxSplits : n);
}

template <int D>
gk_status launch(const float* q, const float* k_cache, const float* v_cache, float* out, int32_t q_heads,
                 int32_t kv_heads, int32_t head_dim, int32_t capacity, int32_t window, const int32_t* position,
                 float scale, float softcap, int device, cudaStream_t st) {
  int major = 0, sms = 0;
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  auto one_block_per_head = [&]() -> gk_status {
    attention_decode_kernel<D><<<q_heads, kWarps * 32, 0, st>>>(q, k_cache, v_cache, out, q_heads, kv_heads,
                                                                 head_dim, capacity, window, position, scale, softcap);
    GK_LAUNCH_CHECK();
    return GK_OK;
  };
  const int splits = major >= 9 ? split_count(q_heads, capacity, window, sms) : 1;
  if (splits == 1) return one_block_per_head();
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)(q_heads * splits));
  cfg.blockDim = dim3(kWarps * 32);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = (unsigned)splits;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  // A GPU partitioned so that no cluster of this size fits (MIG slices, for instance) takes one block per head.
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, attention_decode_split_kernel<D>, &cfg) != cudaSuccess ||
      clusters < 1) {
    (void)cudaGetLastError();
    return one_block_per_head();
  }
  GK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, attention_decode_split_kernel<D>, q, k_cache, v_cache, out, q_heads,
                                   kv_heads, head_dim, capacity, window, position, scale, softcap, (int32_t)splits));
  GK_LAUNCH_CHECK();
  return GK_OK;
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
  const int dev = s->ctx->device;
  // Registers and shared accumulators sized to the head: dims per lane rounded up to a power of two.
  const int per_lane = (head_dim + 31) / 32;
  if (per_lane <= 1)
    return launch<1>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale,
                     softcap, dev, st);
  if (per_lane <= 2)
    return launch<2>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale,
                     softcap, dev, st);
  if (per_lane <= 4)
    return launch<4>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale,
                     softcap, dev, st);
  if (per_lane <= 8)
    return launch<8>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale,
                     softcap, dev, st);
  return launch<16>(q, k_cache, v_cache, out, q_heads, kv_heads, head_dim, capacity, window, position, scale, softcap,
                    dev, st);
}

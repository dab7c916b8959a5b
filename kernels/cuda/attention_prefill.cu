// Prefill attention: causal / sliding-window / span-bidirectional masks, softcap, grouped-query heads.
//
// Two kernels, the same mask and arithmetic (f32 throughout, no tensor cores: the CPU twin is f32 and the parity
// rows hold CUDA to it at NMSE 1e-10):
// - flash (the default): a block owns a tile of rows (query, q head) of one kv head and sweeps key tiles staged in
//   shared memory, with an online softmax per row. K/V are read once per tile of rows instead of once per row,
//   and scores need no warp reduction per key (a lane owns a key).
// - per-warp (the fallback where the flash tile does not fit in shared memory): one warp per (query, head).
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

  float mx = -INFINITY, l = 0.0f;  // l = -1: visible keys seen, all scoring -inf (as in the flash kernel)
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
    if (m_new == -INFINITY) {  // nothing visible yet: avoid exp(-inf - -inf) = NaN
#pragma unroll
      for (int u = 0; u < kKeys; ++u)
        if (vis[u]) l = -1.0f;
      continue;
    }
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

  // A query that sees no key at all (possible with unusual masks) gets zeros, not 0/0; one whose visible scores
  // are all -inf gets NaN, as torch's softmax (and the CPU).
  const float inv = l < 0.0f ? NAN : (l > 0.0f ? __frcp_rn(l) : 0.0f);  // __frcp_rn: 1 / l, correctly rounded
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


// ---- flash: tiles of rows × tiles of keys ------------------------------------------------------------------

constexpr int kTileKeys = 32;  // keys per shared-memory tile: one per lane in the score phase

// NaN-propagating max (fmaxf drops NaN; a NaN score must make its row NaN, as torch's softmax does).
__device__ __forceinline__ float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }

__device__ __forceinline__ float warp_nan_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Floats per shared row: the head dim padded to whole lanes, + 4 so that lane-strided float4 reads of K rows fall
// in distinct banks (a stride of 4 mod 32 words) and every row stays 16-byte aligned.
template <int D>
__host__ __device__ constexpr int flash_ld() {
  return 32 * D + 4;
}

template <int D, int W, int R>
constexpr size_t flash_smem_bytes() {
  return sizeof(float) * (size_t)(W * R + kTileKeys) * flash_ld<D>();
}

// Block (x, kvh): rows x·W·R .. of kv head kvh, where row g is query g / group and q head kvh·group + g % group, so
// the grouped-query heads sharing each K/V tile are rows of the same block. Warp w owns rows w·R .. w·R + R − 1.
// Shared memory: qs [W·R][LD] (the rows' q), kv [kTileKeys][LD] (a K tile, then the same tile of V).
// Per key tile:
//   scores  lane j scores key j0 + j against each of its warp's rows (float4 dot products over shared memory);
//   softmax per row: tile max over the lanes, running max/sum, accumulator rescaled when the max grows;
//   P·V     the accumulator (lane l holds dims l, l + 32, ...) gains Σ_j p_j v_j, p_j broadcast from lane j.
// Masked keys are skipped in P·V (not multiplied by 0), as the per-warp kernel skips them, so a non-finite value
// in a masked V row cannot reach the output.
template <int D, int W, int R>
__global__ void __launch_bounds__(W * 32)
    attention_flash_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           float* __restrict__ out, int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                           int32_t head_dim, int32_t q_pos0, bool causal, int32_t window,
                           const int32_t* __restrict__ span_ids, float scale, float softcap) {
  constexpr int LD = flash_ld<D>(), ROWS = W * R, THREADS = W * 32;
  extern __shared__ __align__(16) float smem[];
  float* qs = smem;
  float* kv = smem + ROWS * LD;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int32_t group = q_heads / kv_heads, kvh = blockIdx.y;
  const int64_t n_rows = (int64_t)q_len * group;
  const int64_t row0 = (int64_t)blockIdx.x * ROWS;
  const int32_t hd4 = (head_dim + 3) & ~3;  // dims the dot products run over; [head_dim, hd4) are zeros
  const int64_t kv_stride = (int64_t)kv_heads * head_dim;

  // The block's queries: first and last position, and whether any sits in an image span (then keys past the
  // causal bound can be visible).
  const int32_t i_first = (int32_t)(row0 / group);
  const int32_t i_last = (int32_t)(((row0 + ROWS < n_rows ? row0 + ROWS : n_rows) - 1) / group);
  const int32_t p_first = q_pos0 + i_first, p_last = q_pos0 + i_last;
  bool my_span = false;
  if (span_ids)
    for (int32_t i = i_first + (int32_t)threadIdx.x; i <= i_last; i += THREADS) my_span |= span_ids[q_pos0 + i] != 0;
  const bool any_span = __syncthreads_or(my_span) != 0;
  // Keys any row of the block may see: from the first query's window start to the last query's causal bound.
  const int32_t k_lo = window > 0 && p_first - window + 1 > 0 ? p_first - window + 1 : 0;
  const int32_t k_hi = (!causal || any_span) ? kv_len - 1 : (p_last < kv_len - 1 ? p_last : kv_len - 1);

  // Stage q: row g's dims [0, hd4), zero past head_dim and for rows past the end.
  for (int e = threadIdx.x; e < ROWS * hd4; e += THREADS) {
    const int r = e / hd4, d = e % hd4;
    const int64_t g = row0 + r;
    float val = 0.0f;
    if (g < n_rows && d < head_dim) {
      const int64_t i = g / group, h = (int64_t)kvh * group + g % group;
      val = q[(i * q_heads + h) * head_dim + d];
    }
    qs[r * LD + d] = val;
  }

  // Per row of this warp: its position, span id and online-softmax state (held by every lane alike).
  int32_t pos[R], own[R];
  bool active[R];
  // l[r] = -1 marks a row that has seen visible keys, all scoring -inf (no register to spare for a flag): the first
  // finite score rescales it by exp(-inf) = 0; if none comes, the row is NaN.
  float mx[R], l[R], acc[R][D];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int64_t g = row0 + warp * R + r;
    active[r] = g < n_rows;
    pos[r] = q_pos0 + (int32_t)((active[r] ? g : n_rows - 1) / group);
    own[r] = span_ids ? span_ids[pos[r]] : 0;
    mx[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) acc[r][d] = 0.0f;
  }

  const float* kbase = k + (int64_t)kvh * head_dim;
  const float* vbase = v + (int64_t)kvh * head_dim;
  for (int32_t j0 = k_lo / kTileKeys * kTileKeys; j0 <= k_hi; j0 += kTileKeys) {
    __syncthreads();  // q staged (first tile) / every warp done with the previous V tile
    for (int e = threadIdx.x; e < kTileKeys * hd4; e += THREADS) {
      const int j = e / hd4, d = e % hd4;
      kv[j * LD + d] = (j0 + j < kv_len && d < head_dim) ? kbase[(int64_t)(j0 + j) * kv_stride + d] : 0.0f;
    }
    __syncthreads();

    const int32_t key = j0 + lane;
    const int32_t key_span = span_ids && key < kv_len ? span_ids[key] : 0;
    float sc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) sc[r] = 0.0f;
    const float* krow = kv + lane * LD;
    for (int d = 0; d < hd4; d += 4) {
      const float4 kk = *(const float4*)(krow + d);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float4 qq = *(const float4*)(qs + (warp * R + r) * LD + d);  // the same address for every lane
        sc[r] = fmaf(qq.x, kk.x, sc[r]);
        sc[r] = fmaf(qq.y, kk.y, sc[r]);
        sc[r] = fmaf(qq.z, kk.z, sc[r]);
        sc[r] = fmaf(qq.w, kk.w, sc[r]);
      }
    }

    float pr[R];
    unsigned seen[R];  // bit j: key j0 + j is visible to the row (uniform across the warp)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      pr[r] = 0.0f;
      seen[r] = 0u;
      if (!active[r]) continue;  // uniform across the warp
      const int32_t p = pos[r];
      // The header's rule: AND(window, OR(causal, same non-zero span)), and the key must exist.
      const bool vis = key < kv_len && !(window > 0 && (int64_t)key <= (int64_t)p - window) &&
                       (!causal || key <= p || (own[r] != 0 && key_span == own[r]));
      float s = -INFINITY;
      if (vis) {
        s = sc[r] * scale;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
      }
      seen[r] = __ballot_sync(0xffffffffu, vis);
      const float m_new = nan_max(mx[r], warp_nan_max(s));
      if (m_new == -INFINITY) {  // nothing visible to this row yet: avoid exp(-inf - -inf) = NaN
        if (seen[r] != 0u) l[r] = -1.0f;  // visible keys, all -inf
        seen[r] = 0u;
        continue;
      }
      const float corr = expf(mx[r] - m_new);  // 0 when the old max is -inf; NaN when either is NaN
      mx[r] = m_new;
      pr[r] = vis ? expf(s - m_new) : 0.0f;
      l[r] = l[r] * corr + warp_sum(pr[r]);
#pragma unroll
      for (int d = 0; d < D; ++d) acc[r][d] *= corr;
    }

    __syncthreads();  // every warp is done with the K tile
    for (int e = threadIdx.x; e < kTileKeys * hd4; e += THREADS) {
      const int j = e / hd4, d = e % hd4;
      kv[j * LD + d] = (j0 + j < kv_len && d < head_dim) ? vbase[(int64_t)(j0 + j) * kv_stride + d] : 0.0f;
    }
    __syncthreads();

#pragma unroll
    for (int r = 0; r < R; ++r) {
      unsigned bits = seen[r];
      while (bits) {  // uniform: every lane holds the same ballot
        const int j = __ffs(bits) - 1;
        bits &= bits - 1;
        const float pj = __shfl_sync(0xffffffffu, pr[r], j);
        const float* vrow = kv + j * LD;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          const int dim = lane + 32 * d;
          if (dim < hd4) acc[r][d] = fmaf(pj, vrow[dim], acc[r][d]);
        }
      }
    }
  }

  // A row that sees no key gets zeros, not 0/0 (and a NaN sum keeps it NaN); one whose visible scores are all -inf
  // gets NaN, as torch's softmax: as the per-warp kernel and the CPU.
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if (!active[r]) continue;
    const int64_t g = row0 + warp * R + r;
    const int64_t i = g / group, h = (int64_t)kvh * group + g % group;
    float* orow = out + (i * q_heads + h) * head_dim;
    const float inv = l[r] < 0.0f ? NAN : (l[r] > 0.0f ? __frcp_rn(l[r]) : 0.0f);
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const int dim = lane + 32 * d;
      if (dim < head_dim) orow[dim] = acc[r][d] * inv;
    }
  }
}

// The flash kernel when its tile fits in the device's shared memory (opted in above the 48 KiB default), else the
// per-warp kernel. Tile shapes: 32 rows (8 warps × 4) up to head_dim 256, 16 rows (8 × 2) at 512 (97 KiB, within
// the 99 KiB sm_86/89 allow).
template <int D, int W, int R>
gk_status launch_flash_or_warp(const float* q, const float* k, const float* v, float* out, int32_t q_len,
                               int32_t kv_len, int32_t q_heads, int32_t kv_heads, int32_t head_dim, int32_t q_pos0,
                               int32_t causal, int32_t window, const int32_t* span_ids, float scale, float softcap,
                               int device, cudaStream_t st) {
  constexpr size_t smem = flash_smem_bytes<D, W, R>();
  int optin = 0;
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const int64_t row_tiles = ceil_div<int64_t>((int64_t)q_len * (q_heads / kv_heads), W * R);
  if (smem > (size_t)optin || kv_heads > 65535 || row_tiles > 0x7fffffff) {
    launch<D>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids, scale,
              softcap, st);
    GK_LAUNCH_CHECK();
    return GK_OK;
  }
  if (smem > 48 * 1024) {
    GK_CUDA_CHECK(cudaFuncSetAttribute(attention_flash_kernel<D, W, R>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)smem));
  }
  const dim3 grid((unsigned)row_tiles, (unsigned)kv_heads);
  attention_flash_kernel<D, W, R><<<grid, W * 32, smem, st>>>(q, k, v, out, q_len, kv_len, q_heads, kv_heads,
                                                               head_dim, q_pos0, causal != 0, window, span_ids, scale,
                                                               softcap);
  GK_LAUNCH_CHECK();
  return GK_OK;
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
  const int dev = s->ctx->device;
  if (per_lane <= 1)
    return launch_flash_or_warp<1, 8, 4>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                         window, span_ids, scale, softcap, dev, st);
  if (per_lane <= 2)
    return launch_flash_or_warp<2, 8, 4>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                         window, span_ids, scale, softcap, dev, st);
  if (per_lane <= 4)
    return launch_flash_or_warp<4, 8, 4>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                         window, span_ids, scale, softcap, dev, st);
  if (per_lane <= 8)
    return launch_flash_or_warp<8, 8, 4>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                         window, span_ids, scale, softcap, dev, st);
  return launch_flash_or_warp<16, 8, 2>(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                        window, span_ids, scale, softcap, dev, st);
}

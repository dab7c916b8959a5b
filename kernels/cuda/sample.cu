// gk_sample on CUDA: one launch of one block, no host synchronisation and no allocation, so it can be
// recorded into a decode program. Same semantics and the same token as kernels/cpu/sample.cpp: weights,
// masses and keys come from kernels/common/sampling.h and every sum is an exact integer sum.
//
// Where the CPU sorts, this kernel bisects: top-k's threshold is the largest key t with
// count(key >= t) >= k, top-p's the largest t with mass(key >= t) >= top_p * mass(top-k survivors).
// Each probe is one pass over the logits plus a block reduction. The search runs first over the 32 value
// bits of the key (about 31 probes for distinct logits) and, only when several tokens share the boundary
// value, over the id bits (log2(vocab) more). Cost for vocab 262144 on one SM, every pass reading the
// 1 MiB of logits from L2: greedy 1 pass; temperature only (plus min-p) 3 passes; top-k or top-p about
// 35 passes each (plus an exp per surviving token per top-p pass): an estimate of 0.1-1 ms per token on
// an H100, not yet measured. Acceptable for now; the first thing to replace (a multi-block radix select)
// when sampling shows up in decode profiles.
#include "../common/sampling.h"
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr uint32_t kFull = 0xffffffffu;
using u64 = unsigned long long;

struct Shared {
  u64 u[kWarps];
  float f[kWarps];
  int32_t i[kWarps];
  int32_t state[GK_STATE_FIELDS];
  int32_t token;
};

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// Every thread gets the result; scratch may be reused right after (trailing barrier).
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T* scratch, T identity, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < kWarps ? scratch[lane] : identity;
  r = warp_reduce(r, op);
  __syncthreads();
  return r;
}

__device__ __forceinline__ u64 block_sum(u64 v, Shared& sh) {
  return block_reduce(v, sh.u, 0ull, [](u64 a, u64 b) { return a + b; });
}

// Exclusive prefix sum over threads in index order.
__device__ __forceinline__ u64 block_exclusive_scan(u64 v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 n = __shfl_up_sync(kFull, inc, o);
    if (lane >= o) inc += n;
  }
  if (lane == 31) sh.u[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    const u64 total = sh.u[lane];
    u64 w = total;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 n = __shfl_up_sync(kFull, w, o);
      if (lane >= o) w += n;
    }
    sh.u[lane] = w - total;  // exclusive prefix of the warp totals
  }
  __syncthreads();
  const u64 r = sh.u[warp] + inc - v;
  __syncthreads();
  return r;
}

// torch.argmax order: NaN beats everything, ties go to the lower index.
__device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

__device__ int32_t block_argmax(const float* x, int32_t n, Shared& sh) {
  float bv = -INFINITY;
  int32_t bi = INT32_MAX;
  for (int32_t j = threadIdx.x; j < n; j += kThreads) {
    const float v = x[j];
    if (better(v, j, bv, bi)) {
      bv = v;
      bi = j;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, bv, o);
    const int32_t oi = __shfl_xor_sync(kFull, bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sh.f[warp] = bv;
    sh.i[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    bv = sh.f[lane];
    bi = sh.i[lane];
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFull, bv, o);
      const int32_t oi = __shfl_xor_sync(kFull, bi, o);
      if (better(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) sh.token = bi;
  }
  __syncthreads();
  return sh.token;
}

// Largest t in [lo, hi] with ok(t), given ok(lo). ok runs block-wide passes: every thread calls this with
// the same arguments and gets the same answer.
template <typename Ok>
__device__ u64 bisect_max(u64 lo, u64 hi, Ok ok) {
  while (lo < hi) {
    const u64 mid = hi - ((hi - lo) >> 1);
    if (ok(mid)) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

struct View {
  const float* logits;  // scaled
  int32_t vocab;
  float m;  // the largest scaled logit (NaN as -inf)

  __device__ u64 count_ge(u64 t, Shared& sh) const {
    u64 c = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) c += gk::sample_key(logits[i], i) >= t;
    return block_sum(c, sh);
  }
  __device__ u64 mass_ge(u64 t, Shared& sh) const {
    u64 s = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const float l = logits[i];
      if (gk::sample_key(l, i) >= t) s += gk::sample_mass(gk::sample_weight(l, m));
    }
    return block_sum(s, sh);
  }
  // Tokens whose scaled logit has the value bits `v` (key >> 32 == v).
  __device__ u64 count_value(u64 v, Shared& sh) const {
    u64 c = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) c += (gk::sample_key(logits[i], i) >> 32) == v;
    return block_sum(c, sh);
  }
};

// The largest key threshold t >= floor with ok(t) (ok monotone, ok(floor) true), searching the value bits
// first and the id bits only when the boundary value is shared by several tokens (`single(v)` says it is
// not: then any threshold inside value v selects the same set).
template <typename Ok, typename Single>
__device__ u64 select_threshold(u64 floor, u64 kmax, int32_t vocab, Ok ok, Single single) {
  const u64 v = bisect_max(floor >> 32, kmax >> 32, [&](u64 val) { return ok(max(val << 32, floor)); });
  // Keys of value v lie in [v << 32 | (2^32 - vocab), v << 32 | (2^32 - 1)].
  const u64 lo = max((v << 32) | (u64)(0u - (uint32_t)vocab), floor);
  if (single(v)) return lo;
  return bisect_max(lo, (v << 32) | 0xffffffffull, ok);
}

// Temperature, weights, top-k, top-p, min-p and the draw; returns the token (to every thread).
__device__ int32_t draw(float* logits, int32_t vocab, const gk_sampling& p, uint32_t u24, Shared& sh) {
  float m = -INFINITY;
  for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
    const float l = logits[i] / p.temperature;
    logits[i] = l;
    m = fmaxf(m, gk::sample_rank_value(l));
  }
  m = block_reduce(m, sh.f, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
  if (m == -INFINITY) return block_argmax(logits, vocab, sh);  // only -inf and NaN: what greedy would take
  const View view{logits, vocab, m};

  u64 threshold = 0;  // tokens with key >= threshold survive top-k and top-p
  const bool top_k = p.top_k > 0 && p.top_k < vocab, top_p = p.top_p < 1.0f;
  if (top_k || top_p) {
    u64 lo = ~0ull, hi = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += kThreads) {
      const u64 k = gk::sample_key(logits[i], i);
      lo = min(lo, k);
      hi = max(hi, k);
    }
    const u64 kmin = block_reduce(lo, sh.u, ~0ull, [](u64 a, u64 b) { return min(a, b); });
    const u64 kmax = block_reduce(hi, sh.u, 0ull, [](u64 a, u64 b) { return max(a, b); });
    threshold = kmin;
    if (top_k) {
      const u64 k = (u64)p.top_k;
      threshold = select_threshold(
          threshold, kmax, vocab, [&](u64 t) { return view.count_ge(t, sh) >= k; },
          [&](u64 v) { return view.count_ge(v << 32, sh) == k; });
    }
    if (top_p) {
      const double target = (double)p.top_p * (double)view.mass_ge(threshold, sh);
      threshold = select_threshold(
          threshold, kmax, vocab, [&](u64 t) { return (double)view.mass_ge(t, sh) >= target; },
          [&](u64 v) { return view.count_value(v, sh) == 1; });
    }
  }

  // Kept mass of a contiguous id range per thread, then the thread whose range holds R walks it.
  const int32_t chunk = (vocab + kThreads - 1) / kThreads;
  const int32_t c0 = min((int32_t)threadIdx.x * chunk, vocab), c1 = min(c0 + chunk, vocab);
  auto kept_mass = [&](int32_t i) -> u64 {
    const float l = logits[i];
    const float w = gk::sample_weight(l, m);
    return gk::sample_key(l, i) >= threshold && !(w < p.min_p) ? gk::sample_mass(w) : 0ull;
  };
  if (threadIdx.x == 0) sh.token = 0;  // never read: the most likely token is kept, so some thread finds R
  u64 local = 0;
  for (int32_t i = c0; i < c1; ++i) local += kept_mass(i);
  const u64 total = block_sum(local, sh);
  // R = floor(u24 * total / 2^24); the product needs up to 88 bits.
  const u64 r = (__umul64hi((u64)u24, total) << 40) | (((u64)u24 * total) >> 24);
  const u64 before = block_exclusive_scan(local, sh);
  if (before <= r && r < before + local) {
    u64 cum = before;
    for (int32_t i = c0; i < c1; ++i) {
      cum += kept_mass(i);
      if (cum > r) {
        sh.token = i;
        break;
      }
    }
  }
  __syncthreads();
  return sh.token;
}

__global__ void __launch_bounds__(kThreads)
    sample_kernel(float* __restrict__ logits, int32_t vocab, gk_sampling p, int32_t* __restrict__ state,
                  int32_t* __restrict__ history, int32_t capacity, const int32_t* __restrict__ stop_ids,
                  int32_t n_stop) {
  extern __shared__ uint32_t seen[];  // [ceil(vocab / 32)] bits, only when the penalty is on
  __shared__ Shared sh;
  if (threadIdx.x < GK_STATE_FIELDS) sh.state[threadIdx.x] = state[threadIdx.x];
  __syncthreads();
  if (sh.state[GK_STATE_DONE] != 0) return;

  // Repetition penalty, once per distinct id of history[0, STATE_HISTORY): the thread that sets an id's
  // bit first applies it. Ids outside [0, vocab) are ignored.
  const int32_t n_hist = min(max(sh.state[GK_STATE_HISTORY], 0), capacity);
  if (p.repetition_penalty != 1.0f && n_hist > 0) {
    const int32_t words = (vocab + 31) >> 5;
    for (int32_t w = threadIdx.x; w < words; w += kThreads) seen[w] = 0;
    __syncthreads();
    for (int32_t j = threadIdx.x; j < n_hist; j += kThreads) {
      const int32_t id = history[j];
      if (id < 0 || id >= vocab) continue;
      const uint32_t bit = 1u << (id & 31);
      if (atomicOr(&seen[id >> 5], bit) & bit) continue;
      logits[id] = gk::sample_penalize(logits[id], p.repetition_penalty);
    }
    __syncthreads();
  }

  const uint32_t step = (uint32_t)sh.state[GK_STATE_STEP];
  const int32_t token = p.temperature > 0.0f ? draw(logits, vocab, p, gk::sample_u24(p.seed, step), sh)
                                             : block_argmax(logits, vocab, sh);
  if (threadIdx.x == 0) {
    state[GK_STATE_TOKEN] = token;
    int32_t h = sh.state[GK_STATE_HISTORY];
    if (h >= 0 && h < capacity) {
      history[h] = token;
      state[GK_STATE_HISTORY] = ++h;
    }
    state[GK_STATE_POSITION] = (int32_t)((uint32_t)sh.state[GK_STATE_POSITION] + 1u);
    state[GK_STATE_STEP] = (int32_t)(step + 1u);
    bool done = h >= capacity;
    for (int32_t i = 0; i < n_stop && !done; ++i) done = stop_ids[i] == token;
    if (done) state[GK_STATE_DONE] = 1;
  }
}

}  // namespace

GK_API gk_status gk_sample(gk_stream* s, float* logits, int32_t vocab, const gk_sampling* params, int32_t* state,
                           int32_t* history, int32_t history_capacity, const int32_t* stop_ids, int32_t n_stop) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_sample", &st));
  GK_TRY(gk::validate_sample(logits, vocab, params, state, history, history_capacity, stop_ids, n_stop));
  const gk_sampling p = *params;  // by value into the launch: a recording keeps these values
  size_t smem = 0;
  if (p.repetition_penalty != 1.0f) {
    smem = sizeof(uint32_t) * (size_t)((vocab + 31) / 32);
    if (smem > 48 * 1024) {  // beyond the default limit: opt in, up to what the device allows
      int optin = 0;
      GK_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, s->ctx->device));
      cudaFuncAttributes attr;
      GK_CUDA_CHECK(cudaFuncGetAttributes(&attr, sample_kernel));
      if (smem + attr.sharedSizeBytes > (size_t)optin) {
        return gk_fail(GK_ERR_UNSUPPORTED,
                       "gk_sample: vocab=%d needs %zu bytes of shared memory for the repetition penalty; the device "
                       "has %d per block",
                       vocab, smem + attr.sharedSizeBytes, optin);
      }
      GK_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
  }
  sample_kernel<<<1, kThreads, smem, st>>>(logits, vocab, p, state, history, history_capacity, stop_ids, n_stop);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

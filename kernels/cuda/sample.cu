// gk_sample on CUDA: one launch, no host synchronisation, no allocation and a launch shape that depends only on
// (vocab, penalty on/off), so it can be recorded into a decode program. Same semantics and the same token as
// kernels/cpu/sample.cpp: weights, masses and keys come from kernels/common/sampling.h and every sum is an exact
// integer sum, so the order in which blocks and threads add never matters.
//
// Layout. On sm_90+ the vocabulary is split over a thread-block cluster of up to 8 blocks (one SM each); block r
// owns the ids [r * slice, (r + 1) * slice) and, when it fits, keeps its slice in shared memory, so that only the
// first pass reads the logits from global memory. Blocks combine partial results through distributed shared
// memory (no global scratch: the ABI has none, and a static buffer would race between streams). Older GPUs, and
// GPUs where no cluster of that size fits, run the same code as a single block.
//
// Where the CPU sorts, this kernel selects by radix. A threshold "largest key t whose weight at or above t
// reaches the target" (top-k: count >= k; top-p: mass >= top_p of the top-k survivors) is found over the 32
// value bits of the key in 3 histogram passes (11 + 11 + 10 bits; each pass histograms, per digit, the weight of
// the tokens whose higher digits match those chosen so far) and, when the boundary value is shared by several
// tokens, one more pass that finds the j-th lowest id of that value (sample_tie_rank gives j). Passes over the
// vocabulary for sampling with top-k and top-p: scale + max 1, top-k 3-4, top-p total 1, top-p 3-4, draw 1
// (plus one warp's walk over 1/256 of the vocabulary): 9-11, each over 1/8 of the vocabulary per SM, mostly
// from shared memory; the previous one-block bisection made about 70 passes over the whole vocabulary from L2.
// Greedy is 1 pass, temperature alone (and min-p) 2. Not yet measured on a GPU.
#include <cooperative_groups.h>

#include "../common/sampling.h"
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;
namespace cg = cooperative_groups;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxBlocks = 8;             // the portable cluster size limit
constexpr int32_t kMinSlice = 8192;       // fewer ids per block are not worth a cluster's synchronisations
constexpr int kBins = 2048;               // 11-bit digits
constexpr int kLevels = 3;                // the value bits of a key: 31..21, 20..10, 9..0
constexpr uint32_t kFull = 0xffffffffu;
using u64 = unsigned long long;

__device__ __forceinline__ int level_shift(int level) { return level == 0 ? 21 : (level == 1 ? 10 : 0); }
__device__ __forceinline__ uint32_t level_mask(int level) { return level == 2 ? 0x3ffu : 0x7ffu; }

// What a block shows the rest of its cluster in one exchange. Two of them alternate: exchange n writes buffer
// n % 2 and every block reads the others' after the cluster barrier of exchange n; the next write to that buffer
// (exchange n + 2) comes after the barrier of exchange n + 1, which no block passes before it has finished
// reading. So one cluster barrier per exchange suffices.
struct Exchange {
  u64 hist[kBins];
  u64 u;
  float f;
  int32_t i;
};

struct Shared {
  Exchange x[2];
  u64 wu[kWarps];  // per-warp partials
  float wf[kWarps];
  int32_t wi[kWarps];
  u64 ru[kMaxBlocks];  // the cluster's values of the last exchange, by block rank
  float rf[kMaxBlocks];
  int32_t ri[kMaxBlocks];
  int32_t state[GK_STATE_FIELDS];
  int32_t pick;   // a block-wide result: the warp that walks
  int32_t found;  // the id it finds
  u64 pick_u;
};

// A cluster of `size` blocks, or one block (size 1) where clusters are unavailable.
struct Cluster {
  int32_t rank, size;

  __device__ void sync() const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (size > 1) {
      cg::this_cluster().sync();  // also orders the shared and global memory writes before it
      return;
    }
#endif
    __syncthreads();
  }
  template <typename T>
  __device__ T* at(T* p, int32_t r) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (size > 1) return cg::this_cluster().map_shared_rank(p, (unsigned)r);
#endif
    return p;
  }
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

// Exclusive prefix sum over threads in index order.
__device__ __forceinline__ u64 block_exclusive_scan(u64 v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  u64 inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const u64 n = __shfl_up_sync(kFull, inc, o);
    if (lane >= o) inc += n;
  }
  if (lane == 31) sh.wu[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    const u64 total = sh.wu[lane];
    u64 w = total;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const u64 n = __shfl_up_sync(kFull, w, o);
      if (lane >= o) w += n;
    }
    sh.wu[lane] = w - total;  // exclusive prefix of the warp totals
  }
  __syncthreads();
  const u64 r = sh.wu[warp] + inc - v;
  __syncthreads();
  return r;
}

// torch.argmax order: NaN beats everything, ties go to the lower index.
__device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// One block's view of the vocabulary and of its cluster.
struct Block {
  Cluster cl;
  Shared& sh;
  float* x;        // this block's slice: shared memory, or the logits themselves when it does not fit
  int32_t base;    // id of x[0]
  int32_t len;     // ids in the slice (0 for a trailing block of a small vocabulary)
  float m;         // the largest scaled logit (rank value), once known
  int exchanges;   // exchanges so far: picks the buffer

  __device__ Exchange& out() { return sh.x[exchanges & 1]; }

  // Publishes this block's out() (u, f, i, written by thread 0 before) and gathers every block's u, f, i into
  // sh.ru/rf/ri. A block barrier precedes it (the cluster barrier is one).
  __device__ void gather() {
    const int b = exchanges++ & 1;
    cl.sync();
    if ((int32_t)threadIdx.x < cl.size) {
      const Exchange* r = cl.at(&sh.x[b], (int32_t)threadIdx.x);
      sh.ru[threadIdx.x] = r->u;
      sh.rf[threadIdx.x] = r->f;
      sh.ri[threadIdx.x] = r->i;
    }
    __syncthreads();
  }

  __device__ u64 sum_of(u64 v) {
    v = block_reduce(v, sh.wu, 0ull, [](u64 a, u64 b) { return a + b; });
    if (threadIdx.x == 0) out().u = v;
    gather();
    u64 t = 0;
    for (int32_t r = 0; r < cl.size; ++r) t += sh.ru[r];
    return t;
  }

  __device__ u64 max_of(u64 v) {
    v = block_reduce(v, sh.wu, 0ull, [](u64 a, u64 b) { return a > b ? a : b; });
    if (threadIdx.x == 0) out().u = v;
    gather();
    u64 t = 0;
    for (int32_t r = 0; r < cl.size; ++r) t = sh.ru[r] > t ? sh.ru[r] : t;
    return t;
  }

  __device__ float max_of(float v) {
    v = block_reduce(v, sh.wf, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
    if (threadIdx.x == 0) out().f = v;
    gather();
    float t = -INFINITY;
    for (int32_t r = 0; r < cl.size; ++r) t = fmaxf(t, sh.rf[r]);
    return t;
  }

  // torch.argmax over the (scaled) logits of the whole vocabulary.
  __device__ int32_t argmax() {
    float bv = -INFINITY;
    int32_t bi = INT32_MAX;  // an empty slice offers (-inf, INT32_MAX), which every real id beats
    for (int32_t i = threadIdx.x; i < len; i += kThreads) {
      const float v = x[i];
      if (better(v, base + i, bv, bi)) {
        bv = v;
        bi = base + i;
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
      sh.wf[warp] = bv;
      sh.wi[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kWarps; ++w) {
        if (better(sh.wf[w], sh.wi[w], bv, bi)) {
          bv = sh.wf[w];
          bi = sh.wi[w];
        }
      }
      out().f = bv;
      out().i = bi;
    }
    gather();
    bv = sh.rf[0];
    bi = sh.ri[0];
    for (int32_t r = 1; r < cl.size; ++r) {
      if (better(sh.rf[r], sh.ri[r], bv, bi)) {
        bv = sh.rf[r];
        bi = sh.ri[r];
      }
    }
    return bi;
  }

  // The first id (ascending) at which the running sum of f over the vocabulary exceeds r_of(total), where
  // total is the sum over the whole vocabulary; r_of must return less than total. Warp w of a block owns a
  // contiguous run of its slice (lanes stride within it), so block, warp and lane order is id order. Returns
  // the id in the one block that holds it and -1 in the others.
  template <typename F, typename R>
  __device__ int32_t find(F f, R r_of) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int32_t run = (int32_t)ceil_div<int64_t>(len, kWarps * 32) * 32;
    const int32_t w0 = min(warp * run, len), w1 = min(w0 + run, len);
    u64 s = 0;
    for (int32_t i = w0 + lane; i < w1; i += 32) s += f(i);
    s = warp_reduce(s, [](u64 a, u64 b) { return a + b; });
    if (lane == 0) sh.wu[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
      u64 t = 0;
      for (int w = 0; w < kWarps; ++w) t += sh.wu[w];
      out().u = t;
    }
    gather();
    u64 before = 0, total = 0;
    for (int32_t b = 0; b < cl.size; ++b) {
      before += b < cl.rank ? sh.ru[b] : 0ull;
      total += sh.ru[b];
    }
    const u64 r = r_of(total);
    if (!(before <= r && r - before < sh.ru[cl.rank])) return -1;  // uniform in the block
    u64 rem = r - before;
    if (threadIdx.x == 0) {
      int w = 0;
      while (w < kWarps - 1 && rem >= sh.wu[w]) rem -= sh.wu[w++];
      sh.pick = w;
      sh.pick_u = rem;
      sh.found = -1;  // stays -1 only if the sums lied (unreachable): then no block finishes the step
    }
    __syncthreads();
    if (warp == sh.pick) {
      rem = sh.pick_u;
      for (int32_t i0 = w0; i0 < w1; i0 += 32) {
        const int32_t i = i0 + lane;
        const u64 v = i < w1 ? f(i) : 0ull;
        u64 inc = v;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
          const u64 n = __shfl_up_sync(kFull, inc, o);
          if (lane >= o) inc += n;
        }
        const unsigned hit = __ballot_sync(kFull, inc > rem);
        if (hit != 0) {
          if (lane == 0) sh.found = base + i0 + __ffs(hit) - 1;
          break;
        }
        rem -= __shfl_sync(kFull, inc, 31);
      }
    }
    __syncthreads();
    return sh.found;
  }

  // The largest key t >= floor such that the weight of the tokens with key >= t (and >= floor) reaches the
  // target (count >= k for top-k, mass >= top_p * kept mass for top-p), as a threshold that keeps the same set:
  // the CPU's k-th largest key, or its top-p prefix's last key. Requires the weight at floor to reach it.
  __device__ u64 select(u64 floor, bool by_mass, double target) {
    const int lane = threadIdx.x & 31;
    u64 above = 0;  // weight of the tokens above the chosen digits
    uint32_t prefix = 0, h_last = 0;
    u64 h_value = 0;
    for (int level = 0; level < kLevels; ++level) {
      const int shift = level_shift(level);
      const int prev_shift = level == 0 ? 32 : level_shift(level - 1);
      const uint32_t mask = level_mask(level);
      Exchange& hx = out();
      for (int b = threadIdx.x; b < kBins; b += kThreads) hx.hist[b] = 0;
      __syncthreads();
      // Warp-uniform trip count (i - lane is the warp's start), for the match below.
      for (int32_t i = threadIdx.x; i - lane < len; i += kThreads) {
        bool take = false;
        uint32_t v = 0;
        u64 w = 0;
        if (i < len) {
          const float l = x[i];
          const u64 key = gk::sample_key(l, base + i);
          v = (uint32_t)(key >> 32);
          if (key >= floor && (prev_shift == 32 || (v >> prev_shift) == prefix)) {
            w = by_mass ? gk::sample_mass(gk::sample_weight(l, m)) : 1ull;
            take = w > 0;
          }
        }
        // Tokens of one rank value weigh the same: a warp adds them with one atomic (all-equal logits would
        // otherwise serialise every add on one bin).
        const unsigned act = __ballot_sync(kFull, take);
        if (take) {
          const unsigned peers = __match_any_sync(act, v);
          if (lane == __ffs(peers) - 1) atomicAdd(&hx.hist[(v >> shift) & mask], w * (u64)__popc(peers));
        }
      }
      const int b = exchanges++ & 1;
      cl.sync();
      // Thread t takes the bins at descending positions 2t and 2t + 1 (digits kBins-1-2t, kBins-2-2t), summed
      // over the cluster; bins beyond this level's digit range are empty.
      u64 ha = 0, hb = 0;
      const int da = kBins - 1 - 2 * (int)threadIdx.x, db = da - 1;
      for (int32_t r = 0; r < cl.size; ++r) {
        const Exchange* rx = cl.at(&sh.x[b], r);
        ha += rx->hist[da];
        hb += rx->hist[db];
      }
      const u64 before = above + block_exclusive_scan(ha + hb, sh);
      // The first position (largest digit) whose cumulative weight reaches the target, among bins with weight:
      // the weight jumps past the target at a token of positive weight, and a target <= 0 stops at the top one.
      const bool ca = ha > 0 && (double)(before + ha) >= target;
      const bool cb = hb > 0 && (double)(before + ha + hb) >= target;
      const int pos = ca ? 2 * (int)threadIdx.x : (cb ? 2 * (int)threadIdx.x + 1 : INT32_MAX);
      const int first = block_reduce(pos, sh.wi, INT32_MAX, [](int a, int c) { return a < c ? a : c; });
      if (first == INT32_MAX) return floor;  // unreachable while the weight at floor reaches the target
      if (pos == first) {
        sh.pick_u = ca ? before : before + ha;
        sh.ru[0] = ca ? ha : hb;  // ru is free until the next gather
      }
      __syncthreads();
      above = sh.pick_u;
      h_value = sh.ru[0];
      h_last = (uint32_t)(kBins - 1 - first);
      prefix = (prefix << (level == 2 ? 10 : 11)) | h_last;
      __syncthreads();  // pick_u and ru are rewritten by the next level
    }
    // prefix is now the boundary value v; its tokens at or above floor weigh h_value, `unit` each.
    const uint32_t v = prefix;
    const u64 unit = by_mass ? gk::sample_mass(gk::sample_weight(gk::sample_value_logit(v), m)) : 1ull;
    const u64 count = h_value / unit;
    const u64 j = gk::sample_tie_rank(above, unit, count, target);
    const u64 lowest = ((u64)v << 32) > floor ? ((u64)v << 32) : floor;
    if (j == count) return lowest;  // the whole value is kept
    // The j-th lowest id of value v; the value's tokens at or above floor are a prefix of them in id order.
    const int32_t id = find(
        [&](int32_t i) -> u64 {
          const u64 key = gk::sample_key(x[i], base + i);
          return key >= floor && (uint32_t)(key >> 32) == v ? 1ull : 0ull;
        },
        [&](u64) { return j - 1; });
    return max_of(id >= 0 ? ((u64)v << 32) | (u64)(0xffffffffu - (uint32_t)id) : 0ull);  // its key
  }
};

// The state update after drawing `token` (one thread).
__device__ void finish(const Shared& sh, int32_t token, int32_t* state, int32_t* history, int32_t capacity,
                       const int32_t* stop_ids, int32_t n_stop) {
  state[GK_STATE_TOKEN] = token;
  int32_t h = sh.state[GK_STATE_HISTORY];
  if (h >= 0 && h < capacity) {
    history[h] = token;
    state[GK_STATE_HISTORY] = ++h;
  }
  state[GK_STATE_POSITION] = (int32_t)((uint32_t)sh.state[GK_STATE_POSITION] + 1u);
  state[GK_STATE_STEP] = (int32_t)((uint32_t)sh.state[GK_STATE_STEP] + 1u);
  bool done = h >= capacity;
  for (int32_t i = 0; i < n_stop && !done; ++i) done = stop_ids[i] == token;
  if (done) state[GK_STATE_DONE] = 1;
}

// Grid: one cluster of `blocks` blocks (or one block). Dynamic shared memory: the slice ([slice] floats) when
// `cached`, then the penalty's bitmap of the slice's ids when the penalty is on.
__global__ void __launch_bounds__(kThreads, 1)
    sample_kernel(float* logits, int32_t vocab, gk_sampling p, int32_t* __restrict__ state,
                  int32_t* __restrict__ history, int32_t capacity, const int32_t* __restrict__ stop_ids,
                  int32_t n_stop, int32_t blocks, int32_t slice, int32_t cached) {
  extern __shared__ uint32_t dyn[];
  __shared__ Shared sh;
  const int32_t rank = (int32_t)blockIdx.x;
  const int32_t base = (int32_t)min((int64_t)rank * slice, (int64_t)vocab);
  const int32_t len = min(slice, vocab - base);
  float* g = logits + base;
  Block bk{Cluster{rank, blocks}, sh, cached ? reinterpret_cast<float*>(dyn) : g, base, len, -INFINITY, 0};
  uint32_t* seen = cached ? dyn + slice : dyn;

  if (threadIdx.x < GK_STATE_FIELDS) sh.state[threadIdx.x] = state[threadIdx.x];
  if (cached) {
    for (int32_t i = threadIdx.x; i < len; i += kThreads) bk.x[i] = g[i];
  }
  __syncthreads();
  // Every block reads the same flag, so all of them return here (before any block touches another's memory).
  if (sh.state[GK_STATE_DONE] != 0) return;

  // Repetition penalty, once per distinct id of history[0, STATE_HISTORY): each block takes the ids of its
  // slice, and the thread that sets an id's bit first applies it. Ids outside [0, vocab) are ignored.
  const int32_t n_hist = min(max(sh.state[GK_STATE_HISTORY], 0), capacity);
  if (p.repetition_penalty != 1.0f && n_hist > 0) {
    for (int32_t w = threadIdx.x; w < (len + 31) / 32; w += kThreads) seen[w] = 0;
    __syncthreads();
    for (int32_t j = threadIdx.x; j < n_hist; j += kThreads) {
      const int32_t i = history[j] - base;
      if (i < 0 || i >= len) continue;
      const uint32_t bit = 1u << (i & 31);
      if (atomicOr(&seen[i >> 5], bit) & bit) continue;
      const float l = gk::sample_penalize(bk.x[i], p.repetition_penalty);
      bk.x[i] = l;
      g[i] = l;  // the caller sees the penalised logits (greedy writes nothing else)
    }
    __syncthreads();
  }

  int32_t token;
  bool mine;  // whether this block finishes the step
  if (!(p.temperature > 0.0f)) {
    token = bk.argmax();
    mine = rank == 0;
  } else {
    float m = -INFINITY;
    for (int32_t i = threadIdx.x; i < len; i += kThreads) {
      const float l = __fdiv_rn(bk.x[i], p.temperature);
      bk.x[i] = l;
      if (cached) g[i] = l;
      m = fmaxf(m, gk::sample_rank_value(l));
    }
    __syncthreads();
    m = bk.max_of(m);
    bk.m = m;
    if (m == -INFINITY) {  // only -inf and NaN: no distribution to draw from; take what greedy would
      token = bk.argmax();
      mine = rank == 0;
    } else {
      u64 threshold = 0;  // tokens with key >= threshold survive top-k and top-p
      if (p.top_k > 0 && p.top_k < vocab) threshold = bk.select(0, false, (double)p.top_k);
      if (p.top_p < 1.0f) {
        u64 s = 0;
        for (int32_t i = threadIdx.x; i < len; i += kThreads) {
          const float l = bk.x[i];
          if (gk::sample_key(l, base + i) >= threshold) s += gk::sample_mass(gk::sample_weight(l, m));
        }
        const double target = (double)p.top_p * (double)bk.sum_of(s);
        threshold = bk.select(threshold, true, target);
      }
      const float min_p = p.min_p;
      const uint32_t u24 = gk::sample_u24(p.seed, (uint32_t)sh.state[GK_STATE_STEP]);
      token = bk.find(
          [&](int32_t i) -> u64 {
            const float l = bk.x[i];
            const float w = gk::sample_weight(l, m);
            return gk::sample_key(l, base + i) >= threshold && !(w < min_p) ? gk::sample_mass(w) : 0ull;
          },
          // R = floor(u24 * total / 2^24) < total; the product needs up to 88 bits. The most likely token is
          // always kept, so total > 0.
          [&](u64 total) { return (__umul64hi((u64)u24, total) << 40) | (((u64)u24 * total) >> 24); });
      mine = token >= 0;
    }
  }
  if (mine && threadIdx.x == 0) finish(sh, token, state, history, capacity, stop_ids, n_stop);
  bk.cl.sync();  // no block may exit (freeing its shared memory) while another still reads it
}

// Blocks for a vocabulary: one per kMinSlice ids, at most a portable cluster, 1 without clusters.
int32_t block_count(int32_t vocab, bool clusters) {
  if (!clusters) return 1;
  const int32_t n = (int32_t)ceil_div<int64_t>(vocab, kMinSlice);
  return n < 1 ? 1 : (n > kMaxBlocks ? kMaxBlocks : n);
}

}  // namespace

GK_API gk_status gk_sample(gk_stream* s, float* logits, int32_t vocab, const gk_sampling* params, int32_t* state,
                           int32_t* history, int32_t history_capacity, const int32_t* stop_ids, int32_t n_stop) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_sample", &st));
  GK_TRY(gk::validate_sample(logits, vocab, params, state, history, history_capacity, stop_ids, n_stop));
  const gk_sampling p = *params;  // by value into the launch: a recording keeps these values
  const int dev = s->ctx->device;
  int major = 0, optin = 0;
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaFuncAttributes attr;
  GK_CUDA_CHECK(cudaFuncGetAttributes(&attr, sample_kernel));
  const size_t room = (size_t)optin > attr.sharedSizeBytes ? (size_t)optin - attr.sharedSizeBytes : 0;
  const bool penalty = p.repetition_penalty != 1.0f;

  // The launch for a block count: the slice cached in shared memory when it fits next to the penalty bitmap.
  struct Shape {
    int32_t blocks, slice, cached;
    size_t smem;
  };
  auto shape = [&](int32_t blocks) -> Shape {
    const int32_t slice = (int32_t)ceil_div<int64_t>(vocab, blocks);
    const size_t bitmap = penalty ? sizeof(uint32_t) * (size_t)((slice + 31) / 32) : 0;
    const size_t cache = sizeof(float) * (size_t)slice;
    const bool cached = bitmap + cache <= room;
    return {blocks, slice, cached ? 1 : 0, bitmap + (cached ? cache : 0)};
  };
  Shape sh = shape(block_count(vocab, major >= 9));
  if (sh.smem > room) {
    return gk_fail(GK_ERR_UNSUPPORTED,
                   "gk_sample: vocab=%d needs %zu bytes of shared memory for the repetition penalty; the device has "
                   "%d per block",
                   vocab, sh.smem + attr.sharedSizeBytes, optin);
  }
  // Always the device's whole room, never the launch's need: a per-launch value could race with a launch of
  // another vocabulary on another thread between the set and the launch.
  GK_CUDA_CHECK(cudaFuncSetAttribute(sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)room));

  cudaLaunchConfig_t cfg = {};
  cudaLaunchAttribute cluster[1];
  cfg.blockDim = dim3(kThreads);
  cfg.stream = st;
  if (sh.blocks > 1) {
    cfg.gridDim = dim3((unsigned)sh.blocks);
    cfg.dynamicSmemBytes = sh.smem;
    cluster[0].id = cudaLaunchAttributeClusterDimension;
    cluster[0].val.clusterDim.x = (unsigned)sh.blocks;
    cluster[0].val.clusterDim.y = 1;
    cluster[0].val.clusterDim.z = 1;
    cfg.attrs = cluster;
    cfg.numAttrs = 1;
    // A GPU partitioned so that no cluster of this size fits (MIG slices, for instance) runs one block.
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, sample_kernel, &cfg) != cudaSuccess || clusters < 1) {
      (void)cudaGetLastError();
      sh = shape(1);
      if (sh.smem > room) return gk_fail(GK_ERR_UNSUPPORTED, "gk_sample: vocab=%d does not fit one block", vocab);
    }
  }
  if (sh.blocks == 1) {
    cfg.gridDim = dim3(1);
    cfg.dynamicSmemBytes = sh.smem;
    cfg.attrs = nullptr;
    cfg.numAttrs = 0;
  }
  GK_CUDA_CHECK(cudaLaunchKernelEx(&cfg, sample_kernel, logits, vocab, p, state, history, history_capacity, stop_ids,
                                   n_stop, sh.blocks, sh.slice, sh.cached));
  GK_LAUNCH_CHECK();
  return GK_OK;
}

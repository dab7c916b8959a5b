// gk_logprobs on CUDA: one block reads the logits 2 + top_n times (max, sum of exponentials in double, then one
// pass per rank for the largest key below the previous one: keys hold the id, so they are distinct and no list of
// chosen ids is needed). top_n <= 64 passes over a 262k vocabulary are a few tens of microseconds, paid only
// by requests that ask for logprobs. Ranks as kernels/cpu/logprobs.cpp (sample_key); the log-sum-exp agrees to
// rounding.
#include "../common/sampling.h"
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;
using u64 = unsigned long long;

constexpr int kThreads = 1024;

__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double r = lane < warps ? scratch[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
  __syncthreads();
  return r;
}

__device__ __forceinline__ u64 block_max_u64(u64 v, u64* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  u64 r = lane < warps ? scratch[lane] : 0ull;
  for (int o = 16; o > 0; o >>= 1) r = max(r, __shfl_xor_sync(0xffffffffu, r, o));
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(kThreads) logprobs_kernel(const float* __restrict__ logits, int32_t vocab,
                                                            const int32_t* state, int32_t top_n, int32_t capacity,
                                                            int32_t* ids, float* logprobs) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  __shared__ u64 us[32];
  const int32_t slot = state[GK_STATE_STEP] - 1;
  if (slot < 0 || slot >= capacity) return;

  float m = -INFINITY;
  for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, gk::sample_rank_value(logits[i]));
  m = block_max(m, fs);
  double sum = 0.0;
  for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float l = gk::sample_rank_value(logits[i]);
    if (l != -INFINITY) sum += (double)expf(l - m);
  }
  const double lse = (double)m + log(block_sum_d(sum, ds));

  int32_t* out_ids = ids + (int64_t)slot * (1 + top_n);
  float* out_lp = logprobs + (int64_t)slot * (1 + top_n);
  if (threadIdx.x == 0) {
    const int32_t token = state[GK_STATE_TOKEN];
    out_ids[0] = token;
    out_lp[0] = token >= 0 && token < vocab ? (float)((double)gk::sample_rank_value(logits[token]) - lse) : -INFINITY;
  }
  u64 prev = ~0ull;
  for (int32_t k = 0; k < top_n; ++k) {
    u64 best = 0;
    for (int32_t i = threadIdx.x; i < vocab; i += blockDim.x) {
      const u64 key = gk::sample_key(logits[i], i);
      if (key < prev && key > best) best = key;
    }
    best = block_max_u64(best, us);
    prev = best;
    if (threadIdx.x == 0) {
      const int32_t id = (int32_t)(0xffffffffu - (uint32_t)(best & 0xffffffffull));
      out_ids[1 + k] = id;
      out_lp[1 + k] = (float)((double)gk::sample_rank_value(logits[id]) - lse);
    }
  }
}

}  // namespace

GK_API gk_status gk_logprobs(gk_stream* s, const float* logits, int32_t vocab, const int32_t* state, int32_t top_n,
                             int32_t capacity, int32_t* ids, float* logprobs) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_logprobs", &st));
  GK_TRY(gk::validate_logprobs(logits, vocab, state, top_n, capacity, ids, logprobs));
  logprobs_kernel<<<1, kThreads, 0, st>>>(logits, vocab, state, top_n, capacity, ids, logprobs);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

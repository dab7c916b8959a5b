// gk_logits_process on CUDA: bias, frequency/presence penalties, allowed-token mask, as kernels/cpu/logits_process.cpp
// and bit for bit the same (every logit changes once, by the shared sample_count_penalty). Fixed launch shapes and
// every per-step value (the history length, done) read on the device, so the op records into a decode program.
// The penalty counts use the caller's int32 [vocab] scratch in three launches (zero the ids that occur, count, then
// the one thread whose atomic exchange takes a non-zero count applies it): integer counts, so no order matters.
#include "../common/sampling.h"
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;
constexpr int kPenaltyBlocks = 32;  // the history is at most the context: a few thousand ids per step

__global__ void bias_kernel(float* logits, int32_t vocab, const int32_t* state, const int32_t* ids, const float* values,
                            int32_t n) {
  if (state[GK_STATE_DONE] != 0) return;
  for (int32_t j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
    const int32_t id = ids[j];
    if (id >= 0 && id < vocab) logits[id] += values[j];
  }
}

// phase 0: scratch[id] = 0; 1: count; 2: apply once per id.
__global__ void penalty_kernel(int phase, float* logits, int32_t vocab, const int32_t* state, const int32_t* history,
                               int32_t capacity, int32_t start, float frequency, float presence, int32_t* scratch) {
  if (state[GK_STATE_DONE] != 0) return;
  const int32_t end = min(max(state[GK_STATE_HISTORY], 0), capacity);
  for (int32_t j = start + blockIdx.x * blockDim.x + threadIdx.x; j < end; j += gridDim.x * blockDim.x) {
    const int32_t id = history[j];
    if (id < 0 || id >= vocab) continue;
    if (phase == 0) {
      scratch[id] = 0;
    } else if (phase == 1) {
      atomicAdd(&scratch[id], 1);
    } else {
      const int32_t c = atomicExch(&scratch[id], 0);
      if (c > 0) logits[id] = gk::sample_count_penalty(logits[id], c, frequency, presence);
    }
  }
}

__global__ void mask_kernel(float* logits, int32_t vocab, const int32_t* state, const uint32_t* allowed) {
  if (state[GK_STATE_DONE] != 0) return;
  for (int32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x) {
    if (!((allowed[i >> 5] >> (i & 31)) & 1u)) logits[i] = -INFINITY;
  }
}

}  // namespace

GK_API gk_status gk_logits_process(gk_stream* s, float* logits, int32_t vocab, const int32_t* state,
                                   const int32_t* history, int32_t history_capacity, int32_t penalty_start,
                                   float frequency_penalty, float presence_penalty, const int32_t* bias_ids,
                                   const float* bias_values, int32_t n_bias, const uint32_t* allowed,
                                   int32_t* scratch) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_logits_process", &st));
  GK_TRY(gk::validate_logits_process(logits, vocab, state, history, history_capacity, penalty_start,
                                     frequency_penalty, presence_penalty, bias_ids, bias_values, n_bias, scratch));
  if (n_bias > 0) {
    bias_kernel<<<grid_for(n_bias, kThreads), kThreads, 0, st>>>(logits, vocab, state, bias_ids, bias_values, n_bias);
    GK_LAUNCH_CHECK();
  }
  if (frequency_penalty != 0.0f || presence_penalty != 0.0f) {
    for (int phase = 0; phase < 3; ++phase) {
      penalty_kernel<<<kPenaltyBlocks, kThreads, 0, st>>>(phase, logits, vocab, state, history, history_capacity,
                                                         penalty_start, frequency_penalty, presence_penalty, scratch);
      GK_LAUNCH_CHECK();
    }
  }
  if (allowed) {
    mask_kernel<<<grid_for(vocab, kThreads), kThreads, 0, st>>>(logits, vocab, state, allowed);
    GK_LAUNCH_CHECK();
  }
  return GK_OK;
}

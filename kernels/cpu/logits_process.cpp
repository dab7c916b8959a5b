// gk_logits_process on the CPU: logit bias, OpenAI's frequency/presence penalties over the generated ids, then the
// constraint engine's allowed-token mask. The reference semantics; kernels/cuda/logits_process.cu matches it bit
// for bit (every logit changes by one shared, explicitly rounded expression of kernels/common/sampling.h).
#include <algorithm>

#include "../common/sampling.h"
#include "cpu.h"

GK_API gk_status gk_logits_process(gk_stream* s, float* logits, int32_t vocab, const int32_t* state,
                                   const int32_t* history, int32_t history_capacity, int32_t penalty_start,
                                   float frequency_penalty, float presence_penalty, const int32_t* bias_ids,
                                   const float* bias_values, int32_t n_bias, const uint32_t* allowed,
                                   int32_t* scratch) {
  GK_TRY(gk::validate_stream(s, "gk_logits_process"));
  GK_TRY(gk::validate_logits_process(logits, vocab, state, history, history_capacity, penalty_start,
                                     frequency_penalty, presence_penalty, bias_ids, bias_values, n_bias, scratch));
  GK_CPU_RECORD(s, gk_logits_process(s, logits, vocab, state, history, history_capacity, penalty_start,
                                     frequency_penalty, presence_penalty, bias_ids, bias_values, n_bias, allowed,
                                     scratch));
  if (state[GK_STATE_DONE] != 0) return GK_OK;

  for (int32_t j = 0; j < n_bias; ++j) {
    const int32_t id = bias_ids[j];
    if (id >= 0 && id < vocab) logits[id] += bias_values[j];
  }

  if (frequency_penalty != 0.0f || presence_penalty != 0.0f) {
    const int32_t end = std::clamp(state[GK_STATE_HISTORY], 0, history_capacity);
    // Counts live in scratch only for the ids that occur: zeroed, counted, then applied once per id (the first
    // occurrence takes the count and clears it, as the CUDA kernel's atomic exchange does).
    for (int32_t j = penalty_start; j < end; ++j) {
      const int32_t id = history[j];
      if (id >= 0 && id < vocab) scratch[id] = 0;
    }
    for (int32_t j = penalty_start; j < end; ++j) {
      const int32_t id = history[j];
      if (id >= 0 && id < vocab) ++scratch[id];
    }
    for (int32_t j = penalty_start; j < end; ++j) {
      const int32_t id = history[j];
      if (id < 0 || id >= vocab || scratch[id] == 0) continue;
      logits[id] = gk::sample_count_penalty(logits[id], scratch[id], frequency_penalty, presence_penalty);
      scratch[id] = 0;
    }
  }

  if (allowed) {
    for (int32_t i = 0; i < vocab; ++i) {
      if (!((allowed[i >> 5] >> (i & 31)) & 1u)) logits[i] = -INFINITY;
    }
  }
  return GK_OK;
}

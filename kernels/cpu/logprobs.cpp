// gk_logprobs on the CPU: the sampled token's log-softmax and the top_n most likely ids with theirs. Ranks by
// kernels/common/sampling.h sample_key (value descending, id ascending; NaN as -inf), as the CUDA kernel does.
#include <algorithm>
#include <functional>
#include <vector>

#include "../common/sampling.h"
#include "cpu.h"

GK_API gk_status gk_logprobs(gk_stream* s, const float* logits, int32_t vocab, const int32_t* state, int32_t top_n,
                             int32_t capacity, int32_t* ids, float* logprobs) {
  GK_TRY(gk::validate_stream(s, "gk_logprobs"));
  GK_TRY(gk::validate_logprobs(logits, vocab, state, top_n, capacity, ids, logprobs));
  GK_CPU_RECORD(s, gk_logprobs(s, logits, vocab, state, top_n, capacity, ids, logprobs));
  const int32_t slot = state[GK_STATE_STEP] - 1;
  if (slot < 0 || slot >= capacity) return GK_OK;

  float m = -INFINITY;
  for (int32_t i = 0; i < vocab; ++i) m = std::max(m, gk::sample_rank_value(logits[i]));
  double sum = 0.0;
  for (int32_t i = 0; i < vocab; ++i) {
    const float l = gk::sample_rank_value(logits[i]);
    if (l != -INFINITY) sum += (double)expf(l - m);
  }
  const double lse = (double)m + log(sum);
  auto logprob = [&](int32_t id) { return (float)((double)gk::sample_rank_value(logits[id]) - lse); };

  int32_t* out_ids = ids + (int64_t)slot * (1 + top_n);
  float* out_lp = logprobs + (int64_t)slot * (1 + top_n);
  const int32_t token = state[GK_STATE_TOKEN];
  out_ids[0] = token;
  out_lp[0] = token >= 0 && token < vocab ? logprob(token) : -INFINITY;
  if (top_n > 0) {
    thread_local std::vector<uint64_t> keys;
    keys.resize((size_t)vocab);
    for (int32_t i = 0; i < vocab; ++i) keys[i] = gk::sample_key(logits[i], i);
    std::partial_sort(keys.begin(), keys.begin() + top_n, keys.end(), std::greater<uint64_t>());
    for (int32_t k = 0; k < top_n; ++k) {
      const int32_t id = (int32_t)(0xffffffffu - (uint32_t)(keys[k] & 0xffffffffu));
      out_ids[1 + k] = id;
      out_lp[1 + k] = logprob(id);
    }
    if (vocab > (1 << 20)) std::vector<uint64_t>().swap(keys);
  }
  return GK_OK;
}
